"""The browser check finds each defect a reader would meet: a broken image, untypeset math, a broken
internal link, a JavaScript error, a missing slider fallback (and a wrong Colab button)."""

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import browser_check  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"  # the Makefile passes CHROMIUM
MATHJAX = ROOT / "book" / "_static" / "mathjax" / "tex-chtml.js"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or not MATHJAX.exists(),
    reason="needs Debian's chromium and the MathJax files that `make setup` / `make browser-check` install")

# a 1x1 PNG
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4890000000049454e44ae426082")


MATHJAX_TAG = '<script defer src="../_static/mathjax/tex-chtml.js"></script>'


def _site(tmp_path, body, colab="https://colab.research.google.com/github/o/r/blob/main/chapters/01_x.ipynb",
          head=MATHJAX_TAG):
    html = tmp_path / "html"
    (html / "chapters").mkdir(parents=True)
    (html / "_static").mkdir()
    shutil.copytree(MATHJAX.parent, html / "_static" / "mathjax")
    (html / "_images").mkdir()
    (html / "_images" / "a.png").write_bytes(PNG)
    (html / "index.html").write_text("<html><body>home</body></html>")
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/o/r\n  branch: main\n")
    page = f"""<html><head>{head}</head><body><main>
<a href="{colab}">Colab</a><a href="../index.html">home</a><a href="#sec">section</a>
<h1 id="sec">Title</h1>{body}</main></body></html>"""
    (html / "chapters" / "01_x.html").write_text(page)
    return html


GOOD = """<p>Inline <span class="math notranslate nohighlight">\\(x^2\\)</span> math.</p>
<img src="../_images/a.png"><pre>Static view (no kernel needed): n = 1, 2</pre>
<script type="application/vnd.jupyter.widget-view+json">{}</script>"""


def _check(tmp_path, body, **kw):
    html = _site(tmp_path, body, **kw)
    return browser_check.check_site(html, ["chapters/01_x"], CHROMIUM, root=tmp_path)


def test_a_good_page_passes(tmp_path):
    assert _check(tmp_path, GOOD) == []


@pytest.mark.parametrize("body, word", [
    (GOOD.replace("../_images/a.png", "../_images/missing.png"), "image did not load"),
    (GOOD + '<a href="../chapters/02_missing.html">next</a>', "broken internal link"),
    (GOOD + "<script>undefinedFunction();</script>", "JavaScript error"),
    (GOOD + '<script>console.error("Got invalid theme mode: .");</script>', "JavaScript error"),
    (GOOD + "<script>const ONCE = 1;</script><script>const ONCE = 1;</script>", "already been declared"),
    (GOOD.replace("<pre>Static view (no kernel needed): n = 1, 2</pre>", ""), "static fallback"),
])
def test_each_defect_is_found(tmp_path, body, word):
    problems = _check(tmp_path, body)
    assert any(word in p for p in problems), problems


def test_math_left_untypeset_is_found(tmp_path):
    """As when MathJax would come from a CDN that an offline reader cannot reach."""
    html = _site(tmp_path, GOOD, head='<script defer src="https://cdn.example.org/mathjax/tex-chtml.js"></script>')
    problems = browser_check.check_site(html, ["chapters/01_x"], CHROMIUM, root=tmp_path)
    assert any("untypeset" in p for p in problems) and any("nothing typeset" in p for p in problems), problems


def test_a_wrong_colab_button_is_found(tmp_path):
    problems = _check(tmp_path, GOOD, colab="https://colab.research.google.com/github/o/r/blob/dev/chapters/01_x.ipynb")
    assert any("Colab" in p for p in problems), problems


def test_a_screenshot_of_each_chapter_is_saved(tmp_path):
    html = _site(tmp_path, GOOD)
    shots = tmp_path / "shots"
    assert browser_check.check_site(html, ["chapters/01_x"], CHROMIUM, root=tmp_path, screenshots=shots) == []
    assert (shots / "01_x.png").read_bytes()[:4] == b"\x89PNG"

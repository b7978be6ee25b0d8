"""The browser check finds each defect a reader would meet: a broken image, untypeset math, a broken
internal link, a JavaScript error, a missing slider fallback, an image without a real alt text, a
kernel-free slider that does not work (and a wrong Colab button).

Every case is one page of one small site, checked in one Chromium session (starting Chromium is
the slow part); each test then reads the problems of its own page."""

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import browser_check  # noqa: E402

from tutorlib import widgets  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"  # the Makefile passes CHROMIUM
MATHJAX = ROOT / "book" / "_static" / "mathjax" / "tex-chtml.js"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or not MATHJAX.exists(),
    reason="needs Debian's chromium and the MathJax files that `make setup` / `make browser-check` install")

# a 1x1 PNG
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4890000000049454e44ae426082")

MATHJAX_TAG = '<script defer src="../_static/mathjax/tex-chtml.js"></script>'
CDN_MATHJAX_TAG = '<script defer src="https://cdn.example.org/mathjax/tex-chtml.js"></script>'
COLAB = "https://colab.research.google.com/github/o/r/blob/{branch}/chapters/{name}.ipynb"


def _draw(ax, v):
    ax.plot([0, 1], [0, v], lw=3)
    ax.set_ylim(0, 4)


VALUES = [1, 2, 3, 4]
FRAMES = widgets.render_frames(_draw, VALUES, (2.0, 1.5), dpi=40)
SLIDER = widgets.slider_html("k", [str(v) for v in VALUES], FRAMES, 1, "a line", [f"a line: k = {v}" for v in VALUES])
FIGURE = '<img src="../_images/a.png" alt="a test figure">'
GOOD = f"""<p>Inline <span class="math notranslate nohighlight">\\(x^2\\)</span> math.</p>
{FIGURE}<pre>Static view (no kernel needed): k = 1, 2</pre>
{SLIDER}
<script type="application/vnd.jupyter.widget-view+json">{{}}</script>"""


BAD_ALTS = ['', ' alt=""', ' alt="  "', ' alt="a.png"', ' alt="../_images/a.png"', ' alt="_images/3f2a9c.PNG"']


def _explored() -> str:
    """The HTML that explore displays (end to end: the mechanism's own output must pass)."""
    bundles = []
    real, widgets._display = widgets._display, bundles.append
    try:
        widgets.explore(_draw, "k", VALUES, static=[1, 4], value=2, panel=(2.0, 1.5), slider=False)
    finally:
        widgets._display = real
    return "<pre>Static view (no kernel needed): k = 1, 4</pre>" + "".join(b["text/html"] for b in bundles)


# page name -> (body, words that one of its problems must contain; None: the page must pass)
CASES = {
    "good": (GOOD, None),
    "explored": (_explored(), None),
    "broken_image": (GOOD.replace("../_images/a.png", "../_images/missing.png"), "image did not load"),
    "broken_link": (GOOD + '<a href="../chapters/02_missing.html">next</a>', "broken internal link"),
    "js_error": (GOOD + "<script>undefinedFunction();</script>", "JavaScript error"),
    "console_error": (GOOD + '<script>console.error("Got invalid theme mode: .");</script>', "JavaScript error"),
    "const_twice": (GOOD + "<script>const ONCE = 1;</script><script>const ONCE = 1;</script>", "already been declared"),
    "no_static_view": (GOOD.replace("<pre>Static view (no kernel needed): k = 1, 2</pre>", ""), "static fallback"),
    "live_without_kernel_free": (GOOD.replace(SLIDER, "").replace("<pre>Static view (no kernel needed): k = 1, 2</pre>", ""),
                                 "live slider(s) but only 0 kernel-free"),
    # images whose alt text says nothing (all on one page: see test_every_bad_alt_text_is_found)
    "alt": (GOOD + "".join(f'<img src="../_images/a.png"{a}>' for a in BAD_ALTS), "alt text"),
    "alt_frame_file_name": (GOOD.replace('alt="a line: k = 3"', 'alt="frame_3.png"'), "alt text"),
    # kernel-free sliders that do not work
    "slider_same_picture": (GOOD.replace(widgets._data_uri(FRAMES[1]), widgets._data_uri(FRAMES[0])),
                            "the image did not change"),
    "slider_readout_stuck": (GOOD.replace("readout.textContent = text;", ""), "the readout shows"),
    "slider_no_valuetext": (GOOD.replace('input.setAttribute("aria-valuetext", text);', ""), "aria-valuetext"),
    "slider_wrong_frame": (GOOD.replace("(j !== i)", "(j !== 0)").replace("(j === i)", "(j === 0)"),
                           "shows the frame(s)"),
    "slider_console_error": (GOOD.replace("function show() {", 'function show() { console.error("broken slider");'),
                             "while moving it"),
    "slider_exception": (GOOD.replace('input.addEventListener("input", show);',
                                      'input.addEventListener("input", function () { show(); undefinedFunction(); });'),
                         "while moving it"),
    "slider_script_not_run": (GOOD.replace("<script>(function", '<script type="text/plain">(function'),
                              "no working control"),
    "slider_frame_missing": (GOOD.replace('max="3"', 'max="4"'), "does not span"),
    # pages whose head or Colab link is wrong
    "math_from_a_cdn": (GOOD, "untypeset"),
    "wrong_colab": (GOOD, "Colab"),
}


def _write_site(tmp_path):
    html = tmp_path / "html"
    (html / "chapters").mkdir(parents=True)
    (html / "_static").mkdir()
    shutil.copytree(MATHJAX.parent, html / "_static" / "mathjax")
    (html / "_images").mkdir()
    (html / "_images" / "a.png").write_bytes(PNG)
    (html / "index.html").write_text("<html><body>home</body></html>")
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/o/r\n  branch: main\n")
    for name, (body, _) in CASES.items():
        head = CDN_MATHJAX_TAG if name == "math_from_a_cdn" else MATHJAX_TAG
        colab = COLAB.format(branch="dev" if name == "wrong_colab" else "main", name=name)
        page = f"""<html><head>{head}</head><body><main>
<a href="{colab}">Colab</a><a href="../index.html">home</a><a href="#sec">section</a>
<h1 id="sec">Title</h1>{body}</main></body></html>"""
        (html / "chapters" / f"{name}.html").write_text(page)
    return html


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """Every case's page, checked in one run: page name -> its problems; and the screenshots folder."""
    tmp_path = tmp_path_factory.mktemp("site")
    html = _write_site(tmp_path)
    shots = tmp_path / "shots"
    problems = browser_check.check_site(html, [f"chapters/{n}" for n in CASES], CHROMIUM, root=tmp_path,
                                        screenshots=shots)
    by_page = {n: [p for p in problems if p.startswith(f"chapters/{n}: ")] for n in CASES}
    assert sum(map(len, by_page.values())) == len(problems), problems  # every problem names its page
    return by_page, shots


@pytest.mark.parametrize("name", [n for n, (_, word) in CASES.items() if word is None])
def test_a_good_page_passes(checked, name):
    assert checked[0][name] == []


@pytest.mark.parametrize("name", [n for n, (_, word) in CASES.items() if word is not None])
def test_each_defect_is_found(checked, name):
    word = CASES[name][1]
    assert any(word in p for p in checked[0][name]), checked[0][name]


def test_every_bad_alt_text_is_found(checked):
    problems = [p for p in checked[0]["alt"] if "alt text" in p]
    assert sorted(p.split("(alt ")[1].split(",")[0] for p in problems) == sorted(
        ["None", "''", "'  '", "'a.png'", "'../_images/a.png'", "'_images/3f2a9c.PNG'"]), problems


def test_math_left_untypeset_is_found(checked):
    """As when MathJax would come from a CDN that an offline reader cannot reach."""
    problems = checked[0]["math_from_a_cdn"]
    assert any("untypeset" in p for p in problems) and any("nothing typeset" in p for p in problems), problems


def test_a_slider_defect_is_reported_for_its_slider(checked):
    found = [p for p in checked[0]["slider_readout_stuck"] if "readout" in p]
    assert found and all(p.startswith("chapters/slider_readout_stuck: kernel-free slider 1 (k): ") for p in found)
    assert any("key Home: the readout shows 'k = 2', expected 'k = 1'" in p for p in found), found


def test_a_screenshot_of_each_chapter_is_saved(checked):
    assert (checked[1] / "good.png").read_bytes()[:4] == b"\x89PNG"

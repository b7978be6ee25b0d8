"""The landing page's figures: drawn from tutorlib by book/_ext/landing_figures.py, included by
book/intro.md with captions that link their chapters, and checked in the built book."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import check_book  # noqa: E402
import landing_figures  # noqa: E402

INTRO = ROOT / "book" / "intro.md"


def _figure_blocks(text):
    return re.findall(r"```\{figure\} (\S+)\n(.*?)```", text, re.S)


def test_intro_includes_every_drawn_figure_with_a_caption_linking_its_chapter():
    blocks = _figure_blocks(INTRO.read_text())
    assert sorted(path for path, _ in blocks) == sorted(f"_figures/{n}.png" for n in landing_figures.FIGURES)
    assert len(blocks) >= check_book.LANDING_FIGURES
    for path, body in blocks:
        link = re.search(r"\{doc\}`\.\./chapters/((\d\d)_\w+)`", body)
        assert link, f"{path}: the caption does not link a chapter"
        chapter, number = link.groups()
        assert (ROOT / "chapters" / f"{chapter}.ipynb").exists(), chapter
        assert Path(path).name.startswith(f"ch{int(number)}_"), f"{path} is captioned with another chapter"
        assert ":alt:" in body, f"{path}: no alt text"


def test_every_figure_is_drawn_into_a_png(tmp_path):
    seconds = landing_figures.render(tmp_path)
    assert set(seconds) == set(landing_figures.FIGURES)
    for name in landing_figures.FIGURES:
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


# --- the book checker's landing-page check --------------------------------------------------

FIGURE = """<figure class="align-default" id="f{i}"><img alt="a" src="../_images/f{i}.png" />
<figcaption><p>From <a class="reference internal" href="../chapters/01_x.html">1. X</a>: text.</p></figcaption></figure>"""


def _book(tmp_path, body):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n- chapters:\n  - file: chapters/01_x\n")
    (tmp_path / "html" / "book").mkdir(parents=True)
    (tmp_path / "html" / "book" / "intro.html").write_text(f"<html><body>{body}</body></html>")
    return tmp_path / "html"


def test_landing_check_accepts_figures_that_link_chapters(tmp_path):
    body = "".join(FIGURE.format(i=i) for i in range(check_book.LANDING_FIGURES))
    assert check_book.check_landing(_book(tmp_path, body), root=tmp_path) == []


@pytest.mark.parametrize("spoil", [
    lambda f: "",                                                       # no figure at all
    lambda f: f.replace('href="../chapters/01_x.html"', 'href="notation.html"'),  # caption links no chapter
    lambda f: f.replace('<img alt="a" src="../_images/f0.png" />', ""),           # no image
])
def test_landing_check_finds_a_missing_figure(tmp_path, spoil):
    figures = [FIGURE.format(i=i) for i in range(check_book.LANDING_FIGURES)]
    figures[0] = spoil(figures[0])
    found = check_book.check_landing(_book(tmp_path, "".join(figures)), root=tmp_path)
    assert len(found) == 1 and "expected at least" in found[0], found

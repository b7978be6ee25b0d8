"""The book's own fixes to the HTML that Sphinx and the theme produce (see book/_ext/)."""

import io
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import inline_scripts_once  # noqa: E402

LATE_SCRIPT = "const LATE_CONSTANT = 1;"

# An extension that registers an inline script once the builder exists, as sphinx-thebe does.
LATE_EXTENSION = f'''
def _late(app, env, docnames):
    app.add_js_file(None, body={LATE_SCRIPT!r})

def setup(app):
    app.connect("env-before-read-docs", _late)
    return {{"parallel_read_safe": True}}
'''


def _build(tmp_path, extensions):
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace

    src = tmp_path / "src"
    src.mkdir()
    (src / "late_script.py").write_text(LATE_EXTENSION)
    (src / "conf.py").write_text(f"import sys\nsys.path[:0] = [{str(src)!r}, {str(ROOT / 'book' / '_ext')!r}]\n"
                                 f"extensions = {extensions!r}\n")
    (src / "index.rst").write_text("Title\n=====\n\nText.\n")
    warnings = io.StringIO()
    with docutils_namespace():  # each build registers its nodes afresh
        app = Sphinx(str(src), str(src), str(tmp_path / "html"), str(tmp_path / "doctrees"), "html",
                     status=None, warning=warnings, freshenv=True)
        app.build(force_all=True)
    assert warnings.getvalue() == ""
    return (tmp_path / "html" / "index.html").read_text()


def test_sphinx_writes_a_late_inline_script_twice_without_the_fix(tmp_path):
    """The Sphinx 7.4 bug the extension works around. If this fails after an upgrade, Sphinx has
    fixed it: drop book/_ext/inline_scripts_once.py and its line in _config.yml."""
    assert _build(tmp_path, ["late_script"]).count(LATE_SCRIPT) == 2


def test_each_inline_script_is_written_once_with_the_fix(tmp_path):
    html = _build(tmp_path, ["late_script", "inline_scripts_once"])
    assert html.count(LATE_SCRIPT) == 1
    assert html.count("doctools.js") == 1  # files still there, once


def test_unique_scripts_keeps_order_and_tells_different_scripts_apart():
    from sphinx.builders.html._assets import _JavaScript

    a_none, a_empty = _JavaScript(None, body="var a;"), _JavaScript("", body="var a;")
    b, later_a = _JavaScript("", body="var b;"), _JavaScript("", body="var a;", priority=800)
    f = _JavaScript("_static/x.js", defer="defer")
    assert a_none != a_empty  # the root of the bug: Sphinx's own equality lets both through
    kept = inline_scripts_once.unique_scripts([a_none, f, a_empty, b, f, later_a, "old.js", "old.js"])
    assert kept == [a_none, f, b, later_a, "old.js"]


def test_the_fixes_are_configured():
    """The extension is loaded; and pydata-sphinx-theme logs an error on every page when
    html_context has no default_mode."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert cfg["config"]["html_context"]["default_mode"] in {"light", "dark", "auto"}
    assert cfg["local_extensions"]["inline_scripts_once"] == "book/_ext"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


# --- tools/check_book.py: the sliders and the weight of a page -------------------------------------

sys.path.insert(0, str(ROOT / "tools"))
import check_book  # noqa: E402

STATIC = "<pre>Static view (no kernel needed): n = 1, 2</pre>"
LIVE_NOTE = '<p class="tutorlib-live">Live slider for n</p>'


def _kernel_free(frames=('alt="x: n = 1"', 'alt="x: n = 2" hidden'), srcs=("AA", "BB"), span="1"):
    imgs = "".join(f'<img class="tutorlib-frame" data-value="{i + 1}" src="data:image/png;base64,{s}" {a}>'
                   for i, (a, s) in enumerate(zip(frames, srcs)))
    return (f'<figure class="tutorlib-slider" data-name="n"><div><input type="range" min="0" max="{span}" value="0">'
            f'<output>n = 1</output></div>{imgs}<script>(function () {{}})();</script></figure>')


def test_the_slider_checker_accepts_whole_sliders():
    assert check_book.slider_problems("p", STATIC + _kernel_free() + LIVE_NOTE) == []
    assert check_book.slider_problems("p", 2 * (STATIC + _kernel_free())) == []
    assert check_book.slider_counts(STATIC + _kernel_free() + LIVE_NOTE) == (1, 1, 1)


@pytest.mark.parametrize("html, word", [
    (_kernel_free() + LIVE_NOTE, "only 0 static fallback"),
    (STATIC + LIVE_NOTE, "only 0 kernel-free slider(s)"),
    (STATIC + '<script type="application/vnd.jupyter.widget-view+json">{}</script>', "live slider(s) but only 0"),
    (STATIC + _kernel_free(frames=('alt="x: n = 1"',), srcs=("AA",), span="0"), "at least 2"),
    (STATIC + _kernel_free(span="2"), "does not span"),
    (STATIC + _kernel_free(frames=('alt="x: n = 1"', 'alt="x: n = 2"')), "2 frame(s) shown"),
    (STATIC + _kernel_free(frames=('alt="x: n = 1" hidden', 'alt="x: n = 2" hidden')), "0 frame(s) shown"),
    (STATIC + _kernel_free(srcs=("AA", "AA")), "the same image"),
    (STATIC + _kernel_free(frames=('alt=""', 'alt="x: n = 2" hidden')), "alt text"),
    (STATIC + _kernel_free(frames=('alt="x: n = 1"', 'alt="frame.png" hidden')), "alt text"),
    (STATIC + _kernel_free(frames=('', 'alt="x: n = 2" hidden')), "alt text"),
    (STATIC + _kernel_free().replace("<output>n = 1</output>", ""), "readout"),
    (STATIC + _kernel_free().replace("<script>(function () {})();</script>", ""), "script"),
])
def test_the_slider_checker_finds_each_defect(html, word):
    problems = check_book.slider_problems("p", html)
    assert any(word in p for p in problems), problems


@pytest.mark.parametrize("alt, bad", [
    (None, True), ("", True), ("  ", True), ("a.png", True), ("fig.JPG", True), ("../_images/x.svg", True),
    ("_images/abc", True), ("data:image/png;base64,AA", True), ("pic", True),
    ("Error against the number of samples", False), ("T = 0.5: samples at temperature T", False),
])
def test_bad_alt_texts(alt, bad):
    assert check_book.bad_alt(alt, "../_images/pic") is bad


def test_a_page_over_the_limit_is_found(tmp_path, monkeypatch):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: chapters/01_x\n")
    html = tmp_path / "html"
    (html / "chapters").mkdir(parents=True)
    (html / "_images").mkdir()
    (html / "_images" / "a.png").write_bytes(b"x" * 3000)
    page = ('<html><div class="cell_output"><img alt="a figure" src="../_images/a.png">'
            '<img alt="the same figure again" src="../_images/a.png"></div></html>')
    (html / "chapters" / "01_x.html").write_text(page)
    assert check_book.page_bytes(html / "chapters" / "01_x.html") == len(page) + 3000  # each image once
    monkeypatch.setattr(check_book, "PAGE_LIMIT", len(page) + 3000)
    assert check_book.check(html, root=tmp_path) == []
    monkeypatch.setattr(check_book, "PAGE_LIMIT", len(page) + 2999)
    (problem,) = check_book.check(html, root=tmp_path)
    assert "weighs" in problem and "over the limit" in problem


def test_the_book_shows_the_live_sliders_note_not_a_dead_widget():
    """_config.yml drops the widget mime type for HTML (the note displayed with each live slider
    shows instead) and loads no widget manager from a CDN."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert ["html", "application/vnd.jupyter.widget-view+json", None] in cfg["nb_mime_priority_overrides"]
    assert cfg["nb_ipywidgets_js"] == {}

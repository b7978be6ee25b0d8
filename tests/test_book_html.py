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

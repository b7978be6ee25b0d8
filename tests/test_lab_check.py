"""The JupyterLab live-slider check: its version comparison names a mismatch clearly. (The live
check itself, JupyterLab + Chromium + a drag, runs as `make lab-check`, part of `make test`.)"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import lab_check  # noqa: E402

def test_the_environments_widget_manager_is_found():
    version, source = lab_check.lab_extension()
    assert version is not None and version[0].isdigit()
    assert source == "jupyterlab_widgets"


def test_agreeing_versions_pass():
    assert lab_check.version_problems("8.1.9", "3.0.17", "~=3.0.17", "5.0.16", "jupyterlab_widgets") == []


def test_a_mismatch_names_both_versions():
    problems = lab_check.version_problems("8.1.9", "1.1.11", "~=3.0.17", "3.0.0", "jupyterlab_widgets")
    assert len(problems) == 1
    assert "ipywidgets 8.1.9" in problems[0] and "jupyterlab_widgets 1.1.11" in problems[0] and "~=3.0.17" in problems[0]


def test_a_missing_or_foreign_manager_is_named():
    assert "no @jupyter-widgets/jupyterlab-manager" in lab_check.version_problems(
        "8.1.9", "3.0.17", "~=3.0.17", None, None)[0]
    assert "from 'other_pkg'" in lab_check.version_problems("8.1.9", "3.0.17", "~=3.0.17", "5.0.16", "other_pkg")[0]


def test_the_installed_ipywidgets_declares_its_widget_manager():
    spec = lab_check._requirement_of("ipywidgets", "jupyterlab_widgets")
    assert spec and spec[0] in "~=<>!"


def test_the_notebook_uses_the_books_slider(tmp_path):
    import nbformat

    nb = nbformat.read(lab_check.write_notebook(tmp_path), as_version=4)
    assert "widgets.explore(" in nb.cells[0].source
    compile(nb.cells[0].source, "cell", "exec")

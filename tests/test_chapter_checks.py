"""A broken identity in a chapter must fail nbval: run nbval on a two-cell notebook."""

import subprocess
import sys

import nbformat
import pytest

import tutorlib


@pytest.mark.parametrize("rhs, passes", [(1.0, True), (1.5, False)])
def test_nbval_fails_when_an_identity_breaks(tmp_path, rhs, passes):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from tutorlib import compare"),
                nbformat.v4.new_code_cell(f"compare('identity', 1.0, {rhs}, rtol=1e-9)")]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                             "--nbval-current-env", str(path)], capture_output=True, text=True, cwd=tmp_path)
    assert (result.returncode == 0) == passes, result.stdout[-2000:]
    if not passes:
        assert "IdentityError" in result.stdout


def test_show_prints_the_source(capsys):
    tutorlib.show(tutorlib.compare)
    assert "def compare(" in capsys.readouterr().out
    with pytest.raises(ValueError, match="obj"):
        tutorlib.show(3)

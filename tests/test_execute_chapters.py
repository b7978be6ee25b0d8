"""The book's execution cache: a chapter's outputs are reused only while its code and the library
are unchanged; an edit to tutorlib empties the cache; a failing chapter is never cached."""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import execute_chapters  # noqa: E402


def _tree(tmp_path, lib="x = 1\n"):
    (tmp_path / "src" / "tutorlib").mkdir(parents=True, exist_ok=True)
    (tmp_path / "src" / "tutorlib" / "__init__.py").write_text(lib)
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "requirements-lock.txt").write_text("numpy==2\n")
    return tmp_path


def _notebook(path, source):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)
    return path


def test_the_key_follows_the_library_and_the_settings(tmp_path, monkeypatch):
    root = _tree(tmp_path)
    key = execute_chapters.library_key(root)
    assert execute_chapters.library_key(root) == key
    (root / "src" / "tutorlib" / "__init__.py").write_text("x = 2\n")
    assert execute_chapters.library_key(root) != key
    key2 = execute_chapters.library_key(root)
    monkeypatch.setenv("TUTORLIB_MODE", "full")
    assert execute_chapters.library_key(root) != key2


def test_cached_reused_then_emptied_when_the_library_changes(tmp_path, capsys):
    root = _tree(tmp_path / "repo")
    nb = _notebook(tmp_path / "01_a.ipynb", "print(6 * 7)")
    cache = tmp_path / "cache"
    assert execute_chapters.run([nb], cache, jobs=1, timeout=60, root=root) == 0
    assert "| executed |" in capsys.readouterr().out
    from jupyter_cache import get_cache

    record = get_cache(str(cache)).match_cache_notebook(nbformat.read(nb, as_version=4))
    merged = get_cache(str(cache)).merge_match_into_notebook(nbformat.read(nb, as_version=4))[1]
    assert record is not None and "42" in merged.cells[1].outputs[0]["text"]
    # same code, same library: taken from the cache
    assert execute_chapters.run([nb], cache, jobs=1, timeout=60, root=root) == 0
    assert "| cached |" in capsys.readouterr().out
    # an edit to the library empties the cache: no stale outputs
    (root / "src" / "tutorlib" / "__init__.py").write_text("x = 3\n")
    cache_obj = execute_chapters.open_cache(cache, execute_chapters.library_key(root))
    assert "emptied" in capsys.readouterr().out
    try:
        cache_obj.match_cache_notebook(nbformat.read(nb, as_version=4))
        raise AssertionError("a notebook cached with the old library was still served")
    except KeyError:
        pass


def test_a_failing_chapter_fails_and_is_not_cached(tmp_path, capsys):
    root = _tree(tmp_path / "repo")
    nb = _notebook(tmp_path / "02_b.ipynb", "raise ValueError('broken chapter')")
    cache = tmp_path / "cache"
    assert execute_chapters.run([nb], cache, jobs=1, timeout=60, root=root) == 1
    assert "FAILED" in capsys.readouterr().out
    from jupyter_cache import get_cache

    try:
        get_cache(str(cache)).match_cache_notebook(nbformat.read(nb, as_version=4))
        raise AssertionError("a failed execution was cached")
    except KeyError:
        pass

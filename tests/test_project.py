"""The project's own consistency: chapters, Colab settings, environment files, the book checker."""

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import check_book  # noqa: E402
import sync_colab  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _nb(path):
    return json.loads(path.read_text())


def test_every_chapter_is_in_the_table_of_contents_and_vice_versa():
    toc = check_book.toc_files()
    listed = {f for f in toc if f.startswith("chapters/")}
    assert listed == {f"chapters/{p.stem}" for p in CHAPTERS}
    for f in toc:
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapters_are_committed_without_outputs(path):
    for cell in _nb(path)["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name} holds outputs"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_structure(path):
    cells = _nb(path)["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    # 1. the Colab set-up cell: first code cell, skipped by the book build and by nbval
    assert "google.colab" in "".join(code[0]["source"])
    assert {"skip-execution", "nbval-skip"} <= set(code[0]["metadata"].get("tags", []))
    # 2. a parameters cell, then the cell that prints the device and the mode
    assert "parameters" in code[1]["metadata"].get("tags", [])
    assert "runtime.setup(" in "".join(code[2]["source"])
    # 3. the source article is cited, and there are at least three exercises with solutions
    assert "{cite:p}`su2018" in text and "kexue.fm/archives/" in text
    assert text.count("```{exercise}") >= 3 and text.count("```{solution}") >= text.count("```{exercise}")
    # 4. identities are checked by printed comparisons (compare, a library check_* function that calls
    #    it, or an explicit IdentityError)
    checks = sum(bool(re.search(r"compare\(|IdentityError|\.check_\w+\(", "".join(c["source"]))) for c in code)
    assert checks >= 3


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_colab_link_and_install_cell_agree_with_config(path):
    assert sync_colab.problems(path) == []


def test_colab_check_detects_a_mismatch(tmp_path):
    (tmp_path / "chapters").mkdir()
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg["repository"]["branch"] = "v9.9"
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(cfg))
    copy = tmp_path / "chapters" / CHAPTERS[0].name
    copy.write_text(CHAPTERS[0].read_text())
    found = sync_colab.problems(copy, root=tmp_path)
    assert len(found) == 2 and all("v9.9" in p for p in found)
    assert sync_colab.sync(copy, root=tmp_path) and sync_colab.problems(copy, root=tmp_path) == []


def _requirements_from_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs += extra
    return reqs


def _normalise(req):
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            listed += [d for d in dep["pip"] if not d.startswith("-e")]
        elif not dep.startswith(("python", "pip")) or dep.startswith("python-"):
            listed.append(dep)
    assert sorted(map(_normalise, listed)) == sorted(map(_normalise, _requirements_from_pyproject()))


def test_lock_file_pins_every_dependency_and_not_torch():
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    assert "torch" not in pins  # torch==2.13.0 (CPU) is installed first, by the Makefile
    for req in _requirements_from_pyproject():
        name = _normalise(req)[0]
        if name != "torch":
            assert name in pins, f"{name} is not pinned in requirements-lock.txt"


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make book" in readme
    commands = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", "set ", "cd "))]
    assert commands == ["exec make test"]


# --- the book checker itself ---------------------------------------------------------------

KERNEL_FREE_SLIDER = """<figure class="tutorlib-slider" data-name="n"><input type="range" min="0" max="1" value="0">
<output>n = 1</output><img class="tutorlib-frame" data-value="1" src="data:image/png;base64,AA" alt="x: n = 1">
<img class="tutorlib-frame" data-value="2" src="data:image/png;base64,BB" alt="x: n = 2" hidden><script></script></figure>"""
GOOD_CHAPTER = f"""<html><div class="cell_output docutils container"><p>Static view (no kernel needed): x</p>
<img alt="a" src="../_images/a.png">{KERNEL_FREE_SLIDER}
<script type="application/vnd.jupyter.widget-view+json">{{}}</script></div></html>"""


def _fake_book(tmp_path, chapter_html):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n- chapters:\n  - file: chapters/01_x\n")
    html = tmp_path / "html"
    (html / "book").mkdir(parents=True)
    (html / "chapters").mkdir()
    (html / "book" / "intro.html").write_text("<html>intro</html>")
    (html / "chapters" / "01_x.html").write_text(chapter_html)
    return html


def test_book_checker_accepts_a_good_book(tmp_path):
    assert check_book.check(_fake_book(tmp_path, GOOD_CHAPTER), root=tmp_path) == []


@pytest.mark.parametrize("html, word", [
    (GOOD_CHAPTER.replace("Static view (no kernel needed)", "A view"), "static fallback"),
    (GOOD_CHAPTER.replace('<img alt="a" src="../_images/a.png">', ""), "no executed figure"),
    (GOOD_CHAPTER.replace("</div>", "Traceback (most recent call last)</div>"), "traceback"),
    (GOOD_CHAPTER.replace("cell_output", "cell_input"), "no executed outputs"),
])
def test_book_checker_finds_each_defect(tmp_path, html, word):
    found = check_book.check(_fake_book(tmp_path, html), root=tmp_path)
    assert len(found) == 1 and word in found[0]


def test_book_checker_finds_a_missing_page(tmp_path):
    html = _fake_book(tmp_path, GOOD_CHAPTER)
    (html / "book" / "intro.html").unlink()
    assert check_book.check(html, root=tmp_path) == [f"book/intro: no page {html / 'book' / 'intro.html'}"]


def test_bibliography_parses_and_holds_every_cited_key():
    from pybtex.database import parse_file

    keys = set(parse_file(str(ROOT / "book" / "references.bib")).entries)
    sources = [p.read_text() for p in CHAPTERS] + [p.read_text() for p in (ROOT / "book").glob("*.md")]
    cited = {k.strip() for text in sources for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", text)
             for k in group.split(",")}
    assert cited and cited <= keys, f"cited but not in references.bib: {sorted(cited - keys)}"

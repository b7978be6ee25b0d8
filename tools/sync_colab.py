"""Write the repository URL and ref of _config.yml into every chapter's Colab link and install cell.

    python tools/sync_colab.py          # rewrite the chapters
    python tools/sync_colab.py --check  # exit 1 if any chapter disagrees with _config.yml

`repository.url` and `repository.branch` in _config.yml are the single setting; the Jupyter
Book launch button reads them directly, and this script keeps the notebooks in step.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LINK_RE = re.compile(r"\[Open in Colab\]\((?P<url>[^)]*)\)")
SPEC_RE = re.compile(r'^TUTORLIB = "(?P<spec>[^"]*)"', re.M)


def settings(root: Path = ROOT) -> tuple[str, str]:
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    repo = cfg["repository"]
    return repo["url"].rstrip("/"), repo["branch"]


def expected(nb_path: Path, root: Path = ROOT) -> tuple[str, str]:
    """The Colab link and the pip requirement a chapter must carry."""
    url, ref = settings(root)
    rel = nb_path.resolve().relative_to(root).as_posix()
    colab = url.replace("https://github.com/", "https://colab.research.google.com/github/") + f"/blob/{ref}/{rel}"
    return colab, f"tutorlib @ git+{url}@{ref}"


def problems(nb_path: Path, root: Path = ROOT) -> list[str]:
    """What in a chapter disagrees with _config.yml (empty when all agree)."""
    nb = json.loads(nb_path.read_text())
    colab, spec = expected(nb_path, root)
    found = []
    links = [m.group("url") for c in nb["cells"] if c["cell_type"] == "markdown" for m in LINK_RE.finditer("".join(c["source"]))]
    specs = [m.group("spec") for c in nb["cells"] if c["cell_type"] == "code" for m in SPEC_RE.finditer("".join(c["source"]))]
    if links != [colab]:
        found.append(f"{nb_path.name}: Colab link(s) {links} should be exactly [{colab!r}]")
    if specs != [spec]:
        found.append(f"{nb_path.name}: install requirement(s) {specs} should be exactly [{spec!r}]")
    return found


def sync(nb_path: Path, root: Path = ROOT) -> bool:
    """Rewrite a chapter's Colab link and install requirement; return whether it changed."""
    text = nb_path.read_text()
    nb = json.loads(text)
    colab, spec = expected(nb_path, root)
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            src = LINK_RE.sub(f"[Open in Colab]({colab})", src)
        else:
            src = SPEC_RE.sub(f'TUTORLIB = "{spec}"', src)
        cell["source"] = src.splitlines(keepends=True)
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        nb_path.write_text(new)
        return True
    return False


def main(argv: list[str]) -> int:
    chapters = sorted((ROOT / "chapters").glob("*.ipynb"))
    if "--check" in argv:
        found = [p for nb in chapters for p in problems(nb)]
        print("\n".join(found) or f"{len(chapters)} chapters agree with _config.yml")
        return 1 if found else 0
    for nb in chapters:
        print(f"{nb.name}: {'updated' if sync(nb) else 'already in sync'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Check the built HTML book: every page of the table of contents is there, every chapter shows
executed outputs and figures, no output holds a traceback (an exception raised while *displaying*
a result -- a bad plot label, say -- is printed, not raised, so neither the build nor nbval
fails on it), every slider has its static fallback figure, and the landing page shows figures
from the chapters, each captioned with a link to its chapter.

    python tools/check_book.py _build/html
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WIDGET_RE = re.compile(r'<script type="application/vnd\.jupyter\.widget-view\+json">')
STATIC_CAPTION = "Static view (no kernel needed)"
LANDING_FIGURES = 3  # the landing page shows at least this many figures from the chapters
FIGURE_RE = re.compile(r'<figure[^>]*>(.*?)</figure>', re.S)


def toc_files(root: Path = ROOT) -> list[str]:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def check(html_dir: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for f in toc_files(root):
        page = html_dir / f"{f}.html"
        if not page.exists():
            problems.append(f"{f}: no page {page}")
            continue
        text = page.read_text(encoding="utf-8")
        if "Traceback (most recent call last)" in text or 'class="ansi-red-fg">---' in text:
            problems.append(f"{f}: an output holds a traceback")
        if f.startswith("chapters/"):
            images = re.findall(r'<img[^>]+src="\.\./_images/[^"]+\.png"', text)
            if not images:
                problems.append(f"{f}: no executed figure on the page")
            if 'class="cell_output' not in text:
                problems.append(f"{f}: no executed outputs on the page")
            sliders, statics = len(WIDGET_RE.findall(text)), text.count(STATIC_CAPTION)
            if sliders > statics:
                problems.append(f"{f}: {sliders} slider(s) but only {statics} static fallback figure(s)")
    return problems


def check_landing(html_dir: Path, root: Path = ROOT) -> list[str]:
    """The landing page (the table of contents' root) shows at least ``LANDING_FIGURES`` figures,
    each an image of the build whose caption links a chapter."""
    name = toc_files(root)[0]
    page = html_dir / f"{name}.html"
    if not page.exists():
        return [f"{name}: no page {page}"]
    figures = FIGURE_RE.findall(page.read_text(encoding="utf-8"))
    good = [f for f in figures if re.search(r'<img[^>]+src="[^"]*_images/[^"]+"', f)
            and re.search(r'<figcaption>.*href="[^"]*chapters/[^"]+\.html', f, re.S)]
    if len(good) < LANDING_FIGURES:
        return [f"{name}: {len(good)} figure(s) with a caption linking a chapter, expected at least {LANDING_FIGURES}"]
    return []


def main(argv: list[str]) -> int:
    html_dir = Path(argv[0]) if argv else ROOT / "_build" / "html"
    problems = check(html_dir) + check_landing(html_dir)
    for p in problems:
        print("book check:", p)
    if not problems:
        print(f"book check: {len(toc_files())} pages present, chapters executed, no tracebacks, every slider has a static view,"
              f" figures from the chapters on the landing page")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

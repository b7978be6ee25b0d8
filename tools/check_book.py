"""Check the built HTML book: every page of the table of contents is there, every chapter shows
executed outputs and figures, no output holds a traceback (an exception raised while *displaying*
a result -- a bad plot label, say -- is printed, not raised, so neither the build nor nbval
fails on it), the sliders are complete, no page weighs more than ``PAGE_LIMIT`` bytes, and the
landing page shows figures from the chapters, each captioned with a link to its chapter.

Sliders (``tutorlib.widgets.explore``): every kernel-free slider (``<figure class="tutorlib-slider">``)
has its static fallback figure and vice versa; every live slider (the ipywidgets one, or the note
the book shows in its place) has its kernel-free form; and each kernel-free slider is whole: a
range input over its frames, one frame per value, each with an alt text (not a file name), all
different, exactly one shown before any script runs. (Dragging them is tools/browser_check.py's job.)

    python tools/check_book.py _build/html
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WIDGET_RE = re.compile(r'<script type="application/vnd\.jupyter\.widget-view\+json">')
STATIC_CAPTION = "Static view (no kernel needed)"
SLIDER_RE = re.compile(r'<figure class="tutorlib-slider"[^>]*>(.*?)</figure>', re.S)
LIVE_NOTE_RE = re.compile(r'<p class="tutorlib-live"')
FRAME_RE = re.compile(r'<img class="tutorlib-frame"[^>]*>')
PAGE_LIMIT = 8_000_000  # bytes: a page's HTML plus the images of the build it shows
IMAGE_FILE_RE = re.compile(r'\.(png|jpe?g|gif|svg|webp|bmp)\s*$|_images/|^data:', re.I)
LANDING_FIGURES = 3  # the landing page shows at least this many figures from the chapters
FIGURE_RE = re.compile(r'<figure[^>]*>(.*?)</figure>', re.S)


def toc_files(root: Path = ROOT) -> list[str]:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def slider_counts(text: str) -> tuple[int, int, int]:
    """(kernel-free sliders, static fallback figures, live sliders) on a page's HTML."""
    return (len(SLIDER_RE.findall(text)), text.count(STATIC_CAPTION),
            len(WIDGET_RE.findall(text)) + len(LIVE_NOTE_RE.findall(text)))


def bad_alt(alt: str | None, src: str = "") -> bool:
    """An alt text that says nothing: missing, blank, a file name or path, or the image's source."""
    if alt is None or not alt.strip():
        return True
    alt = alt.strip()
    return bool(IMAGE_FILE_RE.search(alt)) or alt == src or (src and alt == src.rsplit("/", 1)[-1])


def _attr(tag: str, name: str) -> str | None:
    m = re.search(rf'\s{name}="([^"]*)"', tag)
    return html.unescape(m.group(1)) if m else None


def slider_problems(page: str, text: str) -> list[str]:
    """Problems of the sliders of one page's HTML (see the module's docstring)."""
    problems = []
    kernel_free, statics, live = slider_counts(text)
    if kernel_free > statics:
        problems.append(f"{page}: {kernel_free} kernel-free slider(s) but only {statics} static fallback figure(s)")
    elif statics > kernel_free:
        problems.append(f"{page}: {statics} static view(s) but only {kernel_free} kernel-free slider(s)")
    if live > kernel_free:
        problems.append(f"{page}: {live} live slider(s) but only {kernel_free} kernel-free slider(s)")
    for k, body in enumerate(SLIDER_RE.findall(text), 1):
        frames = FRAME_RE.findall(body)
        inputs = re.findall(r'<input type="range"[^>]*>', body)
        where = f"{page}: kernel-free slider {k}"
        if len(inputs) != 1 or "<output" not in body or "<script>" not in body:
            problems.append(f"{where}: needs one range input, a readout (<output>) and its script")
            continue
        if len(frames) < 2:
            problems.append(f"{where}: {len(frames)} frame(s); a slider needs at least 2")
            continue
        if (_attr(inputs[0], "min"), _attr(inputs[0], "max")) != ("0", str(len(frames) - 1)):
            problems.append(f"{where}: the range input does not span its {len(frames)} frames")
        shown = [f for f in frames if not re.search(r"\shidden(\s|>|=)", f)]
        if len(shown) != 1:
            problems.append(f"{where}: {len(shown)} frame(s) shown before the script runs, expected 1")
        srcs = [_attr(f, "src") for f in frames]
        if len(set(srcs)) != len(srcs):
            problems.append(f"{where}: two frames are the same image")
        for f in frames:
            if bad_alt(_attr(f, "alt"), _attr(f, "src") or ""):
                problems.append(f"{where}: the frame {_attr(f, 'data-value')!r} has no alt text that says what it shows")
            if _attr(f, "data-value") is None:
                problems.append(f"{where}: a frame without its data-value")
    return problems


def page_bytes(page: Path) -> int:
    """What a reader downloads for a page, shared theme files aside: its HTML and its images."""
    text = page.read_text(encoding="utf-8")
    total = page.stat().st_size
    seen = set()
    for src in re.findall(r'<img[^>]+src="([^"]+)"', text):
        if src.startswith(("data:", "http:", "https:", "//")) or src in seen:
            continue
        seen.add(src)
        target = (page.parent / src.split("#")[0].split("?")[0]).resolve()
        if target.is_file():
            total += target.stat().st_size
    return total


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
        problems += slider_problems(f, text)
        size = page_bytes(page)
        if size > PAGE_LIMIT:
            problems.append(f"{f}: the page weighs {size / 1e6:.1f} MB (HTML and images), over the limit of "
                            f"{PAGE_LIMIT / 1e6:.0f} MB")
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
        print(f"book check: {len(toc_files())} pages present, chapters executed, no tracebacks, every slider has its"
              f" kernel-free form and its static view, pages under {PAGE_LIMIT / 1e6:.0f} MB,"
              f" figures from the chapters on the landing page")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

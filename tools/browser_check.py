"""Open every page of the built book in headless Chromium and check what a reader sees.

    python tools/browser_check.py _build/html [--chromium /usr/bin/chromium] [--screenshots DIR]

The book is served on 127.0.0.1 (a free port); nothing outside the machine is contacted: every
request to another host is blocked and reported. For every page of the table of contents:

- no JavaScript error (an uncaught exception, or a console error not caused by a blocked request);
- every image loaded (its natural width is not 0);
- the math is typeset: MathJax produced its elements and no raw ``$$`` or ``\\(`` is left in the text;
- every internal link resolves to a file of the built book (and its #anchor exists on that page);
- every image has an alt text that says what it shows: not missing, not blank, not a file name or
  path (``....png``, ``_images/...``), not its own source;
- on chapter pages, the Colab launch button points at the chapter's notebook under the repository
  URL and branch of _config.yml, and every slider has its static fallback figure and its
  kernel-free form;
- every kernel-free slider (``tutorlib.widgets.explore``) works with no kernel: its control is
  shown (its script ran), and moved with the keyboard (focus, Home, ArrowRight, End, ArrowLeft),
  by setting its value (with ``input`` and ``change`` events) and by dragging it with the mouse,
  it shows exactly one frame, the frame of the chosen value, whose pixels differ from the frame
  shown before; its readout and ``aria-valuetext`` show ``name = value``; and no JavaScript error
  appears meanwhile. The first and the last frame are also compared as screenshots.

A screenshot of each chapter page and of the landing page is saved for humans to look at.
Exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from check_book import bad_alt, slider_counts, toc_files  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

PAGE_SCRIPT = """() => {
  const imgs = Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0).map(i => i.getAttribute('src'));
  const pending = Array.from(document.images).filter(i => !i.complete).map(i => i.getAttribute('src'));
  const main = document.querySelector('main') || document.body;
  const text = main.innerText;
  const mathSources = document.querySelectorAll('.math, span.math, div.math').length;
  const typeset = document.querySelectorAll('mjx-container').length;
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'));
  const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id);
  const colab = Array.from(document.querySelectorAll('a[href*="colab.research.google.com"]')).map(a => a.href);
  const alts = Array.from(document.images).map(i => [i.getAttribute('alt'), i.getAttribute('src') || '']);
  return {broken: imgs, pending: pending, text: text, mathSources: mathSources, typeset: typeset,
          links: links, ids: ids, colab: colab, alts: alts};
}"""

SLIDER_SELECTOR = "figure.tutorlib-slider"

# The state of one kernel-free slider as a reader sees it: its control, its readout, which of its
# images are visible, and a hash of the pixels of the visible one (drawn on a canvas; the frames
# are data: URIs, so the canvas is not tainted).
SLIDER_STATE = """(root) => {
  const visible = e => !!e && (e.checkVisibility ? e.checkVisibility() :
                               !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length));
  const input = root.querySelector('input[type=range]');
  const out = root.querySelector('output');
  const imgs = Array.from(root.querySelectorAll('img'));
  const shown = imgs.map((im, i) => [im, i]).filter(([im, i]) => visible(im) && im.getBoundingClientRect().width > 0);
  let hash = null;
  if (shown.length === 1) {
    const im = shown[0][0];
    const c = document.createElement('canvas');
    c.width = im.naturalWidth; c.height = im.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(im, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let h = 2166136261 >>> 0;
    for (let i = 0; i < d.length; i++) { h = Math.imul(h ^ d[i], 16777619) >>> 0; }
    hash = c.width + 'x' + c.height + ':' + h;
  }
  return {name: root.getAttribute('data-name'), hasInput: !!input, controlShown: visible(input),
          min: input ? input.min : null, max: input ? input.max : null, value: input ? input.value : null,
          valuetext: input ? input.getAttribute('aria-valuetext') : null, readout: out ? out.textContent : null,
          labels: imgs.map(im => im.getAttribute('data-value')), shown: shown.map(([im, i]) => i),
          focused: document.activeElement === input, hash: hash};
}"""

SET_VALUE = """(root, i) => {
  const input = root.querySelector('input[type=range]');
  input.value = String(i);
  input.dispatchEvent(new Event('input', {bubbles: true}));
  input.dispatchEvent(new Event('change', {bubbles: true}));
}"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging every request to stderr."""

    def log_message(self, format, *args):  # noqa: A002 - the name is the base class's
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def expected_colab(page: str, root: Path) -> str | None:
    """The Colab URL Jupyter Book's launch button should carry for a chapter page."""
    import yaml

    cfg = yaml.safe_load((root / "_config.yml").read_text())
    repo = cfg.get("repository", {})
    url, branch = repo.get("url", "").rstrip("/"), repo.get("branch", "main")
    if not url.startswith("https://github.com/"):
        return None
    base = url.replace("https://github.com/", "https://colab.research.google.com/github/")
    return f"{base}/blob/{branch}/{page}.ipynb"


def check_site(html_dir: Path, pages: list[str], chromium: str, root: Path = ROOT,
               screenshots: Path | None = None, chapters_need_colab: bool = True) -> list[str]:
    """Check ``pages`` (paths without .html) of the site in ``html_dir``; return the problems."""
    from playwright.sync_api import sync_playwright

    html_dir = Path(html_dir).resolve()
    server, base = serve(html_dir)
    problems: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            for page_name in pages:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(30000)  # no wait of Playwright's without a limit
                errors, blocked = [], []

                page.route("**/*", _local_only(blocked))
                page.on("pageerror", lambda exc, errors=errors: errors.append(f"uncaught: {exc}"))
                page.on("console", lambda msg, errors=errors: errors.append(f"console: {msg.text}")
                        if msg.type == "error" else None)
                url = urljoin(base, f"{page_name}.html")
                response = page.goto(url, wait_until="load", timeout=120000)
                if response is None or response.status != 200:
                    problems.append(f"{page_name}: the page did not load ({response.status if response else 'no response'})")
                    page.close()
                    continue
                try:  # give MathJax its chance to typeset
                    page.wait_for_function("() => !window.MathJax || !MathJax.startup || !MathJax.startup.promise"
                                           " || MathJax.startup.promise.then(() => true)", timeout=15000)
                    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
                except Exception:  # noqa: BLE001 - reported below through the typeset check
                    pass
                info = page.evaluate(PAGE_SCRIPT)
                for alt, src in info["alts"]:
                    if bad_alt(alt, src):
                        problems.append(f"{page_name}: image without an alt text that says what it shows"
                                        f" (alt {alt!r}, src {_short(src)})")
                js_errors = [e for e in errors if not ("Failed to load resource" in e and blocked)]
                for e in js_errors:
                    problems.append(f"{page_name}: JavaScript error: {e[:200]}")
                problems += check_sliders(page, page_name, errors)  # reports the errors it causes
                for src in info["broken"] + info["pending"]:
                    problems.append(f"{page_name}: image did not load: {src}")
                if info["mathSources"] and not info["typeset"]:
                    problems.append(f"{page_name}: {info['mathSources']} math element(s) but nothing typeset by MathJax")
                if "$$" in info["text"] or re.search(r"\\\(|\\\[", info["text"]):
                    problems.append(f"{page_name}: raw, untypeset math left in the text")
                problems += _check_links(page_name, info["links"], info["ids"], html_dir)
                if page_name.startswith("chapters/"):
                    kernel_free, statics, live = slider_counts(page.content())
                    if kernel_free > statics:
                        problems.append(f"{page_name}: {kernel_free} kernel-free slider(s) but {statics} static fallback figure(s)")
                    if live > kernel_free:
                        problems.append(f"{page_name}: {live} live slider(s) but only {kernel_free} kernel-free slider(s)")
                    want = expected_colab(page_name, root)
                    if chapters_need_colab and want is not None and want not in info["colab"]:
                        problems.append(f"{page_name}: no Colab launch link to {want} (found {info['colab']})")
                if screenshots is not None and (page_name.startswith("chapters/") or page_name == pages[0]):
                    screenshots.mkdir(parents=True, exist_ok=True)  # the chapters, and the landing page
                    page.screenshot(path=str(screenshots / f"{Path(page_name).name}.png"), full_page=True)
                page.close()
            browser.close()
    finally:
        server.shutdown()
    return problems


def _short(src: str, n: int = 60) -> str:
    return src if len(src) <= n else src[:n] + "..."


def check_sliders(page, page_name: str, errors: list[str], timeout_ms: int = 5000) -> list[str]:
    """Move every kernel-free slider of ``page`` with the keyboard, by setting its value and with the
    mouse; return the problems. ``errors`` is the page's list of JavaScript errors, still filling."""
    problems: list[str] = []
    roots = page.locator(SLIDER_SELECTOR)
    for k in range(roots.count()):
        try:
            problems += _check_slider(page, roots.nth(k), f"{page_name}: kernel-free slider {k + 1}", errors, timeout_ms)
        except Exception as exc:  # noqa: BLE001 - a timeout, an element gone: the slider does not work
            problems.append(f"{page_name}: kernel-free slider {k + 1}: could not be moved: {str(exc).splitlines()[0][:200]}")
    return problems


def _check_slider(page, root, where: str, errors: list[str], timeout_ms: int) -> list[str]:
    """The checks of :func:`check_sliders` for one slider (``root``, its ``<figure>``)."""
    state = root.evaluate(SLIDER_STATE, timeout=timeout_ms)
    where = f"{where} ({state['name']})"
    if not state["hasInput"] or not state["controlShown"]:
        return [f"{where}: no working control is shown (did its script run?)"]
    labels, n = state["labels"], len(state["labels"])
    if n < 2 or (state["min"], state["max"]) != ("0", str(n - 1)):
        return [f"{where}: the range input ({state['min']}..{state['max']}) does not span its {n} frames"]
    before = len(errors)
    found: list[str] = []

    def expect(step: str, want: int | None, previous: dict | None) -> dict:
        s = root.evaluate(SLIDER_STATE, timeout=timeout_ms)  # key presses and events are handled synchronously
        i = int(s["value"]) if str(s["value"]).isdigit() and int(s["value"]) < n else None
        if i is None:
            found.append(f"{where}: {step}: the input's value {s['value']!r} is not a frame index")
            return s
        if want is not None and i != want:
            found.append(f"{where}: {step}: the value is {labels[i]!r}, expected {labels[want]!r}")
        text = f"{s['name']} = {labels[i]}"
        if s["shown"] != [i]:
            found.append(f"{where}: {step}: shows the frame(s) {[labels[j] for j in s['shown']]},"
                         f" expected the frame of {labels[i]!r}")
        elif previous is not None and previous["value"] != s["value"] and s["hash"] == previous["hash"]:
            found.append(f"{where}: {step}: the image did not change"
                         f" ({labels[int(previous['value'])]!r} -> {labels[i]!r})")
        if not s["readout"] or text not in " ".join(s["readout"].split()):
            found.append(f"{where}: {step}: the readout shows {s['readout']!r}, expected {text!r}")
        if s["valuetext"] != text:
            found.append(f"{where}: {step}: aria-valuetext is {s['valuetext']!r}, expected {text!r}")
        return s

    state = expect("as loaded", None, None)
    slider = root.locator("input[type=range]")
    slider.scroll_into_view_if_needed(timeout=timeout_ms)
    # 1. the keyboard
    slider.focus(timeout=timeout_ms)
    if not root.evaluate(SLIDER_STATE, timeout=timeout_ms)["focused"]:
        found.append(f"{where}: the range input cannot take the keyboard focus")
    shots = {}
    for key, want in [("Home", 0), ("ArrowRight", 1), ("End", n - 1), ("ArrowLeft", n - 2)]:
        slider.press(key, timeout=timeout_ms)
        state = expect(f"key {key}", want, state)
        if key in ("Home", "End") and len(state["shown"]) == 1:
            shots[key] = root.locator("img").nth(state["shown"][0]).screenshot(timeout=timeout_ms)
    if len(shots) == 2 and shots["Home"] == shots["End"]:
        found.append(f"{where}: the first and the last frame look the same on screen")
    # 2. setting the value, as a script or an assistive technology would
    for want in sorted({0, n // 2, n - 1} - {int(state["value"]) if str(state["value"]).isdigit() else -1}):
        root.evaluate(SET_VALUE, want, timeout=timeout_ms)
        state = expect(f"value set to {labels[want]!r}", want, state)
    # 3. the mouse: from the left end to the right end
    root.evaluate(SET_VALUE, 0, timeout=timeout_ms)
    state = expect("value set to the first one", 0, state)
    slider.scroll_into_view_if_needed(timeout=timeout_ms)
    box = slider.bounding_box(timeout=timeout_ms)
    if box is None or box["width"] < 10:
        found.append(f"{where}: the range input has no size on screen")
    else:
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + 2, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2, y, steps=2)
        page.mouse.move(box["x"] + box["width"] - 1, y, steps=2)
        page.mouse.up()
        expect("dragged to the right end", n - 1, state)
    for e in errors[before:]:
        found.append(f"{where}: JavaScript error while moving it: {e[:200]}")
    return found


def _local_only(blocked: list):
    """A route handler that lets requests to this machine through and blocks (and records) the rest."""
    def route(r):
        if urlparse(r.request.url).hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()
    return route


def _check_links(page_name: str, links: list[str], ids: list[str], html_dir: Path) -> list[str]:
    problems = []
    here = (html_dir / f"{page_name}.html").parent
    for href in links:
        parsed = urlparse(href)
        if parsed.scheme or href.startswith(("mailto:", "javascript:", "//")):
            continue
        path, frag = unquote(parsed.path), parsed.fragment
        if not path:  # a link within the page
            if frag and frag not in ids:
                problems.append(f"{page_name}: link to a missing anchor #{frag}")
            continue
        target = (here / path).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            problems.append(f"{page_name}: broken internal link {href}")
        elif frag and target.suffix == ".html" and f'id="{frag}"' not in target.read_text(errors="replace"):
            problems.append(f"{page_name}: link {href} points at a missing anchor")
    return problems


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html_dir", type=Path, nargs="?", default=ROOT / "_build" / "html")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--screenshots", type=Path, default=None)
    args = ap.parse_args(argv)
    pages = toc_files()
    problems = check_site(args.html_dir, pages, args.chromium, screenshots=args.screenshots)
    for p in problems:
        print("browser check:", p)
    if not problems:
        print(f"browser check: {len(pages)} pages opened in Chromium: no JavaScript errors, every image loaded, "
              f"math typeset offline, internal links resolve, every image has an alt text, Colab buttons and "
              f"static views present, every kernel-free slider moves")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Open every page of the built book in headless Chromium and check what a reader sees.

    python tools/browser_check.py _build/html [--chromium /usr/bin/chromium] [--screenshots DIR]

The book is served on 127.0.0.1 (a free port); nothing outside the machine is contacted: every
request to another host is blocked and reported. For every page of the table of contents:

- no JavaScript error (an uncaught exception, or a console error not caused by a blocked request);
- every image loaded (its natural width is not 0);
- the math is typeset: MathJax produced its elements and no raw ``$$`` or ``\\(`` is left in the text;
- every internal link resolves to a file of the built book (and its #anchor exists on that page);
- on chapter pages, the Colab launch button points at the chapter's notebook under the repository
  URL and branch of _config.yml, and every slider has its static fallback figure.

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

from check_book import STATIC_CAPTION, WIDGET_RE, toc_files  # noqa: E402

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
  return {broken: imgs, pending: pending, text: text, mathSources: mathSources, typeset: typeset,
          links: links, ids: ids, colab: colab};
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
                errors, blocked = [], []

                page.route("**/*", _local_only(blocked))
                page.on("pageerror", lambda exc, errors=errors: errors.append(f"uncaught: {exc}"))
                page.on("console", lambda msg, errors=errors: errors.append(f"console: {msg.text}")
                        if msg.type == "error" else None)
                url = urljoin(base, f"{page_name}.html")
                response = page.goto(url, wait_until="load")
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
                js_errors = [e for e in errors if not ("Failed to load resource" in e and blocked)]
                for e in js_errors:
                    problems.append(f"{page_name}: JavaScript error: {e[:200]}")
                for src in info["broken"] + info["pending"]:
                    problems.append(f"{page_name}: image did not load: {src}")
                if info["mathSources"] and not info["typeset"]:
                    problems.append(f"{page_name}: {info['mathSources']} math element(s) but nothing typeset by MathJax")
                if "$$" in info["text"] or re.search(r"\\\(|\\\[", info["text"]):
                    problems.append(f"{page_name}: raw, untypeset math left in the text")
                problems += _check_links(page_name, info["links"], info["ids"], html_dir)
                if page_name.startswith("chapters/"):
                    html = page.content()
                    sliders, statics = len(WIDGET_RE.findall(html)), html.count(STATIC_CAPTION)
                    if sliders > statics:
                        problems.append(f"{page_name}: {sliders} slider(s) but {statics} static fallback figure(s)")
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
              f"math typeset offline, internal links resolve, Colab buttons and static views present")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

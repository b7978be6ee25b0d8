"""Execute the chapters for the book, several at once, into the book's execution cache.

    python tools/execute_chapters.py [--jobs 2] [--cache _build/.jupyter_cache] [chapters/0N_x.ipynb ...]

The book (``_config.yml``: ``execute_notebooks: cache``) takes each chapter's outputs from a
jupyter-cache database. jupyter-cache recognises a notebook by the hash of its code cells only,
so on its own it would serve outputs computed with an older ``tutorlib``. This tool keys the whole
cache on the library as well: the database lives in ``--cache``, next to a file ``LIBRARY_KEY``
holding the sha256 of every file under ``src/tutorlib`` plus ``pyproject.toml`` and the lock file;
when that key changes, the cache is emptied before anything else happens. So a chapter's cached
outputs are reused only when both its code and the library are unchanged, and an edit to
``tutorlib`` is never served stale outputs.

Each chapter that is not cached is executed in a fresh kernel exactly as myst-nb would execute it
(jupyter-cache's executor, the chapter's folder as the working directory, the per-cell time limit,
errors not allowed), ``--jobs`` at a time, longest first, and stored only if every cell ran. Its
kernel client polls in short slices and its kernels use Unix sockets (``tools/kernel_client.py``):
with jupyter_client's defaults, a missed socket wake-up once held a finished cell for the whole
600 s cell limit, and a kernel once lost its TCP port to one of nbval's.
Prints one row per chapter: wall time, the kernel's CPU time (user + system), and whether it was
executed or taken from the cache. Exits 1 if any chapter failed.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import resource
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
DEFAULT_CACHE = ROOT / "_build" / ".jupyter_cache"
KEY_FILE = "LIBRARY_KEY"
# the order in which uncached chapters start when they all need executing: the longest first
# (measured quick-mode times, see benchmarks/RESULTS.md), so that two workers finish together
LONGEST_FIRST = ("03", "06", "08", "05", "02", "04", "01", "07")


# the settings the chapters read (the Makefile exports the same values); they are part of the key
SETTINGS = {"TUTORLIB_MODE": "quick", "TUTORLIB_PROGRESS": "0", "TUTORLIB_THREADS": "1", "PYTHONHASHSEED": "0"}


def library_key(root: Path = ROOT) -> str:
    """sha256 over the library's source files (names and bytes), pyproject.toml, the lock file and
    the run settings (``TUTORLIB_MODE`` etc.) the chapters will see."""
    h = hashlib.sha256()
    for name in sorted(SETTINGS):
        h.update(f"{name}={os.environ.get(name, '')}\0".encode())
    files = sorted(p for p in (root / "src" / "tutorlib").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    files += [root / "pyproject.toml", root / "requirements-lock.txt"]
    for p in files:
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def open_cache(cache_dir: Path, key: str):
    """The jupyter-cache in ``cache_dir``, emptied first if it was filled with another library."""
    from jupyter_cache import get_cache

    stamp = cache_dir / KEY_FILE
    if cache_dir.exists() and (not stamp.is_file() or stamp.read_text().strip() != key):
        shutil.rmtree(cache_dir)
        print(f"execute: the library changed since the cache in {cache_dir} was filled: emptied it")
    cache_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key + "\n")
    return get_cache(str(cache_dir))


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def execute_one(path: str, timeout: int) -> dict:
    """Execute one notebook (in a worker process); return it with its timings, or the error."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    from kernel_client import BookKernelManager  # no missed replies, no TCP port races

    nb = nbformat.read(path, as_version=4)
    cpu0, t0 = _children_cpu(), time.perf_counter()
    result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout, allow_errors=False,
                                 kernel_manager_class=BookKernelManager)
    return {"path": path, "nb": nbformat.writes(nb), "wall": time.perf_counter() - t0,
            "cpu": _children_cpu() - cpu0, "error": result.err and f"{type(result.err).__name__}: "
            f"{str(result.err).strip().splitlines()[-1][:300] if str(result.err).strip() else ''}"}


def _order(paths: list[Path]) -> list[Path]:
    rank = {p: LONGEST_FIRST.index(p.name[:2]) if p.name[:2] in LONGEST_FIRST else -1 for p in paths}
    return sorted(paths, key=lambda p: rank[p])


def run(chapters: list[Path], cache_dir: Path, jobs: int, timeout: int, root: Path = ROOT) -> int:
    import nbformat
    from jupyter_cache.base import CacheBundleIn

    cache = open_cache(cache_dir, library_key(root))
    todo, rows = [], []
    for path in chapters:
        try:
            record = cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            record = None
        if record is None:
            todo.append(path)
        else:
            rows.append((path, None, None, "cached"))
    failed = []
    if todo:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter per worker (no inherited zmq state)
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx) as pool:
            futures = [pool.submit(execute_one, str(p), timeout) for p in _order(todo)]
            for fut in as_completed(futures):
                out = fut.result()
                path = Path(out["path"])
                if out["error"]:
                    failed.append(path)
                    rows.append((path, out["wall"], out["cpu"], f"FAILED: {out['error']}"))
                else:
                    cache.cache_notebook_bundle(
                        CacheBundleIn(nbformat.reads(out["nb"], as_version=4), uri=str(path),
                                      data={"execution_seconds": out["wall"]}),
                        check_validity=False, overwrite=True)
                    rows.append((path, out["wall"], out["cpu"], "executed"))
                print(f"execute: {path.name}: {rows[-1][3]} ({out['wall']:.1f} s wall, {out['cpu']:.1f} s CPU)",
                      flush=True)
    print("| chapter | wall time (s) | kernel CPU time (s) | source |")
    print("|---|---|---|---|")
    for path, wall, cpu, how in sorted(rows, key=lambda r: r[0].name):
        fmt = (lambda v: "—" if v is None else f"{v:.1f}")
        print(f"| {path.stem} | {fmt(wall)} | {fmt(cpu)} | {how} |")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapters", nargs="*", type=Path)
    ap.add_argument("--jobs", type=int, default=2, help="chapters executed at once")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--timeout", type=int, default=600, help="per-cell time limit in seconds")
    args = ap.parse_args(argv)
    for name, value in SETTINGS.items():  # as the Makefile sets them, unless the caller chose otherwise
        os.environ.setdefault(name, value)
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    chapters = [p.resolve() for p in args.chapters] or sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in chapters if not p.is_file()]
    if missing:
        ap.error(f"no such chapter: {', '.join(missing)}")
    return run(chapters, args.cache.resolve(), args.jobs, args.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Execute chapters in quick mode, one after another, and print each one's wall time and CPU time.

    .venv/bin/python benchmarks/chapter_times.py [chapters/05_nice.ipynb ...] [--out executed/]

Runs each notebook top to bottom with nbclient in a fresh kernel, with the Makefile's settings
(``TUTORLIB_MODE=quick``, ``TUTORLIB_PROGRESS=0``, ``TUTORLIB_THREADS=1``), skipping cells tagged
``skip-execution`` (the Colab install cell). The CPU time is the kernel's user + system time
(the kernel is a child process of this one), which a busy shared machine inflates far less than
the wall time; on an idle machine with one torch thread the two agree to within a few seconds.
``--out DIR`` also writes the executed notebooks there (to read their outputs). A cell error is
reported and the script exits 1. Nothing here is a test: it prints measurements.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {"TUTORLIB_MODE": "quick", "TUTORLIB_PROGRESS": "0", "TUTORLIB_THREADS": "1", "PYTHONHASHSEED": "0"}


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(path: Path, out: Path | None, timeout: int) -> tuple[float, float, str | None]:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if "skip-execution" not in c.get("metadata", {}).get("tags", [])]
    sys.path.insert(0, str(ROOT / "tools"))
    from kernel_client import BookKernelManager  # as the book's execution: no missed wake-ups

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", kernel_manager_class=BookKernelManager,
                            resources={"metadata": {"path": str(path.parent)}})
    error = None
    cpu0, t0 = children_cpu(), time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1][:300]
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / path.name)
    return wall, cpu, error


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapters", nargs="*", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="write the executed notebooks here")
    ap.add_argument("--timeout", type=int, default=600, help="per-cell time limit in seconds")
    args = ap.parse_args(argv)
    os.environ.update(ENV)
    chapters = args.chapters or sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print("| chapter | wall time (s) | kernel CPU time (s) |")
    print("|---|---|---|")
    failed = False
    for path in chapters:
        wall, cpu, error = run(Path(path).resolve(), args.out, args.timeout)
        print(f"| {Path(path).stem} | {wall:.1f} | {cpu:.1f} |" + (f" ERROR: {error}" if error else ""), flush=True)
        failed |= error is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

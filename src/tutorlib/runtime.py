"""Where and how the book's code runs: the device, the run mode, seeds and threads.

The run mode decides how big an experiment is:

- ``quick``: the embedded data and small models, about a minute per chapter on two CPU cores
  (the book build and CI use it);
- ``full``: the articles' experiments on full MNIST (meant for a GPU, e.g. Colab);
- ``auto`` (the default): ``full`` when a CUDA GPU is present, ``quick`` otherwise.

It is read from the environment variable ``TUTORLIB_MODE``, or passed explicitly.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from tutorlib._validate import one_of, positive_int

MODES = ("quick", "full", "auto")


def device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def run_mode(mode: str | None = None) -> str:
    """Resolve the run mode to ``"quick"`` or ``"full"``.

    ``mode`` (or, when it is None, the environment variable ``TUTORLIB_MODE``, default ``auto``)
    must be one of ``quick``, ``full``, ``auto``; ``auto`` means ``full`` on a CUDA GPU.
    """
    if mode is None:
        mode = os.environ.get("TUTORLIB_MODE", "auto").strip().lower() or "auto"
        source = "TUTORLIB_MODE"
    else:
        source = "mode"
    one_of(source, mode, MODES)
    if mode == "auto":
        return "full" if torch.cuda.is_available() else "quick"
    return mode


def seed_everything(seed: int) -> int:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) generators; return the seed."""
    seed = positive_int("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count (``n``, else ``TUTORLIB_THREADS``, else torch's default)."""
    if n is None:
        env = os.environ.get("TUTORLIB_THREADS")
        if env is None:
            return torch.get_num_threads()
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"TUTORLIB_THREADS must be an integer >= 1, got {env!r}") from None
        n = positive_int("TUTORLIB_THREADS", n)
    n = positive_int("n", n)
    torch.set_num_threads(n)
    return n


def progress_enabled() -> bool:
    """Whether long loops show progress bars (off when ``TUTORLIB_PROGRESS=0``, as in the book build)."""
    return os.environ.get("TUTORLIB_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Runtime:
    """What :func:`setup` decided: the device, the resolved run mode, the seed and the threads."""

    device: torch.device
    mode: str
    seed: int
    threads: int

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    @property
    def full(self) -> bool:
        return self.mode == "full"


def setup(mode: str | None = None, seed: int = 0, threads: int | None = None, verbose: bool = True) -> Runtime:
    """Start a chapter: resolve the mode, seed every generator, set threads, print what was chosen.

    A ``mode`` given here (a chapter's ``MODE`` parameter) becomes ``TUTORLIB_MODE`` for the rest of
    the process, so that everything that reads the run mode later -- which data :func:`tutorlib.data.mnist`
    loads, :func:`tutorlib.data.fallback_banner`, :func:`tutorlib.train.forecast` -- follows the
    chapter's choice rather than the environment's."""
    rt = Runtime(device=device(), mode=run_mode(mode), seed=seed_everything(seed), threads=set_threads(threads))
    if mode is not None:
        os.environ["TUTORLIB_MODE"] = rt.mode
    if verbose:
        from tutorlib import __version__

        print(
            f"tutorlib {__version__} | torch {torch.__version__} | device: {rt.device} | "
            f"mode: {rt.mode} | seed: {rt.seed} | threads: {rt.threads}"
        )
    return rt


# --- provenance: what every result row records ----------------------------------------------------

def commit() -> str:
    """The git commit of the checkout ``tutorlib`` runs from (short hash, ``+dirty`` when it has
    uncommitted changes to tracked files), or ``"unknown"`` outside a git checkout (e.g. a pip
    install)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "") if head else "unknown"


def device_name(dev: torch.device | str | None = None) -> str:
    """A readable name of ``dev`` (default :func:`device`): the GPU's model, or the CPU and threads."""
    import platform

    dev = torch.device(dev) if dev is not None else device()
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "mps":
        return "Apple MPS"
    n = torch.get_num_threads()
    return f"CPU ({platform.processor() or platform.machine()}, {n} thread{'' if n == 1 else 's'})"


def run_record(seed: int | None = None, **extra) -> dict:
    """The provenance of a result: device, torch version, commit, run mode, threads, seed and the
    time (UTC), plus ``extra`` (e.g. the data record of :func:`tutorlib.data.record`, the epochs,
    the schedule and the deviations from the paper). Every benchmark row starts from it."""
    import datetime
    import sys

    out = {"device": device_name(), "torch": torch.__version__, "python": sys.version.split()[0],
           "commit": commit(), "mode": run_mode(), "threads": torch.get_num_threads(),
           "seed": seed, "time_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    out.update(extra)
    return out

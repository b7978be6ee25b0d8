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
    """Start a chapter: resolve the mode, seed every generator, set threads, print what was chosen."""
    rt = Runtime(device=device(), mode=run_mode(mode), seed=seed_everything(seed), threads=set_threads(threads))
    if verbose:
        from tutorlib import __version__

        print(
            f"tutorlib {__version__} | torch {torch.__version__} | device: {rt.device} | "
            f"mode: {rt.mode} | seed: {rt.seed} | threads: {rt.threads}"
        )
    return rt

"""What every benchmark script shares: the data requirement, provenance, JSON rows.

Every full-mode script needs full MNIST: ``--data PATH`` (or ``$TUTORLIB_DATA``) naming an
``mnist.npz`` with the known sha256. Without it, :func:`load_data` prints one message saying how
to supply the file and exits with status 2 before anything is built or trained. ``--tiny`` is the
only way to run on the embedded subset, and every row then records it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing tutorlib
    sys.path.insert(0, str(ROOT / "src"))

EXIT_NO_DATA = 2


def add_data_arguments(ap: argparse.ArgumentParser, tiny_help: str) -> None:
    ap.add_argument("--data", type=Path, default=None,
                    help="full MNIST: the path of mnist.npz (or a directory holding it); default $TUTORLIB_DATA, "
                         "then ~/.cache/tutorlib/mnist.npz. Required unless --tiny.")
    ap.add_argument("--tiny", action="store_true", help=tiny_help)


def load_data(args) -> tuple:
    """``(train_set, test_set)``: full MNIST, verified, or -- with ``--tiny`` -- the embedded subset.
    Exits with :data:`EXIT_NO_DATA` and the how-to message when full MNIST is missing or wrong."""
    from tutorlib import data

    if args.tiny:
        return data.mnist_subset("train"), data.mnist_subset("test")
    try:
        return data.full_mnist("train", args.data), data.full_mnist("test", args.data)
    except data.MissingDataError as err:
        print(f"{Path(sys.argv[0]).name}: refusing to train.\n{err}", file=sys.stderr, flush=True)
        sys.exit(EXIT_NO_DATA)


def data_path(train_set) -> str | None:
    """The ``mnist.npz`` the digits came from (for library calls that read it again), or None."""
    return train_set.path


def peak_gpu_gib() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def jsonable(value):
    """Rows without tensors, models or histories, with NaN/inf as None (strict JSON)."""
    import numpy as np
    import torch

    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()
                if not isinstance(v, (torch.nn.Module, torch.Tensor)) and type(v).__name__ != "History"}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(payload), indent=1))
    print(f"wrote {path}")


def print_deviations(rows: list[dict], key: str = "deviations") -> None:
    """Every deviation from the paper, once, under the table (they are in every JSON row too)."""
    seen = []
    for r in rows:
        for d in r.get(key, []):
            if d not in seen:
                seen.append(d)
    title = "Deviations from the paper" if key == "deviations" else "Where the authors' code differs from the paper"
    print(f"\n{title}:" + ("" if seen else " none"))
    for d in seen:
        print(f"  - {d}")

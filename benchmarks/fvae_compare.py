"""Chapter 6's full mode: a VAE, a Glow-like flow and an f-VAE of similar size on dequantised MNIST.

    python benchmarks/fvae_compare.py --data /path/to/mnist.npz [--epochs 30] [--out benchmarks/results]

Builds the three models of `tutorlib.fvae.build_models("full")` (about 6.9 M parameters each), trains
each for the same number of epochs of full MNIST (batch 128, Adam 1e-3) with checkpoints in
checkpoints/ (an interrupted run resumes), and reports for each: parameters, test bits/dim (the
-ELBO bound for the VAE and the f-VAE, the exact NLL for the flow, on the same dequantised test
digits), the training bound at the wall time of the fastest model (equal wall time, read off the
training curves), wall time, peak GPU memory, device and commit. Prints one Markdown row per model,
writes `fvae_compare.json` and `fvae_samples.png` (36 samples per model at T = 0.8) to --out. Every
row records the data source and its sha256, the epochs, the seed, device, commit and deviations.
Needs full MNIST (``--data`` or ``$TUTORLIB_DATA``): without it the script stops before training,
saying how to supply it. Before each model trains, the projected time on this device is printed.
`--tiny` dry-runs small models for a few steps on the embedded subset on a CPU.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_data_arguments, load_data, peak_gpu_gib, reset_peak, write_json  # noqa: E402


def bits(nats_continuous: float, dim: int = 784) -> float:
    """Continuous nats per image on x = (pixel + u)/256 -> bits/dim of the discrete bound."""
    return (nats_continuous / dim + math.log(256)) / math.log(2)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=128)
    add_data_arguments(ap, "small models, 20 steps, embedded subset, CPU")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.batch < 2:
        ap.error("--epochs must be >= 1 and --batch >= 2")
    train_set, test_set = load_data(args)  # stops here, before anything is built, without full MNIST

    import copy

    from tutorlib import fvae, metrics, runtime
    from tutorlib.data import record
    from tutorlib.train import checkpoint_step, forecast

    rt = runtime.setup(seed=args.seed)
    deviations = []
    if args.tiny:
        deviations.append("tiny dry run: small models, 20 steps, the embedded subset (numbers mean nothing)")
        models = {"vae": fvae.build_models("quick")["vae"],
                  "flow": fvae.build_models("quick")["flow"],
                  "fvae": fvae.FVAE(channels=8, blocks=1, flow_steps=2, hidden=32, depth=1)}
        steps, n_test = 20, 200
    else:
        models = fvae.build_models("full", seed=args.seed)
        steps, n_test = args.epochs * (len(train_set) // args.batch), len(test_set)
    train_pixels = train_set.pixels.to(rt.device)
    test_pixels = test_set.pixels[:n_test].to(rt.device)
    args.out.mkdir(parents=True, exist_ok=True)
    args.checkpoints.mkdir(parents=True, exist_ok=True)
    rows, histories = [], {}
    for name, model in models.items():
        model.to(rt.device)
        reset_peak()
        runtime.seed_everything(args.seed)
        ckpt = None if args.tiny else args.checkpoints / f"fvae_compare_{name}_b{args.batch}_steps{steps}_s{args.seed}.pt"
        forecast(lambda n, m=model: fvae.fit(copy.deepcopy(m), train_pixels, n, batch_size=args.batch, lr=1e-3,
                                             seed=args.seed, progress=False),
                 steps, done=checkpoint_step(ckpt), label=f"{name} ({steps:,} steps of batch {args.batch})",
                 when="always", probe=5 if args.tiny else 20)
        t0 = time.perf_counter()
        hist = fvae.fit(model, train_pixels, steps, batch_size=args.batch, lr=1e-3, checkpoint=ckpt,
                        log_every=10, desc=name, seed=args.seed)
        seconds = time.perf_counter() - t0
        peak = peak_gpu_gib()
        test = metrics.dequantized_nll(lambda x, m=model: -fvae.neg_elbo(m, x), test_pixels, seed=0)
        histories[name] = hist
        rows.append(runtime.run_record(
            seed=args.seed, model=name, parameters=fvae.count_parameters(model), steps=steps,
            epochs=steps / (len(train_pixels) // args.batch), schedule=f"constant Adam lr 1e-3, batch {args.batch}",
            batch=args.batch, test_bits_per_dim=test.bits_per_dim, n_test=n_test,
            train_seconds=float(hist["seconds"][-1]), wall_seconds=seconds, peak_gpu_gib=peak,
            data=record(train_set, test_set), deviations=list(deviations),
            paper="none at MNIST scale (Su reports CelebA-HQ samples)", tiny=args.tiny))
    equal_time = min(r["train_seconds"] for r in rows)
    for r in rows:
        h = histories[r["model"]]
        upto = h["seconds"] <= equal_time
        upto[0] = True  # at least the first logged step
        r["equal_time_seconds"] = equal_time
        r["train_bits_per_dim_at_equal_time"] = bits(float(h["neg_elbo"][upto][-10:].mean()))
        print(f"| {r['model']} | {r['parameters'] / 1e6:.2f} M | {r['test_bits_per_dim']:.3f} | "
              f"{r['train_bits_per_dim_at_equal_time']:.3f} at {equal_time:.0f} s | {r['train_seconds']:.0f} s | "
              f"{r['peak_gpu_gib']:.2f} GiB | {r['device']} | {r['commit']} |")
    write_json(args.out / "fvae_compare.json", rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tutorlib.plotting import image_grid

    fig, axes = plt.subplots(1, 3, figsize=(11, 4))
    for ax, (name, model) in zip(axes, models.items()):
        gen = torch.Generator(device=rt.device).manual_seed(0)
        s = model.sample(36, temperature=0.8) if name == "vae" else model.sample(36, 0.8, generator=gen)
        image_grid(s.clamp(0, 1), (28, 28), nrow=6, ax=ax, title=f"{name}, T = 0.8")
    fig.tight_layout()
    fig.savefig(args.out / "fvae_samples.png", dpi=100)
    print(f"wrote {args.out / 'fvae_compare.json'} and {args.out / 'fvae_samples.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""NICE in tutorlib vs the same NICE in normflows: time to reach a target test NLL.

Both models have the paper's MNIST architecture (full mode): four additive couplings on the
interleaved (even/odd) partition with the halves alternating, each m an MLP 392 -> 5 x 1000 ReLU
-> 392 with a zero-initialised linear output, a diagonal scale layer, and the same prior. Both
are trained on the same batches (the whole training set held on the device as one uint8
tensor, indexed by tutorlib.train.Batches, dequantised as (pixel + u)/256), with the same Adam
settings and the same evaluation: the test NLL of a fixed dequantised test set every
``--eval-every`` steps. The clock runs only while training (evaluation pauses it) and is
synchronised with the GPU. The report gives, per library, the training speed, the training
time until the test NLL first reaches ``--target`` bits/dim, and the final test NLL.

normflows is a *benchmark-only* dependency (it is not in pyproject.toml or the lock file):

    pip install normflows==1.7.3 --no-deps     # its dependencies (torch, numpy) are already here

Usage (from the repository root):

    python benchmarks/nice_vs_normflows.py --mode quick                 # CPU, embedded subset
    python benchmarks/nice_vs_normflows.py --mode full --prior logistic # GPU, full MNIST

Full mode reads full MNIST through tutorlib.data.mnist(source="full"): on a machine without a
network, copy mnist.npz into $TUTORLIB_DATA (default ~/.cache/tutorlib) first. Results are
printed as a Markdown table and written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tutorlib import data, flows, metrics, runtime  # noqa: E402
from tutorlib.train import Batches  # noqa: E402

CONFIGS = {
    # quick: a CPU sanity run on the embedded subset (the chapter's quick model)
    "quick": dict(hidden=256, depth=3, batch_size=64, steps=1500, eval_every=100, target=5.2, scale_lr=3e-2),
    # full: the paper's model on full MNIST (a GPU run); 100 epochs at batch 200
    "full": dict(hidden=1000, depth=5, batch_size=200, steps=30_000, eval_every=500, target=4.6, scale_lr=1e-3),
}


def import_normflows():
    try:
        import normflows as nf
    except ImportError:
        sys.exit("normflows is not installed. It is a benchmark-only dependency:\n"
                 "    pip install normflows==1.7.3 --no-deps")
    return nf


def normflows_nice(nf, dim: int, hidden: int, depth: int, couplings: int, prior: str) -> nn.Module:
    """The same NICE in normflows. normflows composes flows from z to x, so the list starts with
    the scale layer; its coupling blocks compute x2 - m(x1) on the way from x to z (Su's sign;
    with a linear output the family is the same). Alternation: checkerboard / inverted
    checkerboard (the paper's swap of roles) instead of tutorlib's reversal, which differs
    by a fixed permutation that the MLPs' first layers absorb."""

    class StandardLogistic(nf.distributions.BaseDistribution):
        def __init__(self, d):
            super().__init__()
            self.d = d
            self.register_buffer("zero", torch.zeros(()))

        def forward(self, num_samples=1):
            z = flows.sample_logistic((num_samples, self.d), dtype=self.zero.dtype, device=self.zero.device)
            return z, self.log_prob(z)

        def log_prob(self, z):
            return flows.prior_log_prob(z, "logistic")

    half = dim // 2
    layers = [nf.flows.AffineConstFlow((dim,), scale=True, shift=False)]
    blocks = []
    for i in range(couplings):
        m = nf.nets.MLP([half] + [hidden] * depth + [half], init_zeros=True)
        mode = "checkerboard_inv" if i % 2 == 0 else "checkerboard"  # even indices kept first
        blocks.append(nf.flows.AffineCouplingBlock(m, scale=False, split_mode=mode))
    layers += blocks[::-1]
    base = nf.distributions.DiagGaussian(dim, trainable=False) if prior == "gaussian" else StandardLogistic(dim)
    return nf.NormalizingFlow(base, layers)


def build(library: str, dim: int, cfg: dict, prior: str, device, seed: int):
    """(model, log_prob, optimizer) for one library, with tutorlib's Adam settings."""
    torch.manual_seed(seed)
    if library == "tutorlib":
        model = flows.NICE(dim, cfg["hidden"], cfg["depth"], couplings=4, prior=prior).to(device)
        log_prob, scale_params = model.log_prob, [model.scale.log_scale]
    else:
        model = normflows_nice(import_normflows(), dim, cfg["hidden"], cfg["depth"], 4, prior).to(device)
        log_prob, scale_params = model.log_prob, [model.flows[0].s]
    ids = {id(p) for p in scale_params}
    nets = [p for p in model.parameters() if id(p) not in ids]
    optimizer = torch.optim.Adam([{"params": nets}, {"params": scale_params, "lr": cfg["scale_lr"]}], lr=1e-3, eps=1e-4)
    return model, log_prob, optimizer


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(library: str, train_pixels, test_x, cfg: dict, prior: str, device, seed: int) -> dict:
    model, log_prob, optimizer = build(library, train_pixels.shape[1], cfg, prior, device, seed)
    batches = Batches(train_pixels, batch_size=cfg["batch_size"], seed=seed)
    dim = train_pixels.shape[1]
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    trained, to_target, curve = 0.0, None, []
    torch.manual_seed(seed + 2)
    for step in range(1, cfg["steps"] + 1):
        sync(device)
        start = time.perf_counter()
        x = (batches(step - 1).float() + torch.rand(cfg["batch_size"], dim, device=device, generator=gen)) / 256
        loss = -log_prob(x).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(device)
        trained += time.perf_counter() - start
        if step % cfg["eval_every"] == 0 or step == cfg["steps"]:
            model.eval()
            with torch.no_grad():
                nll = float(torch.cat([-log_prob(b) for b in test_x.split(1000)]).double().mean())
            model.train()
            bpd = float(metrics.bits_per_dim(metrics.discrete_nll(nll, dim), dim))
            if not math.isfinite(bpd):
                raise FloatingPointError(f"{library}: the test NLL became {nll} at step {step}")
            curve.append((step, round(trained, 3), round(bpd, 4), round(nll, 2)))
            if to_target is None and bpd <= cfg["target"]:
                to_target = (step, trained)
            print(f"  {library:>9} step {step:>6}: test {bpd:.3f} bits/dim, {trained:.1f} s of training", flush=True)
    return {"library": library, "steps_per_s": cfg["steps"] / trained, "train_s": trained,
            "final_bits_per_dim": curve[-1][2], "final_log_likelihood": -curve[-1][3],
            "target_step": to_target[0] if to_target else None,
            "target_s": to_target[1] if to_target else None, "curve": curve,
            "parameters": sum(p.numel() for p in model.parameters())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=sorted(CONFIGS), default="quick")
    ap.add_argument("--prior", choices=flows.PRIORS, default="logistic")
    ap.add_argument("--libraries", default="tutorlib,normflows", help="comma-separated: tutorlib, normflows")
    ap.add_argument("--steps", type=int, help="override the mode's number of training steps")
    ap.add_argument("--target", type=float, help="target test bits/dim (default: the mode's)")
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="JSON file for the results")
    args = ap.parse_args(argv)

    cfg = dict(CONFIGS[args.mode])
    for key in ("steps", "target", "eval_every"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    libraries = [s.strip() for s in args.libraries.split(",") if s.strip()]
    if "normflows" in libraries:
        import_normflows()
    device = runtime.device()
    runtime.set_threads()
    if args.mode == "quick":
        train_set, test_set = data.mnist_subset("train"), data.mnist_subset("test")
    else:
        train_set, test_set = data.mnist("train", source="full"), data.mnist("test", source="full")
    train_pixels = train_set.pixels.to(device)
    test_x = data.dequantize(test_set.pixels.to(device),
                             generator=torch.Generator(device=device).manual_seed(args.seed))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"device: {name} | torch {torch.__version__} | commit {commit} | mode {args.mode} | prior {args.prior}")
    print(f"data: {train_set!r} / {test_set!r}")
    print(f"config: {cfg}")
    results = [run(lib, train_pixels, test_x, cfg, args.prior, device, args.seed) for lib in libraries]

    print(f"\n| library | parameters | steps/s | time to {cfg['target']} bits/dim | final test bits/dim "
          f"| training time ({cfg['steps']} steps) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        hit = f"{r['target_s']:.1f} s (step {r['target_step']})" if r["target_s"] is not None else "not reached"
        print(f"| {r['library']} | {r['parameters']:,} | {r['steps_per_s']:.1f} | {hit} | "
              f"{r['final_bits_per_dim']:.3f} | {r['train_s']:.1f} s |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"device": name, "torch": torch.__version__, "commit": commit,
                                        "mode": args.mode, "prior": args.prior, "config": cfg,
                                        "results": results}, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

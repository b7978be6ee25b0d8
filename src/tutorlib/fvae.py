"""f-VAEs (chapter 6; Su's article 4 and Su & Wu, arXiv:1809.05861): a VAE whose posterior is a flow.

In Su's notation the prior is ``q(z)``, the decoder ``q(x|z)``, the posterior ``p(z|x)``. An
f-VAE writes the posterior as a *conditional flow* of standard noise ``u ~ q(u) = N(0, I)``:

    z = F_x(u),   F_x invertible in u,   ln p(z|x) = ln q(u) - ln|det dF_x/du|.

Substituting into the VAE loss ``E[-ln q(x|z) - ln q(z) + ln p(z|x)]`` gives, up to the constant
``E[ln q(u)]``, the general f-VAE loss (SUMMARY 4.3)

    L = E_{x, u}[ -ln q(x|F_x(u)) - ln q(F_x(u)) - ln|det dF_x(u)/du| ].

:func:`general_loss` computes it for any conditional flow ``posterior(u, x) -> (z, logdet)``
and any decoder ``log_likelihood(x, z)``. The two special cases of the article are conditional
flows built from existing parts and fed to the *same* function:

- :func:`vae_special_case`: ``F_x(u) = sigma(x) * u + mu(x)`` -- the VAE of :mod:`tutorlib.vae`;
- :func:`noisy_flow_special_case`: ``F_x(u) = F(sigma u + x)`` with ``q(x|z) = N(x; F^{-1}(z), sigma^2)``
  -- an unconditional flow trained on noisy inputs ``x + sigma u``.

:class:`FVAE` is the article's model: ``F_x(u) = F(sigma1 u + E(x))``, ``q(x|z) = N(x; G(F^{-1}(z)),
sigma2^2 I)``, with a convolutional encoder ``E`` and decoder ``G``, a small Glow-like flow ``F``
(:class:`tutorlib.flows.Glow`) and trainable scalars ``sigma1``, ``sigma2``.

The chapter's numerical checks are the ``check_*`` functions at the end (each computes both sides
of one statement by independent code and calls :func:`tutorlib.compare`), with the helpers they
need: :func:`brute_force_logdet`, :func:`newton_inverse` (an inverse from the forward map alone),
:func:`linear_gaussian`, :func:`sigma_points` and :func:`reconstruction`.

Every loss here is per example, in nats, for data ``x`` of shape (batch, D); each returns the
terms ``rec = -ln q(x|z)``, ``prior = -ln q(z)``, ``logdet = ln|det dF_x/du|``, Su's ``loss = rec +
prior - logdet`` and the bound ``neg_elbo = loss + ln q(u)`` (``-ELBO``, a one-sample upper bound
on ``-ln q(x)`` in expectation).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
from torch import nn

from tutorlib._validate import one_of, positive_float, positive_int

LOG_2PI = math.log(2 * math.pi)


def _check_data(name: str, x, dim: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 2 or x.shape[0] == 0:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point tensor of shape (batch, D), got {got}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (batch, {dim}), got {tuple(x.shape)}")
    return x


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``ln N(z; 0, I)`` per example (summed over every dimension but the first)."""
    z = z.flatten(1)
    return -0.5 * (z * z).sum(dim=1) - 0.5 * z.shape[1] * LOG_2PI


def loss_from_terms(log_likelihood: torch.Tensor, z: torch.Tensor, logdet: torch.Tensor, u: torch.Tensor,
                    log_prior: Callable[[torch.Tensor], torch.Tensor] = standard_normal_log_prob
                    ) -> dict[str, torch.Tensor]:
    """Assemble the f-VAE loss from its parts at one draw ``u``: ``ln q(x|z)``, ``z = F_x(u)``
    and ``logdet = ln|det dF_x/du|`` (each per example). Returns the per-example terms
    ``rec``, ``prior``, ``logdet``, ``log_qu``, ``loss`` (Su's, SUMMARY 4.3) and ``neg_elbo``."""
    rec = -log_likelihood
    prior = -log_prior(z)
    loss = rec + prior - logdet
    log_qu = standard_normal_log_prob(u)
    return {"rec": rec, "prior": prior, "logdet": logdet, "log_qu": log_qu, "loss": loss,
            "neg_elbo": loss + log_qu}


def general_loss(x: torch.Tensor, u: torch.Tensor, posterior: Callable, log_likelihood: Callable,
                 log_prior: Callable[[torch.Tensor], torch.Tensor] = standard_normal_log_prob
                 ) -> dict[str, torch.Tensor]:
    """The general f-VAE loss (SUMMARY 4.3) per example, at the noise ``u`` (batch, d):

    ``loss = -ln q(x|z) - ln q(z) - ln|det dF_x(u)/du|`` with ``(z, logdet) = posterior(u, x)``,
    ``log_likelihood(x, z) = ln q(x|z)`` and the prior ``log_prior(z) = ln q(z)`` (standard normal by
    default). Also returns ``z`` and the terms of :func:`loss_from_terms`; ``neg_elbo = loss + ln q(u)``
    is the VAE loss ``-ln q(x|z) - ln q(z) + ln p(z|x)`` itself, since ``ln p(z|x) = ln q(u) - logdet``.
    """
    x = _check_data("x", x)
    u = _check_data("u", u)
    if u.shape[0] != x.shape[0]:
        raise ValueError(f"u must have one row per example of x ({x.shape[0]}), got {u.shape[0]}")
    for name, f in (("posterior", posterior), ("log_likelihood", log_likelihood), ("log_prior", log_prior)):
        if not callable(f):
            raise ValueError(f"{name} must be callable, got {type(f).__name__}")
    z, logdet = posterior(u, x)
    terms = loss_from_terms(log_likelihood(x, z), z, logdet, u, log_prior)
    terms["z"] = z
    return terms


# --- special case 1: the VAE ------------------------------------------------------------------

class GaussianPosterior(nn.Module):
    """The conditional flow ``F_x(u) = sigma(x) * u + mu(x)`` (special case 1, SUMMARY 4.4).

    ``encode(x) -> (mu, logvar)`` (e.g. :meth:`tutorlib.vae.VAE.encode`), ``sigma = e^{logvar/2}``;
    ``ln|det dF_x/du| = sum_i ln sigma_i = sum_i logvar_i / 2``.
    """

    def __init__(self, encode: Callable) -> None:
        super().__init__()
        if not callable(encode):
            raise ValueError(f"encode must be callable x -> (mu, logvar), got {type(encode).__name__}")
        self.encode = encode

    def forward(self, u: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        if u.shape[u.ndim - mu.ndim:] != mu.shape:
            raise ValueError(f"u must have the shape of the encoder's mu {tuple(mu.shape)} (after any leading "
                             f"sample dimensions), got {tuple(u.shape)}")
        return mu + (0.5 * logvar).exp() * u, 0.5 * logvar.sum(dim=-1)


def vae_special_case(vae) -> tuple[GaussianPosterior, Callable]:
    """Special case 1 for a :class:`tutorlib.vae.VAE`: its encoder as the conditional flow
    ``F_x(u) = sigma(x) u + mu(x)`` and its decoder ``ln q(x|z) = -vae.nll(x, z)``. With these,
    :func:`general_loss`'s ``neg_elbo`` equals the VAE loss with a *sampled* KL at the same ``u``,
    and the mean over ``u`` of its ``loss`` equals the VAE loss with the *analytic* KL plus
    :func:`vae_constant` (the dimension of ``z`` times ``(1 + ln 2 pi) / 2``)."""
    from tutorlib.vae import VAE

    if not isinstance(vae, VAE):
        raise ValueError(f"vae must be a tutorlib.vae.VAE, got {type(vae).__name__}")
    return GaussianPosterior(vae.encode), lambda x, z: -vae.nll(x, z)


def vae_constant(z_dim: int) -> float:
    """``E_u[-ln q(F_x(u))] - sum ln sigma - KL = (d/2)(1 + ln 2 pi)``: the constant between Su's
    f-VAE loss under special case 1 and the VAE loss with the analytic KL (``d = dim z``)."""
    return 0.5 * positive_int("z_dim", z_dim) * (1.0 + LOG_2PI)


# --- special case 2: a flow trained on noisy data ---------------------------------------------

class NoisyFlowPosterior(nn.Module):
    """The conditional flow ``F_x(u) = F(sigma u + x)`` (special case 2, SUMMARY 4.5).

    ``flow`` is an unconditional flow layer or model with ``forward(v) -> (z, logdet)`` and
    ``inverse``; ``ln|det dF_x/du| = ln|det dF/dv| + D ln sigma``.
    """

    def __init__(self, flow: nn.Module, sigma: float) -> None:
        super().__init__()
        if not (isinstance(flow, nn.Module) and hasattr(flow, "inverse")):
            raise ValueError(f"flow must be a flow module with forward and inverse, got {type(flow).__name__}")
        self.flow = flow
        self.sigma = positive_float("sigma", sigma)

    def forward(self, u: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if u.shape != x.shape:
            raise ValueError(f"u must have the shape of x {tuple(x.shape)}, got {tuple(u.shape)}")
        z, logdet = self.flow(x + self.sigma * u)
        return z, logdet + x.shape[1] * math.log(self.sigma)


def noisy_flow_special_case(flow: nn.Module, sigma: float) -> tuple[NoisyFlowPosterior, Callable]:
    """Special case 2: the conditional flow ``F(sigma u + x)`` and the decoder
    ``q(x|z) = N(x; F^{-1}(z), sigma^2 I)``. With these, :func:`general_loss`'s ``neg_elbo`` equals the
    flow's negative log-likelihood of the noisy input ``x + sigma u`` exactly, and its ``loss`` exceeds
    it by :func:`noisy_flow_offset` ``= |u|^2/2 + (D/2) ln 2 pi``, which has no parameters."""
    posterior = NoisyFlowPosterior(flow, sigma)
    log_sigma = math.log(posterior.sigma)

    def log_likelihood(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mean = flow.inverse(z)
        return -0.5 * ((x - mean) ** 2).sum(dim=1) / posterior.sigma ** 2 - x.shape[1] * (log_sigma + 0.5 * LOG_2PI)

    return posterior, log_likelihood


def noisy_flow_offset(u: torch.Tensor) -> torch.Tensor:
    """``|u|^2 / 2 + (D/2) ln 2 pi`` per example: Su's special-case-2 loss minus the noisy-flow NLL."""
    return -standard_normal_log_prob(_check_data("u", u))


# --- the model F(sigma1 u + E(x)) -------------------------------------------------------------

class ResidualBlock(nn.Module):
    """``x + CNN(x)``: a 3x3 convolution to ``channels`` feature maps, ReLU, a 1x1 convolution back.
    The 1x1 convolution starts at zero, so a fresh block is the identity."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(channels, in_channels, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The convolutions run in the channels-last memory layout: on a CPU, PyTorch's backward
        # pass of these few-channel convolutions is about twice as fast there. Values are unchanged.
        return x + self.net(x.contiguous(memory_format=torch.channels_last)).contiguous()


class Encoder(nn.Module):
    """``E``: squeeze ``(C, H, W) -> (4C, H/2, W/2)``, then ``blocks`` residual blocks (Su's design).
    A fresh encoder is the squeeze alone (a permutation of the pixels)."""

    def __init__(self, in_channels: int, channels: int = 32, blocks: int = 2) -> None:
        super().__init__()
        from tutorlib.flows import Squeeze

        self.squeeze = Squeeze()
        self.blocks = nn.Sequential(*[ResidualBlock(4 * in_channels, channels) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.squeeze(x)[0])


class Decoder(nn.Module):
    """``G``: the mirror of :class:`Encoder`: residual blocks, then unsqueeze."""

    def __init__(self, in_channels: int, channels: int = 32, blocks: int = 2) -> None:
        super().__init__()
        from tutorlib.flows import Squeeze

        self.blocks = nn.Sequential(*[ResidualBlock(4 * in_channels, channels) for _ in range(blocks)])
        self.squeeze = Squeeze()

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.squeeze.inverse(self.blocks(v))


class FVAE(nn.Module):
    """The f-VAE of Su & Wu (SUMMARY 4.6): ``z = F(sigma1 u + E(x))``, ``x ~ N(G(F^{-1}(z)), sigma2^2 I)``.

    ``shape``: the image shape ``(C, H, W)`` (``H``, ``W`` even); data ``x`` are flat, (batch, C*H*W).
    ``E`` (:class:`Encoder`) and ``G`` (:class:`Decoder`): squeeze/unsqueeze and ``blocks`` residual
    blocks of ``channels`` feature maps; ``F``: a :class:`tutorlib.flows.Glow` on the ``D = C*H*W``
    coordinates of ``v`` with ``flow_steps`` steps of ``hidden`` x ``depth`` MLP couplings
    (``coupling``: ``"affine"`` or ``"additive"``). ``dim z = dim x = D``. ``sigma1``, ``sigma2``: the
    initial values of the two trainable scalars (stored as logs).

    A fresh ``E`` and ``G`` are the squeeze and its inverse, so a fresh f-VAE is special case 2, the
    noisy flow, with ``sigma = sigma1`` (and a decoder noise ``sigma2``).
    """

    def __init__(self, shape=(1, 28, 28), channels: int = 32, blocks: int = 2, flow_steps: int = 4,
                 hidden: int = 256, depth: int = 2, coupling: str = "affine", sigma1: float = 0.1,
                 sigma2: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        from tutorlib.flows import Glow

        if not (isinstance(shape, (tuple, list)) and len(shape) == 3):
            raise ValueError(f"shape must be (C, H, W), got {shape!r}")
        c, h, w = (positive_int(n, v) for n, v in zip(("C", "H", "W"), shape))
        if h % 2 or w % 2:
            raise ValueError(f"shape must have an even height and width (for the squeeze), got {h}x{w}")
        self.shape = (c, h, w)
        self.dim = c * h * w
        channels, blocks = positive_int("channels", channels), positive_int("blocks", blocks, minimum=0)
        self.E = Encoder(c, channels, blocks)
        self.G = Decoder(c, channels, blocks)
        self.F = Glow(self.dim, steps=flow_steps, hidden=hidden, depth=depth, coupling=coupling, seed=seed)
        self.log_sigma1 = nn.Parameter(torch.tensor(math.log(positive_float("sigma1", sigma1))))
        self.log_sigma2 = nn.Parameter(torch.tensor(math.log(positive_float("sigma2", sigma2))))

    @property
    def sigma1(self) -> torch.Tensor:
        return self.log_sigma1.exp()

    @property
    def sigma2(self) -> torch.Tensor:
        return self.log_sigma2.exp()

    def _check_x(self, x) -> torch.Tensor:
        return _check_data("x", x, self.dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x)``, flat: (batch, D)."""
        x = self._check_x(x)
        return self.E(x.reshape(-1, *self.shape)).flatten(1)

    def decode(self, v: torch.Tensor) -> torch.Tensor:
        """``G(v)``, flat: the decoder's mean at ``v = F^{-1}(z)``, (batch, D)."""
        v = _check_data("v", v, self.dim)
        c, h, w = self.shape
        return self.G(v.reshape(-1, 4 * c, h // 2, w // 2)).flatten(1)

    def posterior(self, u: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditional flow ``z = F_x(u) = F(sigma1 u + E(x))`` and ``ln|det dF_x/du|``."""
        u = _check_data("u", u, self.dim)
        z, logdet = self.F(self.sigma1 * u + self.encode(x))
        return z, logdet + self.dim * self.log_sigma1

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``ln q(x|z) = ln N(x; G(F^{-1}(z)), sigma2^2 I)`` per example (inverts ``F``: for checks;
        :meth:`loss_terms` uses ``v`` directly)."""
        return self._gaussian_log_likelihood(x, self.decode(self.F.inverse(z)))

    def _gaussian_log_likelihood(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        sq = ((x - mean) ** 2).sum(dim=1)
        return -0.5 * sq / self.sigma2 ** 2 - self.dim * (self.log_sigma2 + 0.5 * LOG_2PI)

    def draw_u(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)

    def loss_terms(self, x: torch.Tensor, u: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-example terms at one draw ``u`` (fresh if ``None``), computed with ``v = sigma1 u + E(x)``
        (``F^{-1}(z) = v``, no inversion needed). ``su``: SUMMARY 4.6's loss,

        ``|x - G(v)|^2 / (2 sigma2^2) + |F(v)|^2 / 2 - ln|det dF/dv| + D ln sigma2 - D ln sigma1``,

        which is the general loss minus the constant ``D ln 2 pi``; plus the terms of
        :func:`loss_from_terms` (``neg_elbo`` in nats)."""
        x = self._check_x(x)
        u = self.draw_u(x) if u is None else _check_data("u", u, self.dim)
        if u.shape[0] != x.shape[0]:
            raise ValueError(f"u must have one row per example of x ({x.shape[0]}), got {u.shape[0]}")
        v = self.sigma1 * u + self.encode(x)
        z, logdet_f = self.F(v)
        terms = loss_from_terms(self._gaussian_log_likelihood(x, self.decode(v)), z,
                                logdet_f + self.dim * self.log_sigma1, u)
        terms["su"] = terms["loss"] - self.dim * LOG_2PI
        return terms

    def loss(self, x: torch.Tensor, u: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Batch means for training: ``loss`` (SUMMARY 4.6's formula), ``neg_elbo`` (nats per
        example) and ``sigma1``, ``sigma2`` (to log)."""
        t = self.loss_terms(x, u)
        return {"loss": t["su"].mean(), "neg_elbo": t["neg_elbo"].mean(),
                "sigma1": self.sigma1.detach(), "sigma2": self.sigma2.detach()}

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """``ln q(x|z_i) + ln q(z_i) - ln p(z_i|x)`` for ``k`` draws ``z_i = F_x(u_i)``: (k, batch), for
        :func:`tutorlib.metrics.iwae_nll`."""
        k = positive_int("k", k)
        x = self._check_x(x)
        xs = x.repeat(k, 1)
        return -self.loss_terms(xs)["neg_elbo"].reshape(k, x.shape[0])

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """``x = G(F^{-1}(z))`` with a prior draw ``z ~ q(z) = N(0, T^2 I)`` (the decoder's mean; no
        gradients): (n, D). ``T`` scales the standard deviation, as ``std`` does in Su's ``f-VAEs.py``."""
        n, temperature = positive_int("n", n), positive_float("temperature", temperature)
        ref = self.log_sigma1
        gen_device = generator.device if generator is not None else ref.device
        z = torch.randn(n, self.dim, generator=generator, dtype=ref.dtype, device=gen_device).to(ref.device)
        return self.decode(self.F.inverse(temperature * z))

    @torch.no_grad()
    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior's centre ``F(E(x))`` (``u = 0``): the code used for interpolation."""
        return self.F(self.encode(x))[0]

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """``G(F^{-1}(z))``."""
        return self.decode(self.F.inverse(_check_data("z", z, self.dim)))

    def extra_repr(self) -> str:
        return f"shape={self.shape}, dim={self.dim}"


# --- the comparison of chapter 6: VAE, flow and f-VAE on the same dequantised data ----------


def neg_elbo(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The per-example bound on ``-ln q(x)`` (nats, continuous ``x``) that each model trains:
    ``-ELBO`` for a Gaussian :class:`tutorlib.vae.VAE` and an :class:`FVAE`, the exact ``-ln q(x)``
    for a flow model (anything with ``log_prob``)."""
    from tutorlib.vae import VAE

    if isinstance(model, FVAE):
        return model.loss_terms(x)["neg_elbo"]
    if isinstance(model, VAE):
        return -model.elbo(x)
    if hasattr(model, "log_prob"):
        return -model.log_prob(x)
    raise ValueError(f"model must be a tutorlib VAE, a flow model or an FVAE, got {type(model).__name__}")


def latent(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Each model's code of ``x`` for interpolation: the VAE's ``mu``, the flow's ``f(x)``, the f-VAE's ``F(E(x))``."""
    from tutorlib.vae import VAE

    with torch.no_grad():
        if isinstance(model, FVAE):
            return model.latent(x)
        if isinstance(model, VAE):
            return model.encode(x)[0]
        return model(x)[0]


def generate(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`latent`: decoder mean, flow inverse, or ``G(F^{-1}(z))``."""
    from tutorlib.vae import VAE

    with torch.no_grad():
        if isinstance(model, FVAE):
            return model.generate(z)
        if isinstance(model, VAE):
            return model.mean(z)
        return model.inverse(z)


def interpolate(model: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, ts) -> torch.Tensor:
    """Decode ``(1 - t) code(x_a) + t code(x_b)`` for each ``t`` in ``ts``: (len(ts), D). ``x_a``, ``x_b``: (D,)."""
    if not (isinstance(x_a, torch.Tensor) and isinstance(x_b, torch.Tensor) and x_a.ndim == 1 and x_a.shape == x_b.shape):
        raise ValueError("x_a and x_b must be tensors of the same shape (D,)")
    ts = torch.as_tensor(ts, dtype=x_a.dtype, device=x_a.device).reshape(-1, 1)
    if ts.numel() == 0 or not torch.isfinite(ts).all():
        raise ValueError("ts must be a non-empty sequence of finite numbers")
    codes = latent(model, torch.stack((x_a, x_b)))
    return generate(model, (1 - ts) * codes[:1] + ts * codes[1:])


def fit(model: nn.Module, pixels: torch.Tensor, steps: int, *, batch_size: int = 64, lr: float = 1e-3,
        levels: int = 256, seed: int = 0, checkpoint=None, checkpoint_every: int = 1000, log_every: int = 10,
        clip_grad: float | None = 100.0, init_size: int = 2000, desc: str | None = None,
        progress: bool | None = None):
    """Train a VAE, a flow or an :class:`FVAE` on freshly dequantised batches ``(pixel + u) / levels``
    of integer ``pixels`` (n, D) with Adam, and log ``neg_elbo`` (nats), the wall time ``seconds`` and
    this process's CPU time ``cpu_seconds`` since the start of this call at every logged step (on a
    shared CPU machine the CPU time is the steadier clock; on a GPU only the wall time counts). The objective is :func:`neg_elbo`
    (SUMMARY 4.6's loss for the f-VAE, which has the same gradients). A model with
    :class:`tutorlib.flows.ActNorm` layers is first initialised on ``init_size`` random examples.
    Checkpointed and resumable through :func:`tutorlib.train.train`. Returns the
    :class:`tutorlib.train.History`."""
    from tutorlib.data import dequantize
    from tutorlib.flows import ActNorm
    from tutorlib.train import Batches, train

    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 2 or pixels.shape[0] < 2:
        got = tuple(pixels.shape) if isinstance(pixels, torch.Tensor) else type(pixels).__name__
        raise ValueError(f"pixels must be a tensor of shape (n, D) of integer levels, got {got}")
    lr, levels = positive_float("lr", lr), positive_int("levels", levels, minimum=2)
    start, cpu_start = time.perf_counter(), time.process_time()

    def loss_fn(batch: torch.Tensor) -> dict:
        x = dequantize(batch, levels=levels)
        if isinstance(model, FVAE):
            out = model.loss(x)
        else:
            bound = neg_elbo(model, x).mean()
            out = {"loss": bound, "neg_elbo": bound}
        out["seconds"] = time.perf_counter() - start
        out["cpu_seconds"] = time.process_time() - cpu_start
        return out

    init_size = positive_int("init_size", init_size)
    if any(isinstance(m, ActNorm) and not bool(m.initialized) for m in model.modules()):
        # Data-dependent initialisation on a large batch: on a small one, a pixel that happens to
        # be blank in all of it looks constant, and ActNorm would scale it up by ~1000.
        gen = torch.Generator(device=pixels.device).manual_seed(seed)
        idx = torch.randperm(pixels.shape[0], generator=gen, device=pixels.device)[:init_size]
        model.train()
        with torch.no_grad():
            neg_elbo(model, dequantize(pixels[idx], levels=levels, generator=gen))
    optimizer = _adam(model.parameters(), lr)
    history = train(model, optimizer, loss_fn, Batches(pixels, batch_size=batch_size, seed=seed), steps,
                    checkpoint=checkpoint, checkpoint_every=checkpoint_every, log_every=log_every,
                    clip_grad=clip_grad, desc=desc or type(model).__name__, progress=progress)
    model.eval()
    return history


def _adam(params, lr: float) -> torch.optim.Optimizer:
    """Adam with the fused kernel where this torch has one for the parameters' device (the same
    algorithm and defaults; on one CPU thread it takes a third of the time of the default
    ``foreach`` kernel for these 1.5 M-parameter models), else the default implementation."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class Autoencoder(nn.Module):
    """A plain deterministic autoencoder ``x -> z -> x`` with MLPs (ReLU) and a squared-error loss:
    chapter 6's evidence that a low-dimensional code alone already blurs, without any noise."""

    def __init__(self, x_dim: int, z_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.x_dim, self.z_dim = positive_int("x_dim", x_dim), positive_int("z_dim", z_dim)
        hidden = positive_int("hidden", hidden)
        self.encoder = nn.Sequential(nn.Linear(self.x_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, self.z_dim))
        self.decoder = nn.Sequential(nn.Linear(self.z_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, self.x_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``x``."""
        return self.decoder(self.encoder(_check_data("x", x, self.x_dim)))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The mean squared error per example (summed over pixels, averaged over the batch)."""
        return ((self(x) - x) ** 2).sum(dim=1).mean()


def fit_autoencoder(x: torch.Tensor, z_dim: int, steps: int, *, hidden: int = 256, batch_size: int = 64,
                    lr: float = 1e-3, seed: int = 0) -> Autoencoder:
    """Train an :class:`Autoencoder` with a ``z_dim``-number code on the rows of ``x`` (n, D) for
    ``steps`` Adam steps on its squared error (seeded: the weights and the batches depend on ``seed``
    only). Returns the model in eval mode."""
    from tutorlib.runtime import seed_everything
    from tutorlib.train import Batches, train

    x = _check_data("x", x)
    seed = positive_int("seed", seed, minimum=0)
    seed_everything(seed)
    ae = Autoencoder(x.shape[1], z_dim, hidden=hidden)
    train(ae, _adam(ae.parameters(), positive_float("lr", lr)), ae.loss,
          Batches(x, batch_size=batch_size, seed=seed), steps, desc=f"AE z={z_dim}")
    ae.eval()
    return ae


# Chapter 6's three models at similar parameter counts (quick: about 1.5 M each; full: about 6.9 M each).
MODEL_SIZES = {
    "quick": {"vae": dict(z_dim=64, hidden=(512, 512)),
              "flow": dict(steps=4, hidden=272, depth=2),
              "fvae": dict(flow_steps=4, hidden=256, depth=2, channels=16, blocks=2)},
    "full": {"vae": dict(z_dim=64, hidden=(1100, 1100, 1100)),
             "flow": dict(steps=8, hidden=510, depth=2),
             "fvae": dict(flow_steps=8, hidden=512, depth=2, channels=64, blocks=3)},
}


def build_models(size: str = "quick", shape=(1, 28, 28), seed: int = 0) -> dict[str, nn.Module]:
    """The three models that chapter 6 compares, for images of ``shape``: a VAE with a Gaussian
    decoder (one learned sigma, like the f-VAE's sigma2), the Glow-like flow alone, and the f-VAE whose ``F`` has
    the same architecture. ``size``: ``"quick"`` or ``"full"`` (see ``MODEL_SIZES``)."""
    from tutorlib.flows import Glow
    from tutorlib.vae import VAE

    cfg = MODEL_SIZES[one_of("size", size, tuple(MODEL_SIZES))]
    dim = math.prod(shape)
    torch.manual_seed(positive_int("seed", seed, minimum=0))
    return {"vae": VAE(dim, cfg["vae"]["z_dim"], hidden=list(cfg["vae"]["hidden"]), likelihood="gaussian",
                       sigma="learned-scalar", sigma_init=0.1),
            "flow": Glow(dim, seed=seed, **cfg["flow"]),
            "fvae": FVAE(shape, seed=seed, **cfg["fvae"])}


# --- chapter 6's numerical checks ---------------------------------------------------------------
# Each computes both sides of one statement of the chapter by independent code and calls
# :func:`tutorlib.compare`, which prints them and raises IdentityError when they disagree. The
# unit tests (tests/test_ch06_checks.py) feed each one a broken quantity and expect it to raise.


def brute_force_logdet(fn: Callable, inputs: torch.Tensor) -> torch.Tensor:
    """``ln|det d fn(r)/dr|`` for each row ``r`` of ``inputs`` (n, d), from the full autograd Jacobian
    (``torch.autograd.functional.jacobian``) and ``slogdet``: no knowledge of how ``fn`` is built.
    ``fn`` maps one row (d,) to one row (d,). For small ``d`` and float64."""
    from torch.autograd.functional import jacobian

    inputs = _check_data("inputs", inputs)
    if not callable(fn):
        raise ValueError(f"fn must be callable (d,) -> (d,), got {type(fn).__name__}")
    return torch.stack([torch.linalg.slogdet(jacobian(fn, row))[1] for row in inputs])


def check_logdet(label: str, fn: Callable, inputs: torch.Tensor, logdet: torch.Tensor, *, rtol: float = 1e-13,
                 atol: float = 1e-13, names: tuple[str, str] = ("sum of log-scales", "autograd Jacobian")) -> None:
    """Compare a log-determinant computed by a model (``logdet``, one per row of ``inputs``) with
    :func:`brute_force_logdet` of ``fn``. The default tolerance suits float64: both sides are
    rounded at ~1e-15 (relative), a hundred times below it."""
    from tutorlib import compare

    compare(label, logdet, brute_force_logdet(fn, inputs), rtol=rtol, atol=atol, names=names)


def newton_inverse(fn: Callable, z: torch.Tensor, iters: int = 50, tol: float = 1e-12) -> torch.Tensor:
    """Solve ``fn(v) = z`` for each row of ``z`` (n, d) by Newton's method from ``v = 0``, with the
    autograd Jacobian of ``fn`` and a backtracking step: an inverse computed from the forward map
    alone (no inverse formula). ``fn`` maps one row (d,) to one row (d,). Raises RuntimeError if a
    row's residual ``max |fn(v) - z|`` is not below ``tol`` within ``iters`` steps. For small ``d``."""
    from torch.autograd.functional import jacobian

    z = _check_data("z", z)
    iters, tol = positive_int("iters", iters), positive_float("tol", tol)
    if not callable(fn):
        raise ValueError(f"fn must be callable (d,) -> (d,), got {type(fn).__name__}")
    rows = []
    with torch.no_grad():
        for target in z:
            v = torch.zeros_like(target)
            r = fn(v) - target
            for _ in range(iters):
                if float(r.abs().max()) < tol:
                    break
                try:
                    step = torch.linalg.solve(jacobian(fn, v), r)
                except RuntimeError as err:  # a singular Jacobian: no Newton step
                    raise RuntimeError(f"Newton's method did not reach a residual below {tol:g}: {err}") from None
                lam = 1.0
                while True:  # halve the step until the residual shrinks
                    v_new = v - lam * step
                    r_new = fn(v_new) - target
                    if float(r_new.norm()) < float(r.norm()) or lam < 1e-8:
                        break
                    lam /= 2
                v, r = v_new, r_new
            if float(r.abs().max()) >= tol:
                raise RuntimeError(f"Newton's method did not reach a residual below {tol:g} in {iters} steps "
                                   f"(residual {float(r.abs().max()):.3g})")
            # one more full step (quadratic convergence takes the root to rounding), kept if no worse
            v_new = v - torch.linalg.solve(jacobian(fn, v), r)
            if float((fn(v_new) - target).norm()) <= float(r.norm()):
                v = v_new
            rows.append(v)
    return torch.stack(rows)


def check_inverse(label: str, flow: nn.Module, z: torch.Tensor, *, atol: float = 1e-13) -> None:
    """``flow.inverse(z)`` (the layers' inverse formulas) against :func:`newton_inverse` of the
    flow's forward map (which never calls ``inverse``), row by row. Float64; the default ``atol`` is
    about a hundred times the rounding of either side on the chapter's small flows (~1e-15)."""
    from tutorlib import compare

    z = _check_data("z", z)
    with torch.no_grad():
        formula = flow.inverse(z)
    root = newton_inverse(lambda r: flow(r[None])[0][0], z)
    compare(label, formula, root, atol=atol, names=("flow.inverse", "Newton root of F(v) = z"))


def linear_gaussian(A: torch.Tensor, b: torch.Tensor, s: float):
    """The linear-Gaussian model ``q(z) = N(0, I)``, ``q(x|z) = N(Az + b, s^2 I)`` and its exact pieces.

    Returns ``(posterior, log_likelihood, log_evidence)``: the conditional flow
    ``F_x(u) = m(x) + L u`` with ``m(x) = Sigma A^T (x - b) / s^2``, ``L L^T = Sigma = (I + A^T A / s^2)^{-1}``
    (the exact posterior, a full matrix) and its ``ln|det dF_x/du| = sum ln L_ii``; ``ln q(x|z)``;
    and the closed-form ``ln q(x) = ln N(x; b, A A^T + s^2 I)``."""
    if not (isinstance(A, torch.Tensor) and A.ndim == 2 and isinstance(b, torch.Tensor) and b.shape == A.shape[:1]):
        raise ValueError("A must be a (D, d) tensor and b a (D,) tensor")
    s = positive_float("s", s)
    dx, dz = A.shape
    eye = torch.eye(dz, dtype=A.dtype)
    cov = torch.linalg.inv(eye + A.T @ A / s**2)
    L = torch.linalg.cholesky(cov)
    evidence = torch.distributions.MultivariateNormal(b, A @ A.T + s**2 * torch.eye(dx, dtype=A.dtype))

    def posterior(u: torch.Tensor, x: torch.Tensor):
        m = (x - b) @ A @ cov.T / s**2
        return m + u @ L.T, torch.log(torch.diagonal(L)).sum().expand(x.shape[0])

    def log_likelihood(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Normal(z @ A.T + b, s).log_prob(x).sum(-1)

    return posterior, log_likelihood, evidence.log_prob


def check_tight_bound(label: str, x: torch.Tensor, u: torch.Tensor, posterior: Callable, log_likelihood: Callable,
                      log_evidence: Callable, *, rtol: float = 1e-13, atol: float = 1e-13) -> None:
    """With the exact posterior as the conditional flow, :func:`general_loss`'s ``-ELBO`` equals
    ``-ln q(x)`` for every draw ``u``: compare the two per example (float64 rounding ~1e-15)."""
    from tutorlib import compare

    terms = general_loss(x, u, posterior, log_likelihood)
    compare(label, terms["neg_elbo"], -log_evidence(x), rtol=rtol, atol=atol,
            names=("general_loss", "-ln q(x), closed form"))


def sigma_points(d: int, dtype=torch.float64) -> torch.Tensor:
    """The ``2d`` points ``u = +-sqrt(d) e_i`` (2d, d): their mean is 0 and their second moments are
    those of ``N(0, I)``, so the mean over them of any polynomial of degree <= 2 in ``u`` is its expectation."""
    eye = math.sqrt(positive_int("d", d)) * torch.eye(d, dtype=dtype)
    return torch.cat((eye, -eye))


def check_special_case_1(vae, x: torch.Tensor, u: torch.Tensor, posterior: Callable | None = None,
                         log_likelihood: Callable | None = None, *, rtol: float = 1e-13, atol: float = 1e-13) -> None:
    """Special case 1 (SUMMARY 4.4), two statements, each against the VAE's own loss
    (:meth:`tutorlib.vae.VAE.loss_terms`, which never calls :func:`general_loss`):

    1. at the same ``u``, the general loss's ``-ELBO`` = the VAE loss with the *sampled* KL;
    2. averaged over the :func:`sigma_points` (exact for the quadratic prior and log-det terms),
       Su's ``loss`` = the VAE loss with the *analytic* KL + :func:`vae_constant`, the reconstruction
       term averaged over the same points on both sides.

    ``posterior``, ``log_likelihood``: default :func:`vae_special_case` (the tests pass broken ones).
    Float64; both sides are sums of ~1e3 nats, rounded at ~1e-13 (1e-16 relative: the default
    tolerance leaves a factor of about a thousand)."""
    from tutorlib import compare

    default_post, default_lik = vae_special_case(vae)
    posterior = default_post if posterior is None else posterior
    log_likelihood = default_lik if log_likelihood is None else log_likelihood
    general = general_loss(x, u, posterior, log_likelihood)
    sampled = vae.loss_terms(x, kl="sampled", u=u)
    compare("special case 1, same u: -ELBO = VAE loss (sampled KL)", general["neg_elbo"],
            sampled["rec"] + sampled["kl"], rtol=rtol, atol=atol, names=("fvae.general_loss", "VAE.loss_terms"))
    d, n = u.shape[1], x.shape[0]
    points = sigma_points(d, dtype=x.dtype)
    su_mean = torch.stack([general_loss(x, p.expand(n, d), posterior, log_likelihood)["loss"]
                           for p in points]).mean(0)
    rec_mean = torch.stack([vae.loss_terms(x, kl="analytic", u=p.expand(n, d).contiguous())["rec"]
                            for p in points]).mean(0)
    kl = vae.loss_terms(x, kl="analytic", u=u)["kl"]
    compare("special case 1, mean over the 2d points: Su's loss = VAE loss (analytic KL) + (d/2)(1 + ln 2 pi)",
            su_mean, rec_mean + kl + vae_constant(d), rtol=rtol, atol=atol,
            names=("fvae.general_loss", "VAE + constant"))


def check_special_case_2(flow: nn.Module, sigma: float, x: torch.Tensor, u: torch.Tensor,
                         posterior: Callable | None = None, log_likelihood: Callable | None = None, *,
                         rtol: float = 1e-13, atol: float = 1e-13) -> None:
    """Special case 2 (SUMMARY 4.5), two statements, each against the flow's own ``log_prob``
    (which never calls :func:`general_loss`): the ``-ELBO`` = the flow's NLL of ``x + sigma u``, and
    Su's ``loss`` exceeds it by ``|u|^2/2 + (D/2) ln 2 pi``, written out here by hand.
    ``posterior``, ``log_likelihood``: default :func:`noisy_flow_special_case` (the tests pass broken
    ones). Float64; the decoder inverts the flow, so the sides differ by its rounding (~1e-13 of ~1e3 nats)."""
    from tutorlib import compare

    default_post, default_lik = noisy_flow_special_case(flow, sigma)
    posterior = default_post if posterior is None else posterior
    log_likelihood = default_lik if log_likelihood is None else log_likelihood
    general = general_loss(x, u, posterior, log_likelihood)
    noisy_nll = -flow.log_prob(x + sigma * u)
    compare("special case 2: -ELBO = flow NLL of x + sigma u", general["neg_elbo"], noisy_nll,
            rtol=rtol, atol=atol, names=("fvae.general_loss", "-Glow.log_prob(x + sigma u)"))
    offset = 0.5 * (u * u).sum(1) + 0.5 * u.shape[1] * math.log(2 * math.pi)
    compare("special case 2: Su's loss - noisy NLL = |u|^2/2 + (D/2) ln 2 pi", general["loss"] - noisy_nll,
            offset, rtol=rtol, atol=atol, names=("difference", "|u|^2/2 + (D/2) ln 2 pi"))


def check_fvae_loss(model: "FVAE", x: torch.Tensor, u: torch.Tensor, *, rtol: float = 1e-13,
                    atol: float = 1e-13) -> None:
    """Two statements about :meth:`FVAE.loss_terms` at the draw ``u``:

    1. its ``su`` is SUMMARY 4.6's formula, written out here from the parts ``E``, ``G``, ``F`` and
       the two sigmas (own reshapes, no ``encode``/``decode``/``loss_from_terms``);
    2. its ``loss`` is :func:`general_loss` with the conditional flow ``F(sigma1 u + E(x))`` and the
       decoder ``N(x; G(F^{-1}(z)), sigma2^2)`` (which inverts ``F``): Su's formula + ``D ln 2 pi``.

    Float64 (rounding ~1e-13 of ~1e3 nats; the second also carries the rounding of ``F^{-1}``)."""
    from tutorlib import compare

    x, u = model._check_x(x), _check_data("u", u, model.dim)
    terms = model.loss_terms(x, u)
    n, (c, h, w), D = x.shape[0], model.shape, model.dim
    with torch.no_grad():
        s1, s2 = float(model.log_sigma1.exp()), float(model.log_sigma2.exp())
        v = s1 * u + model.E(x.reshape(n, c, h, w)).reshape(n, D)
        g_v = model.G(v.reshape(n, 4 * c, h // 2, w // 2)).reshape(n, D)
        z_v, logdet_v = model.F(v)
        by_hand = (((x - g_v) ** 2).sum(1) / (2 * s2**2) + 0.5 * (z_v**2).sum(1) - logdet_v
                   + D * math.log(s2) - D * math.log(s1))
    compare("FVAE loss = SUMMARY 4.6 from its parts", terms["su"], by_hand, rtol=rtol, atol=atol,
            names=("FVAE.loss_terms", "formula"))
    general = general_loss(x, u, model.posterior, model.log_likelihood)
    compare("FVAE loss + D ln 2 pi = general loss with F_x(u) = F(sigma1 u + E(x))",
            terms["su"] + D * LOG_2PI, general["loss"], rtol=rtol, atol=atol,
            names=("FVAE + D ln 2 pi", "general_loss (inverts F)"))


def check_sampler(model: "FVAE", temperatures, n: int = 64, seed: int = 0, *, atol: float = 1e-6) -> None:
    """``model.sample(n, T, generator)`` is ``G(F^{-1}(T z))`` with a prior draw ``z ~ N(0, I)`` from the
    same generator: ``T`` scales the *standard deviation* of the prior draw, before ``F^{-1}``. The
    right-hand side is computed here by hand (own draw, own reshapes, ``F.inverse`` and ``G`` called
    directly). The two sides run the same float32 operations, so they agree to rounding (in practice
    exactly); what the check can catch is the convention: ``T`` read as a variance (``sqrt(T)``), or
    applied after ``F^{-1}``. ``atol`` (pixel units) is ten times float32's resolution near 1. Use
    temperatures other than 1: at ``T = 1`` the variance and the standard-deviation conventions coincide."""
    from tutorlib import compare

    n, seed = positive_int("n", n), positive_int("seed", seed, minimum=0)
    temperatures = [positive_float("temperature", t) for t in temperatures]
    if not temperatures:
        raise ValueError("temperatures must not be empty")
    ref = model.log_sigma1
    c, h, w = model.shape
    for T in temperatures:
        with torch.no_grad():
            got = model.sample(n, T, generator=torch.Generator(device=ref.device).manual_seed(seed))
            z = torch.randn(n, model.dim, generator=torch.Generator(device=ref.device).manual_seed(seed),
                            dtype=ref.dtype, device=ref.device)
            v = model.F.inverse(T * z)
            by_hand = model.G(v.reshape(n, 4 * c, h // 2, w // 2)).reshape(n, model.dim)
        compare(f"sample(n, T) = G(F^-1(T z)) at T = {T}", got, by_hand, atol=atol,
                names=("FVAE.sample", "G(F^-1(T z)) by hand"))


def reconstruction(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Each model's reconstruction of ``x`` computed from its sub-networks directly (never through
    :func:`latent`, :func:`generate` or the model's own encode/decode helpers): the VAE's decoder
    network at the encoder network's mean ``mu(x)``; the f-VAE's ``G(E(x))`` (no ``F`` at all: the
    posterior centre ``F(E(x))`` decodes to ``G(F^{-1}(F(E(x)))) = G(E(x))``). A flow reconstructs ``x``
    exactly (it is invertible) and has no other reconstruction: it is refused here."""
    from tutorlib.vae import VAE

    x = _check_data("x", x)
    with torch.no_grad():
        if isinstance(model, FVAE):
            c, h, w = model.shape
            n = x.shape[0]
            return model.G(model.E(x.reshape(n, c, h, w))).reshape(n, model.dim)
        if isinstance(model, VAE) and model.likelihood == "gaussian":
            mu = model.encoder(x)[:, :model.z_dim]
            return model.decoder(mu)
    raise ValueError(f"model must be an FVAE or a Gaussian tutorlib VAE, got {type(model).__name__}")


def check_interpolation_ends(models: dict, x_a: torch.Tensor, x_b: torch.Tensor, paths: dict, *,
                             atol: float = 1e-5) -> None:
    """The ends ``t = 0`` and ``t = 1`` of each interpolation path (``paths[name]``, (len(ts), D), from
    :func:`interpolate`) are the model's reconstructions of ``x_a`` and ``x_b`` by :func:`reconstruction`
    (independent code; for the f-VAE it skips ``F`` and ``F^{-1}``, which the path goes through). The
    flow is skipped: its ends are the digits up to float32 rounding, by invertibility, which
    :func:`check_inverse` checks independently. ``atol`` (pixel units): float32 rounding through ``F`` and
    back is ~1e-6."""
    from tutorlib import compare
    from tutorlib.vae import VAE

    if not (isinstance(x_a, torch.Tensor) and isinstance(x_b, torch.Tensor) and x_a.ndim == 1 and x_a.shape == x_b.shape):
        raise ValueError("x_a and x_b must be tensors of the same shape (D,)")
    checked = 0
    for name, model in models.items():
        if not isinstance(model, (FVAE, VAE)):
            continue
        if name not in paths:
            raise ValueError(f"paths has no path for the model {name!r}")
        path = torch.as_tensor(paths[name])
        ref = reconstruction(model, torch.stack((x_a, x_b)))
        compare(f"{name}: interpolation ends = reconstructions of the two digits",
                path[[0, -1]].to(ref.device, ref.dtype), ref, atol=atol,
                names=("path at t = 0, 1", "reconstruction from the sub-networks"))
        checked += 1
    if not checked:
        raise ValueError("models must contain at least one FVAE or VAE")


def sharpness(images: torch.Tensor, shape=(28, 28)) -> torch.Tensor:
    """Per image: the mean ``|difference|`` between horizontally and vertically neighbouring pixels
    (averaged over the two directions). Blurring lowers it; speckle raises it."""
    if not isinstance(images, torch.Tensor) or images.ndim != 2 or images.shape[1] != shape[0] * shape[1]:
        raise ValueError(f"images must be a tensor of shape (n, {shape[0] * shape[1]})")
    im = images.reshape(-1, *shape)
    return ((im[:, 1:] - im[:, :-1]).abs().mean((1, 2)) + (im[:, :, 1:] - im[:, :, :-1]).abs().mean((1, 2))) / 2


INK, FAINT = 0.5, 0.05  # pixel thresholds of sample_statistics: inked above INK, faint in (FAINT, INK]


def sample_statistics(images: torch.Tensor, shape=(28, 28)) -> dict[str, float]:
    """Three numbers that describe a set of images (n, h*w), each clipped to [0, 1] first:
    ``inked``, the share of pixels above 0.5 (dark strokes); ``faint``, the share in (0.05, 0.5]
    (grey haze and speckle); ``sharpness``, the mean of :func:`sharpness`. Chapter 6 reads the
    temperature slider with them."""
    if not isinstance(images, torch.Tensor) or images.ndim != 2 or images.shape[0] == 0:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a non-empty tensor of shape (n, {shape[0] * shape[1]}), got {got}")
    x = images.detach().float().cpu().clamp(0, 1)
    return {"inked": float((x > INK).float().mean()), "faint": float(((x > FAINT) & (x <= INK)).float().mean()),
            "sharpness": float(sharpness(x, shape).mean())}


def bits_per_dim(model: nn.Module, pixels: torch.Tensor, levels: int = 256, seed: int = 0,
                 batch_size: int = 1000) -> torch.Tensor:
    """Each example's bound in bits per dimension on the discrete ``pixels`` (n, D) (integer levels):
    dequantise once, ``x = (pixel + u) / levels`` with a generator seeded by ``seed`` (batch after
    batch, as :func:`tutorlib.metrics.dequantized_nll` does), take :func:`neg_elbo` (nats) and convert,
    ``(nats / D + ln levels) / ln 2``. Returns a float64 CPU tensor (n,): per example, so that a table
    can split the test digits and give standard errors."""
    from tutorlib.data import dequantize

    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 2 or pixels.shape[0] == 0:
        got = tuple(pixels.shape) if isinstance(pixels, torch.Tensor) else type(pixels).__name__
        raise ValueError(f"pixels must be a tensor of shape (n, D) of integer levels, got {got}")
    levels, batch_size = positive_int("levels", levels, minimum=2), positive_int("batch_size", batch_size)
    gen = torch.Generator(device=pixels.device).manual_seed(positive_int("seed", seed, minimum=0))
    out = []
    with torch.no_grad():
        for start in range(0, pixels.shape[0], batch_size):
            x = dequantize(pixels[start:start + batch_size], levels=levels, generator=gen)
            out.append(neg_elbo(model, x).double().cpu())
    nats = torch.cat(out)
    if not torch.isfinite(nats).all():
        raise ValueError("the model's bound is not finite on some examples")
    return (nats / pixels.shape[1] + math.log(levels)) / math.log(2)

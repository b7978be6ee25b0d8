"""Likelihoods in the units papers report: nats, bits per dimension, dequantisation, and the
importance-sampled NLL of VAEs (chapters 3-5).

Every number is in nats per example unless a name says bits per dimension. For VAEs on binary
images the data's binarisation (dynamic or fixed) changes the numbers and is stated wherever one
is reported.

A flow trained on dequantised images ``x = (pixel + u) / L`` (``u ~ U(0, 1)^D``, ``L = 256``
levels) is a *continuous* density ``q(x)`` on ``[0, 1]^D``. It defines a discrete model of the
integer pixels, ``P(pixel) = integral of q over the cube of side 1/L at pixel / L``, and

    ln P(pixel) = ln E_u[ q((pixel + u)/L) / L^D ] >= E_u[ ln q((pixel + u)/L) ] - D ln L

(the volume of the cube is ``L^-D``; the inequality is Jensen's). So the average continuous
negative log-likelihood ``-E ln q(x)`` *plus* ``D ln L`` is an upper bound on the discrete NLL in
nats per image, and dividing that by ``D ln 2`` gives bits per dimension (per pixel).

NICE reports the continuous log-likelihood ``E ln q(x) = 1980.50`` nats on MNIST: a discrete NLL
bound of ``784 ln 256 - 1980.50 = 2366.9`` nats, or 4.36 bits/dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from tutorlib._validate import finite_float, positive_int


def _nats(name: str, value):
    """A number (checked finite), or a tensor / NumPy array passed through unchanged."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value
    return finite_float(name, value)


def bits_per_dim(nll_nats, dim: int):
    """A negative log-likelihood of a ``dim``-dimensional example in nats, as bits per dimension:
    ``nll / (dim ln 2)``. Works on numbers, tensors and arrays."""
    dim = positive_int("dim", dim)
    return _nats("nll_nats", nll_nats) / (dim * math.log(2.0))


def discrete_nll(continuous_nll, dim: int, levels: int = 256):
    """The discrete NLL bound (nats) from the continuous NLL of dequantised data ``(pixel + u)/levels``:
    ``continuous_nll + dim * ln(levels)``. See the module's docstring for the derivation."""
    dim = positive_int("dim", dim)
    levels = positive_int("levels", levels, minimum=2)
    return _nats("continuous_nll", continuous_nll) + dim * math.log(levels)


def continuous_nll(discrete_nll_nats, dim: int, levels: int = 256):
    """The inverse of :func:`discrete_nll`: ``discrete_nll_nats - dim * ln(levels)``."""
    dim = positive_int("dim", dim)
    levels = positive_int("levels", levels, minimum=2)
    return _nats("discrete_nll_nats", discrete_nll_nats) - dim * math.log(levels)


@dataclass(frozen=True)
class NLL:
    """A model's negative log-likelihood on dequantised data, in the three usual units.

    ``continuous``: mean ``-ln q(x)`` in nats (x in [0, 1]^D; NICE's table reports minus this);
    ``discrete``: ``continuous + D ln levels``, the bound on the pixels' NLL in nats;
    ``bits_per_dim``: ``discrete / (D ln 2)``; ``stderr``: the standard error of ``continuous``
    over examples (and noise draws).
    """

    continuous: float
    discrete: float
    bits_per_dim: float
    stderr: float
    dim: int
    levels: int
    n: int

    @property
    def log_likelihood(self) -> float:
        """``E ln q(x)`` in nats, the number NICE's paper reports (1980.50 on MNIST)."""
        return -self.continuous

    @classmethod
    def from_continuous(cls, continuous: float, dim: int, levels: int = 256, stderr: float = float("nan"),
                        n: int = 0) -> "NLL":
        disc = discrete_nll(continuous, dim, levels)
        return cls(float(continuous), float(disc), float(bits_per_dim(disc, dim)), float(stderr), dim, levels, n)

    def __str__(self) -> str:
        return (f"NLL: {self.continuous:.1f} nats continuous (log-likelihood {self.log_likelihood:.1f}), "
                f"{self.discrete:.1f} nats discrete, {self.bits_per_dim:.3f} bits/dim")


@torch.no_grad()
def dequantized_nll(log_prob: Callable[[torch.Tensor], torch.Tensor], pixels: torch.Tensor, levels: int = 256,
                    batch_size: int = 1000, draws: int = 1, seed: int = 0) -> NLL:
    """Evaluate ``-ln q`` of a model on integer ``pixels`` (n, D), dequantised as
    ``(pixel + u) / levels`` with ``draws`` fresh noise draws per example (seeded: repeatable).

    ``log_prob(x)`` returns ``ln q(x)`` per example. Returns an :class:`NLL`.
    """
    from tutorlib.data import dequantize

    if not callable(log_prob):
        raise ValueError(f"log_prob must be a callable x -> ln q(x), got {type(log_prob).__name__}")
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 2 or pixels.shape[0] == 0:
        got = tuple(pixels.shape) if isinstance(pixels, torch.Tensor) else type(pixels).__name__
        raise ValueError(f"pixels must be a tensor of shape (n, D) of integer levels, got {got}")
    levels = positive_int("levels", levels, minimum=2)
    batch_size = positive_int("batch_size", batch_size)
    draws = positive_int("draws", draws)
    seed = positive_int("seed", seed, minimum=0)
    gen = torch.Generator(device=pixels.device).manual_seed(seed)
    values = []
    for _ in range(draws):
        for start in range(0, pixels.shape[0], batch_size):
            x = dequantize(pixels[start:start + batch_size], levels=levels, generator=gen)
            values.append(-log_prob(x).double())
    v = torch.cat(values)
    if not torch.isfinite(v).all():
        raise ValueError("log_prob returned a non-finite value on the data")
    se = float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else float("nan")
    return NLL.from_continuous(float(v.mean()), pixels.shape[1], levels, stderr=se, n=pixels.shape[0])


def iwae_nll(model, x: torch.Tensor, k: int = 5000, chunk: int = 500, batch_size: int = 100) -> torch.Tensor:
    """The importance-sampled estimate ``-L_k = -ln (1/k) sum_i q(x, z_i) / p(z_i | x)`` of ``-ln q(x)``
    per example (nats), with ``k`` samples from the encoder, computed in chunks of ``chunk``
    samples and ``batch_size`` examples so memory stays bounded. ``model`` needs ``log_weights(x, k)``
    returning (k, batch) log importance weights (as :class:`tutorlib.vae.VAE` does). Since
    ``L_k <= ln q(x)``, this over-estimates the NLL, by less as ``k`` grows."""
    k, chunk, batch_size = positive_int("k", k), positive_int("chunk", chunk), positive_int("batch_size", batch_size)
    if not hasattr(model, "log_weights"):
        raise ValueError("model must provide log_weights(x, k), like tutorlib.vae.VAE")
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            parts = [torch.logsumexp(model.log_weights(xb, min(chunk, k - j)), dim=0) for j in range(0, k, chunk)]
            out.append(-(torch.logsumexp(torch.stack(parts), dim=0) - math.log(k)))
    return torch.cat(out)


def log_weight_matrix(model, x: torch.Tensor, k: int, chunk: int = 500, batch_size: int = 100) -> torch.Tensor:
    """All ``k`` log importance weights ``ln q(x, z_i) / p(z_i | x)``, ``z_i`` from the encoder, of every
    example: shape (k, n), computed in chunks like :func:`iwae_nll` (but kept, for the weights'
    distribution, their effective sample size, or :func:`tutorlib.iwae.bound_curve`). Memory: ``k * n``
    numbers."""
    k, chunk, batch_size = positive_int("k", k), positive_int("chunk", chunk), positive_int("batch_size", batch_size)
    if not hasattr(model, "log_weights"):
        raise ValueError("model must provide log_weights(x, k), like tutorlib.vae.VAE")
    cols = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            cols.append(torch.cat([model.log_weights(xb, min(chunk, k - j)) for j in range(0, k, chunk)]))
    return torch.cat(cols, dim=1)

"""Divergences between distributions, in closed form and estimated by sampling.

Chapter 1 (Su's article 1, section 2): the KL divergence as an expectation under ``p`` -- so
sampling estimates it without bias -- its infinity where ``q`` has no mass, and the
Bhattacharyya distance, which is never an expectation under ``p`` of a per-sample quantity.

Conventions: a diagonal Gaussian is given by its mean ``mu`` and log-variance ``logvar``;
results are summed over the last dimension (one number per row), as in a VAE's KL term.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from tutorlib._validate import finite_float

Fn = Callable[[torch.Tensor], torch.Tensor]


def _as_tensor(name: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{name} must be a tensor or a number, got {type(value).__name__}") from None
    if not t.is_floating_point():
        t = t.double()
    if torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN")
    return t


def _broadcast(**tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    try:
        return torch.broadcast_tensors(*tensors.values())
    except RuntimeError:
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in tensors.items())
        raise ValueError(f"the shapes of {', '.join(tensors)} do not broadcast: {shapes}") from None


def kl_normal(mu_p, logvar_p, mu_q, logvar_q) -> torch.Tensor:
    """Closed-form ``KL(N(mu_p, e^logvar_p) || N(mu_q, e^logvar_q))`` for diagonal Gaussians,
    summed over the last dimension:
    ``1/2 sum [logvar_q - logvar_p + (e^logvar_p + (mu_p - mu_q)^2) / e^logvar_q - 1]``."""
    mu_p, logvar_p, mu_q, logvar_q = _broadcast(
        mu_p=_as_tensor("mu_p", mu_p), logvar_p=_as_tensor("logvar_p", logvar_p),
        mu_q=_as_tensor("mu_q", mu_q), logvar_q=_as_tensor("logvar_q", logvar_q))
    if mu_p.dim() == 0:
        raise ValueError("mu_p must have at least one dimension (the last one is summed over)")
    terms = logvar_q - logvar_p + (logvar_p.exp() + (mu_p - mu_q) ** 2) / logvar_q.exp() - 1.0
    return 0.5 * terms.sum(dim=-1)


def kl_normal_std(mu, logvar) -> torch.Tensor:
    """Closed-form ``KL(N(mu, e^logvar) || N(0, I))`` per row:
    ``1/2 sum (mu^2 + e^logvar - logvar - 1)`` (Su's article 1, section 5)."""
    mu, logvar = _broadcast(mu=_as_tensor("mu", mu), logvar=_as_tensor("logvar", logvar))
    if mu.dim() == 0:
        raise ValueError("mu must have at least one dimension (the last one is summed over)")
    return 0.5 * (mu**2 + logvar.exp() - logvar - 1.0).sum(dim=-1)


def kl_monte_carlo(log_p: Fn, log_q: Fn, samples: torch.Tensor) -> tuple[float, float]:
    """The sampling estimate of ``KL(p || q) = E_{x~p}[ln p(x) - ln q(x)]`` and its standard error.

    ``samples`` are draws from ``p``. Where ``q`` gives a sample zero density the estimate is
    ``+inf``: no number of samples can make the divergence finite.
    """
    if not callable(log_p) or not callable(log_q):
        raise ValueError("log_p and log_q must be callables returning log-densities")
    samples = _as_tensor("samples", samples)
    if samples.dim() == 0 or samples.shape[0] < 2:
        raise ValueError(f"samples must hold at least 2 draws along the first dimension, got shape {tuple(samples.shape)}")
    ratio = (log_p(samples) - log_q(samples)).double()
    if torch.isposinf(ratio).any():
        return math.inf, math.inf
    return float(ratio.mean()), float(ratio.std(unbiased=True) / math.sqrt(ratio.shape[0]))


def _check_interval(a_name: str, a, b_name: str, b) -> tuple[float, float]:
    a, b = finite_float(a_name, a), finite_float(b_name, b)
    if not b > a:
        raise ValueError(f"{b_name} must be greater than {a_name}, got {a_name}={a}, {b_name}={b}")
    return a, b


def kl_uniform(a, b, c, d) -> float:
    """``KL(U[a, b] || U[c, d])``: ``ln((d - c) / (b - a))`` if ``[a, b]`` lies inside ``[c, d]``,
    else ``+inf`` (``p`` puts mass where ``q`` has none)."""
    a, b = _check_interval("a", a, "b", b)
    c, d = _check_interval("c", c, "d", d)
    if c <= a and b <= d:
        return math.log((d - c) / (b - a))
    return math.inf


def bhattacharyya_normal(mu_p, logvar_p, mu_q, logvar_q) -> torch.Tensor:
    """Closed-form Bhattacharyya distance ``-ln int sqrt(p q)`` of diagonal Gaussians, per row:
    ``sum [(mu_p - mu_q)^2 / (4 (s_p + s_q)) + 1/2 ln((s_p + s_q) / (2 sqrt(s_p s_q)))]``."""
    mu_p, logvar_p, mu_q, logvar_q = _broadcast(
        mu_p=_as_tensor("mu_p", mu_p), logvar_p=_as_tensor("logvar_p", logvar_p),
        mu_q=_as_tensor("mu_q", mu_q), logvar_q=_as_tensor("logvar_q", logvar_q))
    if mu_p.dim() == 0:
        raise ValueError("mu_p must have at least one dimension (the last one is summed over)")
    sp, sq = logvar_p.exp(), logvar_q.exp()
    terms = (mu_p - mu_q) ** 2 / (4 * (sp + sq)) + 0.5 * (torch.log(sp + sq) - math.log(2.0) - 0.5 * (logvar_p + logvar_q))
    return terms.sum(dim=-1)


def bhattacharyya_uniform(a, b, c, d) -> float:
    """Bhattacharyya distance of ``U[a, b]`` and ``U[c, d]``: ``-ln(overlap / sqrt((b - a)(d - c)))``,
    finite whenever the intervals overlap at all."""
    a, b = _check_interval("a", a, "b", b)
    c, d = _check_interval("c", c, "d", d)
    overlap = max(0.0, min(b, d) - max(a, c))
    if overlap == 0.0:
        return math.inf
    return -math.log(overlap / math.sqrt((b - a) * (d - c)))


def bhattacharyya_plugin(log_p: Fn, log_q: Fn, samples: torch.Tensor) -> float:
    """The plug-in sampling estimate ``-ln( (1/n) sum_i sqrt(q(x_i) / p(x_i)) )``, ``x_i ~ p``.

    ``int sqrt(p q) = E_p[sqrt(q/p)]`` can be sampled, but the logarithm sits *outside* the
    expectation, so this estimate is biased for every finite ``n``: with ``n = 1`` its mean is
    ``KL(p || q) / 2``, not the Bhattacharyya distance (see chapter 1).
    """
    if not callable(log_p) or not callable(log_q):
        raise ValueError("log_p and log_q must be callables returning log-densities")
    samples = _as_tensor("samples", samples)
    if samples.dim() == 0 or samples.shape[0] < 1:
        raise ValueError(f"samples must hold at least 1 draw along the first dimension, got shape {tuple(samples.shape)}")
    half_log_ratio = 0.5 * (log_q(samples) - log_p(samples)).double()
    return float(-(torch.logsumexp(half_log_ratio, dim=0) - math.log(half_log_ratio.shape[0])))

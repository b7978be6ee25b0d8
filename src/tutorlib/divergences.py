"""Divergences between distributions, in closed form and estimated by sampling.

Chapter 1 (Su's article 1, section 2): the KL divergence as an expectation under ``p`` -- so
sampling estimates it without bias -- its infinity where ``q`` has no mass, and the
Bhattacharyya distance ``-ln int sqrt(p q)``, whose coefficient ``E_p[sqrt(q/p)]`` is an expectation
too, but with the logarithm outside it (so its plug-in estimate is biased).

Conventions: a diagonal Gaussian is given by its mean ``mu`` and log-variance ``logvar``;
results are summed over the last dimension (one number per row), as in a VAE's KL term.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

import numpy as np

from tutorlib._validate import finite_float, one_of, positive_float, positive_int

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


def bhattacharyya_monte_carlo(log_p: Fn, log_q: Fn, samples: torch.Tensor) -> tuple[float, float]:
    """The Bhattacharyya coefficient ``BC = int sqrt(p q) = E_{x~p}[sqrt(q(x) / p(x))]`` estimated by
    sampling, without bias, and its standard error. ``samples`` are draws from ``p``; a sample where
    ``q = 0`` contributes 0. (``D_B = -ln BC``; ``-ln`` of this estimate is the biased
    :func:`bhattacharyya_plugin`.)"""
    if not callable(log_p) or not callable(log_q):
        raise ValueError("log_p and log_q must be callables returning log-densities")
    samples = _as_tensor("samples", samples)
    if samples.dim() == 0 or samples.shape[0] < 2:
        raise ValueError(f"samples must hold at least 2 draws along the first dimension, got shape {tuple(samples.shape)}")
    ratio = torch.exp(0.5 * (log_q(samples) - log_p(samples)).double())
    return float(ratio.mean()), float(ratio.std(unbiased=True) / math.sqrt(ratio.shape[0]))


def _uniform_log_prob(lo: float, hi: float) -> Fn:
    # torch's own Uniform density (not this module's formulas); -inf outside [lo, hi)
    dist = torch.distributions.Uniform(torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64),
                                       validate_args=False)
    return dist.log_prob


def check_kl_uniform(value: float, a, b, c, d, n: int = 1000, seed: int = 0) -> None:
    """Chapter 1: a value of ``KL(U[a, b] || U[c, d])`` against a Monte Carlo estimate with ``n``
    samples of ``U[a, b]`` and torch's ``Uniform`` log-densities. Inside ``[c, d]`` the log-ratio is the
    same number for every sample, so the estimate is exact up to float64 rounding (``atol = 1e-12``);
    a sample outside ``[c, d]`` makes it ``+inf``."""
    from tutorlib.checks import compare

    a, b = _check_interval("a", a, "b", b)
    c, d = _check_interval("c", c, "d", d)
    g = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    x = a + (b - a) * torch.rand(positive_int("n", n, minimum=2), generator=g, dtype=torch.float64)
    est, _ = kl_monte_carlo(_uniform_log_prob(a, b), _uniform_log_prob(c, d), x)
    compare(f"KL(U[{a:g},{b:g}] || U[{c:g},{d:g}])", value, est, atol=1e-12,
            names=("closed form", f"Monte Carlo, n={n}"))


def check_bhattacharyya_uniform(value: float, a, b, c, d, n: int = 100_000, seed: int = 0) -> None:
    """Chapter 1: a value of ``D_B(U[a, b], U[c, d])`` against ``-ln`` of the unbiased sampling
    estimate of ``BC = E_p[sqrt(q/p)]`` (:func:`bhattacharyya_monte_carlo`, ``n`` samples of ``U[a, b]``),
    within four standard errors (``se(D_B) = se(BC) / BC``, the delta method)."""
    from tutorlib.checks import compare

    a, b = _check_interval("a", a, "b", b)
    c, d = _check_interval("c", c, "d", d)
    g = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    x = a + (b - a) * torch.rand(positive_int("n", n, minimum=2), generator=g, dtype=torch.float64)
    bc, se = bhattacharyya_monte_carlo(_uniform_log_prob(a, b), _uniform_log_prob(c, d), x)
    if bc == 0.0:
        compare(f"D_B(U[{a:g},{b:g}], U[{c:g},{d:g}])", value, math.inf, atol=1e-12,
                names=("closed form", "no sample where q > 0"))
        return
    compare(f"D_B(U[{a:g},{b:g}], U[{c:g},{d:g}])", value, -math.log(bc), atol=4 * se / bc,
            names=("closed form", f"-ln(sampled BC), n={n}"))


def check_bhattacharyya_normal(value: float, mu_p: float, sigma_p: float, mu_q: float, sigma_q: float,
                               points: int = 200_001) -> None:
    """Chapter 1: a value of ``D_B(N(mu_p, sigma_p^2), N(mu_q, sigma_q^2))`` against ``-ln`` of a grid sum
    of ``sqrt(p q)`` over 20 standard deviations each side (NumPy, independent of the closed form).
    The grid sum of a smooth, rapidly decaying integrand is accurate to float64 rounding: ``rtol = 1e-10``."""
    import numpy as np

    from tutorlib.checks import compare

    mu_p, mu_q = finite_float("mu_p", mu_p), finite_float("mu_q", mu_q)
    sigma_p, sigma_q = positive_float("sigma_p", sigma_p), positive_float("sigma_q", sigma_q)
    width = 20 * max(sigma_p, sigma_q)
    x, dx = np.linspace(min(mu_p, mu_q) - width, max(mu_p, mu_q) + width, positive_int("points", points, minimum=3),
                        retstep=True)

    def pdf(m, s):
        return np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))

    bc = float(np.sum(np.sqrt(pdf(mu_p, sigma_p) * pdf(mu_q, sigma_q))) * dx)
    compare(f"D_B(N({mu_p:g},{sigma_p:g}^2), N({mu_q:g},{sigma_q:g}^2))", value, -math.log(bc), rtol=1e-10,
            names=("closed form", "-ln grid sum of sqrt(pq)"))


def check_bhattacharyya_from_q(value: float, mu_p: float, sigma_p: float, mu_q: float, sigma_q: float,
                               n: int = 200_000, seed: int = 0) -> None:
    """Chapter 1, symmetry: a value of ``D_B(p, q)`` for ``p = N(mu_p, sigma_p^2)``, ``q = N(mu_q, sigma_q^2)``
    (computed with ``p`` first) against ``-ln`` of the coefficient sampled from the *other* side,
    ``E_{x~q}[sqrt(p(x) / q(x))]`` with ``n`` draws from ``q`` and torch's ``Normal`` densities, within
    four standard errors (``se(D_B) = se(BC) / BC``). A divergence that is not symmetric (KL) fails it."""
    from tutorlib.checks import compare

    mu_p, mu_q = finite_float("mu_p", mu_p), finite_float("mu_q", mu_q)
    sigma_p, sigma_q = positive_float("sigma_p", sigma_p), positive_float("sigma_q", sigma_q)
    f64 = dict(dtype=torch.float64)
    p = torch.distributions.Normal(torch.tensor(mu_p, **f64), torch.tensor(sigma_p, **f64))
    q = torch.distributions.Normal(torch.tensor(mu_q, **f64), torch.tensor(sigma_q, **f64))
    g = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    x = q.loc + q.scale * torch.randn(positive_int("n", n, minimum=2), generator=g, **f64)
    bc, se = bhattacharyya_monte_carlo(q.log_prob, p.log_prob, x)  # E_q[sqrt(p/q)]
    compare(f"D_B(p, q) from samples of q, p = N({mu_p:g},{sigma_p:g}^2), q = N({mu_q:g},{sigma_q:g}^2)", value,
            -math.log(bc), atol=4 * se / bc, names=("closed form, p first", f"-ln E_q[sqrt(p/q)], n={n:,}"))


def plugin_bias_law(d_b: float, n: int) -> float:
    """The delta-method bias of the plug-in estimate ``-ln((1/n) sum sqrt(q/p))`` of ``D_B``:
    ``Var_p[sqrt(q/p)] / (2 n BC^2) = (e^{2 D_B} - 1) / (2 n)`` (``BC = e^{-D_B}``, ``E_p[q/p] = 1``).
    Asymptotic in ``n``: for small ``n`` the true bias is smaller (at ``n = 1`` the mean is ``KL/2``)."""
    d_b = finite_float("d_b", d_b)
    if d_b < 0:
        raise ValueError(f"d_b must be >= 0, got {d_b}")
    return (math.exp(2 * d_b) - 1) / (2 * positive_int("n", n))


def check_plugin_bias(d_mean: float, d_se: float, d_b: float, n: int) -> None:
    """Chapter 1: the mean of the plug-in estimate over many batches of ``n`` samples (``d_mean``, with
    its standard error ``d_se``) against ``D_B`` plus the bias law :func:`plugin_bias_law`, within four
    standard errors. Refuses (``ValueError``) a configuration whose tolerance could not tell the bias
    from zero (predicted bias below 8 standard errors): then the check would pass an unbiased estimator."""
    from tutorlib.checks import compare

    d_mean, d_b = finite_float("d_mean", d_mean), finite_float("d_b", d_b)
    d_se = positive_float("d_se", d_se)
    bias = plugin_bias_law(d_b, n)
    if bias < 8 * d_se:
        raise ValueError(f"d_se = {d_se:.2g} is too large to resolve the bias {bias:.2g} at n = {n} "
                         f"(need d_se <= bias / 8): use more batches")
    compare(f"plug-in estimate of D_B, n = {n}: biased by (e^(2 D_B) - 1)/(2n) = {bias:.2e}", d_mean, d_b + bias,
            atol=4 * d_se, names=("mean over the batches", "D_B + bias"))


def check_triangle_violated(d_ab: float, d_bc: float, d_ac: float, label: str = "D_B") -> None:
    """Chapter 1: raise :class:`tutorlib.IdentityError` unless ``d_ac > d_ab + d_bc`` -- the triangle
    inequality fails, so the divergence is not a metric. Prints the three numbers."""
    from tutorlib.checks import IdentityError

    d_ab, d_bc, d_ac = (finite_float(n, v) for n, v in (("d_ab", d_ab), ("d_bc", d_bc), ("d_ac", d_ac)))
    ok = d_ac > d_ab + d_bc
    print(f"{'✓' if ok else '✗'} {label} breaks the triangle inequality\n"
          f"    {label}(a, c) = {d_ac:.6g} {'>' if ok else '<='} {label}(a, b) + {label}(b, c) = {d_ab + d_bc:.6g}")
    if not ok:
        raise IdentityError(f"{label}(a, c) = {d_ac:.6g} <= {label}(a, b) + {label}(b, c) = {d_ab + d_bc:.6g}: "
                            f"no violation of the triangle inequality")


def gaussian_mixture_pairs(n_pairs: int, grid, near: float = 0.5, seed: int = 0):
    """Chapter 1: ``n_pairs`` random pairs ``(p, q)`` of two-component 1-D Gaussian mixtures (weights
    in [0.1, 0.9], means in [-3, 3], standard deviations in [0.5, 1.5]) as probabilities on the points
    of ``grid`` (each row normalised to sum 1; on a grid of ``[-10, 10]`` no density underflows). A fraction ``near`` of
    the pairs has ``q`` a small perturbation of ``p`` (so their KL is close to 0). Returns ``(p, q)``,
    two float64 arrays of shape ``(n_pairs, len(grid))``."""
    import numpy as np

    n_pairs = positive_int("n_pairs", n_pairs)
    near = finite_float("near", near)
    if not 0 <= near <= 1:
        raise ValueError(f"near must lie in [0, 1], got {near}")
    x = np.asarray(grid, dtype=np.float64)
    if x.ndim != 1 or x.size < 3:
        raise ValueError(f"grid must be a 1-D array of at least 3 points, got shape {x.shape}")
    rng = np.random.default_rng(positive_int("seed", seed, minimum=0))

    def params(n):
        return (rng.uniform(0.1, 0.9, (n, 1)), rng.uniform(-3, 3, (n, 2)), rng.uniform(0.5, 1.5, (n, 2)))

    def density(w, m, s):
        comp = np.exp(-0.5 * ((x[None, None, :] - m[:, :, None]) / s[:, :, None]) ** 2) / s[:, :, None]
        dens = w * comp[:, 0] + (1 - w) * comp[:, 1]
        return dens / dens.sum(axis=1, keepdims=True)

    wp, mp, sp = params(n_pairs)
    wq, mq, sq = params(n_pairs)
    k = int(round(near * n_pairs))  # the first k pairs: q is p with its parameters nudged
    eps = 10.0 ** rng.uniform(-3, -1, (k, 1))
    wq[:k] = np.clip(wp[:k] + eps * rng.standard_normal((k, 1)), 0.05, 0.95)
    mq[:k] = mp[:k] + eps * rng.standard_normal((k, 2))
    sq[:k] = sp[:k] * np.exp(eps * rng.standard_normal((k, 2)))
    return density(wp, mp, sp), density(wq, mq, sq)


def kl_discrete_rows(p, q):
    """``sum_i p_i ln(p_i / q_i)`` for each row of two arrays of probabilities (``0 ln 0 = 0``;
    ``+inf`` where ``q_i = 0 < p_i``). No normalisation is done: rows are taken as given."""
    import numpy as np

    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


def check_kl_nonnegative(kls, atol: float = 1e-12, label: str = "KL >= 0") -> None:
    """Chapter 1: raise :class:`tutorlib.IdentityError` if any of ``kls`` is below ``-atol`` (float64
    rounding of a sum of a few thousand terms is ~1e-15; ``atol = 1e-12``). Prints the smallest."""
    import numpy as np

    from tutorlib.checks import IdentityError

    kls = np.asarray(kls, dtype=np.float64).reshape(-1)
    if kls.size == 0 or np.isnan(kls).any():
        raise ValueError("kls must be a non-empty array of numbers without NaN")
    atol = positive_float("atol", atol)
    i = int(np.argmin(kls))
    ok = kls[i] >= -atol
    print(f"{'✓' if ok else '✗'} {label} on {kls.size:,} pairs\n"
          f"    smallest: {kls[i]:.3g} (pair {i}) {'>=' if ok else '<'} -atol = {-atol:.1e}")
    if not ok:
        raise IdentityError(f"{label}: pair {i} has KL = {kls[i]:.6g} < -{atol:.1e}")


def bhattacharyya_bias(p, q, ns, reps: int, generator: torch.Generator | None = None) -> dict:
    """Chapter 1: for each ``n`` in ``ns``, ``reps`` independent batches of ``n`` draws from ``p``
    (``torch.distributions`` objects); per batch the plug-in estimate
    ``-ln((1/n) sum sqrt(q/p))`` of ``D_B`` and the sampling estimate of ``KL(p || q)``. Returns
    ``{"ns", "d_mean", "d_se", "kl_mean", "kl_se"}`` (means over the batches and their standard errors)."""
    import numpy as np

    reps = positive_int("reps", reps, minimum=2)
    ns = [positive_int("ns[i]", int(n)) for n in ns]
    out = {"ns": np.array(ns), "d_mean": [], "d_se": [], "kl_mean": [], "kl_se": []}
    for n in ns:
        x = p.sample((reps, n)) if generator is None else _sample_with(p, (reps, n), generator)
        log_ratio = (q.log_prob(x) - p.log_prob(x)).double()
        d_hat = -(torch.logsumexp(0.5 * log_ratio, dim=1) - math.log(n))
        kl_hat = (-log_ratio).mean(dim=1)
        for key, v in (("d", d_hat), ("kl", kl_hat)):
            out[f"{key}_mean"].append(float(v.mean()))
            out[f"{key}_se"].append(float(v.std() / math.sqrt(reps)))
    return {k: np.asarray(v) for k, v in out.items()}


def _sample_with(dist, shape, generator):
    # a Normal drawn with an explicit generator (torch.distributions' sample() takes none)
    if not isinstance(dist, torch.distributions.Normal):
        raise ValueError("with a generator, p must be a torch.distributions.Normal")
    eps = torch.randn(shape + tuple(dist.loc.shape), generator=generator, dtype=torch.float64)
    return dist.loc + dist.scale * eps


# --- divergences defined in the dual space (chapters 7 and 8) -------------------------------
#
# For discrete p and q on points x_1..x_n, the critic T is a table of values (T(x_i), or for the
# binary QP form T(x_i, x_j)) and the max over T is solved numerically by optimisation over that
# table. The closed forms (JS, Wasserstein, the QP optimum) are separate functions, so tests and
# chapters can compare the two.

DUAL_KINDS = ("sgan", "wgan", "qp", "kl")
_T_BOUND = 60.0  # |T| <= 60 in the table solvers: e^-60 is far below float64 resolution of ln 2


def _as_prob(name: str, p, n: int | None = None):
    arr = np.asarray(p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else p, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of probabilities, got shape {arr.shape}")
    if n is not None and arr.size != n:
        raise ValueError(f"{name} must have {n} entries (one per point), got {arr.size}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} must hold non-negative finite probabilities, got {arr}")
    if abs(arr.sum() - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1, got sum {arr.sum():.8g}")
    return arr


def _as_points(points):
    arr = np.asarray(points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or not np.isfinite(arr).all():
        raise ValueError(f"points must be a finite (n,) or (n, d) array, got shape {arr.shape}")
    return arr


def _distance_matrix(points, distance):
    """Pairwise distances d(x_i, x_j); ``distance`` is None/'l2' (Euclidean), 'l1' or a callable."""
    if distance is None or distance == "l2":
        diff = points[:, None, :] - points[None, :, :]
        return np.sqrt((diff**2).sum(-1))
    if distance == "l1":
        return np.abs(points[:, None, :] - points[None, :, :]).sum(-1)
    if callable(distance):
        n = len(points)
        d = np.array([[float(distance(points[i], points[j])) for j in range(n)] for i in range(n)])
        if not np.isfinite(d).all() or (d < 0).any() or not np.allclose(d, d.T) or np.any(np.diag(d) != 0):
            raise ValueError("distance must be symmetric, non-negative, finite and zero on the diagonal")
        return d
    raise ValueError(f"distance must be None, 'l2', 'l1' or a callable, got {distance!r}")


def _check_inputs(p, q, points, lam, kind, distance):
    one_of("kind", kind, DUAL_KINDS)
    pts = _as_points(points)
    p = _as_prob("p", p, len(pts))
    q = _as_prob("q", q, len(pts))
    if kind == "qp":
        if lam is None:
            raise ValueError("lam must be given (a number > 0) for kind='qp'")
        lam = positive_float("lam", lam)
    elif lam is not None:
        raise ValueError(f"lam is only used by kind='qp', got lam={lam!r} for kind={kind!r}")
    d = _distance_matrix(pts, distance)
    off = ~np.eye(len(pts), dtype=bool)
    if (d[off] == 0).any():
        raise ValueError("points must be distinct: two of them are at distance 0")
    return p, q, pts, lam, d


def _maximise(objective, x0, bounds=None):
    """Maximise a smooth concave ``objective(t) -> (value, gradient)`` with L-BFGS-B."""
    from scipy.optimize import minimize

    res = minimize(lambda t: tuple(-v for v in objective(t)), x0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 20_000, "ftol": 1e-15, "gtol": 1e-12})
    return -float(res.fun), res.x


def _sgan_dual(p, q):
    from scipy.special import expit, log_expit

    def objective(t):
        value = 0.5 * (p @ log_expit(t)) + 0.5 * (q @ log_expit(-t)) + math.log(2.0)
        grad = 0.5 * p * expit(-t) - 0.5 * q * expit(t)
        return value, grad

    n = len(p)
    return _maximise(objective, np.zeros(n), bounds=[(-_T_BOUND, _T_BOUND)] * n)


def _kl_dual(p, q):
    """f-GAN's dual of KL(p || q): sup_T E_p[T] - E_q[exp(T - 1)]; +inf when p has mass where q has none."""
    def objective(t):
        e = np.exp(t - 1.0)
        return p @ t - q @ e, p - q * e

    n = len(p)
    values = [_maximise(objective, np.zeros(n), bounds=[(-b, b)] * n) for b in (_T_BOUND / 2, _T_BOUND)]
    if values[1][0] - values[0][0] > 1e-6:  # still growing with the bound on T: the sup is infinite
        return math.inf, values[1][1]
    return values[1]


def _wgan_dual(p, q, d):
    """max_T sum (p - q) T  s.t. |T_i - T_j| <= d_ij: a linear programme (HiGHS)."""
    from scipy.optimize import linprog

    n = len(p)
    rows, rhs = [], []
    for i in range(n):
        for j in range(n):
            if i != j:
                row = np.zeros(n)
                row[i], row[j] = 1.0, -1.0
                rows.append(row)
                rhs.append(d[i, j])
    bounds = [(0.0, 0.0)] + [(None, None)] * (n - 1)  # T is defined up to a constant: pin T_1 = 0
    res = linprog(-(p - q), A_ub=np.array(rows) if rows else None, b_ub=np.array(rhs) if rhs else None,
                  bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"the WGAN linear programme failed: {res.message}")
    return -float(res.fun), res.x


def _qp_dual(p, q, d, lam):
    """max over the table T(x_i, x_j) of sum_ij p_i q_j [D_ij - D_ij^2 / (2 lam d_ij)], D_ij = T_ij - T_ji."""
    n = len(p)
    w = np.outer(p, q)
    with np.errstate(divide="ignore"):
        inv = np.where(d > 0, 1.0 / (2.0 * lam * np.where(d > 0, d, 1.0)), 0.0)

    # Precondition: in the scaled variables u = t / scale every pair's curvature is about 1, so
    # L-BFGS converges even for pairs that carry very little probability.
    curvature = 2.0 * (w + w.T) * inv  # -d^2 value / d delta_ij^2 for the unordered pair
    scale = np.where(curvature > 0, 1.0 / np.sqrt(np.where(curvature > 0, curvature, 1.0)), 1.0)

    def objective(flat):
        t = flat.reshape(n, n) * scale
        delta = t - t.T
        value = float((w * (delta - delta**2 * inv)).sum())
        g_delta = w * (1.0 - 2.0 * delta * inv)  # d value / d delta_ij for the ordered pair (i, j)
        grad = (g_delta - g_delta.T) * scale  # delta_ij = t_ij - t_ji, then the chain rule for u
        return value, grad.ravel()

    value, flat = _maximise(objective, np.zeros(n * n))
    return value, flat.reshape(n, n) * scale


def dual_divergence(kind: str, p, q, points, lam: float | None = None, distance=None,
                    return_critic: bool = False):
    """A divergence of discrete ``p`` and ``q`` on ``points``, from its dual (max over T) definition.

    The max is solved numerically over the critic's values on the support -- never taken from a
    closed form:

    - ``"sgan"``: ``max_T 1/2 E_p[ln sigmoid T] + 1/2 E_q[ln(1 - sigmoid T)] + ln 2`` (Jensen-Shannon);
    - ``"wgan"``: ``max E_p[T] - E_q[T]`` over ``|T(x) - T(y)| <= d(x, y)`` (Wasserstein-1; a linear programme);
    - ``"qp"``: ``max E_{x_r~p, x_f~q}[D - D^2 / (2 lam d(x_r, x_f))]``, ``D = T(x_r, x_f) - T(x_f, x_r)``
      over the binary table T (GAN-QP);
    - ``"kl"``: f-GAN's ``max_T E_p[T] - E_q[e^{T-1}]`` (KL(p || q); ``inf`` when unbounded).

    ``p``, ``q``: probabilities (1-D, non-negative, summing to 1), one per point; ``points``: (n,) or
    (n, d) distinct points; ``lam`` (> 0) for ``"qp"`` only; ``distance``: ``None``/``"l2"``,
    ``"l1"`` or a callable. With ``return_critic=True`` returns ``(value, T)``.
    """
    p, q, pts, lam, d = _check_inputs(p, q, points, lam, kind, distance)
    if kind == "sgan":
        value, t = _sgan_dual(p, q)
    elif kind == "kl":
        value, t = _kl_dual(p, q)
    elif kind == "wgan":
        value, t = _wgan_dual(p, q, d)
    else:
        value, t = _qp_dual(p, q, d, lam)
    return (value, t) if return_critic else value


def delta_divergence(kind: str, alpha, beta, lam: float | None = None, distance=None) -> float:
    """The dual divergence of ``p = delta(x - alpha)`` and ``q = delta(x - beta)``, solved numerically.

    Expected values: ``ln 2`` for ``"sgan"`` whenever ``alpha != beta`` (constant: zero gradient),
    ``d(alpha, beta)`` for ``"wgan"``, ``lam * d(alpha, beta) / 2`` for ``"qp"``, ``inf`` for ``"kl"``;
    0 for every kind when ``alpha == beta``.
    """
    one_of("kind", kind, DUAL_KINDS)
    a = np.atleast_1d(np.asarray(alpha, dtype=np.float64))
    b = np.atleast_1d(np.asarray(beta, dtype=np.float64))
    if a.shape != b.shape or a.ndim != 1 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"alpha and beta must be finite points of the same shape, got {a.shape} and {b.shape}")
    if np.array_equal(a, b):
        _check_inputs([1.0], [1.0], a[None], lam, kind, distance)
        return 0.0
    return dual_divergence(kind, [1.0, 0.0], [0.0, 1.0], np.stack([a, b]), lam=lam, distance=distance)


# --- the closed forms the dual values are compared with -------------------------------------

def js_divergence(p, q) -> float:
    """Jensen-Shannon divergence ``1/2 KL(p || m) + 1/2 KL(q || m)``, ``m = (p + q) / 2`` (nats)."""
    p, q = _as_prob("p", p), _as_prob("q", q, len(_as_prob("p", p)))
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kq = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(0.5 * kp + 0.5 * kq)


def kl_discrete(p, q) -> float:
    """``KL(p || q) = sum p ln(p / q)`` for discrete distributions; ``inf`` where q = 0 < p."""
    p = _as_prob("p", p)
    q = _as_prob("q", q, len(p))
    if ((q == 0) & (p > 0)).any():
        return math.inf
    mask = p > 0
    return float((p[mask] * np.log(p[mask] / q[mask])).sum())


def wasserstein_primal(p, q, points, distance=None) -> float:
    """Wasserstein-1 distance from the primal optimal-transport linear programme
    ``min sum pi_ij d_ij`` over couplings ``pi`` with marginals ``p`` and ``q``."""
    from scipy.optimize import linprog

    pts = _as_points(points)
    p, q = _as_prob("p", p, len(pts)), _as_prob("q", q, len(pts))
    d = _distance_matrix(pts, distance)
    n = len(pts)
    a_eq = np.zeros((2 * n, n * n))
    for i in range(n):
        a_eq[i, i * n:(i + 1) * n] = 1.0  # row sums = p
        a_eq[n + i, i::n] = 1.0  # column sums = q
    res = linprog(d.ravel(), A_eq=a_eq, b_eq=np.concatenate([p, q]), bounds=(0, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"the transport linear programme failed: {res.message}")
    return float(res.fun)


def _qp_pairs(p, q, points, lam, distance):
    """``lam``, the distances ``d_ij``, and ``p_i q_j - p_j q_i`` and ``p_i q_j + p_j q_i`` for every pair."""
    lam = positive_float("lam", lam)
    pts = _as_points(points)
    p, q = _as_prob("p", p, len(pts)), _as_prob("q", q, len(pts))
    return lam, _distance_matrix(pts, distance), np.outer(p, q) - np.outer(q, p), np.outer(p, q) + np.outer(q, p)


def qp_optimal_critic(p, q, points, lam: float, distance=None):
    """GAN-QP's pointwise optimum ``D_ij = T(x_i, x_j) - T(x_j, x_i)``:
    ``lam d_ij (p_i q_j - p_j q_i) / (p_i q_j + p_j q_i)`` (0 where both products vanish)."""
    lam, d, num, den = _qp_pairs(p, q, points, lam, distance)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, lam * d * num / np.where(den > 0, den, 1.0), 0.0)


def qp_divergence(p, q, points, lam: float, distance=None) -> float:
    """The closed-form value of the QP-divergence: ``(lam / 4) * sum_ij d_ij (p_i q_j - p_j q_i)^2 /
    (p_i q_j + p_j q_i)`` -- ``lam`` times a lambda-free divergence (derived in chapter 8)."""
    lam, d, num, den = _qp_pairs(p, q, points, lam, distance)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(den > 0, d * num**2 / np.where(den > 0, den, 1.0), 0.0)
    return float(lam / 4.0 * terms.sum())

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
#
# What each solver sees: the SGAN and KL objectives contain the probabilities p_i, q_i and nothing
# else -- an unrestricted critic table has no notion of where the points are -- so their solvers
# never use ``points`` (beyond checking them). The WGAN and QP objectives contain the distances
# d(x_i, x_j): only they can tell near from far.

DUAL_KINDS = ("sgan", "wgan", "qp", "qp-unary", "kl")
QP_KINDS = ("qp", "qp-unary")
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
    if kind in QP_KINDS:
        if lam is None:
            raise ValueError(f"lam must be given (a number > 0) for kind={kind!r}")
        lam = positive_float("lam", lam)
    elif lam is not None:
        raise ValueError(f"lam is only used by kind='qp' and 'qp-unary', got lam={lam!r} for kind={kind!r}")
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


def _qp_unary_dual(p, q, d, lam):
    """The same objective with a unary critic, D_ij = t_i - t_j: max over the vector t (L-BFGS)."""
    n = len(p)
    w = np.outer(p, q)
    with np.errstate(divide="ignore"):
        inv = np.where(d > 0, 1.0 / (2.0 * lam * np.where(d > 0, d, 1.0)), 0.0)

    def objective(t):
        delta = t[:, None] - t[None, :]
        value = float((w * (delta - delta**2 * inv)).sum())
        g = w * (1.0 - 2.0 * delta * inv)  # d value / d delta_ij
        return value, g.sum(1) - g.sum(0)  # delta_ij = t_i - t_j

    value, t = _maximise(objective, np.zeros(n))
    return value, t - t[0]  # t is defined up to a constant


def dual_divergence(kind: str, p, q, points, lam: float | None = None, distance=None,
                    return_critic: bool = False):
    """A divergence of discrete ``p`` and ``q`` on ``points``, from its dual (max over T) definition.

    The max is solved numerically over the critic's values on the support -- never taken from a
    closed form:

    - ``"sgan"``: ``max_T 1/2 E_p[ln sigmoid T] + 1/2 E_q[ln(1 - sigmoid T)] + ln 2`` (Jensen-Shannon);
    - ``"wgan"``: ``max E_p[T] - E_q[T]`` over ``|T(x) - T(y)| <= d(x, y)`` (Wasserstein-1; a linear programme);
    - ``"qp"``: ``max E_{x_r~p, x_f~q}[D - D^2 / (2 lam d(x_r, x_f))]``, ``D = T(x_r, x_f) - T(x_f, x_r)``
      over the binary table T (GAN-QP);
    - ``"qp-unary"``: the same objective with ``D = T(x_r) - T(x_f)``, the unary critic GAN-QP
      uses in practice -- a restriction, so its value is at most that of ``"qp"``;
    - ``"kl"``: f-GAN's ``max_T E_p[T] - E_q[e^{T-1}]`` (KL(p || q); ``inf`` when unbounded).

    ``p``, ``q``: probabilities (1-D, non-negative, summing to 1), one per point; ``points``: (n,) or
    (n, d) distinct points; ``lam`` (> 0) for ``"qp"`` and ``"qp-unary"`` only; ``distance``:
    ``None``/``"l2"``, ``"l1"`` or a callable. With ``return_critic=True`` returns ``(value, T)``:
    T is a vector (one value per point), or the (n, n) table T(x_i, x_j) for ``"qp"``.

    ``"sgan"`` and ``"kl"`` never use ``points`` or ``distance``: their objectives contain only the
    probabilities, so they cannot depend on where the points are.
    """
    p, q, pts, lam, d = _check_inputs(p, q, points, lam, kind, distance)
    if kind == "sgan":
        value, t = _sgan_dual(p, q)
    elif kind == "kl":
        value, t = _kl_dual(p, q)
    elif kind == "wgan":
        value, t = _wgan_dual(p, q, d)
    elif kind == "qp-unary":
        value, t = _qp_unary_dual(p, q, d, lam)
    else:
        value, t = _qp_dual(p, q, d, lam)
    return (value, t) if return_critic else value


def delta_divergence(kind: str, alpha, beta, lam: float | None = None, distance=None) -> float:
    """The dual divergence of ``p = delta(x - alpha)`` and ``q = delta(x - beta)``, solved numerically.

    Expected values: ``ln 2`` for ``"sgan"`` whenever ``alpha != beta`` (constant: zero gradient),
    ``d(alpha, beta)`` for ``"wgan"``, ``lam * d(alpha, beta) / 2`` for ``"qp"`` and ``"qp-unary"``
    (on two points the unary critic loses nothing), ``inf`` for ``"kl"``; 0 for every kind when
    ``alpha == beta``. For ``"sgan"`` and ``"kl"`` the solver is handed the probabilities (1, 0) and
    (0, 1) only -- not the points -- so the result cannot depend on the distance: an illustration
    of the objective's structure, not a test of it.
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


def qp_unary_optimum(p, q, points, lam: float, distance=None):
    """The QP objective's maximum over *unary* critics ``D_ij = t_i - t_j``, by linear algebra.

    The objective is ``(p - q) . t - t' L t`` with ``L`` the graph Laplacian of the symmetric
    weights ``S_ij = (p_i q_j + p_j q_i) / (2 lam d_ij)``, so the maximiser solves ``2 L t = p - q``
    and the value is ``(p - q) . t / 2``. Returns ``(value, t)`` with ``t[0] = 0`` (``t`` is
    defined up to a constant). Independent of the L-BFGS solver of ``dual_divergence("qp-unary")``.
    """
    lam = positive_float("lam", lam)
    pts = _as_points(points)
    p, q = _as_prob("p", p, len(pts)), _as_prob("q", q, len(pts))
    d = _distance_matrix(pts, distance)
    off = ~np.eye(len(pts), dtype=bool)
    if (d[off] == 0).any():
        raise ValueError("points must be distinct: two of them are at distance 0")
    w = np.outer(p, q)
    s = np.zeros_like(d)
    s[off] = (w + w.T)[off] / (2.0 * lam * d[off])
    laplacian = np.diag(s.sum(1)) - s
    t = np.linalg.lstsq(2.0 * laplacian, p - q, rcond=None)[0]
    t = t - t[0]
    return float((p - q) @ t / 2.0), t


# --- two Gaussians of width sigma (chapter 7's distance slider, chapter 8's lambda slider) --------
#
# p = N(0, sigma^2) and q = N(s, sigma^2) on the real line: the deltas of the two-deltas test,
# smoothed, so that the supports overlap and the divergences are finite and smooth in s.

def _pair_args(separation, sigma):
    return finite_float("separation", separation), positive_float("sigma", sigma)


def _normal_logpdf(x, mean, sigma):
    return -0.5 * ((x - mean) / sigma) ** 2 - math.log(sigma * math.sqrt(2.0 * math.pi))


def gaussian_pair_grid(separation, sigma, per_sigma: int = 40, tails: float = 12.0):
    """An even grid covering both Gaussians to ``tails`` standard deviations, ``per_sigma`` points
    per ``sigma``: ``(x, dx)``. Sums over it integrate these smooth, fast-decaying densities to
    near machine precision."""
    s, sigma = _pair_args(separation, sigma)
    per_sigma = int(per_sigma)
    lo, hi = min(0.0, s) - tails * sigma, max(0.0, s) + tails * sigma
    n = int(math.ceil((hi - lo) / sigma * per_sigma)) + 1
    x = np.linspace(lo, hi, n)
    return x, x[1] - x[0]


def gaussian_pair_js(separation, sigma) -> float:
    """``JS(N(0, sigma^2), N(s, sigma^2))`` in nats, by quadrature of
    ``1/2 p ln(2p / (p + q)) + 1/2 q ln(2q / (p + q))``; tends to ``ln 2`` as ``|s| / sigma`` grows."""
    s, sigma = _pair_args(separation, sigma)
    x, dx = gaussian_pair_grid(s, sigma)
    lp, lq = _normal_logpdf(x, 0.0, sigma), _normal_logpdf(x, s, sigma)
    lm = np.logaddexp(lp, lq) - math.log(2.0)
    integrand = 0.5 * np.exp(lp) * (lp - lm) + 0.5 * np.exp(lq) * (lq - lm)
    return float(integrand.sum() * dx)


def js_sample_gradient(x, separation, sigma):
    """The gradient that JS gives a fake sample at ``x``: ``d/dx`` of its minimax-SGAN loss
    ``1/2 ln(1 - D*(x))`` at the optimal critic ``D* = p / (p + q)``, for ``p = N(0, sigma^2)``,
    ``q = N(s, sigma^2)``. In closed form ``D*(x) s / (2 sigma^2)``: it vanishes like
    ``exp(-s^2 / (2 sigma^2))`` at the fake samples as the Gaussians separate."""
    s, sigma = _pair_args(separation, sigma)
    x = np.asarray(x, dtype=np.float64)
    log_ratio = _normal_logpdf(x, 0.0, sigma) - _normal_logpdf(x, s, sigma)  # ln p/q
    from scipy.special import expit

    return expit(log_ratio) * s / (2.0 * sigma**2)


def mean_sample_gradient(gradient: Callable, separation, sigma) -> float:
    """``E_{x ~ q}[gradient(x, s, sigma)]`` by quadrature, ``q = N(s, sigma^2)``: the mean gradient
    on the fake samples. By the envelope theorem it is ``d JS / d s`` for :func:`js_sample_gradient`."""
    s, sigma = _pair_args(separation, sigma)
    x, dx = gaussian_pair_grid(s, sigma)
    return float((np.exp(_normal_logpdf(x, s, sigma)) * gradient(x, s, sigma)).sum() * dx)


def check_js_gradient(separation, sigma, gradient: Callable | None = None, h: float = 1e-3,
                      atol: float = 1e-9) -> None:
    """Chapter 7: ``d JS / d s`` (a fourth-order central difference of :func:`gaussian_pair_js`)
    against the mean over the fake samples of the per-sample gradient (default
    :func:`js_sample_gradient`). The two are computed independently: one differentiates the value,
    the other uses only the optimal critic. Raises :class:`tutorlib.IdentityError` if they differ by
    more than ``atol`` (difference error ~ h^4 and quadrature error, both < 1e-10 here)."""
    from tutorlib.checks import compare

    s, sigma = _pair_args(separation, sigma)
    gradient = js_sample_gradient if gradient is None else gradient
    f = lambda v: gaussian_pair_js(v, sigma)  # noqa: E731
    fd = (-f(s + 2 * h) + 8 * f(s + h) - 8 * f(s - h) + f(s - 2 * h)) / (12 * h)
    compare(f"d JS / d s at s = {s:g}, sigma = {sigma:g}", fd, mean_sample_gradient(gradient, s, sigma),
            atol=atol, names=("difference of JS values", "mean gradient on fake samples"))


def js_nonsaturating_gradient(x, separation, sigma):
    """The gradient a fake sample at ``x`` gets from the *non-saturating* generator loss
    ``-ln D*(x)`` (Goodfellow et al.'s replacement for the minimax ``ln(1 - D*)``) at the optimal
    critic ``D* = p / (p + q)``, ``p = N(0, sigma^2)``, ``q = N(s, sigma^2)``: in closed form
    ``(1 - D*(x)) s / sigma^2``. It does not vanish on the fakes; it is not a gradient of JS (the mean
    over the fakes is ``d/ds [KL(q || p) - 2 JS]``, Arjovsky and Bottou's theorem 2.5)."""
    s, sigma = _pair_args(separation, sigma)
    x = np.asarray(x, dtype=np.float64)
    log_ratio = _normal_logpdf(x, 0.0, sigma) - _normal_logpdf(x, s, sigma)  # ln p/q
    from scipy.special import expit

    return expit(-log_ratio) * s / sigma**2


def generator_loss_gradient(x, separation, sigma, saturating: bool = False):
    """``d/dx`` of the loss :func:`tutorlib.gan.generator_loss` ``("sgan", ...)`` gives one fake
    sample at ``x`` when the critic is the optimal logit ``T*(x) = ln p(x) - ln q(x)``, by autograd
    in float64 (``p = N(0, sigma^2)``, ``q = N(s, sigma^2)``). ``saturating=False`` is ``-ln D*``,
    ``saturating=True`` the minimax ``ln(1 - D*)``; the latter is twice :func:`js_sample_gradient`
    (whose JS carries a factor 1/2). Independent of the closed forms: it differentiates the
    training code's loss."""
    from tutorlib import gan

    s, sigma = _pair_args(separation, sigma)
    x_np = np.asarray(x, dtype=np.float64)
    xt = torch.tensor(np.atleast_1d(x_np).ravel(), dtype=torch.float64, requires_grad=True)
    dist_p = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64))
    dist_q = torch.distributions.Normal(torch.tensor(s, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64))
    t_fake = dist_p.log_prob(xt) - dist_q.log_prob(xt)
    loss = gan.generator_loss("sgan", t_fake, t_fake, saturating=bool(saturating)) * xt.numel()  # a sum over samples
    (grad,) = torch.autograd.grad(loss, xt)
    out = grad.numpy().reshape(np.shape(x_np))
    return out if np.ndim(x_np) else float(out)


def check_nonsaturating_gradient(separation, sigma, gradient: Callable | None = None, h: float = 1e-3,
                                 atol: float = 1e-8) -> None:
    """Chapter 7: the mean over the fake samples of the non-saturating generator's per-sample
    gradient (default: :func:`generator_loss_gradient`, autograd through the training loss at the
    optimal critic) against ``d/ds [KL(q || p) - 2 JS]`` = ``s / sigma^2`` (the closed-form KL of two
    Gaussians of equal width, ``s^2 / (2 sigma^2)``) minus twice a fourth-order difference of
    :func:`gaussian_pair_js` -- Arjovsky and Bottou's theorem 2.5. One side uses only the critic and
    the loss, the other only divergence values. Difference and quadrature errors are below 1e-10;
    PyTorch's ``softplus`` returns its argument above 20, which moves a sample's gradient by at most
    ``e^-20 s / sigma^2`` (measured: up to 1.4e-9 on the mean for s <= 6, sigma = 0.5), hence ``atol = 1e-8``."""
    from tutorlib.checks import compare

    s, sigma = _pair_args(separation, sigma)
    gradient = generator_loss_gradient if gradient is None else gradient
    f = lambda v: gaussian_pair_js(v, sigma)  # noqa: E731
    djs = (-f(s + 2 * h) + 8 * f(s + h) - 8 * f(s - h) + f(s - 2 * h)) / (12 * h)
    compare(f"-ln D gradient at s = {s:g}, sigma = {sigma:g}", s / sigma**2 - 2.0 * djs,
            mean_sample_gradient(gradient, s, sigma), atol=atol,
            names=("d/ds [KL(q||p) - 2 JS]", "mean gradient on fake samples"))


def _pair_log_ratio(xr, xf, s: float, sigma: float):
    """``u = ln(p(x_r) q(x_f) / (p(x_f) q(x_r)))`` for ``p = N(0, sigma^2)``, ``q = N(s, sigma^2)``."""
    return (_normal_logpdf(xr, 0.0, sigma) + _normal_logpdf(xf, s, sigma)
            - _normal_logpdf(xf, 0.0, sigma) - _normal_logpdf(xr, s, sigma))


def _pair_terms(x_real, x_fake, s: float, sigma: float):
    """``(z, tanh(u / 2))`` with ``z = x_f - x_r``, broadcast, in float64: what the optimal binary
    critic ``lam |z| tanh(u / 2)`` and its derivatives are made of."""
    xr, xf = np.broadcast_arrays(np.asarray(x_real, np.float64), np.asarray(x_fake, np.float64))
    return xf - xr, np.tanh(_pair_log_ratio(xr, xf, s, sigma) / 2.0)


def qp_gaussian_critic(x_real, x_fake, separation, sigma, lam: float):
    """The optimal binary critic ``Delta T*(x_r, x_f) = lam |x_r - x_f| (p_r q_f - p_f q_r) / (p_r q_f + p_f q_r)``
    for ``p = N(0, sigma^2)``, ``q = N(s, sigma^2)``, written stably as ``lam d tanh(u / 2)`` with
    ``u = ln(p_r q_f / (p_f q_r))``. Broadcasts ``x_real`` against ``x_fake``."""
    s, sigma = _pair_args(separation, sigma)
    lam = positive_float("lam", lam)
    diff, th = _pair_terms(x_real, x_fake, s, sigma)
    return lam * np.abs(diff) * th


def qp_gaussian_critic_gradient(x_real, x_fake, separation, sigma, lam: float):
    """``d Delta T*(x_r, x_f) / d x_f`` for the optimal binary critic of :func:`qp_gaussian_critic`,
    in closed form (broadcasts ``x_real`` against ``x_fake``): what one pair contributes to a fake
    sample's gradient when the critic is held fixed."""
    s, sigma = _pair_args(separation, sigma)
    lam = positive_float("lam", lam)
    diff, th = _pair_terms(x_real, x_fake, s, sigma)
    du = s / sigma**2  # d u / d x_f for two Gaussians of equal width
    return lam * (np.sign(diff) * th + np.abs(diff) * (1.0 - th**2) * du / 2.0)


def qp_gaussian_generator_gradient(x_fake, separation, sigma, lam: float):
    """The gradient the optimal binary critic gives a fake sample at ``x_f``: ``d/dx_f`` of the
    generator's loss ``E_{x_r ~ p}[Delta T*(x_r, x_f)]`` (the mean of :func:`qp_gaussian_critic_gradient`
    over ``x_r`` on an even grid, accurate to about 1e-5 relative: the integrand has a kink at
    ``x_r = x_f``). Exactly ``lam`` times its value at ``lam = 1``."""
    s, sigma = _pair_args(separation, sigma)
    lam = positive_float("lam", lam)
    xr, dx = gaussian_pair_grid(s, sigma)
    weight = np.exp(_normal_logpdf(xr, 0.0, sigma)) * dx
    xf = np.atleast_1d(np.asarray(x_fake, np.float64))[:, None]
    out = (qp_gaussian_critic_gradient(xr[None, :], xf, s, sigma, lam) * weight).sum(1)
    return out if np.ndim(x_fake) else float(out[0])


def qp_gaussian_quadratic_gradient(x_real, x_fake, separation, sigma, lam: float):
    """``d/dx_f`` of the quadratic term ``Delta T*(x_r, x_f)^2 / (2 lam |x_r - x_f|)`` with the critic
    held at its optimum (:func:`qp_gaussian_critic`), in closed form, per pair: the term GAN-QP's
    generator loss leaves out. With ``Delta T* = lam |z| tanh(u / 2)``, ``z = x_f - x_r``, the term is
    ``(lam / 2) |z| tanh^2(u / 2)``."""
    s, sigma = _pair_args(separation, sigma)
    lam = positive_float("lam", lam)
    diff, th = _pair_terms(x_real, x_fake, s, sigma)
    dth = (1.0 - th**2) * s / (2.0 * sigma**2)  # d tanh(u / 2) / d x_f, with du / dx_f = s / sigma^2
    return 0.5 * lam * (np.sign(diff) * th**2 + np.abs(diff) * 2.0 * th * dth)


def qp_gaussian_pair_mean(f: Callable, separation, sigma, nodes: int = 48) -> float:
    """``E_{x_r ~ N(0, sigma^2), x_f ~ N(s, sigma^2)}[f(x_r, x_f)]`` for a vectorised ``f`` that may
    have a kink on the diagonal ``x_r = x_f`` (``|x_r - x_f|``, ``sign``). In the coordinates
    ``z = x_f - x_r ~ N(s, 2 sigma^2)`` and ``x_r | z ~ N(-(z - s) / 2, sigma^2 / 2)``: Gauss-Hermite with
    ``nodes`` nodes over ``x_r`` (smooth for fixed z), adaptive quadrature over ``z`` split at the kink
    ``z = 0``. Accurate to about 1e-12 for the smooth-by-pieces integrands of this module."""
    from scipy.integrate import quad

    s, sigma = _pair_args(separation, sigma)
    xi, wi = np.polynomial.hermite_e.hermegauss(positive_int("nodes", nodes))
    wi = wi / math.sqrt(2.0 * math.pi)
    width = math.sqrt(2.0) * sigma

    def inner(z):
        xr = -(z - s) / 2.0 + sigma / math.sqrt(2.0) * xi
        return float(np.exp(_normal_logpdf(z, s, width)) * (wi * f(xr, xr + z)).sum())

    lo, hi = s - 14.0 * width, s + 14.0 * width
    cuts = [lo, 0.0, hi] if lo < 0.0 < hi else [lo, hi]
    return float(sum(quad(inner, a, b, epsabs=1e-14, epsrel=1e-13, limit=200)[0] for a, b in zip(cuts[:-1], cuts[1:])))


def qp_gaussian_divergence(separation, sigma, lam: float) -> float:
    """The QP-divergence of ``p = N(0, sigma^2)`` and ``q = N(s, sigma^2)`` from its closed form
    ``(lam / 4) iint (a - b)^2 / (a + b) |x - y|``, ``a = p(x) q(y)``, ``b = p(y) q(x)``: since
    ``(a - b) / (a + b) = tanh(u / 2)`` with ``u = ln(a / b)``, and ``a`` and ``b`` contribute equally,
    ``D = (lam / 2) E_{x ~ p, y ~ q}[|y - x| tanh^2(u / 2)]`` (:func:`qp_gaussian_pair_mean`). Tends to
    ``lam s / 2``, the two-deltas value, as ``s / sigma`` grows."""
    s, sigma = _pair_args(separation, sigma)
    lam = positive_float("lam", lam)

    def integrand(xr, xf):
        u = _pair_log_ratio(xr, xf, s, sigma)
        return 0.5 * lam * np.abs(xf - xr) * np.tanh(u / 2.0) ** 2

    return qp_gaussian_pair_mean(integrand, s, sigma)


def check_qp_gaussian_gradient(separation, sigma, lam: float, critic_gradient: Callable | None = None,
                               quadratic_gradient: Callable | None = None, h: float = 1e-3,
                               atol: float = 1e-9, label: str | None = None) -> dict:
    """Chapter 8: the gradient GAN-QP's generator follows, with the critic held at its optimum, for
    ``p = N(0, sigma^2)`` (data) and ``q = N(s, sigma^2)`` (fakes), ``s`` the ``separation``.

    The critic maximises ``Phi(T, s) = E[Delta T - Delta T^2 / (2 lam d)]``, so by the envelope theorem
    ``dD/ds`` is the derivative of ``Phi(T*, s)`` with ``T*`` held fixed. The generator's loss keeps only
    ``E[Delta T]``: its mean gradient on the fakes, ``E[critic_gradient]``, must equal ``dD/ds`` *plus*
    the mean gradient of the quadratic term it leaves out, ``E[quadratic_gradient]`` (per-pair
    callables ``(x_r, x_f, s, sigma, lam)``; defaults :func:`qp_gaussian_critic_gradient` and
    :func:`qp_gaussian_quadratic_gradient`; means by :func:`qp_gaussian_pair_mean`). ``dD/ds`` is a
    fourth-order central difference of :func:`qp_gaussian_divergence` (error ~h^4 < 1e-11). Raises
    :class:`tutorlib.IdentityError` beyond ``atol * lam``. Prints and returns the generator's mean
    gradient, ``dD/ds``, the dropped term's gradient and ``ratio = gradient / (2 dD/ds)`` (1 would mean
    that the generator descends 2D)."""
    from tutorlib.checks import compare

    s, sigma = _pair_args(separation, sigma)
    lam = positive_float("lam", lam)
    if s <= 0:
        raise ValueError(f"separation must be > 0 (the fakes to the right of the data), got {s}")
    h, atol = positive_float("h", h), positive_float("atol", atol)
    if h >= s / 2:
        raise ValueError(f"h must be below separation / 2 = {s / 2:g}, got {h}")
    critic_gradient = qp_gaussian_critic_gradient if critic_gradient is None else critic_gradient
    quadratic_gradient = qp_gaussian_quadratic_gradient if quadratic_gradient is None else quadratic_gradient
    f = lambda v: qp_gaussian_divergence(v, sigma, lam)  # noqa: E731
    d_div = (-f(s + 2 * h) + 8 * f(s + h) - 8 * f(s - h) + f(s - 2 * h)) / (12 * h)
    g = qp_gaussian_pair_mean(lambda xr, xf: critic_gradient(xr, xf, s, sigma, lam), s, sigma)
    quad = qp_gaussian_pair_mean(lambda xr, xf: quadratic_gradient(xr, xf, s, sigma, lam), s, sigma)
    compare(label or f"envelope theorem at s = {s:g}, sigma = {sigma:g}, lam = {lam:g}", g, d_div + quad,
            atol=atol * lam, names=("generator's mean gradient on the fakes", "dD/ds + the dropped term's"))
    out = {"gradient": g, "dD_ds": d_div, "quadratic": quad, "ratio": g / (2.0 * d_div)}
    print(f"    generator's gradient {g:.4f} = {g / d_div:.3f} x dD/ds = {out['ratio']:.3f} x d(2D)/ds")
    return out


# --- the checks chapters 7 and 8 run (each raises tutorlib.IdentityError; tests break them) ---------

def _weights(p, q):
    return np.outer(p, q) + np.outer(q, p)


def check_sgan_optimum(p, q, value, critic, label: str = "SGAN", atol_value: float = 1e-9,
                       atol_critic: float = 1e-6) -> None:
    """Chapter 7: a solved SGAN dual against the closed forms -- its value against JS (``atol_value``)
    and ``sigmoid(T*)`` against ``p / (p + q)`` where both are positive (``atol_critic``)."""
    from scipy.special import expit

    from tutorlib.checks import compare

    p, q = _as_prob("p", p), _as_prob("q", q, len(_as_prob("p", p)))
    critic = np.asarray(critic, dtype=np.float64)
    compare(f"{label}: value", value, js_divergence(p, q), atol=atol_value, names=("max over T", "JS closed form"))
    both = (p > 0) & (q > 0)
    compare(f"{label}: optimal critic", expit(critic[both]), (p / (p + q))[both], atol=atol_critic,
            names=("sigmoid(T*)", "p/(p+q)"))


def check_qp_optimum(p, q, points, lam: float, value, critic, label: str = "QP", rtol_value: float = 1e-9,
                     atol_critic: float = 1e-6, min_weight: float = 1e-3, distance=None) -> None:
    """Chapter 8: a solved binary QP critic table ``critic[i, j] = T(x_i, x_j)`` against the closed
    forms: the value against :func:`qp_divergence` (``rtol_value``), and ``Delta = T - T'`` against
    :func:`qp_optimal_critic` on the pairs whose weight ``p_i q_j + p_j q_i`` is at least
    ``min_weight`` (``atol_critic * lam``; pairs with almost no weight barely constrain the solver)."""
    from tutorlib.checks import compare

    critic = np.asarray(critic, dtype=np.float64)
    delta = critic - critic.T
    compare(f"{label}: value", value, qp_divergence(p, q, points, lam, distance), rtol=rtol_value,
            names=("max over T", "(lam/4) * double sum"))
    heavy = _weights(_as_prob("p", p), _as_prob("q", q)) >= min_weight
    compare(f"{label}: optimal critic on the {int(heavy.sum())} pairs with weight >= {min_weight:g}",
            delta[heavy], qp_optimal_critic(p, q, points, lam, distance)[heavy], atol=atol_critic * lam,
            names=("solver", "formula"))


def qp_bound_ratios(delta, points, lam: float, distance=None):
    """``|Delta_ij| / (lam d_ij)`` for every pair ``i != j`` (an (n, n) array with 0 on the diagonal)."""
    lam = positive_float("lam", lam)
    pts = _as_points(points)
    d = _distance_matrix(pts, distance)
    delta = np.asarray(delta, dtype=np.float64)
    if delta.shape != d.shape:
        raise ValueError(f"delta must have shape {d.shape} (one value per ordered pair), got {delta.shape}")
    off = ~np.eye(len(pts), dtype=bool)
    ratio = np.zeros_like(d)
    ratio[off] = np.abs(delta[off]) / (lam * d[off])
    return ratio


def check_qp_bound(delta, points, lam: float, label: str = "|Delta T| <= lam d", tol: float = 1e-9,
                   distance=None) -> float:
    """Chapter 8: raise unless ``|Delta_ij| <= lam d_ij (1 + tol)`` on every pair; print and return
    the largest ratio ``|Delta_ij| / (lam d_ij)``."""
    from tutorlib.checks import IdentityError

    worst = float(qp_bound_ratios(delta, points, lam, distance).max())
    ok = worst <= 1.0 + tol
    print(f"{'✓' if ok else '✗'} {label}\n    largest |Delta T| / (lam d) = {worst:.9f} "
          f"{'<=' if ok else '>'} 1 + {tol:.0e}")
    if not ok:
        raise IdentityError(f"{label}: |Delta T| / (lam d) reaches {worst:.6f} > 1 + {tol:g}")
    return worst


def check_qp_generator_value(p, q, points, lam: float, delta, label: str = "E[Delta T*] = 2 D",
                             rtol: float = 1e-9, value=None, distance=None) -> None:
    """Chapter 8: the generator's loss at the optimal critic, ``E_{x_r~p, x_f~q}[Delta T*] =
    sum_ij p_i q_j Delta_ij`` from a solved table, against twice the closed-form QP value -- or,
    with ``value`` given, against twice that value (for a restricted family of critics, such as
    the unary one, whose optimum obeys the same scaling identity with its own value)."""
    from tutorlib.checks import compare

    p = _as_prob("p", p)
    q = _as_prob("q", q, len(p))
    delta = np.asarray(delta, dtype=np.float64)
    if value is None:
        reference, name = qp_divergence(p, q, points, lam, distance), "2 x closed-form D"
    else:
        reference, name = float(value), "2 x the value"
    compare(label, float((np.outer(p, q) * delta).sum()), 2.0 * reference, rtol=rtol,
            names=("sum p_i q_j Delta_ij (solver)", name))


def check_unary_restriction(p, q, points, lam: float, unary_value, unary_critic, binary_value,
                            label: str = "unary critic", atol: float = 1e-9, atol_critic: float = 1e-7,
                            min_weight: float = 1e-2, distance=None) -> dict:
    """Chapter 8: what the unary critic ``D_ij = t_i - t_j`` costs. Checks that the L-BFGS solution
    (``unary_value``, ``unary_critic`` = t) agrees with the exact linear solve
    :func:`qp_unary_optimum` (values within ``atol``; the differences ``t_i - t_j`` within
    ``atol_critic * lam``, L-BFGS's accuracy on the flat directions of the objective), that the
    restriction lowers the value below the binary optimum ``binary_value`` by more than ``atol``,
    and that it breaks ``|D| <= lam d`` on a pair with weight ``p_i q_j + p_j q_i >= min_weight``.
    Raises :class:`tutorlib.IdentityError` otherwise; returns the numbers it printed."""
    from tutorlib.checks import IdentityError, compare

    p = _as_prob("p", p)
    q = _as_prob("q", q, len(p))
    exact_value, exact_t = qp_unary_optimum(p, q, points, lam, distance)
    t = np.asarray(unary_critic, dtype=np.float64)
    compare(f"{label}: value", unary_value, exact_value, atol=atol, names=("L-BFGS", "linear solve 2Lt = p - q"))
    compare(f"{label}: critic differences t_i - t_j", t[:, None] - t[None, :],
            exact_t[:, None] - exact_t[None, :], atol=atol_critic * lam, names=("L-BFGS", "linear solve"))
    lost = float(binary_value) - float(unary_value)
    ratio = qp_bound_ratios(t[:, None] - t[None, :], points, lam, distance)
    heavy = _weights(p, q) >= min_weight
    worst_heavy = float(ratio[heavy].max()) if heavy.any() else 0.0
    print(f"    binary optimum {float(binary_value):.6f}, unary optimum {float(unary_value):.6f}: "
          f"the restriction loses {lost:.6f}\n"
          f"    largest |t_i - t_j| / (lam d): {ratio.max():.3f} over all pairs, "
          f"{worst_heavy:.3f} over the {int(heavy.sum())} pairs with weight >= {min_weight:g}")
    if not lost > atol:
        raise IdentityError(f"{label}: the unary optimum {unary_value} is not below the binary one {binary_value}")
    if not worst_heavy > 1.0 + 1e-6:
        raise IdentityError(f"{label}: the unary optimum keeps |D| <= lam d on the weighted pairs "
                            f"(largest ratio {worst_heavy:.6f})")
    return {"lost": lost, "worst": float(ratio.max()), "worst_heavy": worst_heavy}

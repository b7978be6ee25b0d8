"""Quadrature vs Monte Carlo for an expectation (chapter 1, Su's article 1, section 1).

Su's two ways of computing :math:`\\mathbb E_{x\\sim p}[f(x)]`:

- quadrature (numerical integration): representative points on a grid, each weighted by its
  density and its cell volume, :math:`\\sum_i f(x_i)\\,p(x_i)\\,\\Delta V`;
- sampling (Monte Carlo): points drawn from :math:`p`, which already carry :math:`p`, so
  :math:`\\frac1n\\sum_i f(x_i)`.

The running example is :func:`beta_problem`: :math:`x\\sim\\mathrm{Beta}(2,2)^d` on the unit
cube and :math:`f(x)=\\frac1d\\sum_k e^{x_k}`, whose exact expectation is :math:`6(3-e)` in
every dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from tutorlib._validate import finite_float, positive_float, positive_int

Fn = Callable[[torch.Tensor], torch.Tensor]


def _check_callable(name: str, fn) -> None:
    if not callable(fn):
        raise ValueError(f"{name} must be callable, got {type(fn).__name__}")


def quadrature(f: Fn, pdf: Fn, dim: int, m: int, lo: float = 0.0, hi: float = 1.0, chunk: int = 1 << 16) -> float:
    """Su's quadrature rule on the cube ``[lo, hi]^dim``: ``sum_i f(x_i) p(x_i) dV``.

    The points are the midpoints of an ``m``-per-axis grid (``m**dim`` points, ``dV = ((hi-lo)/m)**dim``);
    ``f`` and ``pdf`` map an ``(n, dim)`` float64 tensor to ``(n,)``. Evaluated in chunks, so
    memory stays bounded however many points the grid has.
    """
    _check_callable("f", f)
    _check_callable("pdf", pdf)
    dim, m = positive_int("dim", dim), positive_int("m", m)
    lo, hi = finite_float("lo", lo), finite_float("hi", hi)
    if not hi > lo:
        raise ValueError(f"hi must be greater than lo, got lo={lo}, hi={hi}")
    total_points = m**dim
    if total_points > 50_000_000:
        raise ValueError(f"m**dim = {m}**{dim} = {total_points:.3g} grid points is more than this function "
                         f"evaluates (5e7): that explosion is the point of chapter 1")
    h = (hi - lo) / m
    axis = lo + h * (torch.arange(m, dtype=torch.float64) + 0.5)
    total = 0.0
    powers = m ** torch.arange(dim - 1, -1, -1, dtype=torch.int64)
    for start in range(0, total_points, chunk):
        idx = torch.arange(start, min(start + chunk, total_points), dtype=torch.int64)
        digits = (idx[:, None] // powers[None, :]) % m
        x = axis[digits]
        total += float((f(x) * pdf(x)).sum())
    return total * h**dim


def monte_carlo(f: Fn, sample: Callable[[int, torch.Generator | None], torch.Tensor], n: int,
                generator: torch.Generator | None = None) -> tuple[float, float]:
    """The sampling estimate ``(1/n) sum_i f(x_i)``, ``x_i ~ p``, and its standard error.

    ``sample(n, generator)`` returns ``n`` draws from ``p`` as an ``(n, dim)`` tensor.
    """
    _check_callable("f", f)
    _check_callable("sample", sample)
    n = positive_int("n", n)
    values = f(sample(n, generator)).double()
    mean = float(values.mean())
    stderr = float(values.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("inf")
    return mean, stderr


@dataclass(frozen=True)
class Problem:
    """An expectation with a known answer: ``E_{x~p}[f(x)] = exact`` for ``x`` in ``[lo, hi]^dim``."""

    dim: int
    f: Fn
    pdf: Fn
    sample: Callable[[int, torch.Generator | None], torch.Tensor]
    exact: float
    std: float
    lo: float = 0.0
    hi: float = 1.0


BETA22_MEAN_EXP = 6.0 * (3.0 - math.e)  # E[e^X] for X ~ Beta(2, 2)
BETA22_VAR_EXP = 3.0 - BETA22_MEAN_EXP**2  # E[e^{2X}] = 3


def beta_problem(dim: int) -> Problem:
    """The chapter's example: ``x ~ Beta(2,2)^dim`` (density ``prod 6 x_k (1 - x_k)``) and
    ``f(x) = mean_k exp(x_k)``, with ``E[f] = 6 (3 - e)`` and ``Var[f] = (3 - 36 (3 - e)^2) / dim``.

    Beta(2, 2) draws are medians of three uniforms, so sampling takes a ``torch.Generator``.
    """
    dim = positive_int("dim", dim)

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x).mean(dim=-1)

    def pdf(x: torch.Tensor) -> torch.Tensor:
        return (6.0 * x * (1.0 - x)).prod(dim=-1)

    def sample(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        a, b, c = torch.rand(n, dim, 3, generator=generator, dtype=torch.float64).unbind(-1)
        # the median of three numbers, max(min(a, b), min(max(a, b), c)): three times faster than
        # Tensor.median, and the same numbers
        return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))

    return Problem(dim=dim, f=f, pdf=pdf, sample=sample, exact=BETA22_MEAN_EXP,
                   std=math.sqrt(BETA22_VAR_EXP / dim))


@dataclass(frozen=True)
class ErrorCurves:
    """Absolute errors of both methods against the number of function evaluations."""

    dim: int
    budgets: np.ndarray          # the requested evaluation budgets N
    quad_evals: np.ndarray       # m**dim actually used by quadrature (m = floor(N**(1/dim)))
    quad_error: np.ndarray       # |quadrature - exact|
    mc_error: np.ndarray         # root-mean-square error of Monte Carlo with N samples over `reps` runs
    mc_predicted: np.ndarray     # std(f) / sqrt(N), the O(1/sqrt(N)) law
    mc_lo: np.ndarray | None = None  # 10 % quantile of the |error| of the `reps` Monte Carlo runs
    mc_hi: np.ndarray | None = None  # 90 % quantile
    reps: int | None = None      # Monte Carlo runs per budget


def points_per_axis(budget: int, dim: int) -> int:
    """The largest ``m`` with ``m**dim <= budget`` (at least 1)."""
    budget, dim = positive_int("budget", budget), positive_int("dim", dim)
    m = max(1, int(round(budget ** (1.0 / dim))))
    while m**dim > budget and m > 1:
        m -= 1
    while (m + 1) ** dim <= budget:
        m += 1
    return m


def error_curves(problem: Problem, budgets, reps: int = 20, seed: int = 0) -> ErrorCurves:
    """Errors of quadrature and Monte Carlo on ``problem`` for each evaluation budget."""
    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a Problem (see beta_problem), got {type(problem).__name__}")
    budgets = np.asarray([positive_int("budgets[i]", int(b)) for b in budgets], dtype=np.int64)
    if budgets.size == 0:
        raise ValueError("budgets must not be empty")
    reps = positive_int("reps", reps, minimum=2)
    gen = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    quad_evals, quad_error, mc_error, mc_lo, mc_hi = [], [], [], [], []
    for n in budgets:
        m = points_per_axis(int(n), problem.dim)
        quad_evals.append(m**problem.dim)
        est = quadrature(problem.f, problem.pdf, problem.dim, m, problem.lo, problem.hi)
        quad_error.append(abs(est - problem.exact))
        errs = np.array([monte_carlo(problem.f, problem.sample, int(n), gen)[0] - problem.exact for _ in range(reps)])
        mc_error.append(math.sqrt(float(np.mean(errs**2))))
        mc_lo.append(float(np.quantile(np.abs(errs), 0.1)))
        mc_hi.append(float(np.quantile(np.abs(errs), 0.9)))
    return ErrorCurves(dim=problem.dim, budgets=budgets, quad_evals=np.asarray(quad_evals),
                       quad_error=np.asarray(quad_error), mc_error=np.asarray(mc_error),
                       mc_predicted=problem.std / np.sqrt(budgets.astype(float)),
                       mc_lo=np.asarray(mc_lo), mc_hi=np.asarray(mc_hi), reps=reps)


# --- the grid the cheap way: this integrand is separable ------------------------------------------

def beta_midpoint_separable(dim: int, m: int) -> float:
    """What the ``m**dim``-point midpoint grid of :func:`quadrature` gives on :func:`beta_problem`,
    computed from two sums over the ``m`` midpoints of one axis.

    The integrand is separable: ``f(x) = mean_k e^{x_k}`` and ``p(x) = prod_k 6 x_k (1 - x_k)``, so
    the grid sum factorises into ``A * B**(dim - 1)`` with ``A = sum_i e^{x_i} 6 x_i (1 - x_i) h`` and
    ``B = sum_i 6 x_i (1 - x_i) h`` (``= 1 + h^2/2`` exactly). A product rule costs ``2 m``
    evaluations here, not ``m**dim``: a separable integrand flatters quadrature, and the integrands
    of machine learning are not separable. Written with NumPy, independently of :func:`quadrature`.
    """
    dim, m = positive_int("dim", dim), positive_int("m", m)
    x = (np.arange(m, dtype=np.float64) + 0.5) / m
    w = 6.0 * x * (1.0 - x) / m
    return float(np.dot(w, np.exp(x)) * w.sum() ** (dim - 1))


MIDPOINT_H4 = 7.0 * (18.0 - 54.0 * math.e) / 5760.0  # the m^-4 coefficient of the midpoint error law


def midpoint_error_law(m: int, terms: int = 1) -> float:
    """The error of the ``m``-point midpoint rule on ``E[e^x]``, ``x ~ Beta(2, 2)``, from the
    Euler-Maclaurin expansion with ``g = f p = 6 x (1 - x) e^x``: the leading term
    ``-(h^2 / 24) [g']_0^1 = (e + 1) / (4 m^2)`` (the rule over-estimates) and, with ``terms=2``, the next
    one, ``(7 h^4 / 5760) [g''']_0^1 = 7 (18 - 54 e) / (5760 m^4)`` (a relative ``-0.169 / m^2``)."""
    m = positive_int("m", m)
    if terms not in (1, 2):
        raise ValueError(f"terms must be 1 or 2, got {terms!r}")
    law = (math.e + 1.0) / (4.0 * m**2)
    return law + (MIDPOINT_H4 / m**4 if terms == 2 else 0.0)


def check_midpoint_error(estimate: float, m: int, rtol: float = 1e-8) -> None:
    """Chapter 1: a one-dimensional midpoint estimate of ``E[e^x]`` with ``m`` points against the
    two-term error law: ``estimate - 6(3 - e) = (e + 1) / (4 m^2) + 7 (18 - 54 e) / (5760 m^4)``, sign
    included. What is left is the ``m^-6`` term (a relative ``~1e-12`` at ``m = 1000``) and float64
    rounding of the sum (``~1e-9`` relative to an error of ``9e-7``): ``rtol = 1e-8``."""
    from tutorlib.checks import compare

    m = positive_int("m", m)
    compare(f"midpoint-rule error with m = {m}", finite_float("estimate", estimate) - BETA22_MEAN_EXP,
            midpoint_error_law(m, terms=2), rtol=rtol,
            names=("quadrature - 6(3-e)", "(e+1)/(4m^2) + 7(18-54e)/(5760m^4)"))


def su_rule(f: Fn, pdf: Fn, m: int) -> float:
    """Su's formula (2) on ``[0, 1]``: ``sum_{i=1}^m f(x_i) p(x_i) (x_i - x_{i-1})`` with ``x_i = i / m``
    (a right Riemann sum). ``f`` and ``pdf`` map an ``(m, 1)`` float64 tensor to ``(m,)``.

    For a general integrand its error falls like ``1 / m``. When ``f p`` vanishes at both ends, as on
    :func:`beta_problem`, the sum equals the trapezoid rule, and the error is second order."""
    _check_callable("f", f)
    _check_callable("pdf", pdf)
    m = positive_int("m", m)
    x = (torch.arange(1, m + 1, dtype=torch.float64) / m)[:, None]
    return float((f(x) * pdf(x)).sum()) / m


def su_rule_error_law(m: int) -> float:
    """The error of :func:`su_rule` on ``E[e^x]``, ``x ~ Beta(2, 2)``: ``g = 6 x (1 - x) e^x`` vanishes at 0
    and 1, so the right Riemann sum is the trapezoid rule, whose Euler-Maclaurin expansion gives
    ``(h^2 / 12) [g']_0^1 - (h^4 / 720) [g''']_0^1 = -(e + 1) / (2 m^2) + (54 e - 18) / (720 m^4)``: an
    under-estimate, twice the midpoint rule's error in size."""
    m = positive_int("m", m)
    return -(math.e + 1.0) / (2.0 * m**2) + (54.0 * math.e - 18.0) / (720.0 * m**4)


def check_su_rule_error(estimate: float, m: int, rtol: float = 1e-8) -> None:
    """Chapter 1: Su's right Riemann sum with ``m`` points against its two-term error law
    (:func:`su_rule_error_law`), sign included, to float64 rounding (``rtol = 1e-8``, as for the midpoint rule)."""
    from tutorlib.checks import compare

    m = positive_int("m", m)
    compare(f"Su's sum, error with m = {m}", finite_float("estimate", estimate) - BETA22_MEAN_EXP,
            su_rule_error_law(m), rtol=rtol, names=("Su's sum - 6(3-e)", "-(e+1)/(2m^2) + (54e-18)/(720m^4)"))


def check_separable(estimate: float, dim: int, m: int) -> None:
    """Chapter 1: the brute-force ``m**dim`` grid against :func:`beta_midpoint_separable`, to float64
    rounding (``rtol = 1e-12``: sums of at most a few million terms of one sign)."""
    from tutorlib.checks import compare

    compare(f"the {m}^{dim} grid = A B^(d-1)", finite_float("estimate", estimate),
            beta_midpoint_separable(dim, m), rtol=1e-12, names=("grid of m^d points", "two 1-D sums"))


# --- one table, sliced two ways: error against the budget N and against the dimension d ----------

@dataclass(frozen=True)
class BudgetTable:
    """Errors of quadrature and of repeated Monte Carlo runs for every (dimension, budget) pair."""

    dims: tuple[int, ...]
    budgets: np.ndarray        # (n_budgets,) evaluation budgets N
    quad_m: np.ndarray         # (n_dims, n_budgets) points per axis, the largest m with m**d <= N
    quad_evals: np.ndarray     # (n_dims, n_budgets) m**d, the evaluations quadrature actually used
    quad_error: np.ndarray     # (n_dims, n_budgets) |quadrature - exact|
    mc_errors: np.ndarray      # (n_dims, n_budgets, reps) signed errors of independent Monte Carlo runs
    std: np.ndarray            # (n_dims,) sigma_f, the standard deviation of f(x)

    @property
    def reps(self) -> int:
        return int(self.mc_errors.shape[-1])

    def index(self, dim: int) -> int:
        if dim not in self.dims:
            raise ValueError(f"dim must be one of the table's dimensions {list(self.dims)}, got {dim!r}")
        return self.dims.index(dim)

    def mc_rms(self) -> np.ndarray:
        """(n_dims, n_budgets): root-mean-square error of Monte Carlo over the runs."""
        return np.sqrt(np.mean(self.mc_errors**2, axis=-1))

    def curves(self, dim: int) -> ErrorCurves:
        """The row of one dimension as :class:`ErrorCurves` (for :func:`tutorlib.plotting.errors_vs_budget`)."""
        i = self.index(dim)
        abs_err = np.abs(self.mc_errors[i])
        return ErrorCurves(dim=dim, budgets=self.budgets, quad_evals=self.quad_evals[i], quad_error=self.quad_error[i],
                           mc_error=self.mc_rms()[i], mc_predicted=self.std[i] / np.sqrt(self.budgets.astype(float)),
                           mc_lo=np.quantile(abs_err, 0.1, axis=-1), mc_hi=np.quantile(abs_err, 0.9, axis=-1),
                           reps=self.reps)


def budget_table(budgets, dims, reps: int = 20, seed: int = 0) -> BudgetTable:
    """Quadrature (the largest ``m**d <= N`` grid, by brute force) and ``reps`` independent Monte Carlo
    runs of ``N`` samples each, on :func:`beta_problem` for every dimension in ``dims`` and budget in ``budgets``."""
    budgets = np.asarray([positive_int("budgets[i]", int(b)) for b in budgets], dtype=np.int64)
    if budgets.size == 0:
        raise ValueError("budgets must not be empty")
    dims = tuple(positive_int("dims[i]", int(d)) for d in dims)
    if not dims:
        raise ValueError("dims must not be empty")
    reps = positive_int("reps", reps, minimum=2)
    gen = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    shape = (len(dims), len(budgets))
    quad_m, quad_error = np.zeros(shape, dtype=np.int64), np.zeros(shape)
    mc_errors = np.zeros(shape + (reps,))
    for i, d in enumerate(dims):
        problem = beta_problem(d)
        for j, n in enumerate(budgets):
            m = points_per_axis(int(n), d)
            quad_m[i, j] = m
            quad_error[i, j] = abs(quadrature(problem.f, problem.pdf, d, m) - problem.exact)
            for r in range(reps):
                mc_errors[i, j, r] = float(problem.f(problem.sample(int(n), gen)).mean()) - problem.exact
    return BudgetTable(dims=dims, budgets=budgets, quad_m=quad_m, quad_evals=quad_m**np.asarray(dims)[:, None],
                       quad_error=quad_error, mc_errors=mc_errors,
                       std=np.array([beta_problem(d).std for d in dims]))


def loglog_slope(x, y) -> float:
    """The least-squares slope of ``ln y`` against ``ln x``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and y must be 1-D arrays of the same length >= 2, got shapes {x.shape} and {y.shape}")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("x and y must be positive (their logarithms are fitted)")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def mc_slope_stderr(budgets, reps: int) -> float:
    """The standard error of the fitted log-log slope of a root-mean-square Monte Carlo error curve.

    With ``reps`` runs the RMS error is a chi-distributed scale estimate: ``ln RMS`` has standard
    deviation ``1 / sqrt(2 reps)`` (normal errors, which the central limit theorem gives for ``N >= 10``
    here); independent budgets make the slope's standard error that over ``sqrt(sum (ln N - mean)^2)``.
    """
    x = np.log(np.asarray(budgets, dtype=float))
    reps = positive_int("reps", reps, minimum=2)
    spread = float(np.sqrt(np.sum((x - x.mean()) ** 2)))
    if x.size < 2 or spread == 0:
        raise ValueError("budgets must hold at least two different values")
    return 1.0 / math.sqrt(2 * reps) / spread


def mc_slope(table: BudgetTable, dim: int) -> tuple[float, float]:
    """The fitted slope of the Monte Carlo RMS error against ``N`` in dimension ``dim``, and its standard error."""
    i = table.index(dim)
    return loglog_slope(table.budgets, table.mc_rms()[i]), mc_slope_stderr(table.budgets, table.reps)


def quad_slope(table: BudgetTable, dim: int, min_m: int = 1) -> float:
    """The fitted slope of the quadrature error against its evaluations ``m**d``, over the grids with ``m >= min_m``
    (the small grids are far from the asymptotic law)."""
    i = table.index(dim)
    keep = (table.quad_m[i] >= positive_int("min_m", min_m)) & (table.quad_error[i] > 1e-13)  # not at machine precision
    if keep.sum() < 2:
        raise ValueError(f"fewer than two grids with m >= {min_m} in dimension {dim}")
    return loglog_slope(table.quad_evals[i][keep], table.quad_error[i][keep])


def check_mc_rate(table: BudgetTable, dim: int) -> None:
    """Chapter 1: Monte Carlo's error falls like ``N^(-1/2)`` in dimension ``dim``: the fitted slope
    against ``-1/2``, within four of its standard errors (:func:`mc_slope_stderr`)."""
    from tutorlib.checks import compare

    s, se = mc_slope(table, dim)
    compare(f"Monte Carlo slope, d = {dim}", s, -0.5, atol=4 * se, names=("fitted", "-1/2"))


def check_quad_rate(table: BudgetTable, dim: int, min_m: int = 10, atol: float = 0.01) -> None:
    """Chapter 1: quadrature's error falls like ``N^(-2/d)``: the slope fitted over grids with
    ``m >= min_m`` against ``-2/d``. The fit is deterministic; ``atol = 0.01`` allows the ``O(1/m^2)``
    relative corrections of the smallest grids kept."""
    from tutorlib.checks import compare

    compare(f"quadrature slope, d = {dim}", quad_slope(table, dim, min_m), -2.0 / dim, atol=atol,
            names=("fitted", "-2/d"))


def check_parallel(table: BudgetTable, dim: int = 4, min_m: int = 4) -> None:
    """Chapter 1: at ``d = 4`` the two error curves are parallel (``-2/d = -1/2``): the quadrature
    slope (grids with ``m >= min_m``) against the Monte Carlo slope, within four standard errors of the
    latter. In ``d = 3`` or ``5`` the quadrature slope is ``-0.67`` or ``-0.4``, and the check fails."""
    from tutorlib.checks import compare

    s_mc, se = mc_slope(table, dim)
    compare(f"parallel at d = {dim}: quadrature slope = Monte Carlo slope", quad_slope(table, dim, min_m), s_mc,
            atol=4 * se, names=("quadrature", "Monte Carlo"))


def _first_m(ok, m_max: int = 1 << 24) -> int:
    """The smallest m >= 1 with ok(m), for ok monotone (False ... False True ...): doubling, then bisection."""
    hi = 1
    while not ok(hi):
        hi *= 2
        if hi > m_max:
            raise ValueError(f"no grid of at most {m_max} points per axis is enough")
    lo = hi // 2  # ok(lo) is False (or lo == 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def grid_for_error(dim: int, target: float) -> int:
    """Chapter 1: the fewest midpoints per axis ``m`` whose ``m**dim`` grid reaches ``|error| <= target``
    on :func:`beta_problem` (from :func:`beta_midpoint_separable`, so even ``dim = 20`` costs nothing)."""
    dim, target = positive_int("dim", dim), positive_float("target", target)
    return _first_m(lambda m: abs(beta_midpoint_separable(dim, m) - BETA22_MEAN_EXP) <= target)


def crossover(dim: int) -> tuple[int, float]:
    """Chapter 1: the smallest grid ``m`` (and its error) from which quadrature's error on
    :func:`beta_problem` is at most Monte Carlo's standard error ``sigma_f / sqrt(m**dim)`` with the
    same number of evaluations. Returns ``(m, error)``; the budget is ``m**dim``."""
    dim = positive_int("dim", dim)
    std = beta_problem(dim).std

    def ok(m):
        return abs(beta_midpoint_separable(dim, m) - BETA22_MEAN_EXP) <= std / math.sqrt(float(m) ** dim)

    m = _first_m(ok)
    return m, abs(beta_midpoint_separable(dim, m) - BETA22_MEAN_EXP)

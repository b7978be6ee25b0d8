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

from tutorlib._validate import finite_float, positive_int

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
        u = torch.rand(n, dim, 3, generator=generator, dtype=torch.float64)
        return u.median(dim=-1).values

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
    quad_evals, quad_error, mc_error = [], [], []
    for n in budgets:
        m = points_per_axis(int(n), problem.dim)
        quad_evals.append(m**problem.dim)
        est = quadrature(problem.f, problem.pdf, problem.dim, m, problem.lo, problem.hi)
        quad_error.append(abs(est - problem.exact))
        sq = [(monte_carlo(problem.f, problem.sample, int(n), gen)[0] - problem.exact) ** 2 for _ in range(reps)]
        mc_error.append(math.sqrt(sum(sq) / reps))
    return ErrorCurves(dim=problem.dim, budgets=budgets, quad_evals=np.asarray(quad_evals),
                       quad_error=np.asarray(quad_error), mc_error=np.asarray(mc_error),
                       mc_predicted=problem.std / np.sqrt(budgets.astype(float)))

"""Quadrature and Monte Carlo against closed forms and against SciPy's adaptive quadrature."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from tutorlib.integration import (BETA22_MEAN_EXP, BETA22_VAR_EXP, beta_problem, error_curves, monte_carlo,
                                  points_per_axis, quadrature)


def test_closed_forms_against_scipy():
    mean, _ = integrate.quad(lambda x: 6 * x * (1 - x) * math.exp(x), 0, 1)
    second, _ = integrate.quad(lambda x: 6 * x * (1 - x) * math.exp(2 * x), 0, 1)
    assert BETA22_MEAN_EXP == pytest.approx(mean, rel=1e-12)
    assert BETA22_VAR_EXP == pytest.approx(second - mean**2, rel=1e-10)


def test_quadrature_of_a_gaussian_mean_and_variance():
    pdf = lambda x: torch.exp(-0.5 * x[:, 0] ** 2) / math.sqrt(2 * math.pi)  # noqa: E731
    assert quadrature(lambda x: torch.ones(len(x), dtype=x.dtype), pdf, 1, 2000, -10, 10) == pytest.approx(1, abs=1e-9)
    assert quadrature(lambda x: x[:, 0], pdf, 1, 2000, -10, 10) == pytest.approx(0, abs=1e-9)
    assert quadrature(lambda x: x[:, 0] ** 2, pdf, 1, 2000, -10, 10) == pytest.approx(1, abs=1e-9)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_quadrature_converges_to_the_exact_value(dim):
    p = beta_problem(dim)
    m = {1: 400, 2: 200, 3: 60}[dim]
    err = abs(quadrature(p.f, p.pdf, dim, m) - p.exact)
    # midpoint rule: the error is second order, about dim * 0.9 / m^2 for this problem
    assert dim * 0.5 / m**2 < err < dim * 1.0 / m**2


def test_quadrature_error_is_second_order_in_one_dimension():
    p = beta_problem(1)
    e1 = abs(quadrature(p.f, p.pdf, 1, 20) - p.exact)
    e2 = abs(quadrature(p.f, p.pdf, 1, 40) - p.exact)
    assert 3.8 < e1 / e2 < 4.2


def test_quadrature_chunks_do_not_change_the_sum():
    p = beta_problem(3)
    assert quadrature(p.f, p.pdf, 3, 17, chunk=7) == pytest.approx(quadrature(p.f, p.pdf, 3, 17), rel=1e-13)


def test_sampler_has_the_beta22_moments():
    x = beta_problem(1).sample(200_000, torch.Generator().manual_seed(0))[:, 0]
    assert float(x.mean()) == pytest.approx(0.5, abs=4 * math.sqrt(0.05 / 200_000))
    assert float(x.var()) == pytest.approx(0.05, rel=0.02)  # Var Beta(2,2) = 1/20


@pytest.mark.parametrize("dim", [1, 5, 20])
def test_monte_carlo_is_unbiased_with_the_stated_standard_error(dim):
    p = beta_problem(dim)
    est, se = monte_carlo(p.f, p.sample, 50_000, torch.Generator().manual_seed(dim))
    assert se == pytest.approx(p.std / math.sqrt(50_000), rel=0.05)
    assert abs(est - p.exact) < 4 * se


def test_error_curves_show_the_two_rates():
    c1 = error_curves(beta_problem(1), [10, 100, 1000], reps=30, seed=1)
    # quadrature: N^-2 in one dimension; Monte Carlo: N^-1/2 in any dimension
    assert c1.quad_error[1] < c1.quad_error[0] / 50
    assert np.all(np.abs(np.log(c1.mc_error / c1.mc_predicted)) < math.log(1.6))
    c8 = error_curves(beta_problem(8), [256, 6561], reps=30, seed=2)
    assert np.all(c8.quad_evals == [256, 6561])
    assert np.all(c8.quad_error > 10 * c8.mc_error)  # in 8 dimensions sampling wins by far


def test_points_per_axis():
    assert points_per_axis(100, 2) == 10 and points_per_axis(99, 2) == 9
    assert points_per_axis(1000, 3) == 10 and points_per_axis(5, 8) == 1
    assert points_per_axis(6561, 8) == 3


def test_quadrature_refuses_an_exploding_grid():
    p = beta_problem(10)
    with pytest.raises(ValueError, match="grid points"):
        quadrature(p.f, p.pdf, 10, 10)


# --- second edition: the separable grid, the error law, the slope checks ------------------------

from tutorlib import integration as I  # noqa: E402
from tutorlib.checks import IdentityError  # noqa: E402


def test_median_of_three_sampler_equals_torch_median():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x = beta_problem(4).sample(1000, g1)
    ref = torch.rand(1000, 4, 3, generator=g2, dtype=torch.float64).median(dim=-1).values
    assert torch.equal(x, ref)


@pytest.mark.parametrize("dim, m", [(1, 7), (2, 13), (3, 9), (5, 4)])
def test_separable_formula_equals_the_brute_force_grid(dim, m):
    p = beta_problem(dim)
    assert I.beta_midpoint_separable(dim, m) == pytest.approx(quadrature(p.f, p.pdf, dim, m), rel=1e-13)
    h = 1.0 / m  # B = 1 + h^2 / 2 exactly: the midpoint rule on a quadratic
    assert I.beta_midpoint_separable(1, m) * (1 + h**2 / 2) ** (dim - 1) == pytest.approx(
        I.beta_midpoint_separable(dim, m), rel=1e-14)


def test_check_separable_passes_and_catches_a_wrong_grid():
    p = beta_problem(3)
    I.check_separable(quadrature(p.f, p.pdf, 3, 11), 3, 11)
    with pytest.raises(IdentityError):  # a grid of the wrong size
        I.check_separable(quadrature(p.f, p.pdf, 3, 10), 3, 11)
    with pytest.raises(IdentityError):  # a 1e-9 relative error is already too much
        I.check_separable(quadrature(p.f, p.pdf, 3, 11) * (1 + 1e-9), 3, 11)


def test_check_midpoint_error_passes_and_catches_broken_rules():
    p = beta_problem(1)
    m = 1000
    good = quadrature(p.f, p.pdf, 1, m)
    I.check_midpoint_error(good, m)
    # a left Riemann sum: f p vanishes at 0 and 1, so it is the trapezoid rule here (second order, but
    # with twice the error and the opposite sign); the leading term alone (no m^-4 term) is off by a
    # relative 1.7e-7, far above the check's 1e-8
    x = torch.arange(m, dtype=torch.float64)[:, None] / m
    left = float((p.f(x) * p.pdf(x)).sum() / m)
    one_term = BETA22_MEAN_EXP + I.midpoint_error_law(m)
    for broken in (left, BETA22_MEAN_EXP - (good - BETA22_MEAN_EXP), quadrature(p.f, p.pdf, 1, 999),
                   BETA22_MEAN_EXP, one_term):  # trapezoid, wrong sign, wrong m, a "perfect" rule, one term
        with pytest.raises(IdentityError):
            I.check_midpoint_error(broken, m)


def test_su_rule_is_the_trapezoid_rule_here_and_its_check_bites():
    """Su's formula (2), a right Riemann sum: first order in general, second order when f p vanishes at the ends."""
    p = beta_problem(1)
    for m in (100, 1000):
        su = I.su_rule(p.f, p.pdf, m)
        I.check_su_rule_error(su, m)
        x = torch.arange(m + 1, dtype=torch.float64)[:, None] / m  # the trapezoid rule, written out
        g = p.f(x) * p.pdf(x)
        trapezoid = float((g[1:-1].sum() + 0.5 * (g[0] + g[-1])) / m)
        assert su == pytest.approx(trapezoid, rel=1e-14)
        assert (su - BETA22_MEAN_EXP) / (quadrature(p.f, p.pdf, 1, m) - BETA22_MEAN_EXP) == pytest.approx(-2, rel=1e-3)
    for broken in (quadrature(p.f, p.pdf, 1, 1000), I.su_rule(p.f, p.pdf, 999), BETA22_MEAN_EXP,
                   BETA22_MEAN_EXP - (I.su_rule(p.f, p.pdf, 1000) - BETA22_MEAN_EXP)):  # midpoint, wrong m, perfect, sign
        with pytest.raises(IdentityError):
            I.check_su_rule_error(broken, 1000)
    # with p(x) = 2x, which does not vanish at x = 1, it is first order: doubling m halves the error
    errs = [abs(I.su_rule(lambda x: torch.ones(len(x), dtype=torch.float64), lambda x: 2 * x[:, 0], m) - 1) for m in (100, 200)]
    assert errs[0] / errs[1] == pytest.approx(2, rel=1e-9)


@pytest.fixture(scope="module")
def table():
    """The chapter's configuration (40 runs, budgets to 1e5) in dimensions 1-5."""
    return I.budget_table([10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 100_000], (1, 2, 3, 4, 5), reps=40, seed=0)


def test_budget_table_shapes_and_slices(table):
    assert table.quad_m.shape == (5, 9) and table.mc_errors.shape == (5, 9, 40)
    assert np.all(table.quad_evals <= table.budgets[None, :])
    c = table.curves(3)
    assert c.dim == 3 and np.allclose(c.mc_error, np.sqrt((table.mc_errors[2] ** 2).mean(-1)))
    assert np.all(c.mc_lo <= c.mc_hi)
    p = beta_problem(3)
    assert c.quad_error[4] == pytest.approx(abs(quadrature(p.f, p.pdf, 3, 10) - p.exact), rel=1e-12)
    with pytest.raises(ValueError, match="dim"):
        table.curves(7)


def test_rate_checks_pass_on_the_real_table(table):
    I.check_quad_rate(table, 1)
    I.check_quad_rate(table, 2)
    for d in table.dims:
        I.check_mc_rate(table, d)
    I.check_parallel(table, 4)


def _with(table, **fields):
    import dataclasses

    return dataclasses.replace(table, **fields)


def test_rate_checks_catch_broken_quantities(table):
    # a first-order quadrature rule (error ~ 1/m instead of 1/m^2)
    first_order = _with(table, quad_error=table.quad_error * table.quad_m)
    with pytest.raises(IdentityError):
        I.check_quad_rate(first_order, 1)
    # a zero estimator (its error is -6(3-e) at every N), and one biased by 1e-2
    zero = _with(table, mc_errors=np.full_like(table.mc_errors, -BETA22_MEAN_EXP))
    with pytest.raises(IdentityError):
        I.check_mc_rate(zero, 2)
    biased = _with(table, mc_errors=table.mc_errors + 1e-2)
    with pytest.raises(IdentityError):
        I.check_mc_rate(biased, 2)
    # errors falling like N^(-1/3)
    slow = _with(table, mc_errors=table.mc_errors * (table.budgets ** (1 / 6))[None, :, None])
    with pytest.raises(IdentityError):
        I.check_mc_rate(slow, 1)
    # "parallel" is false one dimension away from 4, on either side
    for d in (3, 5):
        with pytest.raises(IdentityError):
            I.check_parallel(table, d)


def test_mc_slope_stderr_matches_simulated_curves():
    rng = np.random.default_rng(0)
    budgets = np.array([10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 100_000])
    reps = 20
    slopes = []
    for _ in range(3000):
        errs = rng.standard_normal((len(budgets), reps)) / np.sqrt(budgets)[:, None]
        slopes.append(I.loglog_slope(budgets, np.sqrt((errs**2).mean(1))))
    assert np.std(slopes) == pytest.approx(I.mc_slope_stderr(budgets, reps), rel=0.08)
    assert np.mean(slopes) == pytest.approx(-0.5, abs=0.003)


def test_grid_for_error_and_crossover():
    for d, target in ((1, 1e-3), (2, 1e-3), (3, 1e-2)):
        m = I.grid_for_error(d, target)
        err = lambda k: abs(I.beta_midpoint_separable(d, k) - BETA22_MEAN_EXP)  # noqa: E731
        assert err(m) <= target < err(m - 1)
    m, e = I.crossover(3)
    std = beta_problem(3).std
    assert e <= std / math.sqrt(float(m) ** 3)
    assert abs(I.beta_midpoint_separable(3, m - 1) - BETA22_MEAN_EXP) > std / math.sqrt(float(m - 1) ** 3)
    assert 2e6 < m**3 < 5e6  # "about three million evaluations"


@pytest.mark.parametrize("call, word", [
    (lambda: I.beta_midpoint_separable(0, 3), "dim"),
    (lambda: I.beta_midpoint_separable(2, 0), "m"),
    (lambda: I.grid_for_error(2, 0.0), "target"),
    (lambda: I.budget_table([], (1,)), "budgets"),
    (lambda: I.budget_table([10], ()), "dims"),
    (lambda: I.budget_table([10], (1,), reps=1), "reps"),
    (lambda: I.loglog_slope([1, 2], [1, -1]), "positive"),
    (lambda: I.mc_slope_stderr([10, 10], 5), "budgets"),
    (lambda: I.check_midpoint_error(float("nan"), 10), "estimate"),
    (lambda: I.midpoint_error_law(10, terms=3), "terms"),
    (lambda: I.su_rule(abs, None, 10), "pdf"),
    (lambda: I.check_su_rule_error(1.0, 0), "m"),
])
def test_new_functions_validate_arguments(call, word):
    with pytest.raises(ValueError, match=word):
        call()

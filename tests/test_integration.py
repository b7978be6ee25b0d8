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

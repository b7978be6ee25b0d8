"""Chapters 7-8: dual-form divergences solved numerically, against their closed forms."""

import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from tutorlib import divergences as dv


def _random_pair(seed, n=6, dim=2, zeros=False):
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
    if zeros:  # disjoint parts of the supports
        p[0], q[1] = 0.0, 0.0
        p, q = p / p.sum(), q / q.sum()
    return p, q, rng.normal(size=(n, dim))


@pytest.mark.parametrize("seed", range(4))
def test_sgan_dual_is_jensen_shannon(seed):
    p, q, x = _random_pair(seed, zeros=seed % 2 == 1)
    value, t = dv.dual_divergence("sgan", p, q, x, return_critic=True)
    assert value == pytest.approx(dv.js_divergence(p, q), abs=1e-9)
    # the optimal critic: sigmoid(T) = p / (p + q) where p + q > 0
    s = 1 / (1 + np.exp(-t))
    both = (p > 0) & (q > 0)
    assert np.allclose(s[both], (p / (p + q))[both], atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_wgan_dual_equals_the_primal_transport_problem(seed):
    p, q, x = _random_pair(seed, n=7, zeros=seed % 2 == 1)
    value, t = dv.dual_divergence("wgan", p, q, x, return_critic=True)
    assert value == pytest.approx(dv.wasserstein_primal(p, q, x), abs=1e-9)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    assert (np.abs(t[:, None] - t[None]) <= d + 1e-9).all()  # the critic is 1-Lipschitz on the support


def test_wgan_dual_in_one_dimension_against_scipy():
    p, q, x = _random_pair(7, n=9, dim=1)
    assert dv.dual_divergence("wgan", p, q, x) == pytest.approx(wasserstein_distance(x[:, 0], x[:, 0], p, q), abs=1e-9)
    assert dv.dual_divergence("wgan", p, q, x, distance="l1") == pytest.approx(
        wasserstein_distance(x[:, 0], x[:, 0], p, q), abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("lam", [0.1, 1.0, 25.0])
def test_qp_dual_equals_its_closed_form_and_its_critic_is_l_constrained(seed, lam):
    p, q, x = _random_pair(seed, zeros=seed % 2 == 1)
    value, t = dv.dual_divergence("qp", p, q, x, lam=lam, return_critic=True)
    assert value == pytest.approx(dv.qp_divergence(p, q, x, lam), rel=1e-7, abs=1e-12)
    delta = t - t.T
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    assert (np.abs(delta) <= lam * d * (1 + 1e-6) + 1e-9).all()  # |T(x,y) - T(y,x)| <= lam d(x,y)
    # where the pair carries weight, the solver's critic is the pointwise optimum
    w = np.outer(p, q) + np.outer(q, p)
    opt = dv.qp_optimal_critic(p, q, x, lam)
    heavy = w > 1e-3
    assert np.allclose(delta[heavy], opt[heavy], atol=1e-3 * lam)


def test_qp_is_lambda_times_a_lambda_free_divergence():
    p, q, x = _random_pair(3)
    values = [dv.dual_divergence("qp", p, q, x, lam=lam) / lam for lam in (0.5, 2.0, 8.0)]
    assert np.allclose(values, values[0], rtol=1e-7)
    # the lambda-free divergence written out with an explicit double loop
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    total = sum(d[i, j] * (p[i] * q[j] - p[j] * q[i]) ** 2 / (p[i] * q[j] + p[j] * q[i])
                for i in range(len(p)) for j in range(len(p)) if p[i] * q[j] + p[j] * q[i] > 0)
    assert values[0] == pytest.approx(total / 4, rel=1e-7)


def test_kl_dual_equals_kl_and_is_infinite_off_support():
    p, q, x = _random_pair(5)
    assert dv.dual_divergence("kl", p, q, x) == pytest.approx(dv.kl_discrete(p, q), abs=1e-8)
    p2, q2, x2 = _random_pair(6, zeros=True)
    assert dv.dual_divergence("kl", q2, p2, x2) == math.inf  # q2 has mass at x_0 where p2 has none
    assert dv.kl_discrete(q2, p2) == math.inf


@pytest.mark.parametrize("kind", ["sgan", "wgan", "qp", "qp-unary", "kl"])
def test_divergences_vanish_only_for_equal_distributions(kind):
    p, q, x = _random_pair(11)
    lam = 2.0 if kind in ("qp", "qp-unary") else None
    assert dv.dual_divergence(kind, p, p, x, lam=lam) == pytest.approx(0.0, abs=1e-9)
    assert dv.dual_divergence(kind, p, q, x, lam=lam) > 1e-4


@pytest.mark.parametrize("d", [0.1, 1.0, 7.5])
def test_delta_divergences(d):
    assert dv.delta_divergence("sgan", 0.0, d) == pytest.approx(math.log(2), abs=1e-10)
    assert dv.delta_divergence("wgan", 0.0, d) == pytest.approx(d, rel=1e-10)
    for lam in (0.3, 10.0):
        assert dv.delta_divergence("qp", 0.0, d, lam=lam) == pytest.approx(lam * d / 2, rel=1e-8)
    assert dv.delta_divergence("kl", 0.0, d) == math.inf
    a, b = np.array([1.0, 2.0]), np.array([1.0 + 3 * d, 2.0 - 4 * d])  # 2-D points at distance 5d
    assert dv.delta_divergence("wgan", a, b) == pytest.approx(5 * d)
    assert dv.delta_divergence("qp", a, b, lam=2.0) == pytest.approx(5 * d)


def test_delta_divergences_of_equal_points_are_zero():
    for kind, lam in [("sgan", None), ("wgan", None), ("qp", 1.0), ("qp-unary", 1.0), ("kl", None)]:
        assert dv.delta_divergence(kind, 1.5, 1.5, lam=lam) == 0.0


@pytest.mark.parametrize("call, word", [
    (lambda: dv.dual_divergence("jsd", [0.5, 0.5], [0.5, 0.5], [0, 1]), "kind"),
    (lambda: dv.dual_divergence("qp", [0.5, 0.5], [0.5, 0.5], [0, 1]), "lam"),
    (lambda: dv.dual_divergence("qp", [0.5, 0.5], [0.5, 0.5], [0, 1], lam=0), "lam"),
    (lambda: dv.dual_divergence("qp", [0.5, 0.5], [0.5, 0.5], [0, 1], lam=-1.0), "lam"),
    (lambda: dv.dual_divergence("sgan", [0.5, 0.5], [0.5, 0.5], [0, 1], lam=1.0), "lam"),
    (lambda: dv.dual_divergence("sgan", [0.5, 0.6], [0.5, 0.5], [0, 1]), "p"),
    (lambda: dv.dual_divergence("sgan", [1.5, -0.5], [0.5, 0.5], [0, 1]), "p"),
    (lambda: dv.dual_divergence("sgan", [0.5, 0.5], [1.0], [0, 1]), "q"),
    (lambda: dv.dual_divergence("sgan", [0.5, 0.5], [0.5, 0.5], [0, 1, 2]), "p"),
    (lambda: dv.dual_divergence("wgan", [0.5, 0.5], [0.5, 0.5], [1, 1]), "distinct"),
    (lambda: dv.dual_divergence("wgan", [0.5, 0.5], [0.5, 0.5], [0, 1], distance="cosine"), "distance"),
    (lambda: dv.delta_divergence("qp", 0.0, 1.0), "lam"),
    (lambda: dv.delta_divergence("wgan", [0.0, 1.0], [1.0]), "alpha and beta"),
    (lambda: dv.qp_divergence([0.5, 0.5], [0.5, 0.5], [0, 1], lam=0.0), "lam"),
    (lambda: dv.dual_divergence("qp-unary", [0.5, 0.5], [0.5, 0.5], [0, 1]), "lam"),
    (lambda: dv.qp_unary_optimum([0.5, 0.5], [0.5, 0.5], [1, 1], lam=1.0), "distinct"),
    (lambda: dv.qp_bound_ratios(np.zeros((3, 3)), [0, 1], lam=1.0), "delta"),
    (lambda: dv.gaussian_pair_js(float("nan"), 1.0), "separation"),
    (lambda: dv.qp_gaussian_critic(0.0, 1.0, 2.0, 0.5, lam=-1.0), "lam"),
])
def test_bad_arguments_raise_value_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()

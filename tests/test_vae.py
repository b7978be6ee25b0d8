"""The VAE: decoder NLLs against torch.distributions, the analytic KL against Monte Carlo, the IWAE
bound, the prior-sampling objective, and the two gradient estimators."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Independent, Normal

from tutorlib import metrics, vae
from tutorlib.divergences import kl_normal_std


def _model(likelihood="bernoulli", sigma=1.0, seed=0, x_dim=6, z_dim=3):
    torch.manual_seed(seed)
    return vae.VAE(x_dim, z_dim, hidden=(16, 16), likelihood=likelihood, sigma=sigma, activation="tanh").double()


X_BIN = torch.tensor([[1.0, 0, 1, 1, 0, 0], [0, 0, 1, 0, 1, 1], [1, 1, 1, 0, 0, 1]], dtype=torch.float64)


def test_bernoulli_nll_against_torch_distributions():
    m = _model()
    z = torch.randn(3, 3, dtype=torch.float64)
    ref = -Independent(Bernoulli(logits=m.decode(z)), 1).log_prob(X_BIN)
    assert torch.allclose(m.nll(X_BIN, z), ref, rtol=1e-12)


@pytest.mark.parametrize("sigma", [0.3, "learned"])
def test_gaussian_nll_against_torch_distributions(sigma):
    m = _model("gaussian", sigma=sigma)
    x, z = torch.rand(3, 6, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    mean, logvar = m.decode(z)
    ref = -Independent(Normal(mean, (0.5 * logvar).exp()), 1).log_prob(x)
    assert torch.allclose(m.nll(x, z), ref, rtol=1e-12)
    if sigma == 0.3:  # fixed sigma: MSE / (2 sigma^2) + constant
        const = 6 * (0.5 * math.log(2 * math.pi) + math.log(0.3))
        assert torch.allclose(m.nll(x, z), ((x - mean) ** 2).sum(-1) / (2 * 0.09) + const, rtol=1e-7)


def test_analytic_kl_against_monte_carlo_and_the_sampled_variant():
    m = _model()
    torch.manual_seed(1)
    n = 40_000
    mu, logvar = m.encode(X_BIN)
    exact = kl_normal_std(mu, logvar)
    big = m.loss_terms(X_BIN.repeat(n, 1), kl="sampled")["kl"].view(n, 3)
    se = big.std(0) / math.sqrt(n)
    assert (torch.abs(big.mean(0) - exact) < 4 * se).all()


def test_iwae_k1_equals_the_all_sampled_elbo_in_expectation():
    m = _model()
    torch.manual_seed(2)
    n = 20_000
    x = X_BIN.repeat(n, 1)
    l1 = m.iwae_bound(x, 1).view(n, 3)
    elbo = m.elbo(x, kl="sampled").view(n, 3)
    se = torch.sqrt(l1.var(0) / n + elbo.var(0) / n)
    assert (torch.abs(l1.mean(0) - elbo.mean(0)) < 4 * se).all()
    # and the analytic-KL ELBO has the same expectation
    elbo_a = m.elbo(x, kl="analytic").view(n, 3)
    assert (torch.abs(elbo_a.mean(0) - elbo.mean(0)) < 4 * torch.sqrt(elbo_a.var(0) / n + elbo.var(0) / n)).all()


def test_iwae_bound_increases_with_k_towards_the_exact_likelihood():
    """With z_dim = 1 the marginal ln q(x) = ln int q(x|z) q(z) dz is computed by quadrature."""
    torch.manual_seed(3)
    m = vae.VAE(6, 1, hidden=16, activation="tanh").double()
    zs = torch.linspace(-8, 8, 4001, dtype=torch.float64)[:, None, None]
    log_joint = -m.nll(X_BIN, zs) + Normal(0.0, 1.0).log_prob(zs[..., 0])
    exact = torch.logsumexp(log_joint, dim=0) + math.log(16 / 4000)
    reps = 4000
    means = []
    for k in (1, 4, 16, 64):
        lk = m.iwae_bound(X_BIN.repeat(reps, 1), k).view(reps, 3)
        means.append((lk.mean(0), lk.std(0) / math.sqrt(reps)))
    for (a, sa), (b, sb) in zip(means[:-1], means[1:]):
        assert (b - a > -3 * torch.sqrt(sa**2 + sb**2)).all()  # non-decreasing in k
    assert (means[-1][0] <= exact + 3 * means[-1][1]).all()  # still a lower bound
    assert (exact - means[0][0] > exact - means[-1][0]).all()  # tighter at k = 64 than at k = 1
    nll = metrics.iwae_nll(m, X_BIN, k=5000, chunk=700)
    assert torch.allclose(nll, -exact, atol=0.02)


def test_prior_sampling_loss_by_hand_and_assignment():
    m = _model()
    torch.manual_seed(4)
    loss, assign, z = m.prior_sampling_loss(X_BIN, 5, return_assignment=True)
    log_lik = torch.stack([-m.nll(X_BIN, zj.expand(3, -1)) for zj in z])  # (k, batch)
    assert torch.allclose(loss, -(torch.logsumexp(log_lik, 0) - math.log(5)).mean())
    assert torch.equal(assign, log_lik.argmax(0))


def test_sample_and_shapes():
    m = _model()
    s = m.sample(7, temperature=0.5)
    assert s.shape == (7, 6) and float(s.min()) >= 0 and float(s.max()) <= 1
    terms = m.loss(X_BIN)
    assert set(terms) == {"loss", "rec", "kl"} and torch.allclose(terms["loss"], terms["rec"] + terms["kl"])


def test_gradient_estimators_agree_in_mean_with_the_closed_form():
    """E[(z - a)^2] = (mu - a)^2 + sigma^2: d/dmu = 2 (mu - a), d/dlogvar = sigma^2."""
    mu, logvar, a = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.2, -0.6], dtype=torch.float64), 1.5
    f = lambda z: ((z - a) ** 2).sum(-1)  # noqa: E731
    exact = torch.cat([2 * (mu - a), logvar.exp()])
    g = torch.Generator().manual_seed(0)
    n = 200_000
    for est in (vae.pathwise_gradients(f, mu, logvar, n, g), vae.score_function_gradients(f, mu, logvar, n, g)):
        se = est.std(0) / math.sqrt(n)
        assert (torch.abs(est.mean(0) - exact) < 4 * se).all()
    pw = vae.pathwise_gradients(f, mu, logvar, n, g).var(0)
    sf = vae.score_function_gradients(f, mu, logvar, n, g).var(0)
    assert (sf > 5 * pw).all()  # the score function is far noisier here


@pytest.mark.parametrize("call, word", [
    (lambda: vae.VAE(0, 2), "x_dim"),
    (lambda: vae.VAE(4, 2, likelihood="poisson"), "likelihood"),
    (lambda: vae.VAE(4, 2, likelihood="gaussian", sigma=0.0), "sigma"),
    (lambda: vae.VAE(4, 2, likelihood="bernoulli", sigma=0.5), "sigma"),
    (lambda: vae.VAE(4, 2, hidden=0), "hidden"),
    (lambda: _model().iwae_bound(X_BIN, 0), "k"),
    (lambda: _model().prior_sampling_loss(X_BIN, 0), "k"),
    (lambda: _model().encode(torch.zeros(2, 5, dtype=torch.float64)), "x"),
    (lambda: _model().decode(torch.zeros(2, 5, dtype=torch.float64)), "z"),
    (lambda: _model().loss(X_BIN, kl="exact"), "kl"),
    (lambda: _model().sample(3, temperature=0), "temperature"),
    (lambda: vae.pathwise_gradients(lambda z: z.sum(-1), torch.zeros(2), torch.zeros(3), 5), "mu and logvar"),
    (lambda: metrics.iwae_nll(object(), X_BIN), "model"),
    (lambda: metrics.bits_per_dim(1.0, 0), "dim"),
])
def test_bad_arguments_raise_value_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()


def test_fit_objectives_reduce_their_losses():
    from tutorlib.data import mnist_subset

    x = mnist_subset("train").x[:400]
    for objective, k in [("elbo", 1), ("elbo-sampled", 1), ("iwae", 4), ("prior", 8)]:
        torch.manual_seed(0)
        m = vae.VAE(784, 4, hidden=32)
        hist = vae.fit(m, x, 60, objective=objective, k=k, batch_size=50, log_every=1)
        first, last = hist["loss"][:10].mean(), hist["loss"][-10:].mean()
        assert last < first - 5, (objective, first, last)


# burda_experiment (the full-mode recipe) is tested in test_fullmode_vae.py.


def test_toy_joint_identities_by_quadrature_and_monte_carlo():
    m = vae.ToyJoint(dim=4, seed=1)
    kl_joint, loss, h = m.joint_kl(), m.loss(), m.data_log_likelihood()
    assert kl_joint == pytest.approx(h + loss, abs=1e-9)  # KL(p(x,z) || q(x,z)) = E ln p(x) + L
    nll = -float((m.p_data * m.log_marginal()).sum())
    assert loss - nll == pytest.approx(m.posterior_gap(), abs=1e-9)  # L = -E ln q(x) + E KL(p(z|x) || q(z|x))
    assert loss > nll > -h  # L >= -E ln q(x) >= -E ln p(x) (Gibbs)
    # Monte Carlo estimate of the joint KL from samples of p(x, z)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    idx = torch.multinomial(m.p_data, n, replacement=True, generator=g)
    z = m.mu[idx] + (0.5 * m.logvar[idx]).exp() * torch.randn(n, generator=g, dtype=torch.float64)
    logits = m.a[None] * z[:, None] + m.b[None]
    log_dec = -F.binary_cross_entropy_with_logits(logits, m.images[idx], reduction="none").sum(1)
    log_enc = -0.5 * (math.log(2 * math.pi) + m.logvar[idx] + (z - m.mu[idx]) ** 2 / m.logvar[idx].exp())
    ratio = m.p_data[idx].log() + log_enc - log_dec + 0.5 * (math.log(2 * math.pi) + z**2)
    assert abs(float(ratio.mean()) - kl_joint) < 4 * float(ratio.std()) / math.sqrt(n)
    with pytest.raises(ValueError, match="dim"):
        vae.ToyJoint(dim=13)


def test_learned_scalar_sigma_is_one_trainable_parameter_shared_by_every_pixel():
    model = vae.VAE(6, 2, hidden=8, likelihood="gaussian", sigma="learned-scalar", sigma_init=0.25)
    assert isinstance(model.log_sigma, torch.nn.Parameter)
    mean, logvar = model.decode(torch.zeros(3, 2))
    torch.testing.assert_close(logvar, torch.full((3, 6), 2 * math.log(0.25)))
    x = torch.rand(3, 6)
    loss = model.loss(x)["loss"]
    loss.backward()
    assert model.log_sigma.grad is not None and model.log_sigma.grad.abs() > 0
    with pytest.raises(ValueError, match="sigma_init"):
        vae.VAE(6, 2, likelihood="gaussian", sigma="learned-scalar", sigma_init=0.0)


def test_loss_terms_use_the_given_noise():
    model = vae.VAE(6, 2, hidden=8, likelihood="gaussian", sigma=0.5)
    x, u = torch.rand(3, 6), torch.randn(3, 2)
    a, b = model.loss_terms(x, u=u), model.loss_terms(x, u=u)
    torch.testing.assert_close(a["rec"], b["rec"])
    mu, logvar = model.encode(x)
    torch.testing.assert_close(a["rec"], model.nll(x, mu + (0.5 * logvar).exp() * u))
    with pytest.raises(ValueError, match="u must be a tensor of shape"):
        model.loss_terms(x, u=torch.randn(3, 3))

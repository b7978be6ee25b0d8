"""Chapter 4, section 4.3 (Su's article 1, section 1.7): more than one draw of z per image.

The S-sample loss has the same expectation as the one-sample loss (checked against Gauss-Hermite
quadrature of a model with a 1-D latent), a variance S times smaller, and ``gradient_noise``
separates the gradient noise that comes from z from the rest.
"""

import math

import numpy as np
import pytest
import torch

from tutorlib import vae
from tutorlib.divergences import kl_normal_std

X = torch.tensor([[1.0, 0, 1, 1, 0, 0], [0, 0, 1, 0, 1, 1], [1, 1, 1, 0, 0, 1]], dtype=torch.float64)


def _model(z_dim=1, seed=0):
    torch.manual_seed(seed)
    return vae.VAE(6, z_dim, hidden=(16,), activation="tanh").double()


def _quadrature_loss(model, x):
    """E_{z~p(z|x)}[-ln q(x|z)] + KL for a 1-D latent, by 80-point Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)  # weight e^{-u^2/2}
    u = torch.tensor(nodes, dtype=torch.float64)
    w = torch.tensor(weights / math.sqrt(2 * math.pi), dtype=torch.float64)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z = mu[None] + (0.5 * logvar).exp()[None] * u[:, None, None]  # (80, batch, 1)
        rec = (w[:, None] * model.nll(x, z)).sum(0)
        return rec + kl_normal_std(mu, logvar)


def test_the_multi_sample_loss_has_the_one_sample_expectation():
    m = _model()
    exact = _quadrature_loss(m, X).mean()
    x = X.repeat(100, 1)  # each call averages over 300 rows: 100 copies of each image
    torch.manual_seed(1)
    var = {}
    with torch.no_grad():
        for samples in (1, 5):
            vals = torch.stack([vae.multi_sample_loss(m, x, samples)["loss"] for _ in range(400)])
            se = vals.std() / math.sqrt(len(vals))
            assert abs(float(vals.mean() - exact)) < 4 * float(se)
            var[samples] = float(vals.var())
    # five independent draws per image: a fifth of the variance (400 calls: about 10 % noise on each variance)
    assert var[5] / var[1] == pytest.approx(1 / 5, rel=0.35)
    assert var[5] / var[1] < 0.5


def test_loss_per_image_matches_quadrature_and_pairs_models_on_the_same_noise():
    m = _model()
    exact = _quadrature_loss(m, X)
    draws = 200_000
    est = vae.loss_per_image(m, X, draws=draws, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        mu, logvar = m.encode(X)
        u = torch.randn((draws, *mu.shape), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        rec = m.nll(X, mu + (0.5 * logvar).exp() * u)
    se = rec.std(0) / math.sqrt(draws)
    assert (torch.abs(est - exact) < 4 * se).all()
    again = vae.loss_per_image(m, X, draws=draws, generator=torch.Generator().manual_seed(2))
    assert torch.equal(est, again)  # the same generator seed: the same noise


def test_one_sample_is_the_vae_loss_with_the_same_noise():
    m = _model(z_dim=3)
    torch.manual_seed(5)
    a = vae.multi_sample_loss(m, X, 1)
    torch.manual_seed(5)
    b = m.loss(X)
    for k in ("loss", "rec", "kl"):
        assert torch.allclose(a[k], b[k], rtol=1e-12)
    torch.manual_seed(5)
    s = vae.multi_sample_loss(m, X, 3, kl="sampled")
    assert set(s) == {"loss", "rec", "kl"} and torch.isfinite(s["loss"])


def test_gradient_noise_from_z_falls_with_the_number_of_draws():
    m = _model(z_dim=2)
    x_train = torch.rand(200, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    one = vae.gradient_noise(m, x_train, samples=1, batch_size=20, reps=150, seed=0)
    assert torch.equal(torch.get_rng_state(), state)  # the global random state is left as it was
    five = vae.gradient_noise(m, x_train, samples=5, batch_size=20, reps=150, seed=0)
    assert five["z"] / one["z"] == pytest.approx(1 / 5, rel=0.3)
    assert one["z"] < one["total"] and five["total"] < one["total"]
    assert vae.gradient_noise(m, x_train, samples=1, batch_size=20, reps=150, seed=0) == one  # seeded


def test_fit_with_five_samples_trains_and_rejects_other_objectives():
    m = _model(z_dim=2).float()
    x = torch.rand(300, 6, generator=torch.Generator().manual_seed(0))
    hist = vae.fit(m, x, 60, samples=5, batch_size=50, log_every=1)
    assert hist["loss"][-10:].mean() < hist["loss"][:10].mean()
    with pytest.raises(ValueError, match="samples"):
        vae.fit(m, x, 5, objective="iwae", k=2, samples=5)
    with pytest.raises(ValueError, match="samples"):
        vae.fit(m, x, 5, samples=0)


@pytest.mark.parametrize("call, word", [
    (lambda: vae.multi_sample_loss(_model(), X, 0), "samples"),
    (lambda: vae.multi_sample_loss(_model(), X, 2, kl="exact"), "kl"),
    (lambda: vae.loss_per_image(_model(), X, draws=0), "draws"),
    (lambda: vae.gradient_noise(_model(), X, batch_size=10), "x_train"),
    (lambda: vae.gradient_noise(_model(), X, reps=1, batch_size=2), "reps"),
])
def test_bad_arguments_raise_value_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()

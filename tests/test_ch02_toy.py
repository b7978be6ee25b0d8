"""Chapter 2: the toy joint model's checks (brute force, the best Gaussian, the bounds), the
Bhattacharyya argument, the sigma^2 sweep and its checks -- each fed a broken quantity too."""

import math

import numpy as np
import pytest
import torch

from tutorlib import vae
from tutorlib.checks import IdentityError


@pytest.fixture()
def toy():
    return vae.ToyJoint(dim=4, seed=0)


def test_bruteforce_joint_kl_agrees_with_the_grid(toy):
    brute = vae.toy_joint_kl_bruteforce(toy.p_data, toy.mu, toy.logvar, toy.a, toy.b)
    assert brute == pytest.approx(toy.joint_kl(), abs=1e-10)
    vae.check_toy_joint_kl(toy)


class _WrongPrior(vae.ToyJoint):
    def log_prior(self):  # N(0, 2^2) where the model says N(0, 1): the grid identities still hold
        return -0.5 * (math.log(2 * math.pi * 4.0) + self.z**2 / 4.0)


class _WrongDecoder(vae.ToyJoint):
    def log_decoder(self):  # a sign error in the logits
        logits = -(self.a[None, :, None] * self.z[None, None, :] + self.b[None, :, None])
        x = self.images[:, :, None]
        return -torch.nn.functional.binary_cross_entropy_with_logits(
            logits.expand(len(x), -1, -1), x.expand(-1, -1, len(self.z)), reduction="none").sum(1)


def test_bruteforce_check_catches_a_broken_decoder_that_the_identities_miss():
    broken = _WrongDecoder(dim=4, seed=0)
    # both grid identities hold for the broken decoder: they cannot see the bug ...
    assert broken.joint_kl() == pytest.approx(broken.data_log_likelihood() + broken.loss(), abs=1e-11)
    nll = -float((broken.p_data * broken.log_marginal()).sum())
    assert broken.loss() == pytest.approx(nll + broken.posterior_gap(), abs=1e-11)
    with pytest.raises(IdentityError):  # ... the independent brute force does
        vae.check_toy_joint_kl(broken)


def test_bruteforce_check_catches_a_broken_prior():
    with pytest.raises(IdentityError):
        vae.check_toy_joint_kl(_WrongPrior(dim=4, seed=0))


def test_fit_encoder_closes_the_gap_to_the_gaussian_limit(toy):
    gap0 = toy.posterior_gap()
    with pytest.raises(IdentityError):
        vae.check_gaussian_optimum(toy)
    gaps = toy.fit_encoder()
    assert gaps[0] == pytest.approx(gap0, rel=1e-9)
    assert toy.posterior_gap() == pytest.approx(gaps[-1], abs=1e-9)
    assert 0 < gaps[-1] < gap0 / 100  # near 0 but not 0: the exact posterior is not Gaussian
    vae.check_gaussian_optimum(toy)
    nudged = toy.with_model(0)
    nudged.a, nudged.b, nudged.mu, nudged.logvar = toy.a, toy.b, toy.mu + 1e-3, toy.logvar
    with pytest.raises(IdentityError):  # an encoder off by 1e-3 in its means is not the optimum
        vae.check_gaussian_optimum(nudged)


def test_kl_minus_loss_is_a_constant_but_the_bhattacharyya_gap_is_not(toy):
    models = [toy.with_model(s) for s in range(6)]
    diffs = [m.joint_kl() - m.loss() for m in models]
    assert np.allclose(diffs, toy.data_log_likelihood(), atol=1e-11)
    gaps = [m.bhattacharyya_joint() - m.bhattacharyya_without_density() for m in models]
    assert max(gaps) - min(gaps) > 0.1
    # D_B of the joints against a direct grid sum of sqrt(p(x, z) q(x, z))
    m = models[0]
    joint_p = m.p_data[:, None].log() + m.log_encoder()
    joint_q = m.log_decoder() + m.log_prior()
    bc = float(((0.5 * (joint_p + joint_q)).exp().sum() * m.dz))
    assert m.bhattacharyya_joint() == pytest.approx(-math.log(bc), abs=1e-12)


def test_check_bounds_catches_a_broken_chain():
    vae.check_bounds(6.4, 3.7, 1.7)
    for broken in ((3.0, 3.7, 1.7), (6.4, 1.0, 1.7), (6.4, 3.7, -0.1)):
        with pytest.raises(IdentityError):
            vae.check_bounds(*broken)


def test_check_ml_sigma2_passes_for_the_gaussian_nll_and_catches_a_wrong_one():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 30, generator=g, dtype=torch.float64)
    mean = x + 0.1 * torch.randn(50, 30, generator=g, dtype=torch.float64)
    target = float(((x - mean) ** 2).mean())

    def nll(s2):
        return float(-vae.gaussian_log_prob(x, mean, torch.full_like(mean, math.log(s2))).mean())

    assert vae.check_ml_sigma2(nll, target) == pytest.approx(target, rel=1e-6)

    def nll_broken(s2):  # ln sigma instead of ln sigma^2 in the normaliser: minimised at 2 e / D
        return float((((x - mean) ** 2) / (2 * s2) + 0.25 * math.log(s2)).sum(-1).mean())

    with pytest.raises(IdentityError):
        vae.check_ml_sigma2(nll_broken, target)
    with pytest.raises(IdentityError):  # a 10 % error in the squared error
        vae.check_ml_sigma2(nll, 1.1 * target)


def _fake_sweep(losses, ml):
    return {s2: {"loss": l, "ml_sigma2": m} for s2, l, m in zip((0.003, 0.03, 1.0), losses, ml)}


def test_check_sigma2_consistent():
    assert vae.check_sigma2_consistent(_fake_sweep((1700.0, -290.0, 740.0), (0.025, 0.025, 0.047))) == 0.03
    with pytest.raises(IdentityError):  # the loss dropped its ln sigma^2 term: it favours the largest sigma^2
        vae.check_sigma2_consistent(_fake_sweep((3200.0, 320.0, 18.0), (0.025, 0.025, 0.047)))
    with pytest.raises(ValueError, match="results"):
        vae.check_sigma2_consistent({})


def test_sigma_sweep_reports_consistent_quantities():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 784, generator=g)
    out = vae.sigma_sweep(x, x[:8], [0.01, 1.0], steps=3, z_dim=2, hidden=8, x_eval=x[:16], eval_draws=2)
    for s2, r in out.items():
        assert set(r) >= {"model", "recon", "samples", "mse", "sq_err", "rec", "kl", "loss", "ml_sigma2"}
        assert r["ml_sigma2"] == pytest.approx(r["sq_err"] / 784, rel=1e-12)
        assert r["loss"] == pytest.approx(r["rec"] + r["kl"], rel=1e-12)
        assert r["recon"].shape == (8, 784) and r["samples"].shape == (16, 784)
        # the reconstruction term is the Gaussian NLL: e / (2 sigma^2) + D/2 ln(2 pi sigma^2), here to float32 rounding
        assert r["rec"] == pytest.approx(r["sq_err"] / (2 * s2) + 392 * math.log(2 * math.pi * s2), rel=1e-4)
    with pytest.raises(ValueError, match="eval_draws"):
        vae.sigma_sweep(x, x[:8], [0.01], steps=1, eval_draws=0)

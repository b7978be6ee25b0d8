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


class _WrongMarginal(vae.ToyJoint):
    def log_marginal(self):  # forgets the grid spacing dz: ln q(x) off by ln dz = -6.7
        return torch.logsumexp(self.log_decoder() + self.log_prior(), dim=-1)


def test_bruteforce_log_marginal_and_gap_agree_with_the_grid(toy):
    brute = np.array(vae.toy_log_marginal_bruteforce(toy.a, toy.b))
    assert np.abs(brute - toy.log_marginal().numpy()).max() < 1e-11
    assert np.exp(brute).sum() == pytest.approx(1.0, abs=1e-12)  # q(x) is a distribution over the 16 images
    gap = vae.toy_posterior_gap_bruteforce(toy.p_data, toy.mu, toy.logvar, toy.a, toy.b)
    assert gap == pytest.approx(toy.posterior_gap(), abs=1e-11)
    vae.check_toy_posterior(toy)
    toy.fit_encoder()
    vae.check_toy_posterior(toy)


def test_posterior_check_catches_a_wrong_marginal_that_the_identity_misses():
    broken = _WrongMarginal(dim=4, seed=0)
    nll = -float((broken.p_data * broken.log_marginal()).sum())
    # L = -E ln q(x) + gap holds for any ln q(x): it cancels from the gap ...
    assert broken.loss() == pytest.approx(nll + broken.posterior_gap(), abs=1e-11)
    with pytest.raises(IdentityError, match="ln q"):  # ... the brute force does not
        vae.check_toy_posterior(broken)


def test_posterior_check_catches_a_broken_decoder():
    with pytest.raises(IdentityError):
        vae.check_toy_posterior(_WrongDecoder(dim=4, seed=0))


def test_brute_force_tolerance_is_tight_enough_for_a_small_error(toy):
    class _Shifted(vae.ToyJoint):
        def joint_kl(self):  # an error of 1e-9 nats, far below anything a plot could show
            return super().joint_kl() + 1e-9

    with pytest.raises(IdentityError):
        vae.check_toy_joint_kl(_Shifted(dim=4, seed=0))


def test_bruteforce_check_catches_a_broken_prior():
    with pytest.raises(IdentityError):
        vae.check_toy_joint_kl(_WrongPrior(dim=4, seed=0))


def test_fit_encoder_closes_the_gap_to_the_gaussian_limit(toy):
    gap0 = toy.posterior_gap()
    with pytest.raises(IdentityError):
        vae.check_gaussian_optimum(toy)
    vae.check_gaussian_optimum(toy, optimal=False)  # the random table is not the optimum
    gaps = toy.fit_encoder()
    assert gaps[0] == pytest.approx(gap0, rel=1e-9)
    assert toy.posterior_gap() == pytest.approx(gaps[-1], abs=1e-9)
    assert 0 < gaps[-1] < gap0 / 100  # near 0 but not 0: the exact posterior is not Gaussian
    vae.check_gaussian_optimum(toy)
    nudged = toy.with_model(0)
    nudged.a, nudged.b, nudged.mu, nudged.logvar = toy.a, toy.b, toy.mu + 1e-3, toy.logvar
    with pytest.raises(IdentityError):  # an encoder off by 1e-3 in its means is not the optimum
        vae.check_gaussian_optimum(nudged)
    with pytest.raises(IdentityError, match="already is the best Gaussian"):  # the opposite claim fails too
        vae.check_gaussian_optimum(toy, optimal=False)
    first, second = vae.gaussian_optimum_residuals(nudged)
    assert np.abs(first).max() > 1e-4 and np.abs(second).max() < 1e-3  # a shifted mean breaks the first condition


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


def test_check_kl_falls():
    good = {0.003: {"kl": 68.0}, 0.03: {"kl": 38.0}, 1.0: {"kl": 4.0}}
    vae.check_kl_falls(good)
    with pytest.raises(IdentityError, match="0.03 to 1.0"):  # the KL term rises at the largest sigma^2
        vae.check_kl_falls({0.003: {"kl": 68.0}, 0.03: {"kl": 38.0}, 1.0: {"kl": 40.0}})
    with pytest.raises(IdentityError):  # a flat KL (e.g. the weight 1 / (2 sigma^2) applied to the KL too)
        vae.check_kl_falls({0.003: {"kl": 38.0}, 0.03: {"kl": 38.0}})
    with pytest.raises(ValueError, match="results"):
        vae.check_kl_falls({0.1: {"kl": 1.0}})


def test_sigma_sweep_reports_consistent_quantities():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 784, generator=g)
    out = vae.sigma_sweep(x, x[:8], [0.01, 1.0], steps=3, z_dim=2, hidden=8, x_eval=x[:16], eval_draws=2)
    for s2, r in out.items():
        assert set(r) >= {"model", "recon", "samples", "mse", "sq_err", "rec", "kl", "loss", "ml_sigma2"}
        assert r["ml_sigma2"] == pytest.approx(r["sq_err"] / 784, rel=1e-12)
        assert r["loss"] == pytest.approx(r["rec"] + r["kl"], rel=1e-12)
        assert r["recon"].shape == (8, 784) and r["samples"].shape == (16, 784) and r["dim"] == 784
        # the loss at the ML variance is no larger than at the trained one (sigma^2 = e / D minimises it)
        assert r["loss_at_ml"] <= r["loss"] + 1e-9
        assert r["loss_at_ml"] == pytest.approx(392 * (1 + math.log(2 * math.pi * r["ml_sigma2"])) + r["kl"], rel=1e-12)
        # the reconstruction term is the Gaussian NLL: e / (2 sigma^2) + D/2 ln(2 pi sigma^2), here to float32 rounding
        assert r["rec"] == pytest.approx(r["sq_err"] / (2 * s2) + 392 * math.log(2 * math.pi * s2), rel=1e-4)
    # every sigma^2 decodes the same prior draws: z from a generator seeded with seed + 1
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    for r in out.values():
        with torch.no_grad():
            assert torch.equal(r["samples"], r["model"].mean(z).clamp(0, 1))
    with pytest.raises(ValueError, match="eval_draws"):
        vae.sigma_sweep(x, x[:8], [0.01], steps=1, eval_draws=0)

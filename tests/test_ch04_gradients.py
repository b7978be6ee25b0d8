"""Chapter 4: the pathwise and score-function estimators and the check that compares them.

Every check the chapter makes goes through :func:`tutorlib.vae.check_gradients`. Here it is fed
good estimators (it passes) and broken ones: an estimator that returns zeros, one with a wrong
sign, a wrong factor or a 10 % error, a "baseline" that depends on the sample (it must raise),
and too few samples for the check to be able to fail (it must refuse).

The stand-in for the chapter's VAE term is a quadratic ``f(z) = c + g.z + sum_i h_i z_i^2`` with a
large constant ``c`` (the VAE term is about 150 nats) and curvatures like the decoder's: its
gradient is known exactly, and the score function is as noisy on it as on the VAE term, so the
chapter's sample sizes (50,000 pathwise draws, 400,000 or 100,000 score-function draws) can be
tested in the same regime, in milliseconds.
"""

import math

import pytest
import torch

from tutorlib import IdentityError, vae

F64 = dict(dtype=torch.float64)
DIM = 8
MU = torch.linspace(-0.1, 0.1, DIM, **F64)
LOGVAR = torch.log(torch.linspace(0.05, 0.13, DIM, **F64))  # sigma 0.22 .. 0.36, like the chapter's encoder
C = 150.0
G = torch.tensor([-2.8, 2.9, -2.7, -4.0, 3.0, 0.8, 3.6, -3.8], **F64)
H = torch.full((DIM,), 6.0, **F64)


def f_quadratic(z):
    return C + z @ G + (H * z**2).sum(-1)


EXACT = torch.cat([G + 2 * H * MU, H * LOGVAR.exp()])  # d/dmu, d/dlogvar of E f = c + g.mu + sum h (mu^2 + sigma^2)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def chapter_estimates():
    """The chapter's sample sizes: 50,000 pathwise draws, 400,000 score-function draws with and without b."""
    pw = vae.pathwise_gradients(f_quadratic, MU, LOGVAR, 50_000, _gen(0))
    b = float(f_quadratic(MU + (0.5 * LOGVAR).exp() * torch.randn(2000, DIM, generator=_gen(1), **F64)).mean())
    sf, sf_b = vae.score_function_gradients(f_quadratic, MU, LOGVAR, 400_000, _gen(2), baseline=[0.0, b])
    return pw, sf, sf_b, b


def test_both_estimators_pass_against_the_exact_gradient_and_each_other(chapter_estimates):
    pw, sf, sf_b, _ = chapter_estimates
    vae.check_gradients("pathwise vs exact", pw, EXACT)
    vae.check_gradients("score function vs exact", sf, EXACT)
    vae.check_gradients("score function vs pathwise", sf, pw)
    vae.check_gradients("baseline vs pathwise", sf_b, pw)


def test_a_zero_estimator_fails_every_check_of_the_chapter(chapter_estimates):
    pw, sf, sf_b, _ = chapter_estimates
    zeros = torch.zeros_like(sf)
    with pytest.raises(IdentityError, match="largest"):
        vae.check_gradients("zeros vs pathwise", zeros, pw)
    # what a "baseline" equal to f(z) itself (not a constant) would give: every estimate zero
    with pytest.raises(IdentityError, match="largest"):
        vae.check_gradients("zeros vs exact", torch.zeros_like(pw), EXACT)


def test_the_plain_score_function_check_has_power_against_zeros(chapter_estimates, capsys):
    """The chapter's weakest check (no baseline): the score function's noise stands in for the
    zero estimator's, and a zero mean must still be more than 4 standard errors off."""
    pw, sf, _, _ = chapter_estimates
    noise_only = sf - sf.mean(0) + 0.0  # same spread as the score function, mean zero
    with pytest.raises(IdentityError, match="largest"):
        vae.check_gradients("noise with mean zero vs pathwise", noise_only, pw)
    vae.check_gradients("score function vs pathwise", sf, pw)
    power = float(capsys.readouterr().out.split("would be ")[-1].split(" standard")[0])
    assert power > 4


@pytest.mark.parametrize("breakage", ["sign of d/dlogvar", "d/dlogvar without the 1/2", "10% on d/dmu_4",
                                      "sign of d/dmu_1"])
def test_wrong_estimators_fail_the_baseline_check(chapter_estimates, breakage):
    pw, _, sf_b, _ = chapter_estimates
    broken = sf_b.clone()
    if breakage == "sign of d/dlogvar":
        broken[:, DIM:] *= -1
    elif breakage == "d/dlogvar without the 1/2":
        broken[:, DIM:] *= 2
    elif breakage == "10% on d/dmu_4":
        broken[:, 3] *= 1.1
    else:
        broken[:, 0] *= -1
    with pytest.raises(IdentityError, match="largest"):
        vae.check_gradients(breakage, broken, pw)


def test_a_ten_percent_error_fails_against_the_exact_gradient(chapter_estimates):
    pw, _, _, _ = chapter_estimates
    vae.check_gradients("pathwise vs exact", pw, EXACT)
    with pytest.raises(IdentityError):
        vae.check_gradients("10% too large", pw * 1.1, EXACT)


@pytest.mark.parametrize("frac", [0.5, 1.5])
def test_the_exercise_sweep_at_100000_draws_passes_and_fails_for_zeros(chapter_estimates, frac):
    pw, _, _, b = chapter_estimates
    est = vae.score_function_gradients(f_quadratic, MU, LOGVAR, 100_000, _gen(3), baseline=frac * b)
    vae.check_gradients(f"baseline {frac} b", est, pw)
    with pytest.raises(IdentityError, match="largest"):
        vae.check_gradients("zeros", torch.zeros_like(est), pw)
    with pytest.raises(IdentityError, match="largest"):
        vae.check_gradients("mean-zero noise", est - est.mean(0), pw)


def test_too_few_samples_are_refused():
    """2,000 score-function draws of the noisy term cannot tell the estimator from zero."""
    pw = vae.pathwise_gradients(f_quadratic, MU, LOGVAR, 50_000, _gen(0))
    sf = vae.score_function_gradients(f_quadratic, MU, LOGVAR, 2000, _gen(5))
    with pytest.raises(IdentityError, match="too weak"):
        vae.check_gradients("2,000 draws", sf, pw)


def test_the_first_chapter_check_rsample_against_the_closed_form():
    """Section 4.1: per-draw gradients of (z - a)^2 through rsample, w.r.t. (mu, ln sigma)."""
    n, a, mu0, ls0 = 200_000, 1.5, 0.5, -0.3
    torch.manual_seed(0)
    mu_n = torch.full((n,), mu0, requires_grad=True)
    ls_n = torch.full((n,), ls0, requires_grad=True)
    z = torch.distributions.Normal(mu_n, ls_n.exp()).rsample()
    grads = torch.stack(torch.autograd.grad(((z - a) ** 2).sum(), [mu_n, ls_n]), dim=1)
    sigma = math.exp(ls0)
    names = ["d/dmu", "d/dln sigma"]
    vae.check_gradients("4.1", grads, [2 * (mu0 - a), 2 * sigma**2], components=names)
    with pytest.raises(IdentityError):  # d/dsigma (2 sigma) instead of d/dln sigma (2 sigma^2)
        vae.check_gradients("4.1, d/dsigma", grads, [2 * (mu0 - a), 2 * sigma], components=names)
    with pytest.raises(IdentityError):  # the factor 1/2 of d/dlogvar applied to d/dln sigma
        vae.check_gradients("4.1, halved", grads, [2 * (mu0 - a), sigma**2], components=names)
    with pytest.raises(IdentityError):
        vae.check_gradients("4.1, zeros", torch.zeros_like(grads), [2 * (mu0 - a), 2 * sigma**2], components=names)


def test_noise_free_components_must_match_exactly():
    est = torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]], **F64)
    vae.check_gradients("constant and right", est, [1.0, 2.0], components=["a", "b"])
    with pytest.raises(IdentityError):
        vae.check_gradients("constant and wrong", est, [1.0, 2.5], components=["a", "b"])


def test_baselines_from_the_same_draws_differ_by_the_score_exactly():
    """Several baselines share one set of draws; (f - b1) s - (f - b2) s = (b2 - b1) s."""
    sf = vae.score_function_gradients(f_quadratic, MU, LOGVAR, 5000, _gen(7), baseline=[0.0, 10.0, 150.0])
    one = vae.score_function_gradients(f_quadratic, MU, LOGVAR, 5000, _gen(7), baseline=10.0)
    assert sf.shape == (3, 5000, 2 * DIM)
    assert torch.equal(sf[1], one)
    u = torch.randn(5000, DIM, generator=_gen(7), **F64)  # the draws the estimator used
    sigma = (0.5 * LOGVAR).exp()
    score = torch.cat([u / sigma, 0.5 * (u**2 - 1)], dim=1)
    assert torch.allclose(sf[0] - sf[2], 150.0 * score, rtol=1e-12, atol=1e-9)


def test_chunked_evaluation_equals_one_pass():
    n = vae.CHUNK * 2 + 17
    pw = vae.pathwise_gradients(f_quadratic, MU, LOGVAR, n, _gen(8))
    u = torch.randn(n, DIM, generator=_gen(8), **F64)
    sigma = (0.5 * LOGVAR).exp()
    z = (MU + sigma * u).requires_grad_(True)
    (d,) = torch.autograd.grad(f_quadratic(z).sum(), z)
    assert torch.allclose(pw, torch.cat([d, d * sigma * u / 2], 1), rtol=1e-13, atol=1e-13)
    sf = vae.score_function_gradients(f_quadratic, MU, LOGVAR, n, _gen(8))
    with torch.no_grad():
        fz = f_quadratic(MU + sigma * u)
    assert torch.allclose(sf, fz[:, None] * torch.cat([u / sigma, 0.5 * (u**2 - 1)], 1), rtol=1e-13, atol=1e-10)


@pytest.mark.parametrize("call, word", [
    (lambda: vae.check_gradients("", torch.zeros(3, 2), [0.0, 0.0]), "label"),
    (lambda: vae.check_gradients("x", torch.zeros(3), [0.0]), "estimates"),
    (lambda: vae.check_gradients("x", torch.zeros(3, 2), [0.0, 0.0, 0.0]), "reference"),
    (lambda: vae.check_gradients("x", torch.zeros(3, 3), [0.0] * 3), "components"),
    (lambda: vae.check_gradients("x", torch.zeros(3, 2), [0.0] * 2, components=["a"]), "components"),
    (lambda: vae.check_gradients("x", torch.zeros(3, 2), [0.0] * 2, n_se=0), "n_se"),
    (lambda: vae.check_gradients("x", torch.full((3, 2), math.nan), [0.0] * 2), "estimates"),
    (lambda: vae.score_function_gradients(f_quadratic, MU, LOGVAR, 10, baseline=[]), "baseline"),
    (lambda: vae.score_function_gradients(f_quadratic, MU, LOGVAR, 10, baseline=math.inf), "baseline"),
    (lambda: vae.pathwise_gradients(lambda z: z, MU, LOGVAR, 10), "f must map"),
    (lambda: vae.pathwise_gradients(f_quadratic, MU, LOGVAR.float(), 10), "mu and logvar"),
    (lambda: vae.pathwise_gradients(f_quadratic, MU, LOGVAR, 0), "n"),
    (lambda: vae.gradient_names(0), "dim"),
])
def test_bad_arguments_raise_value_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()

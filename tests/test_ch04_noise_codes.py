"""Chapter 4, sections 4.3 and 4.4: the 1/S law of the gradient noise from z, and the rescaling of the
codes that shows the loss wants E[mu_i^2 + sigma_i^2] = 1.

Each check is fed good inputs (it passes) and broken ones: five "draws" that are one draw reused, a
1/S^2 law, too few repetitions; a rescaling that the decoder does not undo, one that forgets sigma, and a
wrong prediction.
"""

import math

import numpy as np
import pytest
import torch

from tutorlib import IdentityError, vae

X_TRAIN = torch.rand(200, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
X = torch.bernoulli(X_TRAIN[:50], generator=torch.Generator().manual_seed(1))


def _model(z_dim=2, seed=0):
    torch.manual_seed(seed)
    return vae.VAE(6, z_dim, hidden=(16,), activation="tanh").double()


# --- the jackknife standard error of a summed variance -------------------------------------------

def test_trace_cov_is_the_summed_sample_variance_with_a_calibrated_standard_error():
    g = torch.Generator().manual_seed(3)
    sd = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    true = float((sd**2).sum())
    ests, ses = [], []
    for _ in range(400):
        x = torch.randn(40, 4, generator=g, dtype=torch.float64) * sd
        v, se = vae._trace_cov(x)
        assert v == pytest.approx(float(x.var(0).sum()), rel=1e-12)
        ests.append(v)
        ses.append(se)
    ests, ses = np.array(ests), np.array(ses)
    assert ests.mean() == pytest.approx(true, rel=0.03)  # unbiased
    assert np.median(ses) == pytest.approx(ests.std(), rel=0.2)  # the standard error matches the spread
    assert np.mean(np.abs(ests - true) < 2 * ses) > 0.9


def test_trace_cov_leave_one_out_values_are_exact():
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    v, se = vae._trace_cov(x)
    loo = torch.tensor([float(torch.cat([x[:i], x[i + 1:]]).var(0).sum()) for i in range(7)], dtype=torch.float64)
    want = math.sqrt(6 / 7 * float(((loo - loo.mean()) ** 2).sum()))
    assert se == pytest.approx(want, rel=1e-10)


# --- the 1/S law --------------------------------------------------------------------------------------

def _noise(model, samples, **kw):
    args = dict(batch_size=20, reps=40, batches=3, seed=0) | kw
    return vae.gradient_noise(model, X_TRAIN, samples=samples, **args)


def test_gradient_noise_returns_standard_errors_and_same_batches_for_every_s():
    m = _model()
    one = _noise(m, 1)
    assert set(one) == {"z", "z_se", "total", "total_se", "signal"}
    assert 0 < one["z_se"] < one["z"] and 0 < one["total_se"] < one["total"]
    assert _noise(m, 1) == one  # seeded
    assert vae.gradient_noise(m, X_TRAIN, samples=1, batch_size=20, reps=40, seed=0)["z"] != one["z"]  # batches=1


def test_check_gradient_noise_passes_for_five_independent_draws():
    m = _model()
    ratio = vae.check_gradient_noise(_noise(m, 1), _noise(m, 5), samples=5)
    assert 3.5 < ratio < 7


def test_check_gradient_noise_fails_when_the_draws_are_one_draw_reused(monkeypatch):
    m = _model()
    one = _noise(m, 1)
    real = vae.multi_sample_loss

    def reused(model, x, samples, kl="analytic", beta=1.0):  # the bug: one u for all samples
        mu, logvar = model.encode(x)
        u = torch.randn_like(mu).expand(samples, *mu.shape)
        z = model.reparameterize(mu, logvar, samples, u=u.contiguous())
        from tutorlib.divergences import kl_normal_std
        rec, kl_term = model.nll(x, z).mean(0).mean(), kl_normal_std(mu, logvar).mean()
        return {"loss": rec + kl_term, "rec": rec, "kl": kl_term}

    monkeypatch.setattr(vae, "multi_sample_loss", reused)
    five = _noise(m, 5)
    monkeypatch.setattr(vae, "multi_sample_loss", real)
    with pytest.raises(IdentityError, match="ln\\(variance ratio\\)"):
        vae.check_gradient_noise(one, five, samples=5)


@pytest.mark.parametrize("factor", [1 / 5, 5.0, 1.3])  # a 1/S^2 law, no reduction, a 30 % error
def test_check_gradient_noise_fails_on_a_wrong_law(factor):
    one = {"z": 300.0, "z_se": 12.0}
    five = {"z": 60.0 * factor, "z_se": 2.4 * factor}
    with pytest.raises(IdentityError, match="ln\\(variance ratio\\)"):
        vae.check_gradient_noise(one, five, samples=5)
    vae.check_gradient_noise(one, {"z": 60.0, "z_se": 2.4}, samples=5)


def test_check_gradient_noise_refuses_a_check_too_noisy_to_fail():
    with pytest.raises(IdentityError, match="too weak"):
        vae.check_gradient_noise({"z": 300.0, "z_se": 150.0}, {"z": 60.0, "z_se": 30.0}, samples=5)


# --- rescaling the codes ------------------------------------------------------------------------

def test_rescaled_codes_leave_every_reconstruction_unchanged_and_move_only_the_kl():
    m = _model()
    c = torch.tensor([0.5, 2.0], dtype=torch.float64)
    s = vae.rescale_codes(m, c)
    with torch.no_grad():
        mu, logvar = m.encode(X)
        mu2, logvar2 = s.encode(X)
        torch.testing.assert_close(mu2, c * mu, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(logvar2, logvar + 2 * torch.log(c), rtol=1e-12, atol=1e-12)
        u = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        torch.testing.assert_close(s.nll(X, mu2 + (0.5 * logvar2).exp() * u),
                                   m.nll(X, mu + (0.5 * logvar).exp() * u), rtol=1e-12, atol=1e-10)
    assert torch.equal(m.encode(X)[0], mu)  # the original model is untouched


def test_check_code_rescaling_passes_and_the_fall_is_never_negative():
    out = vae.check_code_rescaling(_model(), X, draws=5)
    m = out["m"].double()
    assert out["predicted"] == pytest.approx(float(0.5 * (m - 1 - torch.log(m)).sum()), rel=1e-6)
    assert out["predicted"] >= 0


def _no_decoder_compensation(model, scale):
    s = vae.rescale_codes(model, scale)
    s.decoder[0].weight.data = model.decoder[0].weight.data.clone()
    return s


def _sigma_not_scaled(model, scale):
    s = vae.rescale_codes(model, scale)
    s.encoder[-1].bias.data[model.z_dim:] = model.encoder[-1].bias.data[model.z_dim:].clone()
    return s


def _ten_percent_more(model, scale):
    return vae.rescale_codes(model, 1.1 * torch.as_tensor(scale))


@pytest.mark.parametrize("broken", [_no_decoder_compensation, _sigma_not_scaled, _ten_percent_more])
def test_check_code_rescaling_fails_for_a_broken_rescaling(broken):
    m = _model()
    with torch.no_grad():  # make the codes wide, as in the chapter, so that every breakage matters
        m.encoder[-1].weight[:2] *= 3
    with pytest.raises(IdentityError):
        vae.check_code_rescaling(m, X, draws=5, rescale=broken)


@pytest.mark.parametrize("call, word", [
    (lambda: vae.rescale_codes(_model(), [1.0]), "scale"),
    (lambda: vae.rescale_codes(_model(), [1.0, -1.0]), "scale"),
    (lambda: vae.rescale_codes(vae.BurdaVAE(6, 2, hidden=(4,)), [1.0, 1.0]), "model"),
    (lambda: vae.check_code_rescaling(_model(), X, draws=0), "draws"),
    (lambda: vae.check_gradient_noise({"z": 1.0, "z_se": 0.1}, {"z": 1.0, "z_se": 0.1}, samples=1), "samples"),
    (lambda: vae.check_gradient_noise({"z": 1.0}, {"z": 1.0, "z_se": 0.1}, samples=5), "one"),
    (lambda: vae.gradient_noise(_model(), X_TRAIN, batches=0, batch_size=20), "batches"),
])
def test_bad_arguments_raise_value_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()

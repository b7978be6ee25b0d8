"""Chapter 3: importance weights, the IWAE bound's checks and the gradient SNR (tutorlib.iwae), the
prior-sampling tools and the checks on a trained VAE (tutorlib.vae). Every check is fed a broken
quantity and must raise."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch.distributions import Normal

from tutorlib import IdentityError, iwae, metrics, vae

ROOT = Path(__file__).resolve().parents[1]
X_BIN = torch.tensor([[1.0, 0, 1, 1, 0, 0], [0, 0, 1, 0, 1, 1], [1, 1, 1, 0, 0, 1]], dtype=torch.float64)


def _model(seed=0, z_dim=3, likelihood="bernoulli", sigma=1.0):
    torch.manual_seed(seed)
    return vae.VAE(6, z_dim, hidden=(16, 16), activation="tanh", likelihood=likelihood, sigma=sigma).double()


class ShiftedWeights(vae.VAE):
    """A broken VAE: every log weight is off by `shift` nats (e.g. a forgotten constant)."""

    shift = 1.0

    def log_weights(self, x, k, u=None):
        return super().log_weights(x, k, u=u) + self.shift


def _broken(cls, seed=0):
    good = _model(seed)
    bad = cls(6, 3, hidden=(16, 16), activation="tanh").double()
    bad.load_state_dict(good.state_dict())
    return bad


def _exact_log_marginal(m, x):
    """ln q(x) of a z_dim = 1 model by quadrature."""
    zs = torch.linspace(-10, 10, 8001, dtype=torch.float64)[:, None, None]
    log_joint = -m.nll(x, zs) + Normal(0.0, 1.0).log_prob(zs[..., 0])
    return torch.logsumexp(log_joint, dim=0) + math.log(20 / 8000)


# --- the library pieces ---------------------------------------------------------------------------

@pytest.mark.parametrize("likelihood, sigma", [("bernoulli", 1.0), ("gaussian", 0.3)])
def test_pairwise_log_likelihood_matches_the_decoders_nll(likelihood, sigma):
    m = _model(likelihood=likelihood, sigma=sigma)
    z = torch.randn(5, 3, dtype=torch.float64)
    x = X_BIN if likelihood == "bernoulli" else torch.rand(3, 6, dtype=torch.float64)
    brute = torch.stack([-m.nll(x, zj.expand(3, -1)) for zj in z])
    torch.testing.assert_close(vae.pairwise_log_likelihood(m, x, z), brute, rtol=1e-12, atol=1e-10)
    with pytest.raises(ValueError, match="z must have shape"):
        vae.pairwise_log_likelihood(m, x, torch.zeros(5, 2, dtype=torch.float64))


@pytest.mark.parametrize("likelihood, sigma", [("bernoulli", 1.0), ("gaussian", 0.3)])
def test_log_weights_at_given_noise_match_torch_distributions(likelihood, sigma):
    m = _model(likelihood=likelihood, sigma=sigma)
    x = X_BIN if likelihood == "bernoulli" else torch.rand(3, 6, dtype=torch.float64)
    u = torch.randn(4, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(m.log_weights(x, 4, u=u), iwae.reference_log_weights(m, x, u), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(m.iwae_bound(x, 4, u=u), torch.logsumexp(m.log_weights(x, 4, u=u), 0) - math.log(4))
    with pytest.raises(ValueError, match="u must be a tensor of shape"):
        m.log_weights(x, 4, u=torch.randn(3, 3, 3, dtype=torch.float64))


def test_weights_ess_and_bound_curve():
    lw = torch.zeros(8, 2, dtype=torch.float64)
    assert torch.allclose(iwae.effective_sample_size(lw), torch.full((2,), 8.0, dtype=torch.float64))
    lw[0] = 50.0  # one weight carries everything
    assert torch.allclose(iwae.effective_sample_size(lw), torch.ones(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(iwae.normalized_weights(lw).sum(0), torch.ones(2, dtype=torch.float64))
    lw = torch.randn(12, 5, dtype=torch.float64)
    curve = iwae.bound_curve(lw, [1, 3, 12])
    torch.testing.assert_close(curve[0], lw.mean(0))  # L_1: the mean of the log weights
    torch.testing.assert_close(curve[2], torch.logsumexp(lw, 0) - math.log(12))  # L_K: all of them
    by_hand = torch.stack([torch.logsumexp(lw[i:i + 3], 0) - math.log(3) for i in range(0, 12, 3)]).mean(0)
    torch.testing.assert_close(curve[1], by_hand)
    with pytest.raises(ValueError, match="divide"):
        iwae.bound_curve(lw, [5])
    with pytest.raises(ValueError, match="log_w"):
        iwae.effective_sample_size(torch.tensor([math.inf]))


def test_log_weight_matrix_gives_the_same_estimate_as_iwae_nll():
    m = _model()
    torch.manual_seed(5)
    lw = metrics.log_weight_matrix(m, X_BIN, 700, chunk=300, batch_size=2)
    torch.manual_seed(5)
    nll = metrics.iwae_nll(m, X_BIN, k=700, chunk=300, batch_size=2)
    assert lw.shape == (700, 3)
    torch.testing.assert_close(-(torch.logsumexp(lw, 0) - math.log(700)), nll)


@pytest.mark.parametrize("proposal, widen", [("encoder", 1.0), ("encoder", 2.0), ("prior", 1.0)])
def test_every_proposal_gives_unbiased_weights_and_the_check_catches_a_biased_one(proposal, widen, capsys):
    """E[w] = q(x) for any proposal, against quadrature; a 10 % error in every weight is caught."""
    torch.manual_seed(3)
    m = vae.VAE(6, 1, hidden=16, activation="tanh").double()
    exact = iwae.exact_log_marginal_1d(m, X_BIN)
    torch.testing.assert_close(exact, _exact_log_marginal(m, X_BIN), rtol=0, atol=1e-6)  # two grids agree
    lw = iwae.proposal_log_weights(m, X_BIN, 100_000, proposal=proposal, widen=widen,
                                   generator=torch.Generator().manual_seed(0))
    iwae.check_unbiased_weights(lw, exact, label=f" ({proposal})")
    with pytest.raises(IdentityError):
        iwae.check_unbiased_weights(lw + math.log(1.1), exact)
    assert "mean of w / q(x)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="z_dim = 1"):
        iwae.exact_log_marginal_1d(_model(), X_BIN)


# --- the chapter's checks, fed broken quantities ---------------------------------------------------

def test_check_k1_shared_noise_passes_and_catches_a_broken_bound():
    iwae.check_k1_shared_noise(_model(), X_BIN)
    bad = _broken(ShiftedWeights)
    bad.shift = 1e-6  # even a micro-nat offset is caught in float64
    with pytest.raises(IdentityError):
        iwae.check_k1_shared_noise(bad, X_BIN)


def test_check_k1_expectation_passes_and_catches_a_broken_bound():
    iwae.check_k1_expectation(_model(), X_BIN, reps=2000)
    bad = _broken(ShiftedWeights)
    bad.shift = 0.5
    with pytest.raises(IdentityError):
        iwae.check_k1_expectation(bad, X_BIN, reps=2000)


def test_check_bound_curve_passes_on_a_true_curve_and_fails_on_broken_ones(capsys):
    m = _model()
    torch.manual_seed(0)
    lw = metrics.log_weight_matrix(m, X_BIN.repeat(20, 1), 256)
    ks = [1, 4, 16, 64, 256]
    curve = iwae.bound_curve(lw, ks)
    iwae.check_bound_curve(ks, curve)
    with pytest.raises(IdentityError, match="decreased"):
        iwae.check_bound_curve(ks, curve.flip(0))  # a bound that falls with k
    with pytest.raises(IdentityError, match="did not tighten"):
        iwae.check_bound_curve(ks, curve[:1].expand(len(ks), -1))  # mean of log weights for every k
    with pytest.raises(ValueError, match="increasing"):
        iwae.check_bound_curve([4, 1], curve[:2])
    assert "L_k against k" in capsys.readouterr().out


def test_check_sampled_kl_passes_and_catches_a_ten_percent_error():
    m = _model()
    out = vae.check_sampled_kl(m, X_BIN, draws=4000)
    assert out["exact"].shape == (3,) and (out["sd"] > 0).all()

    class BrokenKL(vae.VAE):
        def loss_terms(self, x, kl="analytic", u=None):
            t = super().loss_terms(x, kl=kl, u=u)
            return {"rec": t["rec"], "kl": 1.1 * t["kl"]}

    bad = BrokenKL(6, 3, hidden=(16, 16), activation="tanh").double()
    bad.load_state_dict(m.state_dict())
    with torch.no_grad():  # make the KL large enough that 10 % of it is many standard errors
        bad.encoder[-1].bias[:3] += 2.0
    with pytest.raises(IdentityError):
        vae.check_sampled_kl(bad, X_BIN, draws=4000)


def test_one_sample_spread_by_hand_and_its_check_fails_on_a_wide_posterior():
    m = _model()
    x = X_BIN.repeat(4, 1)[:10]
    out = vae.one_sample_spread(m, x, draws=8, seed=3)
    mu, logvar = m.encode(x)
    u = torch.randn((8, *mu.shape), generator=torch.Generator().manual_seed(3), dtype=mu.dtype)
    with torch.no_grad():
        within = m.mean(mu + (0.5 * logvar).exp() * u).var(0).sum(-1).mean()
        between = m.mean(mu).var(0).sum()
    assert out["within"] == pytest.approx(float(within)) and out["between"] == pytest.approx(float(between))
    assert out["ratio"] == pytest.approx(math.sqrt(float(within / between)))
    assert set(out["identified"]) == {"mean", "sample", "prior"}
    assert out["control"] > out["ratio"]  # sigma = 1 around the same codes moves the decodings more
    vae.check_one_sample_enough({"ratio": 0.2}, max_ratio=1 / 3)
    vae.check_one_sample_enough({"ratio": 0.2, "control": 0.7}, max_ratio=1 / 3)
    with pytest.raises(IdentityError, match="too weak"):  # a threshold a prior-wide posterior passes too
        vae.check_one_sample_enough({"ratio": 0.2, "control": 0.3}, max_ratio=1 / 3)
    # an untrained encoder: its posterior is the prior's width, and the codes of different images coincide
    torch.manual_seed(0)
    fresh = vae.one_sample_spread(vae.VAE(784, 4, hidden=32), torch.bernoulli(torch.full((100, 784), 0.3)))
    with pytest.raises(IdentityError):
        vae.check_one_sample_enough(fresh, max_ratio=1 / 3)
    with pytest.raises(IdentityError):
        vae.check_one_sample_enough({"ratio": 0.4}, max_ratio=1 / 3)


def test_check_trained_alike_and_the_recorded_seed_spread():
    vae.check_trained_alike("a", 117.4, "b", 117.0, sd=0.5)
    with pytest.raises(IdentityError):
        vae.check_trained_alike("a", 1.1 * 117.0, "b", 117.0, sd=0.5)  # a 10 % worse loss
    recorded = json.loads((ROOT / "benchmarks" / "ch03_seed_spread.json").read_text())
    assert vae.SEED_SPREAD["config"] == recorded["config"]
    assert vae.SEED_SPREAD["seeds"] == [r["seed"] for r in recorded["rows"]]
    for key, values in vae.SEED_SPREAD["per_seed"].items():
        assert values == pytest.approx([r[key] for r in recorded["rows"]], abs=5e-5), key
    cfg = {k: recorded["config"][k] for k in ("z_dim", "hidden", "lr", "batch_size", "steps")}
    everything = vae.seed_spread(cfg)
    for key, v in recorded["summary"].items():  # all seeds: the benchmark's own summary
        assert everything[key]["mean"] == pytest.approx(v["mean"], abs=1e-4), key
        assert everything[key]["sd"] == pytest.approx(v["sd"], abs=1e-4), key
        assert everything[key]["n"] == recorded["seeds"]
    others = vae.seed_spread(cfg, exclude_seed=0)  # the chapter's seed left out: the other five, by hand
    rest = [r["plateau_difference"] for r in recorded["rows"] if r["seed"] != 0]
    assert others["plateau_difference"]["n"] == len(rest) == 5
    assert others["plateau_difference"]["mean"] == pytest.approx(sum(rest) / 5, abs=1e-4)
    assert others["plateau_difference"]["sd"] == pytest.approx(float(torch.tensor(rest).std()), abs=1e-4)
    assert vae.seed_spread(cfg, exclude_seed=99) == everything  # a seed that was not recorded leaves all in
    with pytest.raises(ValueError, match="re-run"):
        vae.seed_spread(dict(cfg, steps=cfg["steps"] + 1))


def test_check_iwae_effects_passes_on_clear_effects_and_fails_without_them(capsys):
    torch.manual_seed(0)
    n = 100
    vae_curve = torch.stack([-122 + torch.randn(n), -115 + torch.randn(n)])
    iwae_curve = torch.stack([vae_curve[0] - 3.0, vae_curve[1] + 1.0]) + 0.05 * torch.randn(2, n)
    spread = {"plateau_difference": {"mean": 1.0, "sd": 0.2, "n": 6}, "gap_difference": {"mean": 4.0, "sd": 0.5, "n": 6}}
    out = iwae.check_iwae_effects(vae_curve, iwae_curve, spread)
    assert out["plateau_difference"] == pytest.approx(1.0, abs=0.05)
    assert capsys.readouterr().out.count("clear in this run") == 2
    # an effect inside this run's noise passes only if the seeds establish it and this run agrees
    noisy = dict(spread, plateau_difference={"mean": 0.9, "sd": 0.4, "n": 6})
    iwae.check_iwae_effects(vae_curve, iwae_curve, noisy)
    assert "over 6 seeds" in capsys.readouterr().out
    with pytest.raises(IdentityError, match="plateau"):  # the mean of only 2 seeds (SE 0.42): not established
        iwae.check_iwae_effects(vae_curve, iwae_curve, dict(spread, plateau_difference={"mean": 0.9, "sd": 0.6, "n": 2}))
    with pytest.raises(IdentityError, match="plateau"):  # no effect at all in this run
        iwae.check_iwae_effects(vae_curve, torch.stack([vae_curve[0] - 3.0, vae_curve[1] - 0.01]), noisy, seeds=6)
    with pytest.raises(IdentityError, match="plateau"):  # the seeds do not establish it either
        iwae.check_iwae_effects(vae_curve, iwae_curve, dict(spread, plateau_difference={"mean": 0.3, "sd": 0.5}),
                                seeds=6)
    same_gap = torch.stack([vae_curve[0] + 1.0, vae_curve[1] + 1.0])  # a broken IWAE: the VAE shifted
    with pytest.raises(IdentityError, match="gap"):
        iwae.check_iwae_effects(vae_curve, same_gap, spread, seeds=6)


def _snr_dict(enc, dec, se=0.01):
    return {"k": [1, 4, 16], "encoder": enc, "encoder_se": [se] * 3, "decoder": dec, "decoder_se": [se] * 3}


def test_check_snr_trend_passes_on_the_expected_trend_and_fails_otherwise():
    iwae.check_snr_trend(_snr_dict([0.8, 0.4, 0.2], [0.2, 0.4, 0.8]))
    with pytest.raises(IdentityError, match="encoder"):
        iwae.check_snr_trend(_snr_dict([0.2, 0.4, 0.8], [0.2, 0.4, 0.8]))  # encoder signal growing
    with pytest.raises(IdentityError, match="decoder"):
        iwae.check_snr_trend(_snr_dict([0.8, 0.4, 0.2], [0.5, 0.5, 0.5]))  # flat decoder signal
    with pytest.raises(IdentityError, match="encoder"):
        iwae.check_snr_trend(_snr_dict([0.8, 0.6, 0.7], [0.2, 0.4, 0.8], se=0.1))  # a fall within the noise
    with pytest.raises(ValueError, match="snr"):
        iwae.check_snr_trend({"k": [1, 4]})


def test_check_snr_ratio_passes_when_the_encoder_falls_behind_and_fails_otherwise(capsys):
    ok = {"k": [1, 64], "ratio": [0.10, 0.05], "ratio_se": [0.005, 0.005]}
    iwae.check_snr_ratio(ok)
    assert "encoder SNR / decoder SNR" in capsys.readouterr().out
    with pytest.raises(IdentityError, match="relative"):
        iwae.check_snr_ratio(dict(ok, ratio=[0.05, 0.10]))  # the encoder gaining on the decoder
    with pytest.raises(IdentityError, match="relative"):
        iwae.check_snr_ratio(dict(ok, ratio=[0.10, 0.09]))  # a fall within 3 SE (0.021)
    with pytest.raises(ValueError, match="ratio"):
        iwae.check_snr_ratio({"k": [1, 64], "ratio": [0.1, 0.05]})


def test_check_estimate_higher_catches_equal_and_swapped_proposals(capsys):
    g = torch.Generator().manual_seed(0)
    good = torch.randn(5000, generator=g, dtype=torch.float64)  # a well-spread set: ESS ~ k / e
    bad = -20.0 + 3.0 * torch.randn(5000, generator=g, dtype=torch.float64)  # far lower and degenerate
    diff = iwae.check_estimate_higher("good vs bad", good, bad)
    assert diff == pytest.approx(float((torch.logsumexp(good, 0) - torch.logsumexp(bad, 0))))
    # the delta-method SE sqrt(1/ESS - 1/k) against the spread of 200 independent estimates from k = 400
    est = torch.stack([torch.logsumexp(torch.randn(400, generator=g, dtype=torch.float64), 0) for _ in range(200)])
    ess = float(iwae.effective_sample_size(torch.randn(400, generator=g, dtype=torch.float64)))
    assert float(est.std()) == pytest.approx((1 / ess - 1 / 400) ** 0.5, rel=0.25)
    with pytest.raises(IdentityError):
        iwae.check_estimate_higher("same", good, good.flip(0))  # the same weights: no difference
    with pytest.raises(IdentityError):
        iwae.check_estimate_higher("swapped", bad, good)
    with pytest.raises(ValueError, match="1-D"):
        iwae.check_estimate_higher("shape", good[:, None], bad)
    assert "higher by" in capsys.readouterr().out


def test_gradient_snr_gradients_are_those_of_the_bound_and_the_encoder_signal_falls():
    torch.manual_seed(0)
    m = vae.VAE(6, 2, hidden=16, activation="tanh").double()
    x = X_BIN[:2]
    out = iwae.gradient_snr(m, x, ks=[1, 64], reps=400, seed=0, boot=50, chunk=400, return_gradients=True)
    # replicate 0 of k = 64 by hand: the same noise (drawn after k = 1's), autograd through the model's bound
    g = torch.Generator().manual_seed(0)
    torch.randn((1, 400, 2, 2), generator=g, dtype=torch.float64)
    u = torch.randn((64, 400, 2, 2), generator=g, dtype=torch.float64)[:, 0]
    mu, logvar = (t.detach().requires_grad_(True) for t in m.encode(x))
    z = mu + (0.5 * logvar).exp() * u
    zero = torch.zeros_like(z)
    lw = -m.nll(x, z) + vae.gaussian_log_prob(z, zero, zero) - vae.gaussian_log_prob(z, mu, logvar)
    bound = (torch.logsumexp(lw, 0) - math.log(64)).sum()
    last = [layer for layer in m.decoder if isinstance(layer, torch.nn.Linear)][-1]
    g_mu, g_lv, g_b = torch.autograd.grad(bound, (mu, logvar, last.bias))
    torch.testing.assert_close(out["gradients"][64]["encoder"][0], torch.cat([g_mu, g_lv], -1).reshape(-1))
    torch.testing.assert_close(out["gradients"][64]["decoder"][0], g_b)
    assert out["encoder"][1] < out["encoder"][0] and out["decoder"][1] > out["decoder"][0]
    assert out["floor"] == pytest.approx(0.8 / 20)
    assert out["ratio"] == pytest.approx([e / d for e, d in zip(out["encoder"], out["decoder"])])
    assert all(se > 0 for se in out["ratio_se"])
    iwae.check_snr_ratio(out)
    with pytest.raises(ValueError, match="Bernoulli"):
        iwae.gradient_snr(_model(likelihood="gaussian", sigma=0.3), torch.rand(3, 6, dtype=torch.float64), [1])


# --- prior sampling ---------------------------------------------------------------------------------

def test_prior_sampling_estimate_and_battles_by_hand():
    m = _model()
    est = vae.prior_sampling_estimate(m, X_BIN, 50, generator=torch.Generator().manual_seed(1), chunk=50)
    z = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    log_lik = torch.stack([-m.nll(X_BIN, zj.expand(3, -1)) for zj in z])
    torch.testing.assert_close(est, -(torch.logsumexp(log_lik, 0) - math.log(50)))
    bt = vae.prior_battles(m, X_BIN, 4, batches=3, generator=torch.Generator().manual_seed(2))
    assert bt["decoded"].shape == (3, 4, 6) and bt["winner"].shape == (3, 3) and bt["loss"].shape == (3, 3)
    assert (bt["wins"].sum(1) == 3).all()
    g = torch.Generator().manual_seed(2)
    for b in range(3):  # each batch is one prior_sampling_loss draw with the same generator
        loss, assign, z = m.prior_sampling_loss(X_BIN, 4, return_assignment=True, generator=g)
        torch.testing.assert_close(bt["loss"][b].mean(), loss)
        assert torch.equal(bt["winner"][b], assign)
        torch.testing.assert_close(bt["decoded"][b], m.mean(z))


def test_prior_sampling_sweep_tiny_run():
    from tutorlib.data import mnist_subset

    x = mnist_subset("train").x[:200]
    runs = vae.prior_sampling_sweep(x, [1, 4], steps=20, z_dim=3, hidden=16, batch_size=50, lr=3e-3,
                                    x_test=torch.bernoulli(x[:10]), eval_k=100, battles=2, n_battle=8)
    assert set(runs) == {1, 4}
    for k, r in runs.items():
        assert math.isfinite(r["train_loss"]) and math.isfinite(r["test_nll"])
        assert r["battles"]["decoded"].shape == (2, k, 784) and r["battle_images"].shape == (8, 784)


def test_fits_fast_dynamic_binarisation_draws_exactly_what_torch_bernoulli_draws():
    for shape, dtype in [((100, 784), torch.float32), ((7, 13), torch.float64)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
        x[0, :2] = torch.tensor([0.0, 1.0], dtype=dtype)
        torch.manual_seed(0)
        ref, ref_next = torch.bernoulli(x), torch.rand(3)
        torch.manual_seed(0)
        fast, fast_next = vae._bernoulli(x), torch.rand(3)
        assert torch.equal(fast, ref) and fast.dtype == dtype
        assert torch.equal(fast_next, ref_next)  # the same use of the random state

"""Burda et al.'s recipe (vae.burda_*): the authors' initialisation, the paper's schedule and optimiser,
the loss the code sums, the provenance of a run, and the refusal to train without full MNIST."""

import math

import numpy as np
import pytest
import torch

from tutorlib import data, vae


def test_burda_init_reproduces_the_authors_layers():
    model = vae.BurdaVAE(784, 50, (200, 200))
    mean = torch.linspace(0.0, 1.0, 784)
    vae.burda_init_(model, mean)
    # nnet.Linear.random: RandomState(123).uniform(+-sqrt(6 / (n_in + n_out)), (n_in, n_out)), x.dot(W) + b
    w = np.random.RandomState(123).uniform(-math.sqrt(6 / 984), math.sqrt(6 / 984), size=(784, 200))
    assert torch.equal(model.encoder[0].weight, torch.from_numpy(w.T).float())
    head = np.random.RandomState(123).uniform(-math.sqrt(6 / 250), math.sqrt(6 / 250), size=(200, 50))
    assert torch.equal(model.encoder[-1].weight[:50], torch.from_numpy(head.T).float())  # mu head
    assert torch.equal(model.encoder[-1].weight[50:], torch.from_numpy(head.T).float())  # ln sigma head
    assert all(float(m.bias.detach().abs().max()) == 0 for m in list(model.encoder)[::2])
    # the decoder's output bias is the logit of the training mean, clipped to [0.001, 0.999]
    p = np.clip(np.linspace(0.0, 1.0, 784), 0.001, 0.999)
    assert np.allclose(model.decoder[-1].bias.detach().numpy(), np.log(p / (1 - p)), atol=1e-5)
    with pytest.raises(ValueError, match="train_mean"):
        vae.burda_init_(model, torch.zeros(10))


def test_burda_encoder_outputs_log_sigma():
    torch.manual_seed(0)
    model = vae.BurdaVAE(784, 4, (8,))
    x = torch.rand(3, 784)
    raw = model.encoder(x)
    mu, logvar = model.encode(x)
    assert torch.equal(mu, raw[:, :4]) and torch.allclose(logvar, 2 * raw[:, 4:])


def test_burda_schedule_is_the_papers():
    sched = vae.burda_schedule(1.0, steps_per_epoch=3000)
    assert [s["epochs"] for s in sched] == [3**i for i in range(8)] and sum(s["epochs"] for s in sched) == 3280
    assert [s["lr"] for s in sched] == pytest.approx([1e-3 * 10 ** (-i / 7) for i in range(8)])
    assert sched[-1]["lr"] == pytest.approx(1e-4)
    small = vae.burda_schedule(0.01, steps_per_epoch=100)
    assert [s["steps"] for s in small] == [max(1, round(3**i)) for i in range(8)]
    f = vae.burda_lr_factor(small)
    bounds = np.cumsum([s["steps"] for s in small])
    assert f(0) == 1.0 and f(int(bounds[0])) == pytest.approx(10 ** (-1 / 7))
    assert f(int(bounds[-1]) - 1) == pytest.approx(0.1) and f(10**9) == pytest.approx(0.1)
    assert vae.BURDA_ADAM == {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-4} and vae.BURDA_BATCH == 20
    with pytest.raises(ValueError, match="scale"):
        vae.burda_schedule(0.0)


def test_burda_loss_sums_the_bound_over_the_batch():
    torch.manual_seed(0)
    model = vae.BurdaVAE(784, 4, (8,))
    x = torch.rand(5, 784)
    torch.manual_seed(1)
    out = vae.burda_loss(model, x, "iwae", 3)
    torch.manual_seed(1)
    lw = model.log_weights(torch.bernoulli(x), 3)
    bound = torch.logsumexp(lw, 0) - math.log(3)
    assert torch.allclose(out["loss"], -bound.sum()) and torch.allclose(out["bound"], bound.mean())
    torch.manual_seed(1)
    elbo = vae.burda_loss(model, x, "elbo", 3)
    assert torch.allclose(elbo["loss"], -lw.mean(0).sum())  # the all-sampled ELBO, averaged over the k draws
    assert float(elbo["loss"]) > float(out["loss"])  # L_k >= the ELBO (Jensen)


def test_burda_experiment_records_its_data_schedule_and_deviations(tmp_path):
    out = vae.burda_experiment("iwae", 2, schedule_scale=1e-4, z_dim=4, hidden=(16,), eval_k=20, n_test=30,
                               source="subset", checkpoint_dir=tmp_path, forecast=False)
    assert math.isfinite(out["test_nll"]) and 100 < out["test_nll"] < 800
    assert out["data"]["full"] is False and out["data"]["source"].startswith("mnist-subset")
    assert out["steps"] == sum(s["steps"] for s in out["schedule"]) and len(out["schedule"]) == 8
    dev = " ".join(out["deviations"])
    assert "embedded subset" in dev and "schedule compressed x0.0001" in dev and "k = 20" in dev
    assert out["code_notes"] and {"device", "commit", "seed"} <= set(out)
    # the checkpoint's name carries the steps and the seed, so a changed run never resumes a stale file
    assert [p.name for p in tmp_path.iterdir()] == [f"burda_iwae_k2_z4_h16_b20_steps{out['steps']}_s0_subset.pt"]
    with pytest.raises(ValueError, match="objective"):
        vae.burda_experiment("prior", k=2)


def test_burda_experiment_refuses_to_train_without_full_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORLIB_MODE", "full")
    monkeypatch.setenv("TUTORLIB_DATA", str(tmp_path / "no-data"))
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(data.MissingDataError, match="mnist.npz"):
        vae.burda_experiment("elbo", 1, checkpoint_dir=tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()  # nothing was trained or written

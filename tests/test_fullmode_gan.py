"""The MNIST GAN of chapter 8's full mode: each loss with its own paper's recipe, the budget in updates,
the Fréchet curve with its real-vs-real floor, checkpoint names, and the refusal without full MNIST."""

import math

import pytest
import torch

from tutorlib import data, gan


def test_recipes_are_the_papers():
    qp, wg = gan.GAN_RECIPES["qp"], gan.GAN_RECIPES["wgan-gp"]
    assert (qp["lr"], qp["betas"], qp["critic_steps"], qp["batch_size"], qp["lam"]) == (2e-4, (0.5, 0.999), 2, 64, 10.0)
    assert (wg["lr"], wg["betas"], wg["critic_steps"], wg["lam"]) == (1e-4, (0.0, 0.9), 5, 10.0)
    # the same budget of network updates: WGAN-GP gets half the generator steps
    assert gan.gan_steps_for_budget("qp", 120_000) == 40_000 and gan.gan_steps_for_budget("wgan-gp", 120_000) == 20_000
    with pytest.raises(ValueError, match="kind"):
        gan.gan_steps_for_budget("sgan", 10)


def test_dcgan_shapes():
    g, c = gan.DCGenerator(z_dim=8, width=4), gan.DCCritic(width=4)
    x = g(torch.randn(3, 8))
    assert x.shape == (3, 1, 28, 28) and float(x.detach().abs().max()) <= 1.0 and c(x).shape == (3,)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # few samples, 128 features: singular
def test_run_mnist_gan_tiny_records_curve_floor_and_names(tmp_path):
    train_set, test_set = data.mnist_subset("train"), data.mnist_subset("test")
    ref = gan.mnist_gan_reference(train_set, test_set, classifier_steps=5, n_eval=64, n_curve=48, checkpoint_dir=tmp_path)
    assert 0.0 <= ref["accuracy"] <= 1.0 and ref["floor_eval"] > 0 and ref["floor_curve"] > 0
    out = gan.run_mnist_gan("wgan-gp", budget_updates=18, z_dim=8, width=4, source="subset", reference=ref,
                            checkpoint_dir=tmp_path, seed=1, output_scale=3.0, forecast=False)
    assert out["steps"] == 3 and out["updates"] == 18 and out["critic_steps"] == 5
    assert math.isfinite(out["frechet"]) and out["frechet"] > 0 and out["samples"].shape == (64, 1, 28, 28)
    assert [c["step"] for c in out["curve"]] == [0, 1, 2] and all(c["frechet"] > 0 for c in out["curve"])
    assert out["frechet_floor"] == ref["floor_eval"] and out["classifier_accuracy"] == ref["accuracy"]
    dev = " ".join(out["deviations"])
    assert "z_dim = 8" in dev and "OutputScale" in dev and "embedded subset" in dev
    assert out["recipe"]["betas"] == [0.0, 0.9] and out["data"]["full"] is False
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["mnist_classifier_steps5_s0_subset.pt", "mnist_gan_wgan-gp_lam10_os3_z8_w4_b64_c5_steps3_s1_subset.pt"]
    with pytest.raises(ValueError, match="steps or budget_updates"):
        gan.run_mnist_gan("qp", steps=3, budget_updates=9, source="subset", reference=ref)


def test_run_mnist_gan_refuses_to_train_without_full_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORLIB_MODE", "full")
    monkeypatch.setenv("TUTORLIB_DATA", str(tmp_path / "no-data"))
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(data.MissingDataError, match="mnist.npz"):
        gan.run_mnist_gan("qp", checkpoint_dir=tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()

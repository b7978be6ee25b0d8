"""GAN losses against hand computations, the training loop, and the evaluation helpers."""

import math

import numpy as np
import pytest
import torch

from tutorlib import data, gan
from tutorlib.train import NonFiniteLossError


def _sig(x):
    return 1 / (1 + math.exp(-x))


T_R = torch.tensor([1.0, -0.5, 2.0])
T_F = torch.tensor([0.3, 0.4, -1.0])
X_R = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]])
X_F = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, -1.0]])


def test_rms_distance_by_hand():
    # sqrt(mean((x_r - x_f)^2)): (9+16)/2, (0+4)/2, (9+0)/2
    assert torch.allclose(gan.rms_distance(X_R, X_F), torch.tensor([math.sqrt(12.5), math.sqrt(2.0), math.sqrt(4.5)]))


def test_sgan_losses_by_hand():
    critic = -np.mean([math.log(_sig(t)) for t in T_R.tolist()]) - np.mean([math.log(1 - _sig(t)) for t in T_F.tolist()])
    assert float(gan.critic_loss("sgan", T_R, T_F)) == pytest.approx(critic, rel=1e-6)
    ns = -np.mean([math.log(_sig(t)) for t in T_F.tolist()])
    sat = np.mean([math.log(1 - _sig(t)) for t in T_F.tolist()])
    assert float(gan.generator_loss("sgan", T_R, T_F)) == pytest.approx(ns, rel=1e-6)
    assert float(gan.generator_loss("sgan", T_R, T_F, saturating=True)) == pytest.approx(sat, rel=1e-6)


def test_qp_losses_by_hand():
    lam = 10.0
    d = [math.sqrt(12.5), math.sqrt(2.0), math.sqrt(4.5)]
    delta = [r - f for r, f in zip(T_R.tolist(), T_F.tolist())]
    expected = np.mean([-dl + dl**2 / (2 * lam * di) for dl, di in zip(delta, d)])
    assert float(gan.critic_loss("qp", T_R, T_F, X_R, X_F, lam=lam)) == pytest.approx(expected, rel=1e-6)
    assert float(gan.generator_loss("qp", T_R, T_F)) == pytest.approx(np.mean(delta), rel=1e-6)
    # (batch, 1) scores are accepted and give the same numbers
    assert float(gan.critic_loss("qp", T_R[:, None], T_F[:, None], X_R, X_F, lam=lam)) == pytest.approx(expected, rel=1e-6)


def test_qp_critic_loss_minimum_is_the_pointwise_optimum():
    """For one pair, -D + D^2/(2 lam d) is minimised at D = lam d with value -lam d / 2."""
    lam, x_r, x_f = 3.0, torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 0.0]])
    d = float(gan.rms_distance(x_r, x_f))
    ds = torch.linspace(0, 3 * lam * d, 3001)
    losses = torch.stack([gan.critic_loss("qp", D[None], torch.zeros(1), x_r, x_f, lam=lam) for D in ds])
    assert float(ds[losses.argmin()]) == pytest.approx(lam * d, rel=1e-3)
    assert float(losses.min()) == pytest.approx(-lam * d / 2, rel=1e-6)


def test_wgan_gp_with_a_linear_critic():
    """T(x) = w.x has gradient w everywhere, so the penalty is (|w| - 1)^2 exactly."""
    w = torch.tensor([[3.0], [4.0]])
    critic = lambda x: x @ w  # noqa: E731
    t_r, t_f = critic(X_R), critic(X_F)
    expected = float(t_f.mean() - t_r.mean()) + 10.0 * (5.0 - 1.0) ** 2
    assert float(gan.critic_loss("wgan-gp", t_r, t_f, X_R, X_F, lam=10.0, critic=critic)) == pytest.approx(expected)
    assert float(gan.generator_loss("wgan-gp", t_r, t_f)) == pytest.approx(-float(t_f.mean()))


@pytest.mark.parametrize("call, word", [
    (lambda: gan.critic_loss("lsgan", T_R, T_F), "kind"),
    (lambda: gan.critic_loss("qp", T_R, T_F, X_R, X_F, lam=0.0), "lam"),
    (lambda: gan.critic_loss("qp", T_R, T_F, X_R, X_F, lam=-2.0), "lam"),
    (lambda: gan.critic_loss("qp", T_R, T_F), "x_real and x_fake"),
    (lambda: gan.critic_loss("qp", T_R, T_F, X_R, X_F[:2]), "x_real and x_fake"),
    (lambda: gan.critic_loss("qp", T_R[:2], T_F[:2], X_R, X_F), "batch"),
    (lambda: gan.critic_loss("wgan-gp", T_R, T_F, X_R, X_F), "critic"),
    (lambda: gan.critic_loss("sgan", torch.zeros(3, 2), T_F), "t_real"),
    (lambda: gan.generator_loss("sgan", T_R, [0.0]), "t_fake"),
    (lambda: gan.mode_coverage(torch.zeros(5, 2), torch.zeros(3, 3), 0.1), "centers"),
    (lambda: gan.mode_coverage(torch.zeros(5, 2), torch.zeros(3, 2), 0.0), "radius"),
    (lambda: gan.frechet_distance([0, 0], np.eye(2), [0], np.eye(1)), "means and covariances"),
])
def test_bad_arguments_raise_value_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()


def test_frechet_distance_of_gaussians():
    assert gan.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + (2.0 - 3.0) ** 2)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + np.eye(4)
    assert gan.frechet_distance(np.zeros(4), cov, np.zeros(4), cov) == pytest.approx(0.0, abs=1e-8)
    f = torch.randn(20000, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 2.0, 0.5])
    mu, c = gan.feature_statistics(f)
    assert np.allclose(mu, 0, atol=0.05) and np.allclose(np.diag(c), [1, 4, 0.25], rtol=0.05)


def test_mode_coverage_counts_modes_and_quality():
    mix = data.ring(8, 2.0, 0.02)
    g = torch.Generator().manual_seed(0)
    assert gan.mode_coverage(mix.sample(4000, g), mix.centers, 0.2) == (8, pytest.approx(1.0))
    half = mix.centers[:4][torch.randint(4, (2000,), generator=g)]
    covered, quality = gan.mode_coverage(torch.cat([half, torch.zeros(2000, 2)]), mix.centers, 0.2)
    assert covered == 4 and quality == pytest.approx(0.5)


def _tiny(seed=0):
    torch.manual_seed(seed)
    return gan.mlp(1, 1, hidden=8), gan.mlp(1, 1, hidden=8)


@pytest.mark.parametrize("kind", gan.KINDS)
def test_train_gan_moves_a_generator_towards_the_data(kind):
    g, c = _tiny()
    real = data.delta([2.0])
    with torch.no_grad():
        before = float(g(torch.randn(256, 1)).mean())
    hist = gan.train_gan(g, c, kind, real, lambda n: torch.randn(n, 1), steps=150, lr=5e-3, progress=False)
    with torch.no_grad():
        after = float(g(torch.randn(256, 1)).mean())
    assert abs(after - 2.0) < abs(before - 2.0) - 0.3
    assert set(hist.keys()) == {"critic", "generator", "grad_g"} and np.isfinite(hist["critic"]).all()


def test_train_gan_resumes_from_a_checkpoint(tmp_path):
    g1, c1 = _tiny()
    torch.manual_seed(5)
    gan.train_gan(g1, c1, "qp", data.delta([2.0]), lambda n: torch.randn(n, 1), steps=40, progress=False)
    g2, c2 = _tiny()
    torch.manual_seed(5)
    ckpt = tmp_path / "gan.pt"
    gan.train_gan(g2, c2, "qp", data.delta([2.0]), lambda n: torch.randn(n, 1), steps=25, progress=False,
                  checkpoint=ckpt, checkpoint_every=25)
    g3, c3 = _tiny(seed=9)
    gan.train_gan(g3, c3, "qp", data.delta([2.0]), lambda n: torch.randn(n, 1), steps=40, progress=False,
                  checkpoint=ckpt, checkpoint_every=25)
    for a, b in zip(list(g1.parameters()) + list(c1.parameters()), list(g3.parameters()) + list(c3.parameters())):
        assert torch.equal(a, b)


def test_train_gan_stops_on_a_non_finite_loss():
    g, c = _tiny()
    bad = lambda n: torch.full((n, 1), float("nan"))  # noqa: E731
    with pytest.raises(NonFiniteLossError, match="at step 0"):
        gan.train_gan(g, c, "sgan", bad, lambda n: torch.randn(n, 1), steps=5, progress=False)


def test_quadratic_term_only_for_qp():
    g, c = _tiny()
    with pytest.raises(ValueError, match="quadratic_in_generator"):
        gan.train_gan(g, c, "sgan", data.delta([0.0]), lambda n: torch.randn(n, 1), 2, quadratic_in_generator=True)


def test_toy_data():
    ring = data.ring(8, 2.0, 0.01)
    assert torch.allclose(ring.centers.norm(dim=1), torch.full((8,), 2.0))
    grid = data.grid(3, 1.0, 0.01)
    assert grid.centers.shape == (9, 2) and torch.allclose(grid.centers.mean(0), torch.zeros(2), atol=1e-6)
    x = ring.sample(1000, torch.Generator().manual_seed(0))
    assert x.shape == (1000, 2) and float((x.norm(dim=1) - 2.0).abs().max()) < 0.1
    assert torch.equal(data.delta([1.0, 2.0])(3), torch.tensor([[1.0, 2.0]] * 3))
    with pytest.raises(ValueError, match="radius"):
        data.ring(4, radius=0.0)
    with pytest.raises(ValueError, match="a"):
        data.delta([float("inf")])


# DCGenerator / DCCritic and run_mnist_gan (the full-mode recipe) are tested in test_fullmode_gan.py.


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_classifier_frechet_distance_is_zero_for_identical_sets():
    torch.manual_seed(0)
    clf = gan.MnistClassifier()
    x = torch.rand(40, 1, 28, 28)
    assert gan.classifier_frechet_distance(clf, x, x) == pytest.approx(0.0, abs=1e-6)
    assert gan.classifier_frechet_distance(clf, x, torch.rand(40, 1, 28, 28) * 0.2) > 0.01


def test_output_scale_multiplies_the_output():
    torch.manual_seed(0)
    net = gan.mlp(2, 1, hidden=4)
    x = torch.randn(5, 2)
    assert torch.allclose(gan.OutputScale(net, 7.0)(x), 7.0 * net(x))
    with pytest.raises(ValueError, match="factor"):
        gan.OutputScale(net, 0.0)


def test_binary_qp_form_uses_the_same_loss_with_paired_scores():
    torch.manual_seed(0)
    critic = gan.PairCritic(2, hidden=8)
    t_rf, t_fr = critic(X_R, X_F), critic(X_F, X_R)
    d = gan.rms_distance(X_R, X_F)
    delta = t_rf - t_fr
    by_hand = (-delta + delta**2 / (2 * 10.0 * d)).mean()
    assert torch.allclose(gan.critic_loss("qp", t_rf, t_fr, X_R, X_F, lam=10.0), by_hand)
    with pytest.raises(ValueError, match="x and y"):
        critic(X_R, X_F[:, :1])


def test_train_gan_interrupted_and_resumed_equals_an_uninterrupted_run(tmp_path):
    g1, c1 = _tiny()
    torch.manual_seed(7)
    gan.train_gan(g1, c1, "qp", data.delta([2.0]), lambda n: torch.randn(n, 1), steps=30, progress=False)

    g2, c2 = _tiny()
    torch.manual_seed(7)
    calls = {"n": 0}

    def interrupting(n):
        calls["n"] += 1
        if calls["n"] == 3 * 12 + 1:  # the first draw of step 12 (2 critic draws + 1 generator draw per step)
            raise KeyboardInterrupt
        return data.delta([2.0])(n)

    ckpt = tmp_path / "gan.pt"
    with pytest.raises(KeyboardInterrupt):
        gan.train_gan(g2, c2, "qp", interrupting, lambda n: torch.randn(n, 1), steps=30, progress=False,
                      checkpoint=ckpt, checkpoint_every=100)
    from tutorlib.train import load_checkpoint

    assert load_checkpoint(ckpt)["step"] == 12
    g3, c3 = _tiny(seed=3)
    torch.manual_seed(99)
    gan.train_gan(g3, c3, "qp", data.delta([2.0]), lambda n: torch.randn(n, 1), steps=30, progress=False,
                  checkpoint=ckpt, checkpoint_every=100)
    for a, b in zip(list(g1.parameters()) + list(c1.parameters()), list(g3.parameters()) + list(c3.parameters())):
        assert torch.equal(a, b)


def test_scoring_real_and_fake_together_gives_the_same_training():
    """train_gan scores real and fake samples in one call for a critic without batch norm; a critic
    with batch norm is called twice (its batch statistics would mix real and fake otherwise)."""
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self, norm):
            super().__init__()
            self.net = gan.mlp(1, 1, hidden=8)
            self.norm = torch.nn.BatchNorm1d(1) if norm else torch.nn.Identity()

        def forward(self, x):
            calls.append(x.shape[0])
            return self.net(self.norm(x))

    for norm, per_step in ((False, 2 + 1), (True, 2 * 2 + 2)):
        calls.clear()
        torch.manual_seed(0)
        g, c = gan.mlp(1, 1, hidden=8), Counting(norm)
        gan.train_gan(g, c, "qp", data.delta([2.0]), lambda n: torch.randn(n, 1), steps=4, batch_size=16,
                      progress=False)
        assert len(calls) == 4 * per_step
    # the same numbers either way: a plain MLP critic called on the concatenation or twice
    torch.manual_seed(1)
    crit = gan.mlp(2, 1, hidden=8)
    x_r, x_f = torch.randn(5, 2), torch.randn(5, 2)
    t = crit(torch.cat([x_r, x_f]))
    assert torch.allclose(t[:5], crit(x_r)) and torch.allclose(t[5:], crit(x_f))

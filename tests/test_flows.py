"""Flows (chapter 5): invertibility, log-determinants against brute-force Jacobians on random
(non-trivial) weights, normalisation by quadrature, float32 accuracy, sampling, the NICE recipe."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from tutorlib import data, flows, integration, metrics, widgets
from tutorlib.train import load_checkpoint

F64 = torch.float64
D = 8


def _random(module, seed=0, std=1.0):
    """A float64 copy of ``module`` with every weight re-drawn at random (fresh flows are the identity)."""
    return flows.randomize_(module.double(), std=std, generator=torch.Generator().manual_seed(seed))


LAYERS = {
    "additive-even": lambda: flows.AdditiveCoupling(D, "even", hidden=16, depth=2),
    "additive-odd": lambda: flows.AdditiveCoupling(D, "odd", hidden=16, depth=2),
    "additive-first": lambda: flows.AdditiveCoupling(D, "first", hidden=16, depth=2),
    "additive-second": lambda: flows.AdditiveCoupling(D, "second", hidden=16, depth=2),
    "affine-exp-tanh": lambda: flows.AffineCoupling(D, "even", hidden=16, depth=2),
    "affine-sigmoid": lambda: flows.AffineCoupling(D, "second", hidden=16, depth=2, scale="sigmoid"),
    "scale": lambda: flows.Scale(D),
    "reverse": lambda: flows.Reverse(D),
    "interleave": lambda: flows.Interleave(D),
    "permutation": lambda: flows.Permutation(torch.randperm(D, generator=torch.Generator().manual_seed(3))),
    "flow": lambda: flows.Flow([flows.AffineCoupling(D, "odd", 16, 1), flows.Interleave(D),
                                flows.AdditiveCoupling(D, "first", 16, 1), flows.Scale(D)]),
    "nice-gaussian": lambda: flows.NICE(D, hidden=16, depth=2, couplings=4, prior="gaussian"),
    "nice-logistic": lambda: flows.NICE(D, hidden=16, depth=3, couplings=3, prior="logistic"),
}


def _x(n=5, dim=D, seed=1):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _brute_force(layer, x):
    """The full Jacobian of ``layer`` at each row of ``x`` and its ln|det|, by autograd."""
    jac = torch.stack([jacobian(lambda v: layer(v[None])[0][0], xi) for xi in x])
    return jac, torch.linalg.slogdet(jac)[1]


@pytest.mark.parametrize("name", LAYERS)
def test_inverse_of_forward_is_the_identity(name):
    layer, x = _random(LAYERS[name]()), _x()
    y, logdet = layer(x)
    assert y.shape == x.shape and logdet.shape == (x.shape[0],)
    assert not torch.allclose(y, x)  # the random weights make the layer non-trivial...
    torch.testing.assert_close(layer.inverse(y), x, rtol=0, atol=1e-12)  # ...and it inverts exactly
    torch.testing.assert_close(layer(layer.inverse(x))[0], x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", LAYERS)
def test_logdet_equals_the_brute_force_jacobian(name):
    layer, x = _random(LAYERS[name](), seed=2), _x(seed=4)
    jac, expected = _brute_force(layer, x)
    torch.testing.assert_close(layer(x)[1], expected, rtol=0, atol=1e-10)
    if "additive" in name or "affine" in name:
        x1_cols = {"even": slice(0, D, 2), "odd": slice(1, D, 2), "first": slice(0, D // 2),
                   "second": slice(D // 2, D)}[layer.partition]
        rows = [i for i in range(D) if i not in range(D)[x1_cols]]
        # the transformed half really depends on the kept half: dm/dx1 is not zero
        assert jac[:, rows][:, :, x1_cols].abs().max() > 0.05


def test_jacobian_of_a_coupling_is_triangular_with_unit_diagonal():
    layer = _random(flows.AdditiveCoupling(D, "first", hidden=16, depth=2))
    jac, _ = _brute_force(layer, _x(2))
    torch.testing.assert_close(torch.diagonal(jac, dim1=1, dim2=2), torch.ones(2, D, dtype=F64))
    assert torch.triu(jac, diagonal=1).abs().max() == 0


def test_squeeze_inverts_and_is_a_permutation():
    sq = flows.Squeeze()
    x = torch.randn(3, 2, 4, 6, dtype=F64)
    y, logdet = sq(x)
    assert y.shape == (3, 8, 2, 3) and torch.equal(logdet, torch.zeros(3, dtype=F64))
    assert torch.equal(sq.inverse(y), x)
    assert torch.equal(torch.sort(y.flatten(1)).values, torch.sort(x.flatten(1)).values)
    # each 2x2 block of a channel becomes 4 channels at one position
    assert torch.equal(y[0, :4, 0, 0], x[0, 0, :2, :2].reshape(4))
    jac = jacobian(lambda v: sq(v.reshape(1, 2, 4, 6))[0].reshape(-1), x[0].reshape(-1))
    assert float(torch.linalg.slogdet(jac)[1]) == 0.0


def test_reversal_determinant_sign():
    for d in (2, 3, 6, 7, 8):
        rev = flows.Reverse(d)
        jac = jacobian(lambda v: rev(v[None])[0][0], torch.zeros(d, dtype=F64))
        assert float(torch.linalg.det(jac)) == (-1) ** (d // 2)


def test_nice_log_prob_is_prior_plus_logdet_with_independent_priors():
    x = _x(6)
    for prior, dist in (("gaussian", torch.distributions.Normal(torch.tensor(0.0, dtype=F64), 1.0)),
                        ("logistic", torch.distributions.TransformedDistribution(
                            torch.distributions.Uniform(torch.tensor(0.0, dtype=F64), 1.0),
                            [torch.distributions.transforms.SigmoidTransform().inv]))):
        model = _random(flows.NICE(D, hidden=16, depth=2, prior=prior), seed=5)
        z, logdet = model(x)
        torch.testing.assert_close(model.log_prob(x), dist.log_prob(z).sum(-1) + logdet)
        # NICE's log-det is exactly the sum of the scale layer's log-scales
        torch.testing.assert_close(logdet, model.scale.log_scale.sum().expand(6))


def test_scale_layer_is_a_learned_prior_std():
    model = _random(flows.NICE(D, hidden=16, depth=2, prior="gaussian"), seed=6)
    x = _x(4)
    h, logdet_h = flows.Flow(model.flow.layers[:-1])(x)
    as_prior = torch.distributions.Normal(0.0, model.prior_std()).log_prob(h).sum(-1) + logdet_h
    torch.testing.assert_close(model.log_prob(x), as_prior)
    logistic = flows.NICE(D, hidden=4, depth=1, prior="logistic")
    torch.testing.assert_close(logistic.prior_std(), torch.full((D,), math.pi / math.sqrt(3)))


@pytest.mark.parametrize("prior", ["gaussian", "logistic"])
def test_2d_density_integrates_to_one_by_quadrature(prior):
    model = _random(flows.NICE(2, hidden=16, depth=2, couplings=4, prior=prior), seed=7, std=0.8)
    lo, hi = -6.0, 6.0
    with torch.no_grad():
        integral = integration.quadrature(lambda x: torch.ones(len(x), dtype=F64),
                                          lambda x: model.log_prob(x).exp(), dim=2, m=600, lo=lo, hi=hi)
    draws = model.sample(200_000, generator=torch.Generator().manual_seed(0))
    outside = float(((draws < lo) | (draws > hi)).any(dim=1).double().mean())
    assert outside < 0.02  # the grid holds nearly all the mass...
    assert integral + outside == pytest.approx(1.0, abs=2e-3)  # ...and the total is one


def test_float32_log_densities_stay_accurate():
    """log-dets are sums of log-scales, never logs of products: float32 agrees with float64."""
    torch.manual_seed(0)
    model32 = flows.NICE(784, hidden=32, depth=2, prior="logistic")
    flows.randomize_(model32, std=0.5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model32.scale.log_scale.copy_(torch.linspace(-6, 8, 784)[torch.randperm(784)])
    model64 = _copy64(model32)
    x = data.dequantize(data.mnist_subset("test").pixels[:64], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        lp32, lp64 = model32.log_prob(x), model64.log_prob(x.double())
        ld32 = model32(x)[1]
    assert ld32.dtype == torch.float32
    torch.testing.assert_close(lp32.double(), lp64, rtol=2e-6, atol=0)
    exact_logdet = model64.scale.log_scale.detach().sum()
    assert abs(float(ld32[0]) - float(exact_logdet)) <= 1e-6 * abs(float(exact_logdet)) + 1e-4
    affine32 = flows.randomize_(flows.AffineCoupling(784, "even", hidden=32, depth=1),
                                generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(affine32(x)[1].double(), _copy64(affine32)(x.double())[1], rtol=1e-5, atol=1e-4)


def _copy64(module):
    import copy

    return copy.deepcopy(module).double()


@pytest.mark.parametrize("prior", ["gaussian", "logistic"])
def test_sampling_is_finite_at_every_slider_temperature(prior):
    model = flows.randomize_(flows.NICE(784, hidden=32, depth=2, prior=prior), std=1.0,
                             generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        model.scale.log_scale.copy_(torch.linspace(-3, 7, 784))
    for temperature in widgets.TEMPERATURES:
        x = model.sample(64, temperature, generator=torch.Generator().manual_seed(5))
        assert x.shape == (64, 784) and torch.isfinite(x).all(), temperature


def test_sample_is_the_inverse_of_a_scaled_prior_draw():
    model = _random(flows.NICE(D, hidden=16, depth=2, prior="gaussian"), seed=8)
    for temperature in (0.5, 1.3):
        x = model.sample(20_000, temperature, generator=torch.Generator().manual_seed(9))
        z = model(x)[0].detach()
        assert float(z.std()) == pytest.approx(temperature, rel=0.01)
        z0 = torch.randn(20_000, D, generator=torch.Generator().manual_seed(9), dtype=F64)
        torch.testing.assert_close(z, temperature * z0)


def test_logistic_draws_have_the_logistic_law_and_are_never_infinite(monkeypatch):
    z = flows.sample_logistic((200_000,), generator=torch.Generator().manual_seed(0), dtype=F64)
    assert float(z.var()) == pytest.approx(math.pi**2 / 3, rel=0.02)
    assert float((z < 1.0).double().mean()) == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.003)
    real_rand = torch.rand
    # the extreme uniforms 0 and 1 must not become -inf / +inf
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: (real_rand(shape, **kw) > 0.5).to(kw.get("dtype")))
    extreme = flows.sample_logistic((1000,), dtype=torch.float32)
    assert torch.isfinite(extreme).all() and extreme.abs().max() < 16


def test_without_alternation_half_of_the_input_passes_through():
    couplings = [_random(flows.AdditiveCoupling(D, "even", 16, 2), seed=s) for s in range(3)]
    x = _x(4)
    z_plain = flows.Flow(couplings)(x)[0]
    assert torch.equal(z_plain[:, 0::2], x[:, 0::2])
    z_mixed = flows.Flow([couplings[0], flows.Reverse(D), couplings[1], flows.Reverse(D), couplings[2]])(x)[0]
    assert (z_mixed[:, 0::2] - x[:, 0::2]).abs().min() > 1e-6


def test_positions_follow_the_reversals():
    assert torch.equal(flows.NICE(10, 4, 1, couplings=4).positions(), torch.arange(9, -1, -1))
    assert torch.equal(flows.NICE(10, 4, 1, couplings=3).positions(), torch.arange(10))
    inter = flows.Flow([flows.Interleave(6), flows.Scale(6)])
    assert inter.positions(torch.arange(6)).tolist() == [0, 2, 4, 1, 3, 5]


def test_interpolation_ends_at_the_two_points():
    model = _random(flows.NICE(D, hidden=16, depth=2), seed=10)
    a, b = _x(2, seed=11)
    path = flows.interpolate(model, a, b, steps=5)
    assert path.shape == (5, D)
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    mid = model.inverse(((model(a[None])[0] + model(b[None])[0]) / 2))[0]
    torch.testing.assert_close(path[2], mid)


def test_full_mode_recipe_on_a_tiny_configuration(tmp_path):
    """The full-mode path (paper architecture: 4 couplings, depth-5 MLPs, logistic prior,
    checkpointed training, dequantised evaluation) on a tiny width and a few steps; an interrupted
    run resumes to exactly the parameters of an uninterrupted one."""
    pixels = data.mnist_subset("train").pixels[:400]
    test = data.mnist_subset("test").pixels[:100]

    def run(steps, ckpt=None):
        torch.manual_seed(0)
        model = flows.NICE(784, hidden=8, depth=5, couplings=4, prior="logistic")
        hist = flows.train_nice(model, pixels, steps, batch_size=50, scale_lr=3e-2, seed=0,
                                checkpoint=ckpt, checkpoint_every=10, log_every=1, progress=False)
        return model, hist

    full, hist = run(30)
    assert hist["loss"][-1] < hist["loss"][0] - 500  # it learns (mostly the scale layer)
    ckpt = tmp_path / "nice.pt"
    run(20, ckpt)  # "interrupted" after 20 of 30 steps
    assert load_checkpoint(ckpt)["step"] == 20
    resumed, _ = run(30, ckpt)
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    result = metrics.dequantized_nll(resumed.log_prob, test, batch_size=40, seed=0)
    assert result.n == 100 and math.isfinite(result.continuous)
    assert result.bits_per_dim == pytest.approx((result.continuous + 784 * math.log(256)) / (784 * math.log(2)))
    assert not resumed.training


@pytest.mark.parametrize("call, name", [
    (lambda: flows.NICE(7), "dim"),
    (lambda: flows.AdditiveCoupling(5), "dim"),
    (lambda: flows.AffineCoupling(3, hidden=4), "dim"),
    (lambda: flows.Interleave(5), "dim"),
    (lambda: flows.NICE(8, prior="cauchy"), "prior"),
    (lambda: flows.NICE(8, couplings=0), "couplings"),
    (lambda: flows.NICE(8, hidden=0), "hidden"),
    (lambda: flows.NICE(8, depth=0), "depth"),
    (lambda: flows.AdditiveCoupling(8, "middle"), "partition"),
    (lambda: flows.AdditiveCoupling(8, net="mlp"), "net"),
    (lambda: flows.AffineCoupling(8, scale="relu"), "scale"),
    (lambda: flows.Permutation([0, 0, 1]), "perm"),
    (lambda: flows.Flow([]), "layers"),
    (lambda: flows.Flow([torch.nn.Linear(2, 2)]), "layers"),
    (lambda: flows.NICE(8, 4, 1).log_prob(torch.zeros(3, 6)), "x"),
    (lambda: flows.NICE(8, 4, 1).log_prob(torch.zeros(8)), "x"),
    (lambda: flows.NICE(8, 4, 1).inverse(torch.zeros(3, 9)), "z"),
    (lambda: flows.AdditiveCoupling(8, hidden=4, depth=1).inverse(torch.zeros(2, 4)), "y"),
    (lambda: flows.Scale(4)(torch.zeros(2, 4, dtype=torch.long)), "x"),
    (lambda: flows.NICE(8, 4, 1).sample(4, temperature=0.0), "temperature"),
    (lambda: flows.NICE(8, 4, 1).sample(4, temperature=-0.8), "temperature"),
    (lambda: flows.NICE(8, 4, 1).sample(0), "n"),
    (lambda: flows.Squeeze()(torch.zeros(1, 1, 3, 4)), "x"),
    (lambda: flows.Squeeze()(torch.zeros(4, 16)), "x"),
    (lambda: flows.Squeeze().inverse(torch.zeros(1, 3, 2, 2)), "y"),
    (lambda: flows.interpolate(flows.NICE(8, 4, 1), torch.zeros(8), torch.zeros(8), steps=1), "steps"),
    (lambda: flows.randomize_(flows.Scale(3), std=0), "std"),
    (lambda: flows.train_nice(flows.NICE(8, 4, 1), torch.zeros(10, 6, dtype=torch.uint8), 5), "pixels"),
    (lambda: flows.train_nice(flows.NICE(8, 4, 1), torch.zeros(10, 8, dtype=torch.uint8), 5, lr=0), "lr"),
])
def test_bad_arguments_raise_value_errors_naming_them(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()


def test_actnorm_reads_its_initialised_flag_once_and_follows_a_loaded_state():
    layer = flows.ActNorm(3)
    x = torch.randn(16, 3) * 5 + 2
    layer.train()
    layer(x)
    assert layer._initialized is True and bool(layer.initialized)
    scale = layer.log_scale.detach().clone()
    layer(x * 10)  # already initialised: the second batch must not re-initialise
    assert torch.equal(layer.log_scale.detach(), scale)
    fresh = flows.ActNorm(3)
    fresh.train()
    fresh.load_state_dict(layer.state_dict())
    fresh(x * 10)  # the loaded flag says initialised
    assert torch.equal(fresh.log_scale.detach(), scale)
    blank = flows.ActNorm(3)
    layer.load_state_dict(blank.state_dict())  # loading an uninitialised state re-arms it
    layer(x)
    assert torch.allclose(layer(x)[0].mean(0), torch.zeros(3), atol=1e-5)

"""Metrics: nats, bits per dimension and the dequantisation bound, against independent computations."""

import math

import numpy as np
import pytest
import torch

from tutorlib import metrics

F64 = torch.float64


def test_uniform_density_is_exactly_8_bits_per_dim():
    # q(x) = 1 on [0,1]^D is the uniform distribution over 256 levels: ln 256 nats = 8 bits per pixel
    assert metrics.discrete_nll(0.0, dim=784) == pytest.approx(784 * math.log(256))
    assert metrics.bits_per_dim(metrics.discrete_nll(0.0, dim=784), 784) == pytest.approx(8.0, abs=1e-12)
    assert metrics.bits_per_dim(metrics.discrete_nll(0.0, dim=3, levels=2), 3) == pytest.approx(1.0, abs=1e-12)


def test_nice_paper_number_converts_to_its_bits_per_dim():
    r = metrics.NLL.from_continuous(-1980.50, dim=784)
    assert r.log_likelihood == 1980.50
    assert r.discrete == pytest.approx(2366.9, abs=0.05)
    assert round(r.bits_per_dim, 2) == 4.36
    assert metrics.continuous_nll(r.discrete, 784) == pytest.approx(-1980.50)
    assert "4.356 bits/dim" in str(r)


def test_conversions_accept_tensors_and_arrays():
    t = metrics.bits_per_dim(torch.tensor([math.log(2) * 10]), 10)
    a = metrics.discrete_nll(np.array([0.0, 1.0]), 2, levels=4)
    assert isinstance(t, torch.Tensor) and float(t) == pytest.approx(1.0)
    assert isinstance(a, np.ndarray) and a.tolist() == pytest.approx([2 * math.log(4), 2 * math.log(4) + 1])


@pytest.mark.parametrize("levels", [4, 16, 256])
def test_dequantised_nll_bounds_the_exact_discrete_nll(levels):
    """For a Gaussian density on one pixel: -ln P(k) from the CDF <= E_u[-ln q((k+u)/L)] + ln L,
    with the Jensen gap Var_u[ln q]/2 to second order."""
    q = torch.distributions.Normal(torch.tensor(0.45, dtype=F64), 0.2)
    k = torch.arange(levels, dtype=F64)
    exact = -torch.log(q.cdf((k + 1) / levels) - q.cdf(k / levels))
    u = (torch.arange(20_000, dtype=F64) + 0.5) / 20_000
    log_q = q.log_prob((k[:, None] + u[None, :]) / levels)
    bound = metrics.discrete_nll(-log_q.mean(dim=1), dim=1, levels=levels)
    assert (bound >= exact - 1e-12).all()
    gap = bound - exact
    torch.testing.assert_close(gap, log_q.var(dim=1) / 2, rtol=0.05 if levels > 4 else 0.3, atol=1e-9)


def test_dequantized_nll_of_a_known_density():
    """q(x) = prod 2 x_i on [0,1]^D: E_u ln q((k+u)/L) = ln(2/L) + (k+1) ln(k+1) - k ln k - 1 per pixel."""
    L, D = 8, 5
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, L, (400, D), generator=g, dtype=torch.uint8)

    def log_prob(x):
        return torch.log(2 * x.double()).sum(dim=-1)

    k = pixels.double()
    xlogx = torch.where(k > 0, k * torch.log(k.clamp(min=1)), torch.zeros_like(k))
    expected = -(math.log(2 / L) + (k + 1) * torch.log(k + 1) - xlogx - 1).sum(dim=1).mean()
    r = metrics.dequantized_nll(log_prob, pixels, levels=L, batch_size=64, draws=20, seed=1)
    assert r.n == 400 and r.dim == D and r.levels == L
    assert r.continuous == pytest.approx(float(expected), abs=4 * r.stderr)
    assert r.discrete == pytest.approx(r.continuous + D * math.log(L))
    again = metrics.dequantized_nll(log_prob, pixels, levels=L, batch_size=64, draws=20, seed=1)
    assert again == r  # seeded: repeatable


@pytest.mark.parametrize("call, name", [
    (lambda: metrics.bits_per_dim(1.0, 0), "dim"),
    (lambda: metrics.bits_per_dim(float("nan"), 3), "nll_nats"),
    (lambda: metrics.discrete_nll(1.0, 3, levels=1), "levels"),
    (lambda: metrics.discrete_nll("1", 3), "continuous_nll"),
    (lambda: metrics.continuous_nll(1.0, -2), "dim"),
    (lambda: metrics.dequantized_nll(None, torch.zeros(2, 3)), "log_prob"),
    (lambda: metrics.dequantized_nll(lambda x: x.sum(-1), torch.zeros(3)), "pixels"),
    (lambda: metrics.dequantized_nll(lambda x: x.sum(-1), torch.zeros(2, 3), draws=0), "draws"),
    (lambda: metrics.dequantized_nll(lambda x: x.sum(-1), torch.zeros(2, 3), batch_size=0), "batch_size"),
    (lambda: metrics.dequantized_nll(lambda x: x.sum(-1) * math.inf, torch.zeros(2, 3)), "log_prob"),
])
def test_bad_arguments_raise_value_errors_naming_them(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()

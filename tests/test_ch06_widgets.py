"""Chapter 6's two sliders: each draw function is pure and two different values draw different pictures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tutorlib import fvae, widgets  # noqa: E402


def _pixels(draw, value) -> np.ndarray:
    fig, ax = plt.subplots(figsize=(4, 2.5))
    draw(ax, value)
    fig.canvas.draw()
    out = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return out


@pytest.fixture(scope="module")
def paths():
    ts = widgets.INTERPOLATION_TS
    a, b = torch.zeros(784), torch.ones(784)
    a[:392] = 1.0  # two different "digits": top half inked, and all inked
    line = torch.stack([(1 - t) * a + t * b for t in ts])
    return {name: line * (0.5 + 0.25 * i) for i, name in enumerate(("VAE", "flow", "f-VAE"))}


def test_draw_interpolation_differs_between_two_values_of_t_and_is_pure(paths):
    before = {k: v.clone() for k, v in paths.items()}
    draw = lambda ax, t: widgets.draw_interpolation(ax, t, paths)  # noqa: E731
    p0, p5, p0_again = _pixels(draw, 0.0), _pixels(draw, 0.5), _pixels(draw, 0.0)
    assert not np.array_equal(p0, p5)
    assert np.array_equal(p0, p0_again)  # same value, same picture
    for k in paths:
        assert torch.equal(paths[k], before[k])  # drawing does not change its input


def test_draw_interpolation_names_each_image_and_fixes_its_axes(paths):
    fig, ax = plt.subplots()
    widgets.draw_interpolation(ax, 0.3, paths)
    assert [t.get_text() for t in ax.texts] == list(paths)
    assert ax.get_title() == "t = 0.3"
    limits = (ax.get_xlim(), ax.get_ylim())
    ax.clear()
    widgets.draw_interpolation(ax, 1.0, paths)
    assert (ax.get_xlim(), ax.get_ylim()) == limits  # the same frame for every t
    plt.close(fig)


@pytest.fixture(scope="module")
def small_fvae():
    torch.manual_seed(0)
    model = fvae.FVAE((1, 28, 28), channels=4, blocks=1, flow_steps=2, hidden=16, depth=1)
    model.loss_terms(torch.rand(64, 784))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


def test_draw_temperature_of_an_fvae_differs_between_two_temperatures(small_fvae):
    draw = lambda ax, t: widgets.draw_temperature(ax, t, small_fvae, n=9, seed=1)  # noqa: E731
    low, high, low_again = _pixels(draw, 0.5), _pixels(draw, 1.5), _pixels(draw, 0.5)
    assert not np.array_equal(low, high)
    assert np.array_equal(low, low_again)  # the same seed: the same draws at the same T

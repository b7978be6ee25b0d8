"""Chapter 6's two sliders: each draw function is pure and two different values draw different pictures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from drawing import rendered  # noqa: E402
from tutorlib import fvae, widgets  # noqa: E402


def _pixels(draw, value) -> np.ndarray:
    return rendered(draw, value, (4, 2.5))[0]


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


def test_draw_interpolation_plots_the_sharpness_along_the_path_on_fixed_axes(paths):
    fig, ax = plt.subplots()
    widgets.draw_interpolation(ax, 0.2, paths)
    (side,) = ax.child_axes
    limits = (side.get_xlim(), side.get_ylim())
    assert [t.get_text() for t in side.get_legend().get_texts()] == list(paths)
    marker_x = [line.get_xdata()[0] for line in side.lines if len(line.get_xdata()) == 1]
    assert marker_x == [0.2] * len(paths)  # one marker per model, at this t
    ax.clear()
    widgets.draw_interpolation(ax, 0.9, paths)
    (side,) = ax.child_axes
    assert (side.get_xlim(), side.get_ylim()) == limits
    plt.close(fig)
    with pytest.raises(ValueError, match="one image per t"):
        widgets.draw_interpolation(plt.subplots()[1], 0.0, {"VAE": paths["VAE"][:3]})
    plt.close("all")


def test_temperature_frames_share_the_draws_and_measure_each_temperature(small_fvae):
    frames = widgets.temperature_frames(small_fvae, (0.5, 1.0), n=9, seed=2)
    assert list(frames) == [0.5, 1.0]
    (x5, s5), (x1, s1) = frames[0.5], frames[1.0]
    assert x5.shape == (9, 784) and float(x5.min()) >= 0 and float(x5.max()) <= 1
    torch.testing.assert_close(x1, small_fvae.sample(9, 1.0, generator=torch.Generator().manual_seed(2)).clamp(0, 1))
    assert s5 == fvae.sample_statistics(x5) and s1 != s5
    with pytest.raises(ValueError, match="temperatures"):
        widgets.temperature_frames(small_fvae, ())


def test_draw_fvae_temperature_differs_between_two_temperatures_on_fixed_axes(small_fvae):
    frames = widgets.temperature_frames(small_fvae, (0.5, 1.0, 1.5), n=9, seed=1)
    before = {T: x.clone() for T, (x, _) in frames.items()}
    draw = lambda ax, t: widgets.draw_fvae_temperature(ax, t, frames)  # noqa: E731
    low, high, low_again = _pixels(draw, 0.5), _pixels(draw, 1.5), _pixels(draw, 0.5)
    assert not np.array_equal(low, high)
    assert np.array_equal(low, low_again)
    assert all(torch.equal(frames[T][0], before[T]) for T in frames)  # drawing does not change its input
    fig, ax = plt.subplots()
    widgets.draw_fvae_temperature(ax, 1.0, frames)
    (side,) = ax.child_axes
    limits = (side.get_xlim(), side.get_ylim())
    assert f"{frames[1.0][1]['inked']:.1%} inked" in ax.get_title()
    ax.clear()
    widgets.draw_fvae_temperature(ax, 1.5, frames)
    assert (ax.child_axes[0].get_xlim(), ax.child_axes[0].get_ylim()) == limits
    with pytest.raises(ValueError, match="temperature must be one of"):
        widgets.draw_fvae_temperature(ax, 0.8, frames)
    plt.close("all")

"""Chapter 5's drawing functions, sliders and plots, called directly (as the widgets call them)."""

import math

import matplotlib.pyplot as plt
import pytest
import torch

from drawing import rendered  # noqa: E402
from tutorlib import flows, plotting, widgets


@pytest.fixture(scope="module")
def model():
    """A small random NICE on 28x28 images with a known spread of scales."""
    m = flows.NICE(784, hidden=16, depth=2, prior="gaussian")
    flows.randomize_(m, std=0.5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        m.scale.log_scale.copy_(torch.linspace(-1.0, 6.0, 784))
    return m.eval()


def test_draw_temperature_shows_the_samples_of_that_temperature(model):
    fig, ax = plt.subplots()
    for t in widgets.TEMPERATURES:  # every slider value draws finite samples
        ax.clear()
        widgets.draw_temperature(ax, t, model, n=9, seed=3)
        assert ax.get_title() == f"T = {t}"
    shown = ax.images[0].get_array()
    expected = model.sample(9, 2.0, generator=torch.Generator().manual_seed(3)).clamp(0, 1)
    ref_ax = plotting.image_grid(expected, (28, 28), nrow=3)
    assert shown.shape == (3 * 29 - 1, 3 * 29 - 1)
    assert (shown == ref_ax.images[0].get_array()).all()


def _pixels(draw, value):
    return rendered(draw, value, (8.4, 2.3))[0]


@pytest.mark.parametrize("a, b", [(0.5, 1.0), (0.1, 2.0)])
def test_two_temperatures_draw_different_pictures(model, a, b):
    draw = lambda ax, t: widgets.draw_temperature(ax, t, model, n=9, seed=3)  # noqa: E731
    assert (_pixels(draw, a) != _pixels(draw, b)).any()
    assert (_pixels(draw, a) == _pixels(draw, a)).all()  # pure: the same value draws the same picture


def test_latent_order_and_one_dimension_strip(model):
    order = widgets.latent_order(model)
    # log_scale increases with the index, so the widest prior (smallest s) is coordinate 0
    assert order[:3].tolist() == [0, 1, 2] and order[-1] == 783
    z0 = torch.zeros(1, 784)
    fig, ax = plt.subplots()
    widgets.draw_latent_dimension(ax, 2, model, z0, values=(-1.0, 0.0, 1.0))
    pixel = int(model.positions()[1])
    title = ax.get_title()
    assert f"rank 2 of 784: z[1] at pixel (row {pixel // 28}, col {pixel % 28})" in title
    assert f"sigma = {math.exp(-float(model.scale.log_scale[1].detach())):.2g}" in title
    z = z0.repeat(3, 1)
    z[:, 1] = torch.tensor([-1.0, 0.0, 1.0])
    with torch.no_grad():
        decoded, base = model.inverse(z), model.inverse(z0)
    largest = float((decoded - base).abs().max())
    assert f"largest pixel change {largest:.2g}" in title
    # the top row of the canvas shows the decoded images (gray_r: white = 0, black = 1)
    canvas = ax.images[0].get_array()
    top_left = canvas[:28, :28, 0]
    expected = 1.0 - decoded[0].clamp(0, 1).reshape(28, 28).double().numpy()
    assert abs(top_left - expected).max() < 0.01
    # the inset marks this coordinate in the sorted spectrum
    spectrum = [child for child in ax.child_axes if child.get_title() == "sorted spectrum"][0]
    marker = spectrum.lines[1]
    assert marker.get_xdata()[0] == 2
    assert marker.get_ydata()[0] == pytest.approx(float(model.prior_std()[1]))


@pytest.mark.parametrize("a, b", [(1, 784), (1, 500), (700, 784)])
def test_two_ranks_draw_different_pictures(model, a, b):
    z0 = model(torch.rand(1, 784, generator=torch.Generator().manual_seed(1)))[0].detach()
    draw = lambda ax, r: widgets.draw_latent_dimension(ax, r, model, z0)  # noqa: E731
    assert (_pixels(draw, a) != _pixels(draw, b)).any()


def test_every_slider_rank_is_a_valid_rank_and_reaches_the_collapsed_end(model):
    assert len(widgets.LATENT_RANKS) <= 12 and widgets.LATENT_RANKS[0] == 1
    assert widgets.LATENT_RANKS[-1] == 784 and sum(r >= 700 for r in widgets.LATENT_RANKS) >= 3
    assert list(widgets.LATENT_RANKS) == sorted(set(widgets.LATENT_RANKS))


def test_a_collapsed_coordinate_changes_almost_nothing(model):
    """Rank 784 has the smallest sigma: varying it over -3..3 moves the pixels by about 3 sigma."""
    z0 = torch.zeros(1, 784)
    fig, ax = plt.subplots()
    widgets.draw_latent_dimension(ax, 784, model, z0)
    sigma = float(model.prior_std().min())
    largest = float(ax.get_title().rsplit("largest pixel change ", 1)[1])
    fig2, ax2 = plt.subplots()
    widgets.draw_latent_dimension(ax2, 1, model, z0)
    assert largest < float(ax2.get_title().rsplit("largest pixel change ", 1)[1])
    assert largest >= 3 * sigma * 0.99  # its own pixel moves by 3 sigma at least


def test_sliders_draw_their_static_views(model, capsys):
    widgets.temperature_slider(model, static=(0.5, 1.0), n=4)
    widgets.latent_dimension_slider(model, torch.zeros(1, 784), static=(1, 784))
    out = capsys.readouterr().out
    assert "T = 0.5, 1.0" in out and "rank = 1, 784" in out


def test_density_grid_integrates_a_gaussian_to_one():
    normal = torch.distributions.MultivariateNormal(torch.tensor([0.5, -0.2], dtype=torch.float64),
                                                    torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64))
    X, Y, dens = plotting.density_grid(normal.log_prob, (-6, -6), (6, 6), n=300)
    assert dens.shape == (300, 300) and dens.sum() * (12 / 300) ** 2 == pytest.approx(1.0, abs=1e-6)
    # the maximum sits at the mean
    i, j = divmod(int(dens.argmax()), 300)
    assert abs(X[i, j] - 0.5) < 0.05 and abs(Y[i, j] + 0.2) < 0.05
    ax = plotting.density_2d(normal.log_prob, (-3, -3), (3, 3), n=50, data=torch.zeros(3, 2), title="g")
    assert ax.get_title() == "g"


def test_scales_image_puts_each_std_at_its_pixel(model):
    ax = plotting.scales_image(model)
    img = torch.as_tensor(ax.images[0].get_array().data).reshape(-1)
    expected = torch.empty(784, dtype=torch.float64)
    expected[model.positions()] = model.prior_std().double().log10()
    torch.testing.assert_close(img, expected)
    # 4 couplings = 3 reversals: latent coordinate 0 (the widest) sits on the last pixel
    assert float(img[783]) == pytest.approx(math.log10(math.exp(1.0)))
    m = plotting.matrix_image(torch.eye(3), title="J")
    assert m.get_title() == "J"
    # a colour bar on a symmetric scale, labelled
    bar = [a for a in m.figure.axes if a is not m][0]
    assert "partial" in bar.get_ylabel() and m.images[0].get_clim() == (-1.0, 1.0)
    assert len(plotting.matrix_image(torch.eye(3), colorbar=False).figure.axes) == 1


@pytest.mark.parametrize("call, name", [
    (lambda m: widgets.draw_latent_dimension(None, 0, m, torch.zeros(1, 784)), "rank"),
    (lambda m: widgets.draw_latent_dimension(None, 785, m, torch.zeros(1, 784)), "rank"),
    (lambda m: widgets.draw_latent_dimension(None, 1, m, torch.zeros(784)), "z0"),
    (lambda m: widgets.draw_temperature(None, 0.5, m, n=0), "n"),
    (lambda m: widgets.draw_temperature(plt.subplots()[1], 0.0, m, n=4), "temperature"),
    (lambda m: plotting.density_grid(lambda x: x[:, 0], (1, 0), (0, 1)), "hi"),
    (lambda m: plotting.scales_image(m, shape=(27, 27)), "shape"),
    (lambda m: plotting.matrix_image(torch.zeros(3)), "matrix"),
])
def test_bad_arguments_raise_value_errors_naming_them(model, call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call(model)


def _rendered(ax):
    import numpy as np

    ax.figure.canvas.draw()
    return np.asarray(ax.figure.canvas.buffer_rgba())[..., :3].astype(float)


def _image_pixels(ax):
    """The rendered RGB pixels inside the axes' image (not the frame, ticks or colour bar)."""
    import numpy as np

    rgb = _rendered(ax)
    box = ax.get_window_extent()
    h = rgb.shape[0]
    y0, y1 = int(h - box.y1) + 3, int(h - box.y0) - 3
    return rgb[y0:y1, int(box.x0) + 3:int(box.x1) - 3]


def test_nonzero_pattern_of_a_dense_matrix_is_black_not_blank():
    """The first edition drew an all-non-zero Jacobian pattern auto-scaled: all white."""
    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    plotting.matrix_image(torch.ones(50, 50, dtype=torch.bool), ax=axes[0], nonzero=True)
    plotting.matrix_image(torch.zeros(50, 50), ax=axes[1], nonzero=True, colorbar=False)
    dense, empty = _image_pixels(axes[0]), _image_pixels(axes[1])
    assert dense.mean() < 10  # black
    assert empty.mean() > 245  # white
    bar = [a for a in fig.axes if a not in axes][0]
    assert [t.get_text() for t in bar.get_yticklabels()] == ["zero", "non-zero"]
    plt.close(fig)


def test_nonzero_pattern_shows_the_structure_of_a_triangular_matrix():
    fig, ax = plt.subplots(figsize=(3, 3))
    plotting.matrix_image(torch.tril(torch.randn(40, 40)) != 0, ax=ax, nonzero=True, colorbar=False)
    px = _image_pixels(ax).mean(axis=2)
    n = px.shape[0]
    assert px[int(0.8 * n), int(0.2 * n)] < 50 and px[int(0.2 * n), int(0.8 * n)] > 200  # lower dark, upper white
    plt.close(fig)


def test_scales_image_takes_a_shared_colour_scale(model):
    ax = plotting.scales_image(model, vmin=-3.0, vmax=0.0)
    assert ax.images[0].get_clim() == (-3.0, 0.0)
    with pytest.raises(ValueError, match=r"\bvmin\b"):
        plotting.scales_image(model, vmin=0.0, vmax=-1.0)

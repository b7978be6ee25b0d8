"""Widgets: the pure drawing functions, the static small multiples, and the slider wiring."""

import matplotlib.pyplot as plt
import pytest

from tutorlib import widgets
from tutorlib.integration import beta_problem
from tutorlib.plotting import image_grid, quadrature_vs_samples


def test_small_multiples_draws_one_panel_per_value():
    seen = []
    fig = widgets.small_multiples(lambda ax, v: seen.append(v) or ax.plot([0, v]), "k", [1, 2, 3, 4], ncols=3)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert seen == [1, 2, 3, 4] and len(visible) == 4 and len(fig.axes) == 6


def test_explore_prints_the_static_caption_and_draws_static_values(capsys):
    seen = []
    widgets.explore(lambda ax, v: seen.append(v), "n", [1, 2, 4, 8], static=[1, 8], slider=False)
    assert seen == [1, 8]
    assert widgets.STATIC_TITLE + " (no kernel needed)" in capsys.readouterr().out


def test_explore_with_a_slider_draws_its_initial_value():
    seen = []
    widgets.explore(lambda ax, v: seen.append(v), "n", [1, 2, 4, 8], static=[1, 8], value=4)
    assert seen == [1, 8, 4]  # the two static panels, then the slider's first drawing


@pytest.mark.parametrize("kwargs, word", [
    (dict(values=[]), "values"),
    (dict(values=[1, 2], static=[3]), "static"),
    (dict(values=[1, 2], value=5), "value"),
])
def test_explore_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        widgets.explore(lambda ax, v: None, "n", slider=False, **kwargs)


def test_chapter1_drawings_report_the_right_numbers():
    fig, ax = plt.subplots()
    widgets.draw_sampling_n(ax, 16)
    assert "n = 16" in ax.get_title() and "exact 1.6903" in ax.get_title()
    widgets.draw_dimension(ax, 2, max_budget=1000, reps=3)
    assert ax.get_title() == "dimension d = 2"
    with pytest.raises(ValueError, match="dim"):
        quadrature_vs_samples(beta_problem(2), 4)


def test_image_grid_tiles_images():
    import torch

    ax = image_grid(torch.rand(6, 16), shape=(4, 4), nrow=3)
    assert ax.images[0].get_array().shape == (2 * 5 - 1, 3 * 5 - 1)
    with pytest.raises(ValueError, match="images"):
        image_grid(torch.rand(6, 15), shape=(4, 4))


def test_chapter6_interpolation_drawing_shows_each_models_image_at_t():
    import torch

    ts = widgets.INTERPOLATION_TS
    paths = {"a": torch.linspace(0, 1, len(ts))[:, None].expand(len(ts), 4),
             "b": torch.zeros(len(ts), 4)}
    fig, ax = plt.subplots()
    widgets.draw_interpolation(ax, 0.3, paths, shape=(2, 2))
    canvas = ax.images[0].get_array()
    # image_grid draws 1 - value: model "a" at t = 0.3 has value 0.3 everywhere, "b" is 0
    assert canvas[0, 0] == pytest.approx(0.7) and canvas[0, 3] == pytest.approx(1.0)
    assert "t = 0.3" in ax.get_title()
    with pytest.raises(ValueError, match="t must be one of"):
        widgets.draw_interpolation(ax, 0.25, paths, shape=(2, 2))
    with pytest.raises(ValueError, match="paths"):
        widgets.draw_interpolation(ax, 0.3, {}, shape=(2, 2))
    plt.close(fig)

"""Widgets: the slider mechanism (static small multiples, the kernel-free slider's frames and HTML,
the live slider), and the chapters' pure drawing functions."""

import html
import io
import re
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from tutorlib import widgets
from tutorlib.integration import beta_problem
from tutorlib.plotting import image_grid, quadrature_vs_samples

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import check_book  # noqa: E402


def test_small_multiples_draws_one_panel_per_value():
    seen = []
    fig = widgets.small_multiples(lambda ax, v: seen.append(v) or ax.plot([0, v]), "k", [1, 2, 3, 4], ncols=3)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert seen == [1, 2, 3, 4] and len(visible) == 4 and len(fig.axes) == 6


def _draw(ax, v):
    """A cheap drawing whose picture depends on v."""
    ax.plot([0, 1], [0, v], lw=2)
    ax.set_ylim(0, 10)
    ax.set_title(f"v = {v}")


@pytest.fixture
def shown(monkeypatch):
    """The mime bundles explore displays (outside IPython it would print their text)."""
    bundles = []
    monkeypatch.setattr(widgets, "_display", bundles.append)
    monkeypatch.setattr(widgets, "_display_live", lambda obj: bundles.append(obj._repr_mimebundle_()))
    return bundles


def _slider(bundles):
    sliders = [b["text/html"] for b in bundles if widgets.SLIDER_CLASS in b.get("text/html", "")]
    assert len(sliders) == 1
    return sliders[0]


def _frames(html_text):
    return re.findall(r'<img class="tutorlib-frame"[^>]*>', html_text)


def _attr(tag, name):
    m = re.search(rf'\s{name}="([^"]*)"', tag)
    return html.unescape(m.group(1)) if m else None


def test_explore_prints_the_static_caption_and_draws_static_values_then_every_frame(capsys, shown):
    seen = []
    widgets.explore(lambda ax, v: seen.append(v) or _draw(ax, v), "n", [1, 2, 4, 8], static=[1, 8], slider=False)
    assert seen == [1, 8, 1, 2, 4, 8]  # the two static panels, then one frame per value
    assert widgets.STATIC_TITLE + " (no kernel needed)" in capsys.readouterr().out
    assert len(shown) == 2  # the static figure, the kernel-free slider; no live slider


def test_explore_with_a_live_slider_draws_its_initial_value_last(shown):
    seen = []
    widgets.explore(lambda ax, v: seen.append(v) or _draw(ax, v), "n", [1, 2, 4, 8], static=[1, 8], value=4)
    assert seen == [1, 8, 1, 2, 4, 8, 4]  # static panels, every frame, then the live slider's first drawing
    live = shown[-1]
    assert "application/vnd.jupyter.widget-view+json" in live  # a live front end shows the widget
    assert f'class="{widgets.LIVE_CLASS}"' in live["text/html"] and "needs a kernel" in live["text/html"]


def test_the_kernel_free_slider_has_one_distinct_frame_per_value_with_alt_texts(shown):
    values = [0.5, 1, 2, 4, 8]
    widgets.explore(_draw, "lam", values, static=[1, 8], value=2, title="a line", slider=False)
    page = _slider(shown)
    frames = _frames(page)
    assert [_attr(f, "data-value") for f in frames] == ["0.5", "1", "2", "4", "8"]
    assert [_attr(f, "alt") for f in frames] == [f"a line: lam = {v}" for v in values]
    srcs = [_attr(f, "src") for f in frames]
    assert all(s.startswith("data:image/png;base64,") for s in srcs) and len(set(srcs)) == len(srcs)
    # the default value: its frame alone is shown before any script runs, the input starts there
    assert [" hidden" in f for f in frames] == [True, True, False, True, True]
    (inp,) = re.findall(r'<input type="range"[^>]*>', page)
    assert (_attr(inp, "min"), _attr(inp, "max"), _attr(inp, "value")) == ("0", "4", "2")
    assert _attr(inp, "aria-valuetext") == "lam = 2"
    assert _attr(inp, "data-lm-suppress-shortcuts") == "true"  # or JupyterLab's notebook takes the arrow keys
    assert re.search(r"<output[^>]*>lam = 2</output>", page)
    # the control is hidden until its script shows it; the script defines no global names
    assert re.search(r'<div class="tutorlib-slider-control" hidden style="display:none">', page)
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    assert script.startswith("(function () {") and script.rstrip().endswith("})();")
    assert check_book.slider_problems("page", page + "Static view (no kernel needed)") == []


def test_the_frames_are_pngs_of_one_size_and_differ(shown):
    frames = widgets.render_frames(_draw, [1, 2, 3], widgets.frame_size((3.0, 2.0)))
    sizes = {Image.open(io.BytesIO(f)).size for f in frames}
    assert len(sizes) == 1 and len(set(frames)) == 3
    (w, h), = sizes
    assert w <= widgets.FRAME_MAX_WIDTH and (w, h) == (round(4.5 * widgets.FRAME_DPI), round(2.8 * widgets.FRAME_DPI))


def test_the_static_figure_carries_an_alt_text(shown):
    widgets.explore(_draw, "n", [1, 2, 3], static=[1, 3], title="lines", slider=False)
    static = shown[0]
    assert static["image/png"] and 'class="tutorlib-static"' in static["text/html"]
    assert 'alt="lines, side by side for n = 1, 3"' in static["text/html"]


def test_a_custom_alt_text_names_each_frame_and_the_static_view(shown):
    widgets.explore(_draw, "n", [1, 2, 3], static=[1, 3], slider=False, alt=lambda v: f"a line rising to {v}")
    assert [_attr(f, "alt") for f in _frames(_slider(shown))] == ["a line rising to 1", "a line rising to 2",
                                                                 "a line rising to 3"]
    assert 'alt="Side by side: a line rising to 1; a line rising to 3"' in shown[0]["text/html"]


def test_identical_frames_are_refused(shown):
    with pytest.raises(ValueError, match="identical"):
        widgets.explore(lambda ax, v: ax.plot([0, 1], [0, min(v, 2)]), "n", [1, 2, 3], slider=False)


def test_live_values_may_be_finer(shown):
    widgets.explore(_draw, "n", [1, 4], static=[1], value=4, live_values=[1, 2, 3, 4])
    assert len(_frames(_slider(shown))) == 2  # the frames stay the book's values
    with pytest.raises(ValueError, match="live_values"):
        widgets.explore(_draw, "n", [1, 4], static=[1], value=4, live_values=[1, 2])


@pytest.mark.parametrize("kwargs, word", [
    (dict(values=[]), "values"),
    (dict(values=[1, 2], static=[3]), "static"),
    (dict(values=[1, 2], static=[]), "static"),
    (dict(values=[1, 2], value=5), "value"),
    (dict(values=[1, 1.0, 2]), "distinct"),
    (dict(values=[1, "1"]), "distinct"),
    (dict(values=[1, 2], ncols=0), "ncols"),
    (dict(values=[1, 2], panel=(3.0, -1.0)), "panel"),
    (dict(values=[1, 2], panel="big"), "panel"),
    (dict(values=[1, 2], alt="a line"), "alt"),
    (dict(values=[1, 2], alt=lambda v: " "), "alt"),
    (dict(values=[1, 2], name=""), "name"),
    (dict(values=[1, 2], draw="plot"), "draw"),
])
def test_explore_rejects_bad_arguments(kwargs, word, shown):
    kwargs = {"draw": _draw, "name": "n", **kwargs}
    with pytest.raises(ValueError, match=word):
        widgets.explore(slider=False, **kwargs)


@pytest.mark.parametrize("kwargs, word", [
    (dict(frames=[]), "frames"),
    (dict(labels=["1"]), "same length"),
    (dict(index=2), "index"),
    (dict(index=True), "index"),
    (dict(alts=["a", " "]), "alts"),
])
def test_slider_html_rejects_bad_arguments(kwargs, word):
    args = dict(name="n", labels=["1", "2"], frames=[b"a", b"b"], index=0, title="t", alts=["a", "b"])
    with pytest.raises(ValueError, match=word):
        widgets.slider_html(**{**args, **kwargs})


def test_render_frames_rejects_bad_arguments():
    with pytest.raises(ValueError, match="values"):
        widgets.render_frames(_draw, [], (3, 2))
    with pytest.raises(ValueError, match="dpi"):
        widgets.render_frames(_draw, [1], (3, 2), dpi=0)
    with pytest.raises(ValueError, match="panel"):
        widgets.render_frames(_draw, [1], (3, 0))


def test_slider_html_escapes_names_and_values():
    page = widgets.slider_html('a<"b>', ['<1>', '2&'], [b"x", b"y"], 1, "t<", ["<a>", "b"])
    assert '<1>' not in page and 'data-value="&lt;1&gt;"' in page and 'data-name="a&lt;&quot;b&gt;"' in page


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

"""Chapter 4's slider over n: a pure drawing whose picture changes with n."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from drawing import rendered  # noqa: E402
from tutorlib import widgets

RNG = np.random.default_rng(0)
SAMPLES = {"pathwise": -2.8 + 3.8 * RNG.standard_normal(4000),
           "score function": -2.8 + 570 * RNG.standard_normal(20000),
           "score function, baseline b": -2.8 + 17 * RNG.standard_normal(20000)}


def _pixels(n, samples=SAMPLES):
    return rendered(lambda ax, v: widgets.draw_gradient_n(ax, v, samples, -2.8), n, (9, 4.5), dpi=50)


def test_two_values_of_n_draw_different_pictures():
    a, _ = _pixels(1)
    b, _ = _pixels(16)
    c, _ = _pixels(256)
    assert a.shape == b.shape
    assert (a != b).any(axis=-1).mean() > 0.01 and (b != c).any(axis=-1).mean() > 0.01


def test_the_drawing_is_pure():
    a, _ = _pixels(16)
    b, _ = _pixels(16)
    assert np.array_equal(a, b)


def test_each_estimator_keeps_its_own_fixed_axis_and_the_current_n_is_marked():
    _, ax1 = _pixels(1)
    _, ax256 = _pixels(256)
    hists1, hists256 = ax1.child_axes[:3], ax256.child_axes[:3]
    for name, h1, h256 in zip(SAMPLES, hists1, hists256):
        assert h1.get_xlim() == h256.get_xlim()  # fixed across n
        lo, hi = h1.get_xlim()
        assert (hi - lo) / 8 == pytest.approx(np.std(SAMPLES[name]), rel=1e-9)  # +-4 single-sample sd
        assert h1.get_title(loc="left").startswith(name)
    widths = [h.get_xlim()[1] - h.get_xlim()[0] for h in hists1]
    assert widths[1] > 100 * widths[0]  # a scale per estimator: the score function's is 150x wider
    var_ax = ax256.child_axes[3]
    assert var_ax.get_xscale() == "log" and var_ax.get_yscale() == "log"
    assert any(np.allclose(line.get_xdata(), [256]) for line in var_ax.get_lines())  # marker at n
    assert "n = 256" in ax256.get_title()


def test_the_histogram_narrows_like_one_over_root_n():
    _, ax = _pixels(64)
    title = ax.child_axes[0].get_title(loc="left")  # "pathwise: sd 0.47 (62 averages)"
    sd = float(title.split("sd ")[1].split(" ")[0])
    assert sd == pytest.approx(3.8 / 8, rel=0.2)


@pytest.mark.parametrize("kwargs, word", [
    (dict(n=3), "n must be one of"),
    (dict(n=0), "n"),
    (dict(samples={}), "samples"),
    (dict(samples={"few": np.zeros(10)}), "needs at least"),
])
def test_bad_arguments_raise_value_errors(kwargs, word):
    fig, ax = plt.subplots()
    args = dict(n=16, samples=SAMPLES, reference=-2.8) | kwargs
    with pytest.raises(ValueError, match=word):
        widgets.draw_gradient_n(ax, **args)

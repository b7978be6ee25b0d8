"""Chapter 1's sliders: each draw function is pure, and two values draw different pictures."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from drawing import rendered  # noqa: E402
from tutorlib import integration, plotting, widgets  # noqa: F401  (plotting sets the book's style on import:
# import it before the first figure, or the first frame is drawn in Matplotlib's default style)


@pytest.fixture(scope="module")
def table():
    return integration.budget_table([10, 100, 1000], (1, 2, 3, 4), reps=4, seed=0)


def _pixels(draw, value, **kw):
    out, ax = rendered(draw, value, (5, 3.5), **kw)
    return out, ax.get_title()


def test_budget_frames_differ_and_name_the_winners(table):
    a, title_a = _pixels(widgets.draw_budget, 10, table=table)
    b, title_b = _pixels(widgets.draw_budget, 1000, table=table)
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert "N = 10 evaluations" in title_a and "N = 1,000 evaluations" in title_b
    assert widgets.winners(table, 10)[0] == "quadrature" and widgets.winners(table, 1000)[3] == "Monte Carlo"
    again, _ = _pixels(widgets.draw_budget, 10, table=table)
    assert np.array_equal(a, again)  # pure: the same value draws the same picture
    with pytest.raises(ValueError, match="n must be one of"):
        widgets.draw_budget(plt.subplots()[1], 20, table)


def test_dimension_frames_differ_on_fixed_axes(table):
    a, _ = _pixels(widgets.draw_dimension, 1, table=table)
    b, title = _pixels(widgets.draw_dimension, 4, table=table)
    assert not np.array_equal(a, b) and title == "dimension d = 4"
    fig, axes = plt.subplots(1, 2)
    widgets.draw_dimension(axes[0], 1, table=table)
    widgets.draw_dimension(axes[1], 3, table=table)
    assert axes[0].get_ylim() == axes[1].get_ylim() == widgets.ERROR_YLIM
    assert axes[0].get_xlim() == axes[1].get_xlim()
    plt.close(fig)


def test_winners_summary_has_one_line_per_budget(table):
    lines = widgets.winners_summary(table).splitlines()
    assert len(lines) == 3 and lines[0].startswith("N = 10 evaluations: quadrature wins for d <= 1")

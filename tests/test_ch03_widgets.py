"""Chapter 3's two sliders: each draw function is pure and two values draw different pictures."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from drawing import rendered  # noqa: E402
from tutorlib import iwae, vae, widgets


def _pixels(draw, value):
    return rendered(draw, value, (4.4, 4.0))[0]


@pytest.fixture(scope="module")
def prior_runs():
    from tutorlib.data import mnist_subset

    x = mnist_subset("train").x[:300]
    return vae.prior_sampling_sweep(x, [1, 4], steps=30, z_dim=4, hidden=32, batch_size=50, lr=3e-3, battles=3,
                                    n_battle=20)


def test_draw_prior_k_differs_between_values_and_is_pure(prior_runs):
    draw = lambda ax, k: widgets.draw_prior_k(ax, k, results=prior_runs)  # noqa: E731
    a, b = _pixels(draw, 1), _pixels(draw, 4)
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert np.array_equal(a, _pixels(draw, 1))  # pure: the same value draws the same picture
    fig, ax = plt.subplots()
    widgets.draw_prior_k(ax, 4, prior_runs)
    title = ax.get_title()
    assert "k = 4" in title and "in 3 batches" in title and "of 20;" in title and "loss sd" in title
    with pytest.raises(ValueError, match="k must be one of"):
        widgets.draw_prior_k(ax, 16, prior_runs)
    plt.close(fig)


def test_draw_iwae_k_differs_between_values_and_is_pure():
    torch.manual_seed(0)
    ks = [1, 2, 5, 10]
    lw = {"VAE": torch.randn(10, 7) * 2, "IWAE": torch.randn(10, 7) * 3}
    view = {"ks": ks, "models": {n: {"curve": iwae.bound_curve(w, ks).mean(1).tolist(), "log_w": w[:, 0]}
                                 for n, w in lw.items()}}
    draw = lambda ax, k: widgets.draw_iwae_k(ax, k, view=view)  # noqa: E731
    pictures = [_pixels(draw, k) for k in ks]
    for i in range(len(ks)):
        for j in range(i + 1, len(ks)):
            assert not np.array_equal(pictures[i], pictures[j]), (ks[i], ks[j])
    assert np.array_equal(pictures[0], _pixels(draw, 1))
    fig, ax = plt.subplots()
    widgets.draw_iwae_k(ax, 5, view)
    assert ax.get_title().startswith("k = 5")
    legend = [t.get_text() for a in ax.child_axes for t in (a.get_legend().get_texts() if a.get_legend() else [])]
    assert any("ESS" in t and "of 5" in t for t in legend)
    with pytest.raises(ValueError, match="k must be one of"):
        widgets.draw_iwae_k(ax, 3, view)
    plt.close(fig)

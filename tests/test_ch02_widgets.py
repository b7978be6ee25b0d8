"""Chapter 2's sigma^2 slider: a pure draw function; two values draw different pictures, in each of
its three parts (images, the two loss terms, the loss L)."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from drawing import rendered  # noqa: E402
from tutorlib import widgets


def _fake_results():
    g = torch.Generator().manual_seed(0)
    out = {}
    for i, s2 in enumerate((0.003, 0.03, 1.0)):
        out[s2] = {"recon": torch.rand(8, 784, generator=g), "samples": torch.rand(16, 784, generator=g),
                   "sq_err": 19.0 + 9 * i, "kl": 68.0 / (1 + 4 * i), "loss": -300.0 + 500 * i,
                   "ml_sigma2": 0.025 + 0.01 * i, "mse": 18.0, "dim": 784}
    return out


def _pixels(value, results, originals):
    out, ax = rendered(widgets.draw_sigma2, value, (12, 3.2), results=results, originals=originals)
    return out, ax.get_title()


def test_sigma2_frames_differ_and_report_the_loss_terms():
    results, originals = _fake_results(), torch.rand(8, 784)
    a, title_a = _pixels(0.003, results, originals)
    b, title_b = _pixels(1.0, results, originals)
    assert a.shape == b.shape and not np.array_equal(a, b)
    w = a.shape[1]
    for lo, hi in ((0.08, 0.5), (0.58, 0.75), (0.82, 1.0)):  # images, the two terms, the loss panel
        assert not np.array_equal(a[:, int(lo * w):int(hi * w)], b[:, int(lo * w):int(hi * w)]), (lo, hi)
    assert "$\\sigma^2$ = 0.003" in title_a and "KL 68.0 nats" in title_a and "ML $\\sigma^2$ = 0.025" in title_a
    assert "$\\sigma^2$ = 1.0" in title_b and "= 700 nats" in title_b
    again, _ = _pixels(0.003, results, originals)
    assert np.array_equal(a, again)
    with pytest.raises(ValueError, match="sigma2 must be one of"):
        widgets.draw_sigma2(plt.subplots()[1], 0.1, results=results, originals=originals)


def test_sigma2_profile_is_lowest_at_the_ml_variance():
    r = _fake_results()[0.03]
    grid = np.geomspace(1e-4, 10, 20001)
    prof = widgets._sigma2_profile(r, grid)
    assert grid[np.argmin(prof)] == pytest.approx(r["sq_err"] / 784, rel=1e-3)
    # at sigma^2 = e / D the profile is D/2 (1 + ln(2 pi e / D)) + KL
    s = r["sq_err"] / 784
    assert float(widgets._sigma2_profile(r, s)) == pytest.approx(392 * (1 + math.log(2 * math.pi * s)) + r["kl"],
                                                                  rel=1e-12)

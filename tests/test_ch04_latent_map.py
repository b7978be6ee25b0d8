"""Chapter 4: the decoded latent grid is oriented like the scatter of codes.

The first edition drew the grid rotated by 180 degrees. The decoder used here writes its code into
the image (left half: z1, right half: z2), so every tile says which code it was decoded from.
"""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from tutorlib import IdentityError, plotting

VALUES = np.array([-1.5, -0.5, 0.2, 1.0, 1.6])
SHAPE = (4, 6)  # tiny tiles: 4 rows, 6 columns of pixels


def decode(z):
    """(m, 2) codes -> (m, 24) images in [0, 1]: left half (z1 + 2) / 4, right half (z2 + 2) / 4."""
    z = torch.as_tensor(z, dtype=torch.float32)
    left = ((z[:, :1] + 2) / 4).expand(-1, 12).reshape(-1, 4, 3)
    right = ((z[:, 1:] + 2) / 4).expand(-1, 12).reshape(-1, 4, 3)
    return torch.cat([left, right], dim=2).reshape(-1, 24)


def _drawn(decoder=decode):
    fig, ax = plt.subplots()
    plotting.latent_map(decoder, VALUES, shape=SHAPE, ax=ax)
    return ax


def _tile_code(ax, r, c):
    img = plotting.latent_map_tile(ax, r, c, SHAPE).reshape(SHAPE)
    return 4 * img[0, 0] - 2, 4 * img[0, -1] - 2  # (z1, z2) written into the tile


def test_corner_tiles_decode_the_corner_codes():
    ax = _drawn()
    lo, hi, m = VALUES[0], VALUES[-1], len(VALUES)
    for (r, c), (z1, z2) in {(0, 0): (lo, hi), (0, m - 1): (hi, hi), (m - 1, 0): (lo, lo),
                             (m - 1, m - 1): (hi, lo)}.items():
        got = plotting.latent_map_tile(ax, r, c, SHAPE)
        want = decode(torch.tensor([[z1, z2]])).numpy()[0]
        np.testing.assert_allclose(got, want, atol=1e-6)
        np.testing.assert_allclose(_tile_code(ax, r, c), (z1, z2), atol=1e-5)


def test_z1_grows_to_the_right_and_z2_upwards_in_every_tile():
    ax = _drawn()
    m = len(VALUES)
    for r in range(m):
        for c in range(m):
            np.testing.assert_allclose(_tile_code(ax, r, c), (VALUES[c], VALUES[m - 1 - r]), atol=1e-5)


def test_both_axes_are_labelled_with_the_codes():
    ax = _drawn()
    assert ax.get_xlabel() == r"$z_1$" and ax.get_ylabel() == r"$z_2$"
    xt = [t.get_text() for t in ax.get_xticklabels()]
    yt = [t.get_text() for t in ax.get_yticklabels()]
    assert xt == [f"{v:.2f}" for v in VALUES]
    assert yt == [f"{v:.2f}" for v in VALUES[::-1]]  # the top row has the largest z2
    # tick positions are the tile centres, left to right and top to bottom
    assert np.all(np.diff(ax.get_xticks()) > 0) and np.all(np.diff(ax.get_yticks()) > 0)


def test_check_latent_map_passes_on_the_map():
    plotting.check_latent_map(_drawn(), decode, VALUES, shape=SHAPE)


@pytest.mark.parametrize("broken", ["rotated 180 degrees", "transposed", "z2 upside down"])
def test_check_latent_map_fails_on_a_misoriented_map(broken):
    fig, ax = plt.subplots()
    grid = torch.tensor(VALUES, dtype=torch.float32)
    if broken == "rotated 180 degrees":  # the first edition's ordering
        zz = torch.cartesian_prod(grid, grid.flip(0))[:, [1, 0]]
    elif broken == "transposed":
        zz = plotting.latent_grid_codes(VALUES)[:, [1, 0]]
    else:
        zz = plotting.latent_grid_codes(VALUES) * torch.tensor([1.0, -1.0])
    plotting.image_grid(decode(zz), SHAPE, nrow=len(VALUES), ax=ax)
    with pytest.raises(IdentityError):
        plotting.check_latent_map(ax, decode, VALUES, shape=SHAPE)


def test_latent_grid_codes_reading_order():
    codes = plotting.latent_grid_codes([0.0, 1.0, 2.0])
    assert codes.tolist() == [[0, 2], [1, 2], [2, 2], [0, 1], [1, 1], [2, 1], [0, 0], [1, 0], [2, 0]]


def test_latent_scatter_labels_and_box():
    fig, ax = plt.subplots()
    codes = torch.randn(50, 2)
    plotting.latent_scatter(codes, torch.arange(50) % 10, ax=ax, box=(-1.0, 1.0), title="codes")
    assert ax.get_xlabel() == r"$z_1$" and ax.get_ylabel() == r"$z_2$"
    assert ax.get_xlim() == (-3.5, 3.5) and ax.get_title() == "codes"
    assert any(line.get_linestyle() == "--" for line in ax.get_lines())  # the grid's square
    assert len(fig.axes) == 2  # the colour bar


@pytest.mark.parametrize("call, word", [
    (lambda: plotting.latent_grid_codes([1.0]), "values"),
    (lambda: plotting.latent_grid_codes([1.0, 0.0]), "values"),
    (lambda: plotting.latent_scatter(torch.zeros(3, 3), torch.zeros(3)), "codes"),
    (lambda: plotting.latent_map_tile(plt.subplots()[1], 0, 0), "ax"),
    (lambda: plotting.latent_map_tile(_drawn(), 9, 0, SHAPE), "outside"),
])
def test_bad_arguments_raise_value_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()

"""One consistent plotting style for the book: image grids, training curves and each chapter's figures.

Every function draws on a given Matplotlib ``ax`` when one is passed (so the widgets can reuse
it in small multiples) and returns the axes it drew on.
"""

from __future__ import annotations

import math

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

from tutorlib._validate import positive_int

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "figure.figsize": (6.0, 3.6),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "image.cmap": "gray_r",
}
COLORS = {"quadrature": "#1f77b4", "monte carlo": "#d62728", "exact": "#333333", "reference": "#7f7f7f"}


def use_style() -> None:
    """Apply the book's Matplotlib style (done once when this module is imported)."""
    mpl.rcParams.update(STYLE)


use_style()


def _ax(ax, figsize=None):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def image_grid(images, shape: tuple[int, int], nrow: int | None = None, ax=None, title: str | None = None):
    """Tile ``images`` (n, h*w) or (n, h, w), values in [0, 1], into one picture."""
    x = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, float)
    h, w = shape
    if x.ndim < 2 or x[0].size != h * w:
        raise ValueError(f"images must have shape (n, {h * w}) or (n, {h}, {w}) for shape={shape}, got {x.shape}")
    x = x.reshape(-1, h, w)
    n = x.shape[0]
    ncol = positive_int("nrow", nrow) if nrow is not None else math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncol)
    canvas = np.ones((nrows * (h + 1) - 1, ncol * (w + 1) - 1))
    for i in range(n):
        r, c = divmod(i, ncol)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = 1.0 - x[i]
    ax = _ax(ax, figsize=(0.4 * ncol + 0.5, 0.4 * nrows + 0.5))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def training_curves(history, keys=None, ax=None, title: str | None = None, logy: bool = False):
    """Plot logged values of a :class:`tutorlib.train.History` against the step."""
    keys = list(keys) if keys is not None else history.keys()
    ax = _ax(ax)
    for k in keys:
        ax.plot(history.steps, history[k], label=k, lw=1.2)
    ax.set_xlabel("step")
    if logy:
        ax.set_yscale("log")
    if len(keys) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    return ax


def quadrature_vs_samples(problem, n: int, ax=None, seed: int = 0):
    """Chapter 1, one dimension: the ``n`` quadrature points (stems of height ``p(x_i)``) against
    ``n`` Monte Carlo samples (a rug), with both estimates in the title."""
    from tutorlib.integration import monte_carlo, quadrature

    n = positive_int("n", n)
    if problem.dim != 1:
        raise ValueError(f"quadrature_vs_samples draws a 1-D problem, got dim={problem.dim}")
    ax = _ax(ax)
    grid = torch.linspace(problem.lo, problem.hi, 400, dtype=torch.float64)[:, None]
    ax.plot(grid[:, 0], problem.pdf(grid), color=COLORS["exact"], lw=1, label="p(x)")
    h = (problem.hi - problem.lo) / n
    pts = problem.lo + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    ax.vlines(pts, 0, problem.pdf(pts[:, None]), color=COLORS["quadrature"], lw=1.5, label="grid points, height p(x_i)")
    gen = torch.Generator().manual_seed(seed)
    draws = problem.sample(n, gen)[:, 0]
    ax.plot(draws, np.full(n, -0.08), "|", color=COLORS["monte carlo"], ms=10, label="samples x_i ~ p")
    q = quadrature(problem.f, problem.pdf, 1, n, problem.lo, problem.hi)
    mc, _ = monte_carlo(problem.f, problem.sample, n, torch.Generator().manual_seed(seed))
    ax.set_title(f"n = {n}\nquadrature {q:.4f} | sampling {mc:.4f} | exact {problem.exact:.4f}", fontsize=9)
    ax.set_ylim(-0.18, 1.7)
    ax.set_xlabel("x")
    ax.set_ylabel("p(x)")
    return ax


def errors_vs_budget(curves, ax=None, legend: bool = True, ylim=None, xlim=None):
    """Chapter 1: log-log absolute error of quadrature and Monte Carlo against function evaluations,
    with the 10-90 % band of the Monte Carlo runs where ``curves`` has it. ``ylim``/``xlim``: fixed
    axes (for sliders), else Matplotlib's."""
    ax = _ax(ax)
    # An error of exactly 0 (quadrature at machine precision) is drawn at 1e-16 so the log scale holds it.
    ax.loglog(curves.quad_evals, np.maximum(curves.quad_error, 1e-16), "o-", color=COLORS["quadrature"], ms=3,
              label="quadrature")
    ax.loglog(curves.budgets, curves.mc_error, "s-", color=COLORS["monte carlo"], ms=3, label="Monte Carlo (RMS)")
    if getattr(curves, "mc_lo", None) is not None:
        ax.fill_between(curves.budgets, curves.mc_lo, curves.mc_hi, color=COLORS["monte carlo"], alpha=0.15, lw=0,
                        label=f"Monte Carlo, 10-90 % of {curves.reps} runs")
    ax.loglog(curves.budgets, curves.mc_predicted, "--", color=COLORS["monte carlo"], lw=0.8, label=r"$\sigma_f/\sqrt{N}$")
    ax.set_xlabel("function evaluations N")
    ax.set_ylabel("|error|")
    ax.set_title(f"dimension d = {curves.dim}")
    if ylim is not None:
        ax.set_ylim(*ylim)
    if xlim is not None:
        ax.set_xlim(*xlim)
    if legend:
        ax.legend(loc="lower left", fontsize=8)
    return ax


# --- chapter 5 -------------------------------------------------------------------------------

def density_grid(log_prob, lo, hi, n: int = 200):
    """``exp(log_prob)`` on an ``n x n`` grid of cell midpoints over ``[lo[0], hi[0]] x [lo[1], hi[1]]``.

    Returns ``(X, Y, density)`` as NumPy arrays of shape (n, n); ``log_prob`` maps an (m, 2)
    float64 tensor to (m,) (a model in float64, or a wrapper that casts).
    """
    n = positive_int("n", n)
    (x0, y0), (x1, y1) = [tuple(float(v) for v in p) for p in (lo, hi)]
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"hi must be greater than lo in both coordinates, got lo={lo}, hi={hi}")
    gx = x0 + (x1 - x0) * (torch.arange(n, dtype=torch.float64) + 0.5) / n
    gy = y0 + (y1 - y0) * (torch.arange(n, dtype=torch.float64) + 0.5) / n
    X, Y = torch.meshgrid(gx, gy, indexing="xy")
    with torch.no_grad():
        dens = log_prob(torch.stack((X.reshape(-1), Y.reshape(-1)), dim=1)).exp().reshape(n, n)
    return X.numpy(), Y.numpy(), dens.double().cpu().numpy()


def density_2d(log_prob, lo, hi, n: int = 200, ax=None, data=None, title: str | None = None):
    """Chapter 5: filled contours of a 2-D density ``exp(log_prob)``, with optional data points."""
    X, Y, dens = density_grid(log_prob, lo, hi, n)
    ax = _ax(ax, figsize=(4.2, 3.6))
    ax.contourf(X, Y, dens, levels=30, cmap="viridis")
    if data is not None:
        pts = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
        ax.scatter(pts[:, 0], pts[:, 1], s=1, c="white", alpha=0.5, lw=0)
    ax.set_aspect("equal")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax


def matrix_image(matrix, ax=None, title: str | None = None, colorbar: bool = True,
                 label: str = r"$\partial z_i/\partial x_j$", nonzero: bool = False):
    """Chapter 5: a (Jacobian) matrix as an image (rows: outputs ``i``, columns: inputs ``j``).

    By default blue negative, white zero, red positive, on a symmetric colour scale, with a colour
    bar labelled ``label``. With ``nonzero=True`` only the pattern is drawn: black where an entry
    is not exactly zero, white where it is, on the fixed scale 0..1 (so a matrix with no zero
    entry is all black, not the single colour an auto-scaled image would give it), with a
    two-level colour bar."""
    m = matrix.detach().cpu().double().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix, float)
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {m.shape}")
    ax = _ax(ax, figsize=(3.6, 3.2))
    if nonzero:
        im = ax.imshow((m != 0).astype(float), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="antialiased")
    else:
        vmax = float(np.abs(m).max()) or 1.0
        im = ax.imshow(m, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("input j", fontsize=8)
    ax.set_ylabel("output i", fontsize=8)
    ax.grid(False)
    if colorbar:
        if nonzero:  # a two-level bar: white = zero, black = non-zero
            two = mpl.cm.ScalarMappable(mpl.colors.Normalize(0.0, 1.0), mpl.colors.ListedColormap(["white", "black"]))
            cb = ax.figure.colorbar(two, ax=ax, fraction=0.046, pad=0.04, ticks=[0.25, 0.75])
            cb.set_ticklabels(["zero", "non-zero"])
            cb.outline.set_linewidth(0.5)
        else:
            cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            cb.set_label(label, fontsize=8)
        cb.ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def scales_image(model, shape: tuple[int, int] = (28, 28), ax=None, title: str | None = None,
                 vmin: float | None = None, vmax: float | None = None):
    """Chapter 5: the prior standard deviations that NICE's scale layer learned
    (:meth:`tutorlib.flows.NICE.prior_std`, log10), each drawn at the pixel its latent coordinate
    sits on. Dark = collapsed (small sigma). ``vmin``/``vmax`` (in log10 sigma) fix the colour
    scale, e.g. to compare two models on one scale; by default it spans the model's values."""
    std = model.prior_std().cpu().double()
    if std.numel() != shape[0] * shape[1]:
        raise ValueError(f"shape {shape} does not hold the model's {std.numel()} dimensions")
    if vmin is not None and vmax is not None and not float(vmin) < float(vmax):
        raise ValueError(f"vmin must be below vmax, got vmin={vmin}, vmax={vmax}")
    img = torch.empty_like(std)
    img[model.positions()] = std.log10()
    ax = _ax(ax, figsize=(3.6, 3.2))
    im = ax.imshow(img.reshape(shape).numpy(), cmap="magma", interpolation="nearest", vmin=vmin, vmax=vmax)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=r"$\log_{10}\sigma_i$")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


# --- chapter 4: the latent map of a 2-D VAE ----------------------------------------------------

def latent_grid_codes(values) -> torch.Tensor:
    """The codes of a decoded latent grid in the reading order of its picture (row by row, from the
    top left): row ``r`` has ``z_2 = values[-1 - r]`` (the highest ``z_2`` on top, as on a scatter
    plot) and column ``c`` has ``z_1 = values[c]``. ``values``: increasing numbers. Shape (m*m, 2)."""
    v = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    if v.numel() < 2 or not torch.isfinite(v).all() or not (v[1:] > v[:-1]).all():
        raise ValueError(f"values must be at least 2 finite, increasing numbers, got {values!r}")
    z2, z1 = torch.meshgrid(v.flip(0), v, indexing="ij")  # rows: z2 from high to low; columns: z1 from low to high
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


def latent_map(decode, values, shape: tuple[int, int] = (28, 28), ax=None, title: str | None = None,
               tick_every: int = 1):
    """Chapter 4: the images ``decode(z)`` on the grid ``z_1, z_2`` in ``values`` (increasing),
    oriented like a scatter plot of the codes: ``z_1`` grows to the right, ``z_2`` upwards. Both axes
    are labelled with the code of each row and column. ``decode`` maps an (m*m, 2) tensor of codes
    (from :func:`latent_grid_codes`) to (m*m, h*w) images in [0, 1]."""
    codes = latent_grid_codes(values)
    m = int(round(math.sqrt(codes.shape[0])))
    with torch.no_grad():
        images = decode(codes)
    ax = image_grid(images, shape, nrow=m, ax=ax)
    h, w = shape
    vals = codes[:m, 0].tolist()
    ticks = [c * (w + 1) + (w - 1) / 2 for c in range(m)][::positive_int("tick_every", tick_every)]
    labels = [f"{v:.2f}" for v in vals][::tick_every]
    ax.set_axis_on()
    ax.grid(False)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xticks(ticks, labels, fontsize=7, rotation=90)
    yticks = [r * (h + 1) + (h - 1) / 2 for r in range(m)][::tick_every]
    ax.set_yticks(yticks, [f"{v:.2f}" for v in vals[::-1]][::tick_every], fontsize=7)
    ax.set_xlabel(r"$z_1$")
    ax.set_ylabel(r"$z_2$")
    if title:
        ax.set_title(title)
    return ax


def latent_map_tile(ax, row: int, col: int, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """The image (h*w, values in [0, 1]) that :func:`latent_map` drew in ``row``, ``col`` of ``ax``
    (``row = 0`` is the top), read back from the picture."""
    if not ax.images:
        raise ValueError("ax holds no image: draw it with latent_map first")
    canvas = np.asarray(ax.images[-1].get_array(), dtype=float)
    h, w = shape
    r0, c0 = positive_int("row", row, minimum=0) * (h + 1), positive_int("col", col, minimum=0) * (w + 1)
    if r0 + h > canvas.shape[0] or c0 + w > canvas.shape[1]:
        raise ValueError(f"tile ({row}, {col}) lies outside the {canvas.shape} picture")
    return 1.0 - canvas[r0:r0 + h, c0:c0 + w].reshape(-1)  # image_grid draws 1 - x (dark ink)


def latent_scatter(codes, labels, ax=None, lim: float = 3.5, box=None, title: str | None = None):
    """Chapter 4: the codes ``mu(x)`` (n, 2) of images coloured by their digit ``labels``, on
    ``[-lim, lim]^2`` with equal aspect, a colour bar of the digits and, if ``box = (lo, hi)``, the
    square that a :func:`latent_map` over ``[lo, hi]`` covers (dashed)."""
    z = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes, float)
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if z.ndim != 2 or z.shape[1] != 2 or len(y) != len(z):
        raise ValueError(f"codes must be (n, 2) and labels (n,), got {z.shape} and {y.shape}")
    ax = _ax(ax, figsize=(5, 4.4))
    sc = ax.scatter(z[:, 0], z[:, 1], c=y, cmap="tab10", vmin=-0.5, vmax=9.5, s=4, lw=0)
    ax.figure.colorbar(sc, ax=ax, ticks=range(10), label="digit", fraction=0.046, pad=0.04)
    if box is not None:
        lo, hi = (float(b) for b in box)
        ax.plot([lo, hi, hi, lo, lo], [lo, lo, hi, hi, lo], "k--", lw=0.8, label="area of the decoded grid")
        ax.legend(loc="upper right", fontsize=7, frameon=True)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$z_1$")
    ax.set_ylabel(r"$z_2$")
    if title:
        ax.set_title(title)
    return ax


def check_latent_map(ax, decode, values, shape: tuple[int, int] = (28, 28), atol: float = 1e-6) -> None:
    """Check the orientation of a drawn :func:`latent_map`: each corner tile of the picture in ``ax``
    must be ``decode`` at that corner's code, built here from ``values`` by hand (top left
    ``(z_1, z_2) = (min, max)``, top right ``(max, max)``, bottom left ``(min, min)``, bottom right
    ``(max, min)``). Prints, per corner, the largest pixel difference between the tile read back
    from the picture and the decoder's image; raises :class:`tutorlib.IdentityError` if it exceeds
    ``atol`` (the picture stores the decoder's float32 output, so only rounding separates them)."""
    from tutorlib.checks import compare

    v = [float(x) for x in values]
    lo, hi, m = v[0], v[-1], len(v)
    corners = {"top left": (0, 0, lo, hi), "top right": (0, m - 1, hi, hi),
               "bottom left": (m - 1, 0, lo, lo), "bottom right": (m - 1, m - 1, hi, lo)}
    for name, (r, c, z1, z2) in corners.items():
        with torch.no_grad():
            want = decode(torch.tensor([[z1, z2]], dtype=torch.float32))[0]
        got = latent_map_tile(ax, r, c, shape)
        want = want.detach().cpu().double().numpy().reshape(-1)
        if want.shape != got.shape:
            raise ValueError(f"decode must return images of {got.size} pixels, got {want.shape}")
        compare(f"{name} tile = decoder at (z1, z2) = ({z1:.2f}, {z2:.2f})", float(np.abs(got - want).max()), 0.0,
                atol=atol, names=("max over pixels |tile - decoder image|", "0"))

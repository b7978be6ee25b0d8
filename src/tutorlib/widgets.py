"""Sliders for the quantities the text varies, each a thin layer over a pure drawing function.

The pattern, :func:`explore`: a drawing function ``draw(ax, value)`` that the tests can call
directly; a static small-multiples figure of a few values, so the rendered book (which has no
kernel) still shows the effect; and below it a slider that redraws one panel in a live kernel
(Jupyter, Colab).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import torch

from tutorlib._validate import positive_int

STATIC_TITLE = "Static view"


def small_multiples(draw: Callable, name: str, values: Sequence, ncols: int = 3,
                    panel: tuple[float, float] = (3.6, 2.8), title: str | None = None):
    """One figure with ``draw(ax, v)`` for each ``v`` in ``values``; returns the figure."""
    values = list(values)
    if not values:
        raise ValueError("values must not be empty")
    ncols = min(positive_int("ncols", ncols), len(values))
    nrows = math.ceil(len(values) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), squeeze=False)
    for ax, v in zip(axes.flat, values):
        draw(ax, v)
    for ax in list(axes.flat)[len(values):]:
        ax.set_visible(False)
    fig.suptitle(f"{title or name}: {name} = {', '.join(map(str, values))}", fontsize=10)
    fig.tight_layout()
    return fig


def explore(draw: Callable, name: str, values: Sequence, static: Sequence | None = None, value=None,
            ncols: int = 3, panel: tuple[float, float] = (3.6, 2.8), title: str | None = None, slider: bool = True):
    """Show the static small multiples of ``static`` (default: 3 of ``values``), then a slider over
    ``values`` that redraws ``draw(ax, v)`` in a live kernel. Displays; returns nothing."""
    values = list(values)
    if not values:
        raise ValueError("values must not be empty")
    if static is None:
        static = [values[0], values[len(values) // 2], values[-1]]
    bad = [v for v in static if v not in values]
    if bad:
        raise ValueError(f"static values {bad} are not among the slider's values {values}")
    if value is None:
        value = values[len(values) // 2]
    elif value not in values:
        raise ValueError(f"value {value!r} is not among the slider's values {values}")
    print(f"{STATIC_TITLE} (no kernel needed): {title or name}, {name} = {', '.join(map(str, static))}."
          + ("\nIn a live kernel the slider below redraws it for any value." if slider else ""))
    fig = small_multiples(draw, name, static, ncols=ncols, panel=panel, title=title)
    plt.show()
    plt.close(fig)
    if not slider:
        return
    import ipywidgets as w
    from IPython.display import display

    control = w.SelectionSlider(options=values, value=value, description=name, continuous_update=False,
                                layout=w.Layout(width="60%"))

    def one(**kw):
        fig, ax = plt.subplots(figsize=(panel[0] * 1.5, panel[1] * 1.4))
        draw(ax, kw[name])
        plt.show()
        plt.close(fig)

    out = w.interactive_output(one, {name: control})
    display(w.VBox([w.HTML(f"<b>Interactive</b> (needs a running kernel): drag <code>{name}</code>"), control, out]))


# --- chapter 1 -------------------------------------------------------------------------------

N_VALUES = (2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128)  # grid points / samples of the 1-D picture
DIM_VALUES = (1, 2, 3, 4, 5, 6, 7, 8)
BUDGETS = (10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 100_000)  # function evaluations N
ERROR_YLIM = (1e-11, 1e4)  # fixed axes: every frame of both chapter-1 sliders on one scale


@functools.lru_cache(maxsize=None)
def _curves(dim: int, max_budget: int, reps: int):
    import numpy as np

    from tutorlib.integration import beta_problem, error_curves

    budgets = np.unique(np.logspace(1, math.log10(max_budget), 9).astype(int))
    return error_curves(beta_problem(dim), budgets, reps=reps, seed=dim)


def budget_table(reps: int = 20, seed: int = 0):
    """Chapter 1: the one table both sliders slice, :func:`tutorlib.integration.budget_table` over
    :data:`DIM_VALUES` and :data:`BUDGETS` (a few seconds; compute it once and pass it in)."""
    from tutorlib.integration import budget_table as table

    return table(BUDGETS, DIM_VALUES, reps=reps, seed=seed)


def draw_sampling_n(ax, n: int):
    """Chapter 1: quadrature points vs samples for ``n`` evaluations in one dimension."""
    from tutorlib.integration import beta_problem
    from tutorlib.plotting import quadrature_vs_samples

    return quadrature_vs_samples(beta_problem(1), n, ax=ax)


def winners(table, n: int) -> list[str]:
    """For the budget ``n``: per dimension of ``table``, ``"quadrature"`` where its error is below the
    Monte Carlo RMS error, else ``"Monte Carlo"``."""
    if n not in table.budgets:
        raise ValueError(f"n must be one of the table's budgets {list(map(int, table.budgets))}, got {n!r}")
    j = list(table.budgets).index(n)
    rms = table.mc_rms()[:, j]
    return ["quadrature" if q < r else "Monte Carlo" for q, r in zip(table.quad_error[:, j], rms)]


def _winner_title(n: int, dims, who) -> str:
    quad = [d for d, w in zip(dims, who) if w == "quadrature"]
    mc = [d for d, w in zip(dims, who) if w != "quadrature"]
    if quad and mc and max(quad) < min(mc):
        return f"N = {n:,} evaluations:\nquadrature wins for d <= {max(quad)}, Monte Carlo for d >= {min(mc)}"
    if not mc:
        return f"N = {n:,} evaluations:\nquadrature wins in every dimension shown"
    if not quad:
        return f"N = {n:,} evaluations:\nMonte Carlo wins in every dimension shown"
    return f"N = {n:,} evaluations:\nquadrature wins for d in {quad}, Monte Carlo for d in {mc}"


def winners_summary(table) -> str:
    """One line per budget of ``table``: where each method wins (the titles of :func:`draw_budget`)."""
    return "\n".join(_winner_title(int(n), table.dims, winners(table, int(n))).replace(":\n", ": ")
                     for n in table.budgets)


def draw_budget(ax, n: int, table):
    """Chapter 1, the ``n`` slider: the same budget of ``n`` function evaluations in every dimension of
    ``table``. Quadrature uses the largest grid ``m**d <= n`` (its ``m`` is printed under each ``d``);
    every run of Monte Carlo is a dot, their root-mean-square error a line; the shading marks the winner."""
    import numpy as np

    from tutorlib.plotting import COLORS

    who = winners(table, n)
    j = list(table.budgets).index(n)
    dims = np.asarray(table.dims)
    for d, w in zip(dims, who):
        ax.axvspan(d - 0.5, d + 0.5, color=COLORS["quadrature" if w == "quadrature" else "monte carlo"],
                   alpha=0.08, lw=0)
    reps = table.reps
    jitter = np.linspace(-0.18, 0.18, reps)
    runs = np.clip(np.abs(table.mc_errors[:, j, :]), ERROR_YLIM[0], None)
    ax.plot((dims[:, None] + jitter[None, :]).ravel(), runs.ravel(), ".", ms=3, alpha=0.45,
            color=COLORS["monte carlo"], label=f"one Monte Carlo run of N samples ({reps} runs)")
    ax.semilogy(dims, table.mc_rms()[:, j], "s-", ms=4, color=COLORS["monte carlo"], label="Monte Carlo, RMS error")
    ax.semilogy(dims, np.maximum(table.quad_error[:, j], ERROR_YLIM[0]), "o-", ms=5, color=COLORS["quadrature"],
                label="quadrature, m^d <= N grid points")
    ax.set_xticks(dims)
    ax.set_xticklabels([f"{d}\nm={m if m < 10_000 else f'{m:.0e}'.replace('+0', '')}"
                        for d, m in zip(dims, table.quad_m[:, j])], fontsize=7)
    ax.set_xlim(dims[0] - 0.5, dims[-1] + 0.5)
    ax.set_ylim(*ERROR_YLIM)
    ax.set_xlabel("dimension d (m: grid points per axis)")
    ax.set_ylabel("|error| of E[f]")
    ax.set_title(_winner_title(n, table.dims, who), fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    return ax


def draw_dimension(ax, dim: int, table=None, max_budget: int = 100_000, reps: int = 12):
    """Chapter 1, the ``d`` slider: error against the number of evaluations in dimension ``dim``, on
    fixed axes, with the fitted slopes. ``table``: a :func:`budget_table` (else computed and cached)."""
    from tutorlib.integration import quad_slope
    from tutorlib.plotting import errors_vs_budget

    dim = positive_int("dim", dim)
    if table is None:
        curves = _curves(dim, max_budget, reps)
        errors_vs_budget(curves, ax=ax, legend=dim == 1)
        return ax
    from tutorlib.integration import mc_slope

    curves = table.curves(dim)
    errors_vs_budget(curves, ax=ax, legend=True, ylim=ERROR_YLIM, xlim=(0.7, 1.5 * max(table.budgets)))
    s_mc, _ = mc_slope(table, dim)
    i = table.index(dim)
    if (table.quad_m[i] >= 4).sum() >= 2:
        quad_note = f"quadrature {quad_slope(table, dim, min_m=4):.2f} (-2/d = {-2 / dim:.2f})"
    else:  # only grids of 1-4 points per axis: far from the asymptotic law
        quad_note = f"quadrature {quad_slope(table, dim):.2f} (m <= {table.quad_m[i].max()}; -2/d = {-2 / dim:.2f})"
    ax.text(0.98, 0.97, f"fitted slopes:\n{quad_note}\nMonte Carlo {s_mc:.2f} (-1/2)", transform=ax.transAxes,
            ha="right", va="top", fontsize=7.5)
    return ax


def sampling_n_slider(table, static=(10, 1000, 100_000)) -> None:
    """Chapter 1: the slider for the budget ``N`` of function evaluations, shared by every dimension."""
    draw = functools.partial(draw_budget, table=table)
    explore(draw, "N", [int(b) for b in table.budgets], static=static, value=1000,
            title="the same budget N in every dimension", panel=(4.6, 3.4))


def dimension_slider(table, static=(1, 4, 8)) -> None:
    """Chapter 1: the slider for the dimension ``d``."""
    draw = functools.partial(draw_dimension, table=table)
    explore(draw, "d", list(table.dims), static=static, value=4, title="error vs evaluations", panel=(4.2, 3.4))


# --- chapters 7 and 8 ------------------------------------------------------------------------

DISTANCES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
LAMBDAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


@functools.lru_cache(maxsize=None)
def _delta_curve(kind: str, lam: float | None, d_max: float = 4.5, n: int = 31):
    import numpy as np

    from tutorlib.divergences import delta_divergence

    ds = np.linspace(0.0, d_max, n)
    return ds, np.array([delta_divergence(kind, 0.0, float(d), lam=lam) for d in ds])


def draw_delta_divergences(ax, distance: float, kinds=("sgan", "wgan", "kl")):
    """Chapter 7: each dual divergence of two deltas against their distance, solved numerically,
    with the value and the slope (by a central difference of the numerical values) at ``distance``."""
    import numpy as np

    from tutorlib._validate import positive_float
    from tutorlib.divergences import delta_divergence

    distance = positive_float("distance", distance)
    labels = {"sgan": "SGAN (JS)", "wgan": "WGAN", "kl": "KL (f-GAN)"}
    notes = []
    for kind in kinds:
        ds, vals = _delta_curve(kind, None)
        if np.isinf(vals[1:]).all():  # infinite for every d > 0: draw it at the top edge
            line, = ax.plot(ds[1:], np.full(len(ds) - 1, 4.9), lw=1.5, ls="--",
                            label=f"{labels.get(kind, kind)}: +inf")
        else:
            line, = ax.plot(ds[1:], vals[1:], lw=1.5, label=labels.get(kind, kind))
        ax.plot([0.0], [vals[0]], "o", mfc="white", color=line.get_color())  # d = 0: p = q
        v = delta_divergence(kind, 0.0, distance)
        h = 1e-3
        slope = (delta_divergence(kind, 0.0, distance + h) - delta_divergence(kind, 0.0, distance - h)) / (2 * h)
        if np.isfinite(v):
            ax.plot([distance], [v], "o", color=line.get_color())
        notes.append(f"{kind}: {v:.3g}, slope {slope:.2g}" if np.isfinite(v) else f"{kind}: inf")
    ax.axvline(distance, color="k", lw=0.6, ls=":")
    ax.set_xlabel(r"distance $d(\alpha, \beta)$")
    ax.set_ylabel("divergence")
    ax.set_ylim(0, 5)
    ax.set_title(f"d = {distance}\n" + "; ".join(notes), fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    return ax


def draw_qp_delta(ax, lam: float):
    """Chapter 8: the QP-divergence of two deltas, solved numerically, against ``lam * d / 2``."""
    import numpy as np

    from tutorlib._validate import positive_float

    lam = positive_float("lam", lam)
    ds, vals = _delta_curve("qp", lam)
    ax.plot(ds, lam * ds / 2, color="k", lw=1, label=r"closed form $\lambda d/2$")
    ax.plot(ds[::3], vals[::3], "o", ms=4, color="C2", label="numerical max over T")
    sg_ds, sg = _delta_curve("sgan", None)
    ax.plot(sg_ds[1:], sg[1:], color="C0", lw=1, ls="--", label="SGAN: ln 2")
    ax.set_xlabel(r"distance $d(\alpha, \beta)$")
    ax.set_ylabel("divergence")
    ax.set_title(f"lambda = {lam}: slope {np.polyfit(ds, vals, 1)[0]:.4g} (lambda/2 = {lam / 2:.4g})", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    return ax


def delta_distance_slider(static=(0.5, 2.0, 4.0)) -> None:
    """Chapter 7: the slider for the distance between the two deltas."""
    explore(draw_delta_divergences, "distance", DISTANCES, static=static, value=1.0,
            title="dual divergences of two deltas")


def lambda_slider(static=(0.1, 1.0, 10.0)) -> None:
    """Chapter 8: the slider for GAN-QP's lambda."""
    explore(draw_qp_delta, "lam", LAMBDAS, static=static, value=10.0, title="QP-divergence of two deltas")


# --- chapters 2-4 ----------------------------------------------------------------------------------

def draw_sigma2(ax, sigma2: float, results: dict, originals, n: int = 8):
    """Chapter 2: for the VAE trained with decoder variance ``sigma2`` (one entry of
    :func:`tutorlib.vae.sigma_sweep`), ``n`` test images, their reconstructions and ``n`` samples from
    the prior (left), and the two loss terms of every trained ``sigma^2`` with this one marked (right,
    the same axes for every value): the weighted squared error ``||x - mu(z)||^2 / (2 sigma^2)`` and
    the KL term, in nats per image, with the maximum-likelihood ``sigma^2`` of this model."""
    import numpy as np

    from tutorlib.plotting import image_grid

    if sigma2 not in results:
        raise ValueError(f"sigma2 must be one of the trained values {sorted(results)}, got {sigma2}")
    r = results[sigma2]
    n = min(positive_int("n", n), len(originals), len(r["samples"]))
    ax.set_axis_off()
    img = ax.inset_axes([0.08, 0.0, 0.52, 0.86])
    rows = torch.cat([originals[:n], r["recon"][:n], r["samples"][:n]])
    image_grid(rows, shape=(28, 28), nrow=n, ax=img)
    for k, label in enumerate(("data", "recon-\nstructions", "samples\nfrom the\nprior")):
        img.text(-0.01, 1 - (k + 0.5) / 3, label, transform=img.transAxes, ha="right", va="center", fontsize=7)
    curve = ax.inset_axes([0.68, 0.12, 0.31, 0.74])
    s2s = np.array(sorted(results))
    weighted = np.array([results[v]["sq_err"] / (2 * v) for v in s2s])
    kls = np.array([results[v]["kl"] for v in s2s])
    curve.loglog(s2s, weighted, "o-", ms=3, color="C0", label=r"$\|x-\mu(z)\|^2/(2\sigma^2)$")
    curve.loglog(s2s, kls, "s-", ms=3, color="C3", label="KL term")
    curve.loglog([sigma2], [r["sq_err"] / (2 * sigma2)], "o", ms=9, mfc="none", color="C0")
    curve.loglog([sigma2], [r["kl"]], "s", ms=9, mfc="none", color="C3")
    curve.axvline(sigma2, color="k", lw=0.6, ls=":")
    curve.axvline(r["ml_sigma2"], color="C2", lw=1.0, ls="--", label=r"ML $\sigma^2$ of this model")
    curve.set_xlim(s2s.min() / 2, s2s.max() * 2)
    curve.set_ylim(min(weighted.min(), kls.min()) / 3, max(weighted.max(), kls.max()) * 3)
    curve.set_xlabel(r"decoder variance $\sigma^2$", fontsize=8)
    curve.set_ylabel("nats per image", fontsize=8)
    curve.tick_params(labelsize=7)
    curve.legend(fontsize=6, loc="upper right")
    ax.set_title(f"sigma^2 = {sigma2}: squared error {r['sq_err']:.1f}, KL {r['kl']:.1f} nats, "
                 f"L = {r['loss']:.0f} nats; ML sigma^2 = {r['ml_sigma2']:.3f}", fontsize=8)
    return ax


def draw_prior_k(ax, k: int, results: dict):
    """Chapter 3: decoded prior samples of the decoder trained with ``k`` shared prior samples, and
    how many training images each of a batch's ``k`` z's wins."""
    import torch

    from tutorlib.plotting import image_grid

    if k not in results:
        raise ValueError(f"k must be one of the trained values {sorted(results)}, got {k}")
    r = results[k]
    image_grid(r["samples"][:16], shape=(28, 28), nrow=8, ax=ax)
    wins = torch.bincount(r["assignment"], minlength=k).sort(descending=True).values
    top = ", ".join(str(int(w)) for w in wins[:5])
    ax.set_title(f"k = {k}: loss {r['loss']:.1f} nats\nimages won by the top z's: {top} (of {int(wins.sum())})",
                 fontsize=8)
    return ax


def draw_iwae_k(ax, k: int, curves: dict):
    """Chapter 3: ``L_k`` against ``k`` for each trained model, with the value at ``k`` marked."""
    for name, (ks, values) in curves.items():
        line, = ax.semilogx(ks, values, "o-", ms=3, label=name)
        if k in ks:
            v = values[list(ks).index(k)]
            ax.plot([k], [v], "s", ms=8, mfc="none", color=line.get_color())
    ax.axvline(k, color="k", lw=0.6, ls=":")
    ax.set_xlabel("k (importance samples)")
    ax.set_ylabel(r"$L_k$ on test images (nats)")
    parts = [f"{n}: {v[list(ks).index(k)]:.1f}" for n, (ks, v) in curves.items() if k in ks]
    ax.set_title(f"k = {k}: " + ", ".join(parts), fontsize=8)
    ax.legend(fontsize=8)
    return ax


GRADIENT_NS = (1, 4, 16, 64, 256)


def _averages(x, n: int):
    reps = len(x) // n
    return x[: reps * n].reshape(reps, n).mean(1)


def draw_gradient_n(ax, n: int, samples: dict, reference: float, ns=GRADIENT_NS, component: str = "d/dmu_1"):
    """Chapter 4: what averaging ``n`` single-sample gradient estimates does to each estimator.

    ``samples``: estimator name -> 1-D array of its single-sample estimates of one gradient
    ``component``; ``reference``: the value they estimate. Left, one histogram per estimator of
    the averages of ``n`` consecutive estimates, each on its own fixed scale (the reference
    +- 4 single-sample standard deviations, the same for every ``n``), so each one visibly narrows
    as ``n`` grows. Right, the variance of the n-sample average against ``n`` for every value in
    ``ns`` (log axes, in the histograms' colours; dotted: single-sample variance / n), with the
    current ``n`` marked. The
    title says how many score-function samples would match the pathwise variance at ``n``."""
    import numpy as np

    n = positive_int("n", n)
    ns = [positive_int("ns", int(v)) for v in ns]
    if n not in ns:
        raise ValueError(f"n must be one of {ns}, got {n}")
    if not samples:
        raise ValueError("samples must not be empty")
    data = {}
    for name, x in samples.items():
        x = np.asarray(x, dtype=float).reshape(-1)
        if len(x) < 2 * max(ns) or not np.isfinite(x).all():
            raise ValueError(f"samples[{name!r}] needs at least {2 * max(ns)} finite values, got {len(x)}")
        data[name] = x
    reference = float(reference)
    ax.set_axis_off()
    k = len(data)
    gap, top = 0.17, 0.88
    height = (top - gap * (k - 1)) / k
    variances = {}
    for i, (name, x) in enumerate(data.items()):
        color = f"C{i}"
        sd1 = float(x.std())
        lo, hi = reference - 4 * sd1, reference + 4 * sd1
        means = _averages(x, n)
        inside = means[(means >= lo) & (means <= hi)]
        hax = ax.inset_axes([0.0, top - (i + 1) * height - i * gap, 0.6, height])
        bins = int(round(32 * math.sqrt(n)))  # about 4 bins per standard deviation of the average
        counts, edges = np.histogram(inside, bins=np.linspace(lo, hi, bins + 1))
        hax.stairs(counts, edges, fill=True, color=color, alpha=0.8)  # one polygon: fast to draw
        hax.axvline(reference, color="k", lw=1)
        hax.set_xlim(lo, hi)
        hax.set_yticks([])
        hax.grid(False)
        hax.tick_params(labelsize=7, pad=1)
        out = (len(means) - len(inside)) / len(means)
        note = f", {out:.1%} off the axis" if out >= 0.0005 else ""
        hax.set_title(f"{name}: sd {means.std():.3g} ({len(means):,} averages{note})", fontsize=7, loc="left", pad=2)
        variances[name] = [float(_averages(x, m).var()) for m in ns]
    vax = ax.inset_axes([0.75, 0.0, 0.25, top])
    ns_arr = np.asarray(ns, dtype=float)
    for i, (name, var) in enumerate(variances.items()):
        color = f"C{i}"
        vax.loglog(ns_arr, var, "o-", color=color, ms=3, lw=1)
        vax.loglog(ns_arr, var[0] / ns_arr, ":", color=color, lw=0.8)
        vax.plot([n], [var[ns.index(n)]], "o", ms=9, mfc="none", mec="k", mew=1.2)
    vax.axvline(n, color="k", lw=0.6, ls="--")
    vax.set_xlabel("samples n", fontsize=8)
    vax.set_ylabel("variance", fontsize=8, labelpad=1)
    vax.set_title("variance of the average\n(colours as on the left)", fontsize=7, pad=2)
    vax.tick_params(labelsize=7)
    names = list(variances)
    title = f"{component}, averages of n = {n} samples"
    if len(names) >= 2:
        ratio = variances[names[1]][0] / variances[names[0]][0]
        need = float(f"{ratio * n:.2g}")
        title += f"\n{names[1]} needs n ~ {need:,.0f} to match the {names[0]} variance at n = {n}"
    ax.set_title(title, fontsize=9)
    return ax


# --- chapter 5 -------------------------------------------------------------------------------

TEMPERATURES = (0.1, 0.25, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0)
# Ranks of the latent coordinates by their prior std sigma_i (1 = widest), from the widest through
# the steep part of the spectrum to the collapsed coordinates at the end (rank 784 = narrowest).
LATENT_RANKS = (1, 50, 100, 200, 300, 400, 500, 550, 600, 700, 750, 784)
LATENT_VALUES = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
CHANGE_RANGE = 1.0  # the colour scale of the "change" row: -1 .. 1 (pixel intensities)


def draw_temperature(ax, temperature: float, model, n: int = 36, seed: int = 0, shape=(28, 28)):
    """Chapter 5: ``n`` samples of ``model`` at ``temperature`` (the same seed, hence the same
    underlying prior draws, for every temperature), clipped to [0, 1] for display."""
    n = positive_int("n", n)
    gen = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    x = model.sample(n, temperature, generator=gen)
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"sampling at temperature {temperature} gave non-finite values")
    from tutorlib.plotting import image_grid

    image_grid(x.clamp(0, 1), shape, nrow=math.ceil(math.sqrt(n)), ax=ax)
    ax.set_title(f"T = {temperature}", fontsize=10)
    return ax


def temperature_slider(model, static=(0.5, 0.8, 1.0), n: int = 36, seed: int = 0, shape=(28, 28)) -> None:
    """Chapter 5: the slider for the sampling temperature ``T`` (annealing)."""
    draw = functools.partial(draw_temperature, model=model, n=n, seed=seed, shape=shape)
    explore(draw, "T", TEMPERATURES, static=static, value=0.8, panel=(3.4, 3.6), title="samples at temperature T")


def latent_order(model) -> torch.Tensor:
    """Chapter 5: NICE's latent coordinates from the widest prior (largest ``sigma_i``) down."""
    return torch.argsort(model.prior_std().cpu(), descending=True, stable=True)


def _tiles(images, shape) -> "np.ndarray":
    """(n, h*w) -> one (h, n*(w+1)-1) row of tiles separated by a NaN column."""
    import numpy as np

    h, w = shape
    x = images.detach().cpu().double().numpy().reshape(-1, h, w)
    row = np.full((h, x.shape[0] * (w + 1) - 1), np.nan)
    for i, img in enumerate(x):
        row[:, i * (w + 1):i * (w + 1) + w] = img
    return row


def draw_latent_dimension(ax, rank: int, model, z0: torch.Tensor, values=LATENT_VALUES, shape=(28, 28)):
    """Chapter 5: set the latent coordinate with the ``rank``-th largest prior std ``sigma_i`` of the
    code ``z0`` (one row vector) to each of ``values``, all else fixed, and decode.

    Top row: the decoded images. Bottom row: their change from the decoded ``z0`` (the digit
    itself), on a fixed colour scale of -1..1 for every rank, so a coordinate whose ``sigma_i`` is
    tiny visibly changes nothing. Inset: the whole sorted spectrum of ``sigma_i`` (log scale) with
    this coordinate marked. The title gives the coordinate, its pixel, its ``sigma_i`` and the
    largest change of any pixel."""
    import numpy as np
    import matplotlib
    from matplotlib import cm, colors

    rank = positive_int("rank", rank)
    if rank > model.dim:
        raise ValueError(f"rank must be at most the dimension {model.dim}, got {rank}")
    if not isinstance(z0, torch.Tensor) or z0.shape != (1, model.dim):
        raise ValueError(f"z0 must be a tensor of shape (1, {model.dim}), got "
                         f"{tuple(z0.shape) if isinstance(z0, torch.Tensor) else type(z0).__name__}")
    values = [float(v) for v in values]
    order = latent_order(model)
    k = int(order[rank - 1])
    z = z0.detach().repeat(len(values) + 1, 1)
    z[1:, k] = torch.tensor(values, dtype=z.dtype, device=z.device)
    with torch.no_grad():
        decoded = model.inverse(z).cpu()
    base, x = decoded[:1], decoded[1:]
    change = x - base
    largest = float(change.abs().max())

    gray = matplotlib.colormaps["gray_r"]
    diverging = matplotlib.colormaps["RdBu_r"]
    norm = colors.Normalize(-CHANGE_RANGE, CHANGE_RANGE)
    top = gray(np.nan_to_num(_tiles(x.clamp(0, 1), shape), nan=0.0))
    bottom = diverging(norm(np.nan_to_num(_tiles(change, shape), nan=0.0)))
    for row, tiles in ((top, _tiles(x, shape)), (bottom, _tiles(change, shape))):
        row[np.isnan(tiles)] = 1.0  # white separators
    gap = np.ones((2, top.shape[1], 4))
    canvas = np.concatenate([top, gap, bottom])
    height, width = canvas.shape[:2]
    ax.imshow(canvas, extent=(0, width, height, 0), interpolation="nearest")
    ax.set_xlim(0, width * 1.42)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    ax.text(-2, shape[0] / 2, "decoded", ha="right", va="center", fontsize=7)
    ax.text(-2, shape[0] + 2 + shape[0] / 2, "change", ha="right", va="center", fontsize=7)

    cax = ax.inset_axes([width / (width * 1.42) + 0.006, 0.02, 0.01, 0.45])
    ax.figure.colorbar(cm.ScalarMappable(norm=norm, cmap=diverging), cax=cax)
    cax.tick_params(labelsize=6)

    sigma = model.prior_std().cpu()
    spec = ax.inset_axes([0.80, 0.16, 0.2, 0.74])
    spec.semilogy(np.arange(1, model.dim + 1), sigma[order].numpy(), lw=1, color="0.3")
    spec.plot([rank], [float(sigma[k])], "o", color="C3", ms=5)
    spec.axvline(rank, color="C3", lw=0.8, ls=":")
    spec.set_xlabel("rank", fontsize=6, labelpad=1)
    spec.set_ylabel(r"$\sigma_i$", fontsize=7, labelpad=1)
    spec.tick_params(labelsize=5, pad=1)
    spec.set_title("sorted spectrum", fontsize=6, pad=2)

    pixel = int(model.positions()[k])
    ax.set_title(f"rank {rank} of {model.dim}: z[{k}] at pixel (row {pixel // shape[1]}, col {pixel % shape[1]}), "
                 f"sigma = {float(sigma[k]):.2g}; z[{k}] = {values[0]:g} ... {values[-1]:g}, "
                 f"largest pixel change {largest:.2g}", fontsize=8)
    return ax


def latent_dimension_slider(model, z0: torch.Tensor, static=(1, 500, 784), shape=(28, 28)) -> None:
    """Chapter 5: the slider over which latent coordinate to vary (by rank of its ``sigma_i``)."""
    draw = functools.partial(draw_latent_dimension, model=model, z0=z0, shape=shape)
    explore(draw, "rank", LATENT_RANKS, static=static, value=1, ncols=1, panel=(8.4, 2.3),
            title="vary one latent coordinate")


# --- chapter 6 -------------------------------------------------------------------------------

INTERPOLATION_TS = tuple(round(0.1 * i, 1) for i in range(11))
# chapter 6's temperatures: those of the chapter's table, from nearly one image (0.1) to speckle (2)
FVAE_TEMPERATURES = (0.1, 0.25, 0.5, 0.8, 1.0, 1.5, 2.0)
_STAT_STYLE = {"inked": ("inked share (> 0.5)", "C0", "o"), "faint": ("faint share (0.05-0.5)", "C1", "s"),
               "sharpness": ("sharpness", "C2", "^")}


def _side_panel(ax, width: float, height: float, factor: float, right: float = 0.97):
    """Widen ``ax`` (an image of ``width`` x ``height`` pixels, drawn by ``image_grid``) by ``factor``
    and return an inset axes in the space to the right of the image."""
    ax.set_xlim(-0.5, width * factor)
    ax.set_ylim(height, -0.5)
    start = (width + 0.5) / (width * factor + 0.5)
    return ax.inset_axes([start + 0.17, 0.22, right - start - 0.17, 0.66])


def draw_interpolation(ax, t: float, paths: dict, ts=INTERPOLATION_TS, shape=(28, 28)):
    """Chapter 6: each model's decoded point ``(1 - t) code(x_a) + t code(x_b)`` side by side, each
    named below its image, and on the right the :func:`tutorlib.fvae.sharpness` of every model's
    image along the whole path (fixed axes for every ``t``) with ``t`` marked. ``paths``: model
    name -> (len(ts), D) images from :func:`tutorlib.fvae.interpolate` at ``ts``. Pure: it only
    reads ``paths``."""
    from tutorlib.fvae import sharpness
    from tutorlib.plotting import image_grid

    ts = [float(v) for v in ts]
    if float(t) not in ts:
        raise ValueError(f"t must be one of {ts}, got {t!r}")
    if not paths:
        raise ValueError("paths must not be empty")
    i = ts.index(float(t))
    every = {name: torch.as_tensor(p).detach().cpu().float() for name, p in paths.items()}
    if any(p.shape[0] != len(ts) for p in every.values()):
        raise ValueError(f"every path must have one image per t ({len(ts)})")
    images = torch.stack([p[i] for p in every.values()])
    if not torch.isfinite(images).all():
        raise FloatingPointError(f"interpolation at t = {t} gave non-finite values")
    image_grid(images.clamp(0, 1), shape, nrow=len(paths), ax=ax)
    h, w = shape
    for j, name in enumerate(paths):
        ax.text(j * (w + 1) + (w - 1) / 2, h + 0.5, name, ha="center", va="top", fontsize=9)
    width = len(paths) * (w + 1) - 1
    side = _side_panel(ax, width, h + 0.5 + 0.3 * h, 2.1, right=0.8)
    curves = {name: sharpness(p.clamp(0, 1), shape).numpy() for name, p in every.items()}
    top = max(float(c.max()) for c in curves.values())
    for k, (name, c) in enumerate(curves.items()):
        side.plot(ts, c, color=f"C{k}", lw=1.2, label=name)
        side.plot([ts[i]], [c[i]], "o", color=f"C{k}", ms=4)
    side.axvline(ts[i], color="0.4", lw=0.8, ls=":")
    side.set_xlim(-0.04, 1.04)
    side.set_ylim(0, 1.15 * top)
    side.set_xlabel("t", fontsize=7, labelpad=1)
    side.set_ylabel("sharpness", fontsize=7, labelpad=1)
    side.tick_params(labelsize=6, pad=1)
    side.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(f"t = {t}", fontsize=10)
    return ax


def interpolation_slider(paths: dict, ts=INTERPOLATION_TS, static=(0.0, 0.5, 1.0), shape=(28, 28)) -> None:
    """Chapter 6: the slider for the interpolation weight ``t`` between two real digits."""
    draw = functools.partial(draw_interpolation, paths=paths, ts=ts, shape=shape)
    explore(draw, "t", [float(v) for v in ts], static=static, value=0.5, ncols=1, panel=(6.4, 1.9),
            title="interpolation between two test digits")


def temperature_frames(model, temperatures=FVAE_TEMPERATURES, n: int = 36, seed: int = 0) -> dict:
    """Chapter 6: ``n`` samples of ``model`` at each temperature, from the same seed (hence the same
    underlying prior draws at every ``T``), clipped to [0, 1], with their
    :func:`tutorlib.fvae.sample_statistics`: ``{T: (images (n, D), stats)}``. Computed once, so that
    :func:`draw_fvae_temperature` only draws."""
    from tutorlib.fvae import sample_statistics

    n, seed = positive_int("n", n), positive_int("seed", seed, minimum=0)
    temperatures = [float(v) for v in temperatures]
    if not temperatures:
        raise ValueError("temperatures must not be empty")
    frames = {}
    with torch.no_grad():
        for T in temperatures:
            x = model.sample(n, T, generator=torch.Generator().manual_seed(seed)).cpu()
            if not torch.isfinite(x).all():
                raise FloatingPointError(f"sampling at temperature {T} gave non-finite values")
            x = x.clamp(0, 1)
            frames[T] = (x, sample_statistics(x))
    return frames


def draw_fvae_temperature(ax, temperature: float, frames: dict, shape=(28, 28)):
    """Chapter 6: the samples of ``frames[temperature]`` (from :func:`temperature_frames`) and, on the
    right, the three statistics of the samples against ``T`` for every temperature (fixed axes), with
    this ``T`` marked. Pure: it only reads ``frames``."""
    import numpy as np

    from tutorlib.plotting import image_grid

    temps = sorted(float(v) for v in frames)
    if float(temperature) not in temps:
        raise ValueError(f"temperature must be one of {temps}, got {temperature!r}")
    images, stats = frames[float(temperature)]
    n = images.shape[0]
    ncol = math.ceil(math.sqrt(n))
    image_grid(images, shape, nrow=ncol, ax=ax)
    h, w = shape
    side = _side_panel(ax, ncol * (w + 1) - 1, math.ceil(n / ncol) * (h + 1) - 1, 2.0)
    for key, (label, color, marker) in _STAT_STYLE.items():
        values = np.array([frames[T][1][key] for T in temps])
        side.plot(temps, values, color=color, lw=1.2, label=label)
        side.plot([float(temperature)], [stats[key]], marker, color=color, ms=5)
    side.axvline(float(temperature), color="0.4", lw=0.8, ls=":")
    top = max(frames[T][1][key] for T in temps for key in _STAT_STYLE)
    side.set_xlim(0, 1.05 * temps[-1])
    side.set_ylim(0, 1.15 * top)
    side.set_xlabel("temperature T", fontsize=7, labelpad=1)
    side.set_ylabel("share of pixels / sharpness", fontsize=7, labelpad=1)
    side.tick_params(labelsize=6, pad=1)
    side.legend(fontsize=6, loc="upper right", frameon=False)
    ax.set_title(f"T = {temperature:g}: {stats['inked']:.1%} inked, {stats['faint']:.1%} faint, "
                 f"sharpness {stats['sharpness']:.3f}", fontsize=9)
    return ax


def fvae_temperature_slider(frames: dict, static=(0.1, 0.8, 2.0), shape=(28, 28)) -> None:
    """Chapter 6: the slider for the sampling temperature ``T`` of the f-VAE, over the temperatures of
    ``frames`` (:func:`temperature_frames`)."""
    draw = functools.partial(draw_fvae_temperature, frames=frames, shape=shape)
    temps = sorted(float(v) for v in frames)
    explore(draw, "T", temps, static=static, value=0.8 if 0.8 in temps else None, ncols=1, panel=(6.4, 3.0),
            title="f-VAE samples at temperature T")

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

N_VALUES = (2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128)
DIM_VALUES = (1, 2, 3, 4, 5, 6, 8)


@functools.lru_cache(maxsize=None)
def _curves(dim: int, max_budget: int, reps: int):
    import numpy as np

    from tutorlib.integration import beta_problem, error_curves

    budgets = np.unique(np.logspace(1, math.log10(max_budget), 9).astype(int))
    return error_curves(beta_problem(dim), budgets, reps=reps, seed=dim)


def draw_sampling_n(ax, n: int):
    """Chapter 1: quadrature points vs samples for ``n`` evaluations in one dimension."""
    from tutorlib.integration import beta_problem
    from tutorlib.plotting import quadrature_vs_samples

    return quadrature_vs_samples(beta_problem(1), n, ax=ax)


def draw_dimension(ax, dim: int, max_budget: int = 100_000, reps: int = 12):
    """Chapter 1: error against the number of evaluations in dimension ``dim``."""
    from tutorlib.plotting import errors_vs_budget

    return errors_vs_budget(_curves(positive_int("dim", dim), max_budget, reps), ax=ax, legend=dim == 1)


def sampling_n_slider(static=(4, 16, 64)) -> None:
    """Chapter 1: the slider for ``n`` (points in one dimension)."""
    explore(draw_sampling_n, "n", N_VALUES, static=static, value=8, title="grid points vs samples")


def dimension_slider(static=(1, 4, 8)) -> None:
    """Chapter 1: the slider for the dimension ``d``."""
    explore(draw_dimension, "d", DIM_VALUES, static=static, value=4, title="error vs evaluations")


# --- chapters 7 and 8 ------------------------------------------------------------------------

DISTANCES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # chapter 7: separations s of two Gaussians
PAIR_SIGMA = 0.5  # their common width
LAMBDAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # chapter 8
QP_PAIR = (2.0, 0.5)  # chapter 8's pair: separation and width


@functools.lru_cache(maxsize=None)
def _delta_curve(kind: str, lam: float | None, d_max: float = 4.5, n: int = 19):
    import numpy as np

    from tutorlib.divergences import delta_divergence

    ds = np.linspace(0.0, d_max, n)
    return ds, np.array([delta_divergence(kind, 0.0, float(d), lam=lam) for d in ds])


def draw_delta_divergences(ax, distance: float, kinds=("sgan", "wgan", "kl")):
    """Chapter 7: each dual divergence of two deltas against their distance, solved numerically,
    with the value and the slope (by a central difference of the numerical values) at ``distance``.
    An infinite divergence (KL) is not drawn as a curve: it is named in the legend, with arrows
    at the top edge pointing off the axes."""
    import numpy as np

    from tutorlib._validate import positive_float
    from tutorlib.divergences import delta_divergence

    distance = positive_float("distance", distance)
    labels = {"sgan": "SGAN (JS)", "wgan": "WGAN", "kl": "KL (f-GAN)"}
    notes = []
    top = 5.0
    for kind in kinds:
        ds, vals = _delta_curve(kind, None)
        if np.isinf(vals[1:]).all():  # infinite for every d > 0: arrows off the top of the axes
            xs = ds[1::5]
            line, = ax.plot(xs, np.full(len(xs), top * 0.93), ls="none", marker=r"$\uparrow$", ms=10,
                            label=f"{labels.get(kind, kind)}: $+\\infty$ for every d > 0")
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
    ax.set_ylabel("divergence (nats for SGAN)")
    ax.set_ylim(0, top)
    ax.set_title(f"d = {distance}\n" + "; ".join(notes), fontsize=8)
    ax.legend(loc="center left", fontsize=8)
    return ax


@functools.lru_cache(maxsize=None)
def _gaussian_pair_curves(sigma: float, s_max: float = 6.5, n: int = 66):
    import numpy as np

    from tutorlib.divergences import gaussian_pair_js, js_sample_gradient, mean_sample_gradient

    ss = np.linspace(0.0, s_max, n)
    js = np.array([gaussian_pair_js(s, sigma) for s in ss])
    grad = np.array([mean_sample_gradient(js_sample_gradient, s, sigma) for s in ss])
    return ss, js, grad


def draw_gaussian_pair(ax, separation: float, sigma: float = PAIR_SIGMA):
    """Chapter 7: ``p = N(0, sigma^2)`` (the data) and ``q = N(s, sigma^2)`` (the fakes), ``s`` the
    ``separation``. Left, on a log axis: the gradient each divergence gives a fake sample at ``x``
    (JS: :func:`tutorlib.divergences.js_sample_gradient`; W1: 1), with the bulk (2 sigma either
    side) of p and q shaded. Right: JS and W1 against the separation, with ``s`` marked. Fixed axes
    for every ``s``."""
    import numpy as np

    from tutorlib._validate import positive_float
    from tutorlib.divergences import gaussian_pair_js, js_sample_gradient, mean_sample_gradient

    s, sigma = positive_float("separation", separation), positive_float("sigma", sigma)
    ax.set_axis_off()
    left, right = ax.inset_axes([0.0, 0.0, 0.56, 1.0]), ax.inset_axes([0.70, 0.0, 0.30, 1.0])
    x = np.linspace(-2.0, 8.0, 801)
    left.axvspan(-2 * sigma, 2 * sigma, color="0.5", alpha=0.25, lw=0, label="bulk of p (data)")
    left.axvspan(s - 2 * sigma, s + 2 * sigma, color="C3", alpha=0.2, lw=0, label="bulk of q (fakes)")
    left.semilogy(x, np.maximum(js_sample_gradient(x, s, sigma), 1e-300), color="C0", lw=1.8, label="JS")
    left.semilogy(x, np.ones_like(x), color="C1", lw=1.8, label="W1")
    left.set_xlim(x[0], x[-1])
    left.set_ylim(1e-12, 30.0)
    left.set_xlabel("position x of a fake sample")
    left.set_ylabel("|gradient| on it (log)")
    left.legend(loc="lower left", fontsize=7, ncol=2)
    mean_js = mean_sample_gradient(js_sample_gradient, s, sigma)
    left.set_title(f"s = {s:g}: mean gradient on the fakes: JS {mean_js:.2g}, W1 1", fontsize=8)
    ss, js, _ = _gaussian_pair_curves(sigma)
    right.plot(ss, js, color="C0", lw=1.8, label="JS")
    right.plot(ss, ss, color="C1", lw=1.8, label="W1 = s")
    right.axhline(math.log(2), color="C0", lw=0.8, ls="--", label="ln 2")
    js_s = gaussian_pair_js(s, sigma)
    right.plot([s], [js_s], "o", color="C0")
    right.plot([s], [s], "o", color="C1")
    right.axvline(s, color="k", lw=0.6, ls=":")
    right.set_xlim(0, ss[-1])
    right.set_ylim(0, ss[-1])
    right.set_xlabel("separation s")
    right.set_ylabel("divergence")
    right.set_title(f"JS = {js_s:.4f}, W1 = {s:g}", fontsize=8)
    right.legend(loc="upper left", fontsize=7)
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


def draw_qp_lambda(ax, lam: float, separation: float = QP_PAIR[0], sigma: float = QP_PAIR[1]):
    """Chapter 8: for ``p = N(0, sigma^2)`` and ``q = N(s, sigma^2)``, the optimal binary critic
    ``Delta T*(0, x_f)`` against a real sample at p's centre, its bound ``lam |x_f|``, and the
    gradient the optimal critic gives a fake sample at ``x_f``
    (:func:`tutorlib.divergences.qp_gaussian_generator_gradient`), on fixed logarithmic axes, with
    the same curves at ``lam = 1`` in grey: multiplying by ``lam`` shifts them up, shape unchanged."""
    import numpy as np

    from tutorlib._validate import positive_float
    from tutorlib.divergences import qp_gaussian_critic, qp_gaussian_generator_gradient

    lam = positive_float("lam", lam)
    s, sigma = positive_float("separation", separation), positive_float("sigma", sigma)
    xf = np.linspace(0.02, 4.5, 225)
    crit1 = qp_gaussian_critic(0.0, xf, s, sigma, 1.0)
    grad1 = qp_gaussian_generator_gradient(xf, s, sigma, 1.0)
    ax.axvspan(s - 2 * sigma, s + 2 * sigma, color="C3", alpha=0.12, lw=0, label="where q puts its fakes")
    ax.semilogy(xf, crit1, color="0.7", lw=1.2)
    ax.semilogy(xf, np.abs(grad1), color="0.7", lw=1.2, ls="--", label=r"the same at $\lambda = 1$")
    ax.semilogy(xf, lam * xf, color="k", lw=0.9, ls=":", label=r"bound $\lambda\,|x_f - 0|$")
    ax.semilogy(xf, qp_gaussian_critic(0.0, xf, s, sigma, lam), color="C2", lw=2,
                label=r"optimal critic $\Delta T^*(0, x_f)$")
    grad = qp_gaussian_generator_gradient(xf, s, sigma, lam)
    ax.semilogy(xf, np.abs(grad), color="C3", lw=2, ls="--",
                label=r"generator's gradient on a fake at $x_f$")
    at = float(qp_gaussian_generator_gradient(s, s, sigma, lam))
    ax.set_xlim(0, xf[-1])
    ax.set_ylim(1e-2, 1e5)  # room above the curves for the legend
    ax.set_xlabel(r"position of the fake sample $x_f$ (real sample at 0)")
    ax.set_ylabel("value (log scale)")
    ax.set_title(f"lambda = {lam:g}: Delta T*(0, {s:g}) = {float(qp_gaussian_critic(0.0, s, s, sigma, lam)):.3g}, "
                 f"gradient at x_f = {s:g}: {at:.3g}", fontsize=8)
    ax.legend(loc="upper left", fontsize=6.5, ncol=2)
    return ax


def delta_distance_slider(static=(0.5, 2.0, 4.0)) -> None:
    """Chapter 7: the slider for the separation of two Gaussians of width ``PAIR_SIGMA``."""
    explore(draw_gaussian_pair, "s", DISTANCES, static=static, value=1.0, ncols=1, panel=(8.0, 2.7),
            title="two Gaussians of width 0.5 at separation s")


def lambda_slider(static=(0.1, 1.0, 10.0, 100.0)) -> None:
    """Chapter 8: the slider for GAN-QP's lambda."""
    explore(draw_qp_lambda, "lam", LAMBDAS, static=static, value=10.0, ncols=2, panel=(4.6, 3.2),
            title="the optimal critic and the generator's gradient")


# --- chapters 2-4 ----------------------------------------------------------------------------------

def draw_sigma2(ax, sigma2: float, results: dict, originals):
    """Chapter 2: originals, reconstructions and samples of the VAE trained with decoder variance ``sigma2``."""
    import torch

    from tutorlib.plotting import image_grid

    if sigma2 not in results:
        raise ValueError(f"sigma2 must be one of the trained values {sorted(results)}, got {sigma2}")
    r = results[sigma2]
    n = min(8, len(originals))
    rows = torch.cat([originals[:n], r["recon"][:n], r["samples"][:n]])
    image_grid(rows, shape=(28, 28), nrow=n, ax=ax)
    ax.set_title(f"sigma^2 = {sigma2}: squared error {r['mse']:.1f}, KL {r['kl']:.1f} nats\n"
                 "rows: data, reconstructions, samples", fontsize=8)
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


def draw_gradient_n(ax, n: int, samples: dict, exact: float):
    """Chapter 4: histograms of n-sample averages of the pathwise and score-function estimates of
    one gradient component, against its exact value."""
    import numpy as np

    n = positive_int("n", n)
    for name, per_sample in samples.items():
        x = np.asarray(per_sample, dtype=float)
        reps = len(x) // n
        means = x[: reps * n].reshape(reps, n).mean(1)
        ax.hist(means, bins=40, alpha=0.5, density=True, label=f"{name}: sd {means.std():.3f}")
    ax.axvline(exact, color="k", lw=1, label=f"exact {exact:.3f}")
    ax.set_xlabel(f"estimate from n = {n} samples")
    ax.set_title(f"n = {n}", fontsize=9)
    ax.legend(fontsize=7)
    return ax

# --- chapter 5 -------------------------------------------------------------------------------

TEMPERATURES = (0.1, 0.25, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0)
LATENT_RANKS = tuple(range(1, 13))
LATENT_VALUES = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)


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


def draw_latent_dimension(ax, rank: int, model, z0: torch.Tensor, values=LATENT_VALUES, shape=(28, 28)):
    """Chapter 5: set the latent coordinate with the ``rank``-th largest prior std ``sigma_i`` of the code
    ``z0`` (one row vector) to each of ``values``, all else fixed, and draw the decoded images."""
    rank = positive_int("rank", rank)
    if rank > model.dim:
        raise ValueError(f"rank must be at most the dimension {model.dim}, got {rank}")
    if not isinstance(z0, torch.Tensor) or z0.shape != (1, model.dim):
        raise ValueError(f"z0 must be a tensor of shape (1, {model.dim}), got "
                         f"{tuple(z0.shape) if isinstance(z0, torch.Tensor) else type(z0).__name__}")
    values = [float(v) for v in values]
    k = int(latent_order(model)[rank - 1])
    z = z0.detach().repeat(len(values), 1)
    z[:, k] = torch.tensor(values, dtype=z.dtype, device=z.device)
    with torch.no_grad():
        x = model.inverse(z)
    from tutorlib.plotting import image_grid

    image_grid(x.clamp(0, 1), shape, nrow=len(values), ax=ax)
    sigma = float(model.prior_std()[k])
    pixel = int(model.positions()[k])
    ax.set_title(f"rank {rank}: z[{k}] (pixel row {pixel // shape[1]}, col {pixel % shape[1]}), "
                 f"sigma = {sigma:.2f}\nz[{k}] = {values[0]:g} ... {values[-1]:g}", fontsize=8)
    return ax


def latent_dimension_slider(model, z0: torch.Tensor, static=(1, 2, 3), shape=(28, 28)) -> None:
    """Chapter 5: the slider over which latent coordinate to vary (by rank of its ``sigma_i``)."""
    draw = functools.partial(draw_latent_dimension, model=model, z0=z0, shape=shape)
    explore(draw, "rank", LATENT_RANKS, static=static, value=1, ncols=1, panel=(7.0, 1.9),
            title="vary one latent coordinate")


# --- chapter 6 -------------------------------------------------------------------------------

INTERPOLATION_TS = tuple(round(0.1 * i, 1) for i in range(11))


def draw_interpolation(ax, t: float, paths: dict, ts=INTERPOLATION_TS, shape=(28, 28)):
    """Chapter 6: each model's decoded point ``(1 - t) code(x_a) + t code(x_b)`` side by side.
    ``paths``: model name -> (len(ts), D) images from :func:`tutorlib.fvae.interpolate` at ``ts``."""
    ts = [float(v) for v in ts]
    if float(t) not in ts:
        raise ValueError(f"t must be one of {ts}, got {t!r}")
    if not paths:
        raise ValueError("paths must not be empty")
    i = ts.index(float(t))
    from tutorlib.plotting import image_grid

    images = torch.stack([p[i] for p in paths.values()])
    if not torch.isfinite(images).all():
        raise FloatingPointError(f"interpolation at t = {t} gave non-finite values")
    image_grid(images.clamp(0, 1), shape, nrow=len(paths), ax=ax)
    ax.set_title(f"t = {t}:  " + "  |  ".join(paths), fontsize=9)
    return ax


def interpolation_slider(paths: dict, ts=INTERPOLATION_TS, static=(0.0, 0.5, 1.0), shape=(28, 28)) -> None:
    """Chapter 6: the slider for the interpolation weight ``t`` between two real digits."""
    draw = functools.partial(draw_interpolation, paths=paths, ts=ts, shape=shape)
    explore(draw, "t", [float(v) for v in ts], static=static, value=0.5, panel=(3.6, 1.9),
            title="interpolation between two test digits")

"""The figures of the landing page (book/intro.md), drawn from ``tutorlib`` at every book build.

Each figure is a small, fast version of one a chapter draws, made by the same library functions,
so the landing page shows what the chapters show and changes when the library does. They are
written to ``book/_figures/`` (not committed) when the builder starts, before any page is read,
and ``book/intro.md`` includes them with ``{figure}`` directives whose captions link the chapters.

The landing page stays Markdown: no kernel, no Colab button on it, and a rebuild of the book is
enough to refresh the figures. Drawing all of them takes a few seconds on one CPU thread;
``python book/_ext/landing_figures.py [DIR]`` draws them without building the book.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

FIGURES_DIR = Path(__file__).resolve().parents[1] / "_figures"
DPI = 110
SEED = 0


def _figure(width: float, height: float, ncols: int = 1):
    """A Matplotlib figure without pyplot (no backend, no global figure state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def sampling_vs_quadrature():
    """Chapter 1: quadrature against Monte Carlo error, in dimension 1 and in dimension 8."""
    import numpy as np

    from tutorlib import integration, plotting

    budgets = np.unique(np.logspace(1, 5, 9).astype(int))
    fig, axes = _figure(8.0, 3.0, ncols=2)
    for ax, d in zip(axes, (1, 8)):
        curves = integration.error_curves(integration.beta_problem(d), budgets, reps=12, seed=d)
        plotting.errors_vs_budget(curves, ax=ax, legend=d == 1)
    axes[1].set_ylabel("")
    fig.tight_layout()
    return fig


def nice_two_moons(steps: int = 800):
    """Chapter 5: a small NICE flow fitted to two moons: the data, its density, its samples."""
    import torch

    from tutorlib import data, flows, plotting, runtime
    from tutorlib.train import Batches, train

    gen = torch.Generator().manual_seed(SEED)
    moons = data.toy2d("moons", 4000, generator=gen)
    runtime.seed_everything(SEED)
    model = flows.NICE(2, hidden=64, depth=2, couplings=6, prior="gaussian")
    train(model, torch.optim.Adam(model.parameters(), lr=3e-3), lambda x: -model.log_prob(x).mean(),
          Batches(moons, batch_size=256, seed=SEED), steps, desc="landing page: 2-D NICE", progress=False)
    model.eval()
    with torch.no_grad():
        draws = model.sample(1500, generator=gen)
    lo, hi = (-1.8, -1.2), (2.8, 1.7)
    fig, axes = _figure(9.0, 2.7, ncols=3)
    axes[0].scatter(*moons[:1500].T, s=1)
    axes[0].set_title("data: two moons")
    plotting.density_2d(lambda x: model.log_prob(x.float()).double(), lo, hi, n=150, ax=axes[1],
                        title="learned density q(x)")
    axes[2].scatter(*draws.T, s=1, color="C1")
    axes[2].set_title("samples x = g(z), z ~ N(0, I)")
    for ax in axes:
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal")
    fig.tight_layout()
    return fig


def delta_divergences():
    """Chapter 7: the dual divergences of two point masses against their distance."""
    from tutorlib import widgets

    fig, (ax,) = _figure(5.0, 3.3)
    widgets.draw_delta_divergences(ax, 2.0)
    fig.tight_layout()
    return fig


def qp_divergence():
    """Chapter 8: GAN-QP's divergence of two point masses, solved numerically, against lambda d / 2."""
    from tutorlib import widgets

    fig, (ax,) = _figure(5.0, 3.3)
    widgets.draw_qp_delta(ax, 10.0)
    fig.tight_layout()
    return fig


# file name (without .png) -> drawing function; book/intro.md includes each as _figures/NAME.png
FIGURES = {
    "ch1_sampling_vs_quadrature": sampling_vs_quadrature,
    "ch5_nice_two_moons": nice_two_moons,
    "ch7_delta_divergences": delta_divergences,
    "ch8_qp_divergence": qp_divergence,
}


def render(out_dir: Path = FIGURES_DIR, names=None) -> dict[str, float]:
    """Draw the figures (all, or ``names``) into ``out_dir``; return the seconds each took."""
    import matplotlib as mpl

    from tutorlib import plotting, runtime

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runtime.set_threads()  # TUTORLIB_THREADS, as for the chapters
    seconds = {}
    with mpl.rc_context():  # the book's style, without changing the caller's
        plotting.use_style()
        for name in names or FIGURES:
            start = time.perf_counter()
            fig = FIGURES[name]()
            tmp = out_dir / f".{name}.png.tmp"
            fig.savefig(tmp, dpi=DPI, format="png")
            tmp.replace(out_dir / f"{name}.png")  # a reader of the directory never sees half a file
            seconds[name] = time.perf_counter() - start
    return seconds


def _on_builder_inited(app) -> None:
    from sphinx.util import logging

    seconds = render()
    logging.getLogger(__name__).info(
        f"landing figures: {len(seconds)} drawn into {FIGURES_DIR} in {sum(seconds.values()):.1f} s")


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    took = render(Path(sys.argv[1]) if len(sys.argv) > 1 else FIGURES_DIR)
    for figure, s in took.items():
        print(f"{figure}: {s:.1f} s")

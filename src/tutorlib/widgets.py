"""Sliders for the quantities the text varies, each a thin layer over a pure drawing function.

The pattern, :func:`explore`, over a pure drawing function ``draw(ax, value)`` that the tests can
call directly and a finite list of values. Executing it displays three outputs:

1. a **static small-multiples** figure of a few values ("Static view (no kernel needed)"), for
   print and for readers without JavaScript;
2. a **kernel-free slider**: every value's frame is drawn once, now, into a PNG, and one HTML
   output carries them all with a native ``<input type="range">``, a readout of the value and a
   tiny inline script (no global names, no network) that shows the frame of the chosen value.
   It works wherever the output's HTML is rendered with its script: the built book, Colab,
   JupyterLab (outputs of a session are trusted). Where no script runs, the default frame shows
   and the control stays hidden;
3. the **live slider** (ipywidgets), which calls ``draw`` again in a running kernel (JupyterLab,
   Colab) and may offer more values (``live_values``). Its output also carries an HTML note,
   which the rendered book shows instead of the widget (``_config.yml`` drops the widget
   mimetype there: without a kernel the widget could not redraw).

Every image carries an alt text ("<title>: <name> = <value>", or what ``alt(value)`` says).
The contract the book's checkers rely on (``tools/check_book.py``, ``tools/browser_check.py``):
a kernel-free slider is a ``<figure class="tutorlib-slider">`` holding one range input over the
frame indices ``0 .. n-1``, an ``<output>`` readout and ``n`` images ``img.tutorlib-frame``
with ``data-value``, all but the chosen one ``hidden``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import io
import math
import warnings
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import torch

from tutorlib._validate import positive_int

STATIC_TITLE = "Static view"
SLIDER_CLASS = "tutorlib-slider"  # the kernel-free slider's <figure>
FRAME_CLASS = "tutorlib-frame"    # each of its frames
LIVE_CLASS = "tutorlib-live"      # the live slider's HTML note (what the rendered book shows)
FRAME_DPI = 90                    # frames: sharp enough to read, small enough for many per page
FRAME_MAX_WIDTH = 860             # pixels; wider frames get a lower dpi
STATIC_DPI = 100


def _value_label(v) -> str:
    return str(v)


def _check_panel(panel) -> tuple[float, float]:
    try:
        w, h = (float(p) for p in panel)
    except (TypeError, ValueError):
        raise ValueError(f"panel must be a pair (width, height) in inches, got {panel!r}") from None
    if not (w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h)):
        raise ValueError(f"panel must be a pair of positive sizes in inches, got {panel!r}")
    return w, h


def _tight(fig) -> None:
    with warnings.catch_warnings():  # "tight layout not applied" is no reason to print a warning
        warnings.simplefilter("ignore")
        fig.tight_layout()


def _png(fig, **kw) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None}, **kw)
    return buf.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _display(bundle: dict) -> None:
    """Display a mime bundle in IPython; outside it (plain Python, the unit tests) print its text."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipywidgets
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        from IPython.display import display

        display(bundle, raw=True)
    else:
        print(bundle.get("text/plain", ""))


def small_multiples(draw: Callable, name: str, values: Sequence, ncols: int = 3,
                    panel: tuple[float, float] = (3.6, 2.8), title: str | None = None):
    """One figure with ``draw(ax, v)`` for each ``v`` in ``values``; returns the figure."""
    values = list(values)
    if not values:
        raise ValueError("values must not be empty")
    ncols = min(positive_int("ncols", ncols), len(values))
    panel = _check_panel(panel)
    nrows = math.ceil(len(values) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), squeeze=False)
    for ax, v in zip(axes.flat, values):
        draw(ax, v)
    for ax in list(axes.flat)[len(values):]:
        ax.set_visible(False)
    fig.suptitle(f"{title or name}: {name} = {', '.join(map(str, values))}", fontsize=10)
    _tight(fig)
    return fig


def frame_size(panel: tuple[float, float] = (3.6, 2.8)) -> tuple[float, float]:
    """The size in inches of one slider frame (and of the live slider's figure) for ``panel``."""
    w, h = _check_panel(panel)
    return (w * 1.5, h * 1.4)


def render_frames(draw: Callable, values: Sequence, figsize: tuple[float, float], dpi: float | None = None) -> list[bytes]:
    """``draw(ax, v)`` for each ``v`` of ``values`` into one reused figure of ``figsize`` inches;
    returns one PNG (bytes) per value, all of the same pixel size."""
    values = list(values)
    if not values:
        raise ValueError("values must not be empty")
    w, h = _check_panel(figsize)
    if dpi is None:
        dpi = min(FRAME_DPI, FRAME_MAX_WIDTH / w)
    if not (isinstance(dpi, (int, float)) and dpi > 0):
        raise ValueError(f"dpi must be a positive number, got {dpi!r}")
    fig = plt.figure(figsize=(w, h), dpi=dpi)  # a pyplot figure: draw functions may use plt.*
    try:
        frames = []
        for v in values:
            fig.clf()
            draw(fig.add_subplot(), v)
            _tight(fig)
            frames.append(_png(fig, dpi=dpi))
    finally:
        plt.close(fig)  # never shown by the inline backend
    return frames


def _default_alt(title: str, name: str) -> Callable:
    return lambda v: f"{title}: {name} = {_value_label(v)}"


def _alt_text(alt: Callable, v) -> str:
    text = alt(v)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"alt must return a non-empty string for each value, got {text!r} for {v!r}")
    return " ".join(text.split())


_SCRIPT = """(function () {
  "use strict";
  var s = document.currentScript;
  var root = (s && s.closest && s.closest("figure.%(cls)s")) || document.getElementById("%(id)s");
  if (!root || root.getAttribute("data-ready")) { return; }
  var input = root.querySelector("input[type=range]");
  var readout = root.querySelector("output");
  var frames = root.querySelectorAll("img.%(frame)s");
  var name = root.getAttribute("data-name");
  function show() {
    var i = Math.max(0, Math.min(frames.length - 1, parseInt(input.value, 10) || 0));
    for (var j = 0; j < frames.length; j++) {
      frames[j].hidden = (j !== i);
      frames[j].style.display = (j === i) ? "" : "none";
    }
    var text = name + " = " + frames[i].getAttribute("data-value");
    readout.textContent = text;
    input.setAttribute("aria-valuetext", text);
  }
  input.addEventListener("input", show);
  input.addEventListener("change", show);
  var control = root.querySelector(".%(cls)s-control");
  control.hidden = false;
  control.style.display = "";
  root.setAttribute("data-ready", "1");
  show();
})();"""


def slider_html(name: str, labels: Sequence[str], frames: Sequence[bytes], index: int, title: str,
                alts: Sequence[str]) -> str:
    """The kernel-free slider: one ``<figure>`` with every frame (PNG bytes, one per label), a range
    input over the frame indices starting at ``index``, a readout and a self-contained script."""
    labels, frames, alts = list(labels), list(frames), list(alts)
    if not frames:
        raise ValueError("frames must not be empty")
    if len(labels) != len(frames) or len(alts) != len(frames):
        raise ValueError(f"labels ({len(labels)}), frames ({len(frames)}) and alts ({len(alts)}) "
                         "must have the same length")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(frames):
        raise ValueError(f"index must be an integer in 0..{len(frames) - 1}, got {index!r}")
    if any(not a.strip() for a in alts):
        raise ValueError("alts must be non-empty texts")
    digest = hashlib.sha1(name.encode() + b"".join(frames)).hexdigest()[:12]
    uid = f"{SLIDER_CLASS}-{digest}"
    e = functools.partial(html.escape, quote=True)
    current = f"{name} = {labels[index]}"
    imgs = []
    for i, (lab, png, alt) in enumerate(zip(labels, frames, alts)):
        shown = i == index  # the others are hidden until chosen (inline style too: a page's CSS may set display)
        imgs.append(f'<img class="{FRAME_CLASS}" data-value="{e(lab)}" src="{_data_uri(png)}" alt="{e(alt)}"'
                    f' style="max-width:100%;height:auto{"" if shown else ";display:none"}"{"" if shown else " hidden"}>')
    imgs = "\n".join(imgs)
    script = _SCRIPT % {"cls": SLIDER_CLASS, "frame": FRAME_CLASS, "id": uid}
    return (
        f'<figure class="{SLIDER_CLASS}" id="{uid}" data-name="{e(name)}" style="margin:0.5em 0">\n'
        f'<div class="{SLIDER_CLASS}-control" hidden style="display:none">'
        f'<div style="display:flex;flex-wrap:wrap;align-items:center;gap:0.75em">\n'
        f'<label>{e(title)}: drag <code>{e(name)}</code>\n'
        f'<input type="range" min="0" max="{len(frames) - 1}" step="1" value="{index}"'
        f' aria-valuetext="{e(current)}" data-lm-suppress-shortcuts="true"'  # JupyterLab: arrow keys move it
        f' style="width:18em;max-width:100%;vertical-align:middle"></label>\n'
        f'<output style="font-family:monospace">{e(current)}</output>\n'
        f'<span style="opacity:0.7;font-size:0.85em">({len(frames)} values, drawn when the cell ran;'
        f' no kernel needed)</span>\n'
        f'</div></div>\n{imgs}\n<script>{script}</script>\n</figure>')


def static_html(png: bytes, alt: str) -> str:
    """The static small multiples as an HTML figure (so that its alt text travels with it)."""
    e = functools.partial(html.escape, quote=True)
    return (f'<figure class="tutorlib-static" style="margin:0.5em 0"><img src="{_data_uri(png)}" alt="{e(alt)}"'
            f' style="max-width:100%;height:auto"></figure>')


def _live_note(name: str, n_values: int) -> str:
    return (f'<p class="{LIVE_CLASS}" style="opacity:0.75;font-size:0.9em"><b>Live slider</b> for '
            f'<code>{html.escape(name)}</code>: in a running notebook (JupyterLab, Colab) a slider here redraws '
            f'the figure for each of {n_values} values. It needs a kernel; without one, use the slider above.</p>')


class _LiveSlider:
    """An ipywidgets box displayed with an HTML note next to the widget's own mime type: a live
    front end (JupyterLab, Colab) shows the widget, the rendered book (which drops the widget mime
    type, having no kernel) shows the note."""

    def __init__(self, box, note: str, text: str):
        self.box, self.note, self.text = box, note, text

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = self.box._repr_mimebundle_()
        meta = None
        if isinstance(data, tuple):
            data, meta = data
        data = dict(data or {})
        data["text/html"] = self.note
        data["text/plain"] = self.text
        return (data, meta) if meta else data


def explore(draw: Callable, name: str, values: Sequence, static: Sequence | None = None, value=None,
            ncols: int = 3, panel: tuple[float, float] = (3.6, 2.8), title: str | None = None, slider: bool = True,
            alt: Callable | None = None, live_values: Sequence | None = None) -> None:
    """Display the sliders of ``draw(ax, v)`` over ``values`` (see the module's docstring):

    - the static small multiples of ``static`` (default: the first, middle and last value), in
      ``ncols`` columns of ``panel`` (width, height) inches each;
    - the kernel-free slider: one frame per value of ``values``, starting at ``value`` (default:
      the middle one); two values whose frames are identical raise ``ValueError`` (the slider
      would not change the picture);
    - if ``slider``, the live ipywidgets slider over ``live_values`` (default ``values``; it may be
      finer or wider where that teaches something), which calls ``draw`` again in a kernel.

    ``title`` names the figure (default ``name``). ``alt(v)`` returns the alt text of the frame of
    ``v`` (default ``"<title>: <name> = <v>"``); the static figure's alt text is built from it.
    Values are shown as ``str(v)``. Displays; returns nothing."""
    if not callable(draw):
        raise ValueError(f"draw must be a function draw(ax, value), got {draw!r}")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    values = list(values)
    if not values:
        raise ValueError("values must not be empty")
    labels = [_value_label(v) for v in values]
    if len(set(labels)) != len(labels) or any(bool(a == b) for i, a in enumerate(values) for b in values[i + 1:]):
        raise ValueError(f"values must be distinct (and distinct as shown), got {labels}")
    static = [values[0], values[len(values) // 2], values[-1]] if static is None else list(static)
    if not static:
        raise ValueError("static must not be empty")
    bad = [v for v in static if v not in values]
    if bad:
        raise ValueError(f"static values {bad} are not among the slider's values {values}")
    if value is None:
        value = values[len(values) // 2]
    elif value not in values:
        raise ValueError(f"value {value!r} is not among the slider's values {values}")
    live_values = values if live_values is None else list(live_values)
    if slider and value not in live_values:
        raise ValueError(f"live_values {live_values} must contain the starting value {value!r}")
    positive_int("ncols", ncols)
    panel = _check_panel(panel)
    heading = title or name
    custom_alt = alt is not None
    if alt is None:
        alt = _default_alt(heading, name)
    elif not callable(alt):
        raise ValueError(f"alt must be a function of the value returning a text, got {alt!r}")
    alts = [_alt_text(alt, v) for v in values]

    # 1. the static small multiples, for print and for readers without JavaScript
    print(f"{STATIC_TITLE} (no kernel needed): {heading}, {name} = {', '.join(map(str, static))}."
          f"\nBelow it: a slider over all {len(values)} values of {name}, drawn in advance (no kernel needed)"
          + (", then a live slider that redraws in a running kernel." if slider else "."))
    fig = small_multiples(draw, name, static, ncols=ncols, panel=panel, title=title)
    png = _png(fig, dpi=STATIC_DPI, bbox_inches="tight")
    plt.close(fig)
    if custom_alt:
        static_alt = "Side by side: " + "; ".join(alts[values.index(v)] for v in static)
    else:
        static_alt = f"{heading}, side by side for {name} = {', '.join(map(str, static))}"
    _display({"text/html": static_html(png, static_alt), "image/png": base64.b64encode(png).decode("ascii"),
              "text/plain": f"<{STATIC_TITLE}: {static_alt}>"})

    # 2. the kernel-free slider: every value's frame, drawn now
    frames = render_frames(draw, values, frame_size(panel))
    seen: dict[bytes, str] = {}
    for lab, png in zip(labels, frames):
        if png in seen:
            raise ValueError(f"the frames for {name} = {seen[png]} and {name} = {lab} are identical: "
                             "the slider would not change the picture")
        seen[png] = lab
    _display({"text/html": slider_html(name, labels, frames, values.index(value), heading, alts),
              "text/plain": f"<kernel-free slider: {heading}, {name} = {', '.join(labels)} (shown as HTML)>"})
    if not slider:
        return

    # 3. the live slider, which recomputes in a running kernel
    import ipywidgets as w

    control = w.SelectionSlider(options=live_values, value=value, description=name, continuous_update=False,
                                layout=w.Layout(width="60%"))

    def one(**kw):
        fig, ax = plt.subplots(figsize=frame_size(panel))
        draw(ax, kw[name])
        plt.show()
        plt.close(fig)

    out = w.interactive_output(one, {name: control})
    box = w.VBox([w.HTML(f"<b>Live slider</b> (recomputes; needs a running kernel): drag <code>{html.escape(name)}</code>"),
                  control, out])
    _display_live(_LiveSlider(box, _live_note(name, len(live_values)),
                              f"<live slider for {name}: needs a running kernel>"))


def _display_live(obj) -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        from IPython.display import display

        display(obj)
    else:
        print(obj.text)


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

DISTANCES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # chapter 7: separations s of two Gaussians
PAIR_SIGMA = 0.5  # their common width
LAMBDAS = (0.1, 1.0, 3.0, 10.0, 100.0)  # chapter 8
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
    ``separation``. Left, on a log axis: the gradient each generator loss gives a fake sample at
    ``x`` at the optimal critic -- JS's minimax loss
    (:func:`tutorlib.divergences.js_sample_gradient`), W1 (1 everywhere) and, thin and dashed, the
    non-saturating ``-ln D`` (:func:`tutorlib.divergences.js_nonsaturating_gradient`, not a gradient
    of JS) -- with the bulk (2 sigma either side) of p and q shaded and the midpoint ``s/2`` marked.
    Right: JS and W1 against the separation, with ``s`` marked. Fixed axes for every ``s``."""
    import numpy as np

    from tutorlib._validate import positive_float
    from tutorlib.divergences import (gaussian_pair_js, js_nonsaturating_gradient, js_sample_gradient,
                                      mean_sample_gradient)

    s, sigma = positive_float("separation", separation), positive_float("sigma", sigma)
    ax.set_axis_off()
    left, right = ax.inset_axes([0.0, 0.0, 0.56, 1.0]), ax.inset_axes([0.70, 0.0, 0.30, 1.0])
    x = np.linspace(-2.0, 8.0, 801)
    left.axvspan(-2 * sigma, 2 * sigma, color="0.5", alpha=0.25, lw=0, label="bulk of p (data)")
    left.axvspan(s - 2 * sigma, s + 2 * sigma, color="C3", alpha=0.2, lw=0, label="bulk of q (fakes)")
    left.axvline(s / 2, color="k", lw=0.6, ls=":")
    left.semilogy(x, np.maximum(js_sample_gradient(x, s, sigma), 1e-300), color="C0", lw=1.8,
                  label="JS (minimax loss)")
    left.semilogy(x, np.ones_like(x), color="C1", lw=1.8, label="W1")
    left.semilogy(x, np.maximum(js_nonsaturating_gradient(x, s, sigma), 1e-300), color="0.35", lw=1.0, ls="--",
                  label="-ln D (not JS)")
    left.set_xlim(x[0], x[-1])
    left.set_ylim(1e-12, 300.0)
    left.set_xlabel("position x of a fake sample (dotted: midpoint s/2)")
    left.set_ylabel("|gradient| on it (log)")
    left.legend(loc="lower left", fontsize=6.5, ncol=2)
    mean_js = mean_sample_gradient(js_sample_gradient, s, sigma)
    left.set_title(f"s = {s:g}: gradient at the fakes' centre: JS {float(js_sample_gradient(s, s, sigma)):.2g}, "
                   f"mean over the fakes {mean_js:.2g}; W1 1", fontsize=8)
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


def gaussian_pair_alt(separation: float, sigma: float = PAIR_SIGMA) -> str:
    """The alt text of one frame of :func:`draw_gaussian_pair`, with that frame's numbers."""
    from tutorlib.divergences import (gaussian_pair_js, js_nonsaturating_gradient, js_sample_gradient,
                                      mean_sample_gradient)

    s = float(separation)
    return (f"Two Gaussians of width {sigma:g} at separation s = {s:g}. Left, log scale: the gradient JS gives "
            f"a fake sample is {s / (2 * sigma**2):.2g} well left of the midpoint and "
            f"{float(js_sample_gradient(s, s, sigma)):.2g} at the fakes' centre "
            f"(mean over the fakes {mean_sample_gradient(js_sample_gradient, s, sigma):.2g}), "
            f"W1 gives 1 everywhere, the non-saturating -ln D gives "
            f"{float(js_nonsaturating_gradient(s, s, sigma)):.2g} at the fakes' centre. "
            f"Right: JS = {gaussian_pair_js(s, sigma):.4f} nats against ln 2 = 0.6931, W1 = {s:g}")


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
            title="two Gaussians of width 0.5 at separation s", alt=gaussian_pair_alt)


def lambda_slider(static=(0.1, 10.0, 100.0)) -> None:
    """Chapter 8: the slider for GAN-QP's lambda."""
    explore(draw_qp_lambda, "lam", LAMBDAS, static=static, value=10.0, ncols=3, panel=(4.6, 3.2),
            title="the optimal critic and the generator's gradient")


# --- chapters 2-4 ----------------------------------------------------------------------------------

def _sigma2_profile(r: dict, s2):
    """The loss a :func:`tutorlib.vae.sigma_sweep` model's networks would have with decoder variance
    ``s2`` (its squared error and KL held fixed): ``e / (2 s2) + D/2 ln(2 pi s2) + KL``."""
    import numpy as np

    d = r.get("dim", r["recon"].shape[-1])
    return r["sq_err"] / (2 * s2) + 0.5 * d * np.log(2 * np.pi * s2) + r["kl"]


def draw_sigma2(ax, sigma2: float, results: dict, originals, n: int = 8):
    """Chapter 2: for the VAE trained with decoder variance ``sigma2`` (one entry of
    :func:`tutorlib.vae.sigma_sweep`): ``n`` test images, their reconstructions and ``n`` samples from
    the prior (left); the two terms that ``sigma^2`` trades, the weighted squared error
    ``||x - mu(z)||^2 / (2 sigma^2)`` and the KL term, for every trained ``sigma^2`` with this one
    marked (middle); and the loss ``L`` of every trained model, with this model's ``L`` as a function
    of the decoder variance at fixed reconstructions, lowest at its maximum-likelihood ``sigma^2``
    (right). Middle and right use the same axes for every value."""
    import numpy as np

    from tutorlib.plotting import image_grid

    if sigma2 not in results:
        raise ValueError(f"sigma2 must be one of the trained values {sorted(results)}, got {sigma2}")
    r = results[sigma2]
    n = min(positive_int("n", n), len(originals), len(r["samples"]))
    ax.set_axis_off()
    img = ax.inset_axes([0.075, 0.0, 0.44, 0.86])
    rows = torch.cat([originals[:n], r["recon"][:n], r["samples"][:n]])
    image_grid(rows, shape=(28, 28), nrow=n, ax=img)
    for k, label in enumerate(("data", "recon-\nstructions", "samples\nfrom the\nprior")):
        img.text(-0.01, 1 - (k + 0.5) / 3, label, transform=img.transAxes, ha="right", va="center", fontsize=7)
    s2s = np.array(sorted(results))
    xlim = (s2s.min() / 2, s2s.max() * 2)
    # middle: the two terms sigma^2 trades
    terms = ax.inset_axes([0.575, 0.15, 0.17, 0.71])
    weighted = np.array([results[v]["sq_err"] / (2 * v) for v in s2s])
    kls = np.array([results[v]["kl"] for v in s2s])
    terms.loglog(s2s, weighted, "o-", ms=3, color="C0", label=r"$\|x-\mu(z)\|^2/(2\sigma^2)$")
    terms.loglog(s2s, kls, "s-", ms=3, color="C3", label="KL term")
    terms.loglog([sigma2], [r["sq_err"] / (2 * sigma2)], "o", ms=9, mfc="none", color="C0")
    terms.loglog([sigma2], [r["kl"]], "s", ms=9, mfc="none", color="C3")
    terms.axvline(sigma2, color="k", lw=0.6, ls=":")
    terms.set_xlim(*xlim)
    terms.set_ylim(min(weighted.min(), kls.min()) / 3, max(weighted.max(), kls.max()) * 3)
    terms.set_xlabel(r"decoder variance $\sigma^2$", fontsize=8)
    terms.set_ylabel("nats per image", fontsize=8)
    terms.set_title("the two terms", fontsize=8)
    terms.tick_params(labelsize=7)
    terms.legend(fontsize=6, loc="upper right")
    # right: the loss L, and this model's L at other decoder variances
    loss = ax.inset_axes([0.815, 0.15, 0.18, 0.71])
    losses = np.array([results[v]["loss"] for v in s2s])
    grid = np.geomspace(*xlim, 200)
    lows = [float(_sigma2_profile(results[v], results[v]["ml_sigma2"])) for v in s2s]
    loss.semilogx(s2s, losses, "o-", ms=3, color="k", label=r"$\mathcal{L}$ of each trained model")
    loss.semilogx(grid, _sigma2_profile(r, grid), color="C2", lw=1.2, label="this model, other $\\sigma^2$")
    loss.semilogx([sigma2], [r["loss"]], "o", ms=9, mfc="none", color="k")
    loss.axvline(r["ml_sigma2"], color="C2", lw=1.0, ls="--", label=r"its ML $\sigma^2$")
    loss.axvline(sigma2, color="k", lw=0.6, ls=":")
    span = losses.max() - min(lows)
    loss.set_xlim(*xlim)
    loss.set_ylim(min(lows) - 0.1 * span, losses.max() + 0.15 * span)
    loss.set_xlabel(r"decoder variance $\sigma^2$", fontsize=8)
    loss.set_ylabel(r"$\mathcal{L}$ (nats per image)", fontsize=8)
    loss.set_title(r"the loss $\mathcal{L}$", fontsize=8)
    loss.tick_params(labelsize=7)
    loss.legend(fontsize=6, loc="upper right")
    ax.set_title(f"$\\sigma^2$ = {sigma2}: squared error {r['sq_err']:.1f}, KL {r['kl']:.1f} nats, "
                 f"$\\mathcal{{L}}$ = {r['loss']:.0f} nats; ML $\\sigma^2$ = {r['ml_sigma2']:.3f}", fontsize=8)
    return ax


def draw_prior_k(ax, k: int, results: dict, rows: int = 6):
    """Chapter 3: Su's "resource war" for the decoder trained with ``k`` shared prior codes. Each row is one
    training image, then, for each of several batches (fresh sets of ``k`` codes, as in successive
    training steps), what the code that wins this image decodes to. ``results``: from
    :func:`tutorlib.vae.prior_sampling_sweep` (its ``"battles"``)."""
    import torch

    from tutorlib.plotting import image_grid

    if k not in results:
        raise ValueError(f"k must be one of the trained values {sorted(results)}, got {k}")
    rows = positive_int("rows", rows)
    bt = results[k]["battles"]
    decoded, winner, wins, loss = bt["decoded"], bt["winner"], bt["wins"], bt["loss"]
    batches, n = winner.shape
    rows = min(rows, n)
    x = results[k]["battle_images"]
    tiles = []
    for i in range(rows):  # the image, a blank gap, then its winner in each batch
        tiles += [x[i], torch.zeros_like(x[i])] + [decoded[b, winner[b, i]] for b in range(batches)]
    image_grid(torch.stack(tiles), shape=(28, 28), nrow=batches + 2, ax=ax)
    top = [int(w.max()) for w in wins]
    spread = float(loss.std(0).mean())
    ax.set_title(f"k = {k}: an image, then its winning code in {batches} batches\n"
                 f"top code wins {'/'.join(map(str, top))} of {n}; loss sd {spread:.1f} nats",
                 fontsize=7)
    return ax


def draw_iwae_k(ax, k: int, view: dict):
    """Chapter 3: what ``k`` changes in the IWAE bound. Left: the normalised importance weights of the
    first ``k`` of one test image's draws, largest first, with their effective sample size; right:
    ``L_k`` (mean over test images) against ``k`` for each model, the best estimate (the largest ``k``)
    dashed, the current ``k`` marked. ``view``: ``{"ks": [...], "models": {name: {"curve": [L_k per k],
    "log_w": (K,) log weights of one image}}}`` with the same ``ks`` for every model."""
    import numpy as np

    ks = list(view["ks"])
    if k not in ks:
        raise ValueError(f"k must be one of {ks}, got {k!r}")
    big = ks[-1]
    ax.set_axis_off()
    left = ax.inset_axes([0.0, 0.0, 0.40, 0.78])
    right = ax.inset_axes([0.58, 0.0, 0.42, 0.78])
    lo = min(min(m["curve"]) for m in view["models"].values())
    hi = max(max(m["curve"]) for m in view["models"].values())
    pad = 0.08 * (hi - lo)
    notes = []
    for i, (name, m) in enumerate(view["models"].items()):
        color = f"C{i}"
        lw = torch.as_tensor(m["log_w"])[:k].double()
        w = torch.softmax(lw, 0).sort(descending=True).values.numpy()
        ess = float(torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)))
        left.loglog(np.arange(1, k + 1), w, ".-" if k <= 50 else "-", ms=3, lw=1, color=color,
                    label=f"{name}: ESS {ess:.1f} of {k}")
        curve = list(m["curve"])
        right.semilogx(ks, curve, "o-", ms=2.5, lw=1, color=color, label=name)
        right.axhline(curve[-1], color=color, lw=0.8, ls="--")
        right.plot([k], [curve[ks.index(k)]], "s", ms=7, mfc="none", color=color)
        notes.append(f"{name} {curve[ks.index(k)] - curve[-1]:+.2f}")
    left.set_xlim(0.8, big * 1.25)
    left.set_ylim(1e-6, 2.0)
    left.set_xlabel("rank of the weight", fontsize=7)
    left.set_ylabel("normalised weight", fontsize=7)
    left.set_title("one test image's weights", fontsize=7)
    left.legend(fontsize=6, loc="lower left")
    right.set_xlim(ks[0] * 0.8, big * 1.25)
    right.set_ylim(lo - pad, hi + pad)
    right.axvline(k, color="k", lw=0.6, ls=":")
    right.set_xlabel("k", fontsize=7)
    right.set_ylabel(r"$L_k$, mean over test images (nats)", fontsize=7)
    right.set_title(f"dashed: best estimate $L_{{{big}}}$", fontsize=7)
    right.legend(fontsize=6, loc="lower right")
    from matplotlib.ticker import NullLocator

    left.yaxis.set_minor_locator(NullLocator())  # seven decades: minor ticks would only add clutter (and time)
    for a in (left, right):
        a.tick_params(labelsize=6)
    ax.set_title(f"k = {k}: $L_k - L_{{{big}}}$: " + ", ".join(notes) + " nats", fontsize=8)
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

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

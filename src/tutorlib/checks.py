"""Printed comparisons of two independently computed numbers.

Chapters state an identity, compute both sides in two independent ways and call :func:`compare`.
It prints both numbers and raises :class:`IdentityError` when they disagree, so re-executing a
chapter (the book build, ``pytest --nbval-lax``) fails as soon as an identity breaks.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tutorlib._validate import positive_float


class IdentityError(AssertionError):
    """Two computations of the same quantity disagree beyond the stated tolerance."""


def _as_array(name: str, value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array of numbers, got {type(value).__name__}") from None
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN: {value!r}")
    return arr


def compare(label: str, lhs, rhs, *, rtol: float | None = None, atol: float | None = None,
            names: tuple[str, str] = ("lhs", "rhs"), digits: int = 6) -> None:
    """Print ``lhs`` and ``rhs`` and raise :class:`IdentityError` unless they agree.

    They agree when ``|lhs - rhs| <= atol + rtol * |rhs|`` elementwise (infinities agree only
    with an infinity of the same sign). The tolerance given is the tolerance used: ``atol``
    alone means ``rtol = 0``, ``rtol`` alone means ``atol = 0``, and a call must give at least
    one of them. The printed line shows the tolerance that was applied. ``names`` says how each
    side was computed. For a Monte Carlo estimate against a closed form, pass ``atol`` = a few
    standard errors. Returns nothing (so a comparison on a notebook's last line prints no stray
    value).
    """
    if not isinstance(label, str) or not label:
        raise ValueError(f"label must be a non-empty string, got {label!r}")
    if rtol is None and atol is None:
        raise ValueError("give the tolerance the comparison deserves: rtol, atol or both "
                         "(atol alone means rtol = 0, rtol alone means atol = 0)")
    rtol = 0.0 if rtol is None else positive_float("rtol", rtol, allow_zero=True)
    atol = 0.0 if atol is None else positive_float("atol", atol, allow_zero=True)
    if rtol == 0 and atol == 0:
        raise ValueError("rtol and atol cannot both be 0: give the tolerance the comparison deserves")
    a, b = _as_array("lhs", lhs), _as_array("rhs", rhs)
    if a.shape != b.shape:
        raise ValueError(f"lhs and rhs must have the same shape, got {a.shape} and {b.shape}")
    both_inf = np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))
    with np.errstate(invalid="ignore"):
        diff = np.where(both_inf, 0.0, np.abs(a - b))
    diff = np.where(np.isnan(diff), np.inf, diff)
    tol = atol + rtol * np.where(np.isinf(b), 0.0, np.abs(b))
    ok = bool(np.all(diff <= tol))
    # the element that decides: the largest |diff| / tol
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(diff == 0, 0.0, diff / tol)
    worst_i = int(np.argmax(ratio)) if diff.size else 0
    worst = float(diff.reshape(-1)[worst_i]) if diff.size else 0.0
    worst_tol = float(tol.reshape(-1)[worst_i]) if tol.size else atol

    def fmt(x: np.ndarray) -> str:
        if x.size == 1:
            v = float(x.reshape(()))
            return f"{v:.{digits}g}" if math.isfinite(v) else str(v)
        return np.array2string(x, precision=digits, separator=", ", threshold=8)

    if rtol == 0:
        rule = f"atol {atol:.3g}"
    elif atol == 0:
        rule = f"rtol {rtol:.3g} x |{names[1]}|"
    else:
        rule = f"atol {atol:.3g} + rtol {rtol:.3g} x |{names[1]}|"
    mark = "✓" if ok else "✗"
    where = "" if diff.size <= 1 else f" (worst element {worst_i})"
    print(f"{mark} {label}\n    {names[0]}: {fmt(a)} | {names[1]}: {fmt(b)}\n"
          f"    |diff| {worst:.2e} {'<=' if ok else '>'} tol {worst_tol:.2e} = {rule}{where}")
    if not ok:
        raise IdentityError(
            f"{label}: {names[0]} = {fmt(a)} and {names[1]} = {fmt(b)} differ by {worst:.3e}{where}, "
            f"more than the tolerance {worst_tol:.3e} = {rule}"
        )

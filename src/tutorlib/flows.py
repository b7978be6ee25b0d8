"""Normalizing flows: invertible layers with a cheap log-determinant, and NICE (chapter 5).

Every layer maps a batch ``x`` to ``(y, logdet)`` with ``forward`` and back with ``inverse``:

- ``forward(x) -> (y, logdet)``: ``y = f(x)`` and ``logdet[i] = ln|det df/dx|`` at ``x[i]``,
  a tensor of shape ``(batch,)``;
- ``inverse(y) -> x``: ``f^{-1}(y)``.

Layers on flat vectors take ``x`` of shape ``(batch, dim)``:

- :class:`AdditiveCoupling`: ``h1 = x1, h2 = x2 + m(x1)`` (log-det 0), NICE's layer;
- :class:`AffineCoupling`: ``h1 = x1, h2 = s(x1) * x2 + t(x1)`` (log-det ``sum ln s``), RealNVP/Glow's;
- :class:`Scale`: ``y = s * x`` with a learned ``s > 0`` (log-det ``sum ln s``), NICE's last layer;
- :class:`ActNorm`: ``y = s * x + b`` with a data-dependent initialisation (log-det ``sum ln s``), Glow's;
- :class:`Reverse`, :class:`Interleave` (and :class:`Permutation`): reorder the coordinates
  (``|det| = 1``, log-det 0).

:class:`Squeeze` reshapes images ``(batch, C, H, W) -> (batch, 4C, H/2, W/2)``. :class:`Flow` chains
layers (log-dets add). :class:`NICE` is the model of Dinh et al. (2014) with a Gaussian or
logistic prior, :class:`Glow` a small Glow-like flow (chapter 6); both are subclasses of :class:`FlowModel`
with ``log_prob(x)`` and ``sample(n, temperature)``.

In the book's notation the flow ``f`` maps data ``x`` to the latent ``z`` (the encoder) and its
inverse ``g = f^{-1}`` generates.

Log-determinants are always computed from log-scales (``sum ln s`` as a sum of parameters or of
``log``-space network outputs), never as the log of a product of scales, so they stay accurate in
float32 for any dimension.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from tutorlib._validate import one_of, positive_float, positive_int

PARTITIONS = ("even", "odd", "first", "second")
PRIORS = ("gaussian", "logistic")
AFFINE_SCALES = ("exp-tanh", "sigmoid")


def _even_dim(value, name: str = "dim") -> int:
    value = positive_int(name, value, minimum=2)
    if value % 2:
        raise ValueError(f"{name} must be even to split the coordinates into two halves, got {value}")
    return value


def _check_batch(name: str, x, dim: int) -> torch.Tensor:
    """``x`` must be a floating-point tensor of shape (batch, dim)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of shape (batch, {dim}), "
                         f"got {type(x).__name__ if not isinstance(x, torch.Tensor) else x.dtype}")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (batch, {dim}), got {tuple(x.shape)}")
    return x


def mlp(d_in: int, d_out: int, hidden: int = 1000, depth: int = 5, zero_last: bool = True) -> nn.Sequential:
    """The coupling function ``m``: ``depth`` hidden layers of ``hidden`` ReLU units, a linear output.

    With ``zero_last`` the output layer starts at zero, so a fresh coupling is the identity and
    training starts from the prior (the usual initialisation for flows).
    """
    d_in, d_out = positive_int("d_in", d_in), positive_int("d_out", d_out)
    hidden, depth = positive_int("hidden", hidden), positive_int("depth", depth)
    layers: list[nn.Module] = []
    width = d_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    last = nn.Linear(width, d_out)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)


class FlowLayer(nn.Module):
    """Base class: an invertible map of ``(batch, dim)`` tensors with ``forward`` and ``inverse``."""

    dim: int

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def inverse(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def positions(self, index: torch.Tensor) -> torch.Tensor:
        """Where each output coordinate comes from: ``index`` permuted as the layer permutes ``x``.

        Couplings and scalings keep every coordinate in its place; only permutations move them.
        """
        return index

    @staticmethod
    def _zeros(x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0])


class _Coupling(FlowLayer):
    """The split ``x -> (x1, x2)`` and merge shared by the coupling layers.

    ``partition`` says which coordinates are ``x1`` (kept, and fed to the network):
    ``"even"``/``"odd"`` indices (NICE's interleaved partition) or the ``"first"``/``"second"`` half.
    """

    def __init__(self, dim: int, partition: str) -> None:
        super().__init__()
        self.dim = _even_dim(dim)
        self.partition = one_of("partition", partition, PARTITIONS)
        self.half = self.dim // 2

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x1, x2)``: the kept and the transformed coordinates."""
        p = self.partition
        if p == "even":
            return x[:, 0::2], x[:, 1::2]
        if p == "odd":
            return x[:, 1::2], x[:, 0::2]
        if p == "first":
            return x[:, :self.half], x[:, self.half:]
        return x[:, self.half:], x[:, :self.half]

    def merge(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`split`."""
        p = self.partition
        if p == "even":
            return torch.stack((x1, x2), dim=-1).reshape(x1.shape[0], self.dim)
        if p == "odd":
            return torch.stack((x2, x1), dim=-1).reshape(x1.shape[0], self.dim)
        if p == "first":
            return torch.cat((x1, x2), dim=-1)
        return torch.cat((x2, x1), dim=-1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, partition={self.partition!r}"


class AdditiveCoupling(_Coupling):
    """NICE's additive coupling: ``h1 = x1``, ``h2 = x2 + m(x1)``; inverse ``x2 = h2 - m(h1)``.

    The Jacobian is triangular with ones on the diagonal, so ``ln|det| = 0``. ``m`` is ``net``
    if given (any module mapping ``dim/2`` numbers to ``dim/2``), else an :func:`mlp` with
    ``depth`` hidden layers of ``hidden`` ReLU units.
    """

    def __init__(self, dim: int, partition: str = "even", hidden: int = 1000, depth: int = 5,
                 net: nn.Module | None = None) -> None:
        super().__init__(dim, partition)
        if net is not None and not isinstance(net, nn.Module):
            raise ValueError(f"net must be a torch.nn.Module or None, got {type(net).__name__}")
        self.m = net if net is not None else mlp(self.half, self.half, hidden, depth)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1, x2 = self.split(_check_batch("x", x, self.dim))
        return self.merge(x1, x2 + self.m(x1)), self._zeros(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.split(_check_batch("y", y, self.dim))
        return self.merge(h1, h2 - self.m(h1))


class AffineCoupling(_Coupling):
    """The affine coupling of RealNVP and Glow: ``h1 = x1``, ``h2 = s(x1) * x2 + t(x1)``.

    Inverse ``x2 = (h2 - t(h1)) / s(h1)``; ``ln|det| = sum ln s(x1)``. The network outputs
    ``(a, t)`` and the log-scale is computed directly in log space (never as ``log(s)``):
    ``scale="exp-tanh"``: ``ln s = tanh(a)`` (so ``s`` in ``(1/e, e)``); ``scale="sigmoid"``
    (Glow): ``ln s = logsigmoid(a + 2)``. With ``s = 1`` it is the additive coupling.
    ``net``, if given, must map ``dim/2`` numbers to ``dim`` (``a`` and ``t``).
    """

    def __init__(self, dim: int, partition: str = "even", hidden: int = 1000, depth: int = 5,
                 net: nn.Module | None = None, scale: str = "exp-tanh") -> None:
        super().__init__(dim, partition)
        if net is not None and not isinstance(net, nn.Module):
            raise ValueError(f"net must be a torch.nn.Module or None, got {type(net).__name__}")
        self.scale = one_of("scale", scale, AFFINE_SCALES)
        self.net = net if net is not None else mlp(self.half, 2 * self.half, hidden, depth)

    def log_scale_and_shift(self, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, t = self.net(x1).chunk(2, dim=-1)
        log_s = torch.tanh(a) if self.scale == "exp-tanh" else F.logsigmoid(a + 2.0)
        return log_s, t

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1, x2 = self.split(_check_batch("x", x, self.dim))
        log_s, t = self.log_scale_and_shift(x1)
        return self.merge(x1, x2 * log_s.exp() + t), log_s.sum(dim=-1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.split(_check_batch("y", y, self.dim))
        log_s, t = self.log_scale_and_shift(h1)
        return self.merge(h1, (h2 - t) * (-log_s).exp())

    def extra_repr(self) -> str:
        return super().extra_repr() + f", scale={self.scale!r}"


class Scale(FlowLayer):
    """NICE's scaling layer: ``y = s * x`` with a learned vector ``s = exp(log_scale) > 0``.

    ``ln|det| = sum_i ln s_i = log_scale.sum()``, the same for every example. With a standard
    prior on ``y`` it is the same model as a prior with standard deviations ``sigma_i = 1/s_i``
    on the unscaled ``x``: a large ``s_i`` is a dimension the model collapses.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = positive_int("dim", dim)
        self.log_scale = nn.Parameter(torch.zeros(self.dim))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_batch("x", x, self.dim)
        return x * self.log_scale.exp(), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        _check_batch("y", y, self.dim)
        return y * (-self.log_scale).exp()

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class ActNorm(FlowLayer):
    """Glow's activation normalisation: ``y = exp(log_scale) * x + b`` per coordinate.

    ``ln|det| = log_scale.sum()`` for every example. The first forward pass in training mode
    initialises ``log_scale`` and ``b`` from that batch (data-dependent initialisation), so the
    layer's output starts with zero mean and unit variance per coordinate; after that both are
    ordinary parameters. ``initialized`` is saved with the state dict. The shift is applied
    *after* the scale, in output units: on a nearly constant input coordinate the scale is
    large, and an optimiser step on a shift in input units would be multiplied by it.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = positive_int("dim", dim)
        self.eps = positive_float("eps", eps)
        self.bias = nn.Parameter(torch.zeros(self.dim))
        self.log_scale = nn.Parameter(torch.zeros(self.dim))
        self.register_buffer("initialized", torch.tensor(False))
        self._initialized = None  # a Python copy of the buffer: reading it from a GPU would sync every step

    def _is_initialized(self) -> bool:
        if self._initialized is None:  # read the buffer once, then remember it
            self._initialized = bool(self.initialized)
        return self._initialized

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._initialized = None  # the loaded buffer decides

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set ``log_scale = -ln(std(x) + eps)`` and ``b = -mean(x) * exp(log_scale)`` over the batch
        (needs >= 2 rows)."""
        _check_batch("x", x, self.dim)
        if x.shape[0] < 2:
            raise ValueError(f"ActNorm's data-dependent initialisation needs a batch of at least 2, got {x.shape[0]}")
        self.log_scale.copy_(-(x.std(dim=0) + self.eps).log())
        self.bias.copy_(-x.mean(dim=0) * self.log_scale.exp())
        self.initialized.fill_(True)
        self._initialized = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_batch("x", x, self.dim)
        if self.training and not self._is_initialized():
            self.initialize(x)
        return x * self.log_scale.exp() + self.bias, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        _check_batch("y", y, self.dim)
        return (y - self.bias) * (-self.log_scale).exp()

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Permutation(FlowLayer):
    """Reorder the coordinates: ``y = x[:, perm]``. A permutation matrix has ``det = +-1``, log-det 0."""

    def __init__(self, perm) -> None:
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.long)
        if perm.ndim != 1 or perm.numel() == 0 or not torch.equal(perm.sort().values, torch.arange(perm.numel())):
            raise ValueError(f"perm must be a permutation of 0..n-1, got {perm.tolist()[:12]}")
        self.dim = perm.numel()
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inverse_perm", torch.argsort(perm), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _check_batch("x", x, self.dim)[:, self.perm], self._zeros(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return _check_batch("y", y, self.dim)[:, self.inverse_perm]

    def positions(self, index: torch.Tensor) -> torch.Tensor:
        return index[self.perm.to(index.device)]

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Reverse(Permutation):
    """Reverse the order of the coordinates (NICE/Su: before each coupling after the first).

    With the interleaved partition and an even ``dim``, reversing maps even indices to odd ones,
    so the next coupling transforms the half that the previous one kept.
    """

    def __init__(self, dim: int) -> None:
        super().__init__(torch.arange(positive_int("dim", dim) - 1, -1, -1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _check_batch("x", x, self.dim).flip(-1), self._zeros(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return _check_batch("y", y, self.dim).flip(-1)


class Interleave(Permutation):
    """Even-indexed coordinates first, then the odd ones (inverse: interleave them back).

    It turns NICE's interleaved partition into a first-half / second-half one.
    """

    def __init__(self, dim: int) -> None:
        dim = _even_dim(dim)
        super().__init__(torch.cat((torch.arange(0, dim, 2), torch.arange(1, dim, 2))))


class Squeeze(FlowLayer):
    """Trade space for channels: ``(batch, C, H, W) -> (batch, 4C, H/2, W/2)`` (RealNVP, Glow).

    Each 2x2 block of pixels becomes four channels; a permutation, so the log-det is 0.
    """

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = self._check(x, "x")
        y = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(n, 4 * c, h // 2, w // 2), self._zeros(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        n, c4, h2, w2 = self._check(y, "y", squeezed=True)
        x = y.reshape(n, c4 // 4, 2, 2, h2, w2).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c4 // 4, 2 * h2, 2 * w2)

    @staticmethod
    def _check(x, name: str, squeezed: bool = False) -> tuple[int, int, int, int]:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a tensor of shape (batch, C, H, W), got {got}")
        n, c, h, w = x.shape
        if squeezed and c % 4:
            raise ValueError(f"{name} must have a multiple of 4 channels to unsqueeze, got {c}")
        if not squeezed and (h % 2 or w % 2):
            raise ValueError(f"{name} must have an even height and width to squeeze, got {h}x{w}")
        return n, c, h, w


class Flow(FlowLayer):
    """A composition ``f = f_L o ... o f_1``: ``forward`` applies the layers in order and adds their
    log-dets (the chain rule: determinants multiply); ``inverse`` undoes them in reverse order."""

    def __init__(self, layers: Iterable[nn.Module]) -> None:
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ValueError("layers must not be empty")
        bad = [type(m).__name__ for m in layers if not (isinstance(m, nn.Module) and hasattr(m, "inverse"))]
        if bad:
            raise ValueError(f"layers must be flow layers (modules with forward and inverse), got {bad}")
        self.layers = nn.ModuleList(layers)
        self.dim = getattr(layers[0], "dim", None)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.new_zeros(x.shape[0]) if isinstance(x, torch.Tensor) else None
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y

    def positions(self, index: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            index = layer.positions(index)
        return index

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]


def sample_logistic(shape, generator: torch.Generator | None = None, dtype=torch.float32,
                    device=None) -> torch.Tensor:
    """Standard logistic draws ``ln u - ln(1 - u)``, ``u ~ U(0, 1)``, with ``u`` kept inside
    ``[eps, 1 - eps]`` so that no draw is infinite (|z| <= 15.9 in float32, 36.0 in float64)."""
    eps = torch.finfo(dtype).eps
    u = torch.rand(shape, generator=generator, dtype=dtype, device=device).clamp(eps, 1 - eps)
    return u.log() - (-u).log1p()


def prior_log_prob(z: torch.Tensor, prior: str) -> torch.Tensor:
    """``ln q(z)`` summed over the last dimension for a factorised standard prior.

    ``"gaussian"``: ``-z^2/2 - ln(2 pi)/2`` per coordinate; ``"logistic"``:
    ``-ln(1 + e^z) - ln(1 + e^-z)`` per coordinate (written with softplus, stable for any z).
    """
    one_of("prior", prior, PRIORS)
    if prior == "gaussian":
        return -0.5 * (z * z).sum(dim=-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
    return -(F.softplus(z) + F.softplus(-z)).sum(dim=-1)


class FlowModel(nn.Module):
    """A flow ``f`` (``self.flow``, data ``x`` to latent ``z``) with a factorised standard prior.

    - ``forward(x) -> (z, logdet)`` and ``inverse(z) -> x``;
    - ``log_prob(x)``: the continuous log-density ``ln q(z) + ln|det dz/dx|`` per example, in nats;
    - ``sample(n, temperature=1.0)``: ``x = f^{-1}(T z0)`` with ``z0`` from the prior (annealing).

    Subclasses set ``dim``, ``prior`` and ``flow`` (a :class:`Flow`).
    """

    dim: int
    prior: str
    flow: Flow

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, logdet)``: the latent code of ``x`` and ``ln|det dz/dx|`` per example."""
        return self.flow(_check_batch("x", x, self.dim))

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """The generator ``x = f^{-1}(z)``."""
        return self.flow.inverse(_check_batch("z", z, self.dim))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``ln q(x) = ln q(z) + ln|det dz/dx|`` with ``z = f(x)``, per example (nats)."""
        z, logdet = self.forward(x)
        return prior_log_prob(z, self.prior) + logdet

    def sample_latent(self, n: int, temperature: float = 1.0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` prior draws multiplied by ``temperature`` (``N(0, T^2 I)`` for the Gaussian prior)."""
        n = positive_int("n", n)
        temperature = positive_float("temperature", temperature)
        p = next(self.parameters())
        gen_device = generator.device if generator is not None else p.device
        if self.prior == "gaussian":
            z = torch.randn(n, self.dim, generator=generator, dtype=p.dtype, device=gen_device)
        else:
            z = sample_logistic((n, self.dim), generator=generator, dtype=p.dtype, device=gen_device)
        return temperature * z.to(p.device)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples ``x = f^{-1}(z)``, ``z`` = ``temperature`` times a prior draw (no gradients)."""
        return self.inverse(self.sample_latent(n, temperature, generator))

    def positions(self) -> torch.Tensor:
        """``positions()[k]``: the coordinate of ``x`` that ``z[:, k]`` sits on (couplings keep
        coordinates in place; permutations move them). Use it to draw ``z``-space quantities,
        such as the learned scales, as images: ``image[positions()] = values``."""
        return self.flow.positions(torch.arange(self.dim))


MIXINGS = ("reverse", "random")


class NICE(FlowModel):
    """NICE (Dinh, Krueger & Bengio, 2014): additive couplings, then a diagonal scaling.

    The layers, from data ``x`` to latent ``z`` (the paper's direction: ``h2 = x2 + m(x1)`` maps
    data to code): ``couplings`` :class:`AdditiveCoupling` layers on the interleaved partition
    (the even coordinates condition the odd ones), with a permutation between consecutive
    couplings, then a :class:`Scale`. ``mixing="reverse"`` (default) puts a :class:`Reverse`
    there, so that the two halves alternate exactly (what Su's code does, and, up to a fixed
    relabelling of the coordinates, the paper's released code); ``mixing="random"`` puts a fixed
    random :class:`Permutation` (seeded by ``seed``), the other option of Su's ``Shuffle`` layer,
    which mixes the halves only on average. Each coupling's ``m`` is an MLP with ``depth``
    hidden layers of ``hidden`` ReLU units and a linear output. ``prior``: ``"gaussian"`` (Su)
    or ``"logistic"`` (the paper's choice for MNIST), standard and factorised. ``forward``,
    ``inverse``, ``log_prob`` and ``sample(n, temperature)`` are those of :class:`FlowModel`.
    """

    def __init__(self, dim: int, hidden: int = 1000, depth: int = 5, couplings: int = 4,
                 prior: str = "gaussian", mixing: str = "reverse", seed: int = 0) -> None:
        super().__init__()
        self.dim = _even_dim(dim)
        self.hidden, self.depth = positive_int("hidden", hidden), positive_int("depth", depth)
        self.couplings = positive_int("couplings", couplings)
        self.prior = one_of("prior", prior, PRIORS)
        self.mixing = one_of("mixing", mixing, MIXINGS)
        gen = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
        layers: list[nn.Module] = []
        for i in range(self.couplings):
            if i > 0:
                layers.append(Reverse(self.dim) if self.mixing == "reverse"
                              else Permutation(torch.randperm(self.dim, generator=gen)))
            layers.append(AdditiveCoupling(self.dim, "even", self.hidden, self.depth))
        layers.append(Scale(self.dim))
        self.flow = Flow(layers)

    @property
    def scale(self) -> Scale:
        """The final scaling layer (``scale.log_scale`` are the learned ``ln s_i``)."""
        return self.flow[-1]

    def prior_std(self) -> torch.Tensor:
        """The standard deviations of the prior that the scale layer implies on the last
        coupling's output ``h``: ``c / s_i``, with ``c = 1`` for the Gaussian prior and
        ``c = pi / sqrt(3)`` (the logistic's standard deviation) for the logistic one."""
        c = 1.0 if self.prior == "gaussian" else math.pi / math.sqrt(3.0)
        return c * (-self.scale.log_scale.detach()).exp()

    def extra_repr(self) -> str:
        extra = "" if self.mixing == "reverse" else f", mixing={self.mixing!r}"
        return (f"dim={self.dim}, hidden={self.hidden}, depth={self.depth}, couplings={self.couplings}, "
                f"prior={self.prior!r}{extra}")


COUPLINGS = ("affine", "additive")


class Glow(FlowModel):
    """A small Glow-like flow on flat vectors (Kingma & Dhariwal, 2018), chapter 6's ``F``.

    ``steps`` steps, each (from ``x`` to ``z``): :class:`ActNorm`, a fixed random
    :class:`Permutation` (seeded by ``seed``; Glow's "shuffle" variant, in place of its learned
    1x1 convolution), and an affine (or additive) coupling of the first half on the second,
    whose network is an :func:`mlp` with ``depth`` hidden layers of ``hidden`` ReLU units.
    No multi-scale architecture: every step sees all ``dim`` coordinates. Standard Gaussian
    prior. ``forward``, ``inverse``, ``log_prob`` and ``sample(n, temperature)`` are those of
    :class:`FlowModel`.
    """

    def __init__(self, dim: int, steps: int = 4, hidden: int = 256, depth: int = 2, coupling: str = "affine",
                 seed: int = 0, actnorm_eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = _even_dim(dim)
        self.steps = positive_int("steps", steps)
        self.hidden, self.depth = positive_int("hidden", hidden), positive_int("depth", depth)
        self.coupling = one_of("coupling", coupling, COUPLINGS)
        self.prior = "gaussian"
        gen = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
        layers: list[nn.Module] = []
        for _ in range(self.steps):
            layers.append(ActNorm(self.dim, eps=actnorm_eps))
            layers.append(Permutation(torch.randperm(self.dim, generator=gen)))
            if self.coupling == "affine":
                layers.append(AffineCoupling(self.dim, "first", self.hidden, self.depth))
            else:
                layers.append(AdditiveCoupling(self.dim, "first", self.hidden, self.depth))
        self.flow = Flow(layers)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, steps={self.steps}, hidden={self.hidden}, depth={self.depth}, "
                f"coupling={self.coupling!r}")


def randomize_(module: nn.Module, std: float = 1.0, generator: torch.Generator | None = None) -> nn.Module:
    """Re-initialise every parameter with random values (in place) and return the module.

    Weights of a linear layer become ``N(0, std^2 / fan_in)``, every other parameter (biases,
    log-scales) ``N(0, (std/2)^2)``. Fresh flows are the identity (their last layers start at
    zero); tests and demonstrations use this to get a non-trivial flow without training.
    """
    std = positive_float("std", std)
    with torch.no_grad():
        for mod in module.modules():
            if isinstance(mod, nn.Linear):
                w = torch.randn(mod.weight.shape, generator=generator, dtype=mod.weight.dtype)
                mod.weight.copy_(w * std / math.sqrt(mod.in_features))
                if mod.bias is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=generator, dtype=mod.bias.dtype) * std / 2)
            elif isinstance(mod, Scale):
                mod.log_scale.copy_(torch.randn(mod.dim, generator=generator, dtype=mod.log_scale.dtype) * std / 2)
    return module


@torch.no_grad()
def interpolate(flow: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Decode straight lines between latent codes: ``f^{-1}((1 - t) f(x_a) + t f(x_b))`` for
    ``steps`` values of ``t`` from 0 to 1. ``x_a``, ``x_b``: (dim,) or (n, dim); returns
    (steps, dim) or (n, steps, dim)."""
    steps = positive_int("steps", steps, minimum=2)
    if not isinstance(x_a, torch.Tensor) or not isinstance(x_b, torch.Tensor) or x_a.shape != x_b.shape:
        raise ValueError("x_a and x_b must be tensors of the same shape, (dim,) or (n, dim)")
    single = x_a.ndim == 1
    a, b = (x_a[None], x_b[None]) if single else (x_a, x_b)
    z_a, z_b = flow(a)[0], flow(b)[0]
    t = torch.linspace(0, 1, steps, dtype=z_a.dtype, device=z_a.device)[None, :, None]
    z = (1 - t) * z_a[:, None] + t * z_b[:, None]
    x = flow.inverse(z.reshape(-1, z_a.shape[-1])).reshape(z.shape)
    return x[0] if single else x


PAPER_BETAS = (0.9, 0.99)
"""The NICE paper's Adam moment decays in today's notation. The paper (2014) states "momentum 0.9,
beta_2 = 0.01": it follows the first drafts of Adam, where beta_1 and beta_2 were the weights of the
*new* gradient in the moving averages (one minus today's decays). Momentum 0.9 is today's
beta_1 = 0.9; beta_2 = 0.01 is today's beta_2 = 0.99. Its lambda = 1 (no decay of beta_1) is
PyTorch's constant beta_1, and its eps = 1e-4 is :data:`PAPER_EPS`."""
PAPER_EPS = 1e-4


def train_nice(model: NICE, pixels: torch.Tensor, steps: int, *, batch_size: int = 200, lr: float = 1e-3,
               scale_lr: float | None = None, betas: tuple[float, float] = PAPER_BETAS, eps: float = PAPER_EPS,
               decay_to: float | None = None, levels: int = 256, seed: int = 0, checkpoint=None,
               checkpoint_every: int = 2000, log_every: int = 10, desc: str = "NICE",
               progress: bool | None = None):
    """Chapter 5's recipe: maximum likelihood on freshly dequantised batches of integer ``pixels``.

    Each step draws a batch of ``pixels`` (n, D) with :class:`tutorlib.train.Batches` (indexing
    on the pixels' device: keep the whole set there as one tensor), dequantises it as
    ``(pixel + u) / levels`` and takes an Adam step on the mean ``-ln q(x)`` in nats, with the
    paper's settings by default: ``lr = 1e-3``, ``betas = (0.9, 0.99)`` (the paper's "momentum
    0.9, beta_2 = 0.01" in today's notation, see :data:`PAPER_BETAS`) and ``eps = 1e-4``.
    ``scale_lr`` (default ``lr``) is the learning rate of the scale layer's ``log_scale``.
    ``decay_to`` (default ``None``: constant rates, as the paper states) makes every learning
    rate decay exponentially over the run, to ``decay_to`` times its first value at the last
    step (the paper's released code divides its rate by 1.0005 after each update, down to a
    tenth). With ``checkpoint`` set, the run is saved and resumed by
    :func:`tutorlib.train.train` (the rate of each step depends on the step alone, so a resumed
    run is the same run). Returns the :class:`tutorlib.train.History`; the model is left in
    eval mode.
    """
    from tutorlib.data import dequantize
    from tutorlib.train import Batches, train

    if not isinstance(model, NICE):
        raise ValueError(f"model must be a NICE model, got {type(model).__name__}")
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 2 or pixels.shape[1] != model.dim:
        got = tuple(pixels.shape) if isinstance(pixels, torch.Tensor) else type(pixels).__name__
        raise ValueError(f"pixels must be a tensor of shape (n, {model.dim}), got {got}")
    lr = positive_float("lr", lr)
    scale_lr = lr if scale_lr is None else positive_float("scale_lr", scale_lr)
    levels = positive_int("levels", levels, minimum=2)
    eps = positive_float("eps", eps)
    if (not isinstance(betas, (tuple, list)) or len(betas) != 2
            or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
        raise ValueError(f"betas must be two numbers in [0, 1) (today's Adam decays), got {betas!r}")
    nets = [p for name, p in model.named_parameters() if not name.endswith("log_scale")]
    # PyTorch's fused Adam (one kernel for all parameters) is the same update, faster on CPU and CUDA
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64)
                for p in model.parameters())
    optimizer = torch.optim.Adam([{"params": nets}, {"params": [model.scale.log_scale], "lr": scale_lr}],
                                 lr=lr, betas=tuple(float(b) for b in betas), eps=eps, fused=fused or None)

    if decay_to is not None:
        decay_to = positive_float("decay_to", decay_to)
    start_lrs = [group["lr"] for group in optimizer.param_groups]

    def loss_fn(batch: torch.Tensor) -> torch.Tensor:
        return -model.log_prob(dequantize(batch, levels=levels)).mean()

    draw = Batches(pixels, batch_size=batch_size, seed=seed)

    def batches(step: int) -> torch.Tensor:
        if decay_to is not None:  # the rate of this step, from the step alone
            factor = decay_to ** (step / max(1, steps - 1))
            for group, start in zip(optimizer.param_groups, start_lrs):
                group["lr"] = start * factor
        return draw(step)

    history = train(model, optimizer, loss_fn, batches, steps, checkpoint=checkpoint,
                    checkpoint_every=checkpoint_every, log_every=log_every, desc=desc, progress=progress)
    model.eval()
    return history


# --- chapter 5's measurements and checks ------------------------------------------------------
# Each check computes two sides independently and calls tutorlib.compare, which prints both and
# raises IdentityError when they disagree; tests/test_ch05_checks.py feeds each one a broken input.

def jacobian(flow: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The full Jacobian ``dz/dx`` (dim x dim) of ``flow`` (``x -> (z, logdet)``) at one point
    ``x`` of shape (dim,), by automatic differentiation (vectorised: one call, not dim)."""
    from torch.autograd.functional import jacobian as _jacobian

    if not isinstance(x, torch.Tensor) or x.ndim != 1 or not x.is_floating_point():
        raise ValueError(f"x must be one point, a floating-point tensor of shape (dim,), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    return _jacobian(lambda v: flow(v[None])[0][0], x.detach(), vectorize=True)


def influence_fraction(flow: nn.Module, x: torch.Tensor) -> float:
    """The fraction of the entries of ``dz/dx`` at ``x`` that are not exactly zero: the share of
    (output, input) pairs in which the input influences the output. A coupling layer's zeros are
    structural (exact), so they are counted exactly; generic weights leave no accidental zeros."""
    jac = jacobian(flow, x)
    return float((jac != 0).double().mean())


def check_influence(label: str, flow: nn.Module, x: torch.Tensor, expected: float) -> tuple[float, torch.Tensor]:
    """Compare the share of non-zero entries of ``dz/dx`` at ``x`` (:func:`jacobian`) with the
    share ``expected`` from the structure (e.g. 1 for a flow in which every input reaches every
    output). The tolerance is half an entry, ``0.5 / dim^2``: the counts must agree exactly.
    Returns the measured share and the boolean matrix of non-zero entries (for a picture)."""
    from tutorlib.checks import compare

    nonzero = jacobian(flow, x) != 0
    measured = float(nonzero.double().mean())
    dim = x.shape[0]
    compare(label, measured, float(expected), atol=0.5 / dim**2,
            names=("non-zero share of dz/dx", "from the structure"))
    return measured, nonzero


def _prior_log_density_1d(z: torch.Tensor, prior: str) -> torch.Tensor:
    one_of("prior", prior, PRIORS)
    if prior == "gaussian":
        return -0.5 * z * z - 0.5 * math.log(2 * math.pi)
    return -(F.softplus(z) + F.softplus(-z))


@torch.no_grad()
def scale_refit(model: NICE, x: torch.Tensor, iterations: int = 50) -> tuple[torch.Tensor, float]:
    """Refit NICE's scale layer alone on data ``x`` (couplings fixed): for each coordinate, the
    shift ``c_i`` of ``ln s_i`` that maximises the mean log-likelihood of ``x``, by Newton's method
    on ``g_i(c) = mean_n ln p(e^c z_ni) + c`` (concave for both priors). Returns ``(c, gain)``:
    the shifts (dim,) and the gain in mean log-likelihood, in nats per example, that the refit
    brings. At a maximum-likelihood fit of the scales, ``c = 0`` and ``gain = 0``; for the
    Gaussian prior the optimum is ``c_i = -ln(mean z_i^2) / 2``, i.e. ``sigma_i^2 = mean h_i^2``:
    the prior variance is the data's variance along that coordinate."""
    if not isinstance(model, NICE):
        raise ValueError(f"model must be a NICE model, got {type(model).__name__}")
    _check_batch("x", x, model.dim)
    iterations = positive_int("iterations", iterations)
    z = model(x)[0].double()
    c = torch.zeros(model.dim, dtype=torch.float64, device=z.device)

    def objective(c):
        return _prior_log_density_1d(z * c.exp(), model.prior).mean(0) + c

    if model.prior == "gaussian":  # closed form: sigma_i^2 = mean h_i^2, i.e. e^(2c) mean z^2 = 1
        c = -0.5 * torch.log((z * z).mean(0))
    else:
        for _ in range(iterations):
            w = z * c.exp()
            t = torch.tanh(w / 2)
            grad = 1 - (w * t).mean(0)
            hess = -(w * t + 0.5 * w * w * (1 - t * t)).mean(0)
            step = (-grad / hess.clamp(max=-1e-12)).clamp(-2.0, 2.0)  # damped far from the optimum
            c = c + step
            if float(step.abs().max()) < 1e-10:
                break
    gain = float((objective(c) - objective(torch.zeros_like(c))).sum())
    return c, gain


def check_scale_converged(model: NICE, x: torch.Tensor, atol: float, label: str | None = None) -> float:
    """The scale layer is at its maximum-likelihood value: refitting it alone on ``x``
    (:func:`scale_refit`) gains at most ``atol`` nats per example. Pass as ``atol`` the precision
    the reported likelihoods have anyway (e.g. the standard error of the test NLL): an untrained,
    unconverged or sign-flipped scale layer gains far more. Returns the gain."""
    from tutorlib.checks import compare

    atol = positive_float("atol", atol)
    _, gain = scale_refit(model, x)
    compare(label or f"{model.prior} prior: gain from refitting the scale layer alone", gain, 0.0,
            atol=atol, names=("gain (nats per image)", "zero"))
    return gain


def annealed_log_density(model: NICE, temperature: float, points: int = 200_000) -> float:
    """The mean model log-density of NICE's samples at ``temperature`` in closed form,
    ``E ln q(x) = dim * E ln p(T eps) + sum_i ln s_i`` with ``eps`` a standard prior draw
    (NICE's log-determinant is the constant ``sum ln s``). Gaussian prior:
    ``E ln p(T eps) = -ln(2 pi)/2 - T^2/2``; logistic: a one-dimensional integral over the
    prior's quantiles, by the midpoint rule on ``points`` points (float64)."""
    if not isinstance(model, NICE):
        raise ValueError(f"model must be a NICE model, got {type(model).__name__}")
    temperature = positive_float("temperature", temperature)
    points = positive_int("points", points)
    if model.prior == "gaussian":
        per_dim = -0.5 * math.log(2 * math.pi) - 0.5 * temperature**2
    else:
        u = (torch.arange(points, dtype=torch.float64) + 0.5) / points
        eps = torch.log(u) - torch.log1p(-u)  # the logistic quantile function
        per_dim = float(_prior_log_density_1d(temperature * eps, "logistic").mean())
    return model.dim * per_dim + float(model.scale.log_scale.detach().double().sum())


@torch.no_grad()
def check_annealed_samples(model: NICE, temperature: float, n: int = 2000,
                           generator: torch.Generator | None = None, sigmas: float = 4.0) -> tuple[float, float]:
    """Annealing buys density: the mean ``ln q(x)`` of ``model.sample(n, temperature)``, evaluated
    by ``model.log_prob`` (the whole flow, forward), against :func:`annealed_log_density` (closed
    form from ``T``, the prior and ``sum ln s``). Tolerance: ``sigmas`` standard errors of the
    sample mean, computed from the samples. Returns ``(sample mean, closed form)``."""
    from tutorlib.checks import compare

    n = positive_int("n", n, minimum=2)
    sigmas = positive_float("sigmas", sigmas)
    lp = model.log_prob(model.sample(n, temperature, generator=generator)).double()
    se = float(lp.std() / math.sqrt(n))
    expected = annealed_log_density(model, temperature)
    compare(f"mean ln q(x) of samples at T = {temperature}", float(lp.mean()), expected,
            atol=sigmas * se, names=("log_prob of samples", "closed form"))
    return float(lp.mean()), expected


@torch.no_grad()
def check_integrates_to_one(log_prob, sample, lo: float, hi: float, m: int = 500, n: int = 200_000,
                            generator: torch.Generator | None = None, sigmas: float = 4.0) -> tuple[float, float]:
    """A 2-D density integrates to one: the midpoint rule on an ``m x m`` grid over ``[lo, hi]^2``
    (float64) plus the mass outside the square, estimated from ``n`` draws of ``sample(n,
    generator)``, against 1. Tolerance: ``sigmas`` standard errors of the outside mass plus the
    grid's own error, estimated by the same rule on an ``m/2`` grid (the midpoint rule's error is
    O(h^2), so ``|I_m - I_(m/2)|`` is about three times the error of ``I_m``). Returns
    ``(total, tolerance)``."""
    from tutorlib.checks import compare
    from tutorlib.integration import quadrature

    m = positive_int("m", m, minimum=4)
    n = positive_int("n", n)
    sigmas = positive_float("sigmas", sigmas)
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        raise ValueError(f"hi must be greater than lo, got lo={lo}, hi={hi}")

    def density(x):
        return log_prob(x).exp()

    def one(x):
        return torch.ones(len(x), dtype=torch.float64)

    fine = quadrature(one, density, dim=2, m=m, lo=lo, hi=hi)
    coarse = quadrature(one, density, dim=2, m=m // 2, lo=lo, hi=hi)
    draws = sample(n, generator)
    p_out = float(((draws < lo) | (draws > hi)).any(dim=1).double().mean())
    se = math.sqrt(max(p_out, 1.0 / n) * (1 - p_out) / n)
    tol = sigmas * se + abs(fine - coarse)
    print(f"grid {m}x{m}: {fine:.6f} (grid {m // 2}x{m // 2}: {coarse:.6f}); mass outside "
          f"[{lo:g}, {hi:g}]^2 by sampling: {p_out:.2e} +- {se:.1e}")
    compare("integral of the learned density", fine + p_out, 1.0, atol=tol, names=("grid + outside", "one"))
    return fine + p_out, tol


def check_bits_per_dim(log_likelihood: float, dim: int, pixels: torch.Tensor, levels: int = 256) -> float:
    """The units of a dequantised likelihood, two ways. (1) The uniform density on ``[0, 1]^dim``
    (``ln q = 0``), evaluated by :func:`tutorlib.metrics.dequantized_nll` on ``pixels``, is the
    uniform distribution on the ``levels`` levels: exactly ``log2(levels)`` bits per dimension.
    (2) A log-likelihood of ``log_likelihood`` nats per image, converted by
    :class:`tutorlib.metrics.NLL`, is ``log2(levels) - log_likelihood / (dim ln 2)`` bits/dim.
    Float64 arithmetic: tolerance 1e-12. Returns the bits/dim of (2)."""
    from tutorlib import metrics
    from tutorlib.checks import compare

    dim = positive_int("dim", dim)
    levels = positive_int("levels", levels, minimum=2)
    log_likelihood = float(log_likelihood)
    uniform = metrics.dequantized_nll(lambda x: x.new_zeros(x.shape[0]), pixels, levels=levels)
    compare("bits/dim of the uniform density on [0, 1]^D", uniform.bits_per_dim, math.log2(levels),
            atol=1e-12, names=("metrics.dequantized_nll", "log2(levels)"))
    converted = metrics.NLL.from_continuous(-log_likelihood, dim, levels).bits_per_dim
    by_hand = math.log2(levels) - log_likelihood / (dim * math.log(2))
    compare(f"{log_likelihood:g} nats per image in bits/dim", converted, by_hand, atol=1e-12,
            names=("metrics.NLL", "log2(levels) - ln q / (D ln 2)"))
    return converted


def check_jensen_gap(log_q: torch.Tensor, exact_nll: float, levels: int = 256) -> tuple[float, float]:
    """One pixel: the dequantisation bound ``-E_u ln q + ln(levels)`` minus the exact ``-ln P``
    is Jensen's gap ``ln E e^Y - E Y`` (``Y = ln q``), which is ``Var(Y)/2`` to second order.
    ``log_q``: ``ln q`` at equally spaced points of the pixel's bin (the expectation over ``u``
    by the midpoint rule). Tolerance: twice the next terms of the cumulant expansion,
    ``|k3|/6 + |k4|/24``, computed from ``log_q``. Returns ``(gap, Var/2)``."""
    from tutorlib import metrics
    from tutorlib.checks import compare

    y = torch.as_tensor(log_q, dtype=torch.float64).reshape(-1)
    if y.numel() < 100:
        raise ValueError(f"log_q must hold at least 100 points of the bin, got {y.numel()}")
    d = y - y.mean()
    k2 = float((d**2).mean())
    k3 = float((d**3).mean())
    k4 = float((d**4).mean()) - 3 * k2**2
    bound = metrics.discrete_nll(float(-y.mean()), dim=1, levels=positive_int("levels", levels, minimum=2))
    gap = bound - float(exact_nll)
    compare("dequantisation gap, one pixel", gap, k2 / 2, atol=2 * (abs(k3) / 6 + abs(k4) / 24),
            names=("bound - exact", "Var_u[ln q]/2"))
    return gap, k2 / 2


@torch.no_grad()
def check_float32_log_prob(model: FlowModel, x: torch.Tensor, rtol: float = 1e-6) -> float:
    """``model.log_prob`` in float32 against a float64 copy of the same weights on ``x``.

    ``ln q = ln p(z) + logdet`` is a sum of two large terms of opposite sign, so float32's
    rounding is relative to their size, not to ``ln q``: the tolerance is ``rtol`` times the
    largest ``|ln p(z)| + |logdet|`` (float64). A flow whose log-determinants are sums of
    log-scales keeps float32's ~7 significant digits of those terms, losing about one to the sum
    over ``dim`` coordinates: default ``rtol = 1e-6``. Returns the largest difference in nats."""
    import copy

    from tutorlib.checks import compare

    if not isinstance(model, FlowModel):
        raise ValueError(f"model must be a flow model with a prior, got {type(model).__name__}")
    rtol = positive_float("rtol", rtol)
    model64 = copy.deepcopy(model).double()
    lp32 = model.log_prob(x.float()).double()
    z64, logdet64 = model64(x.double())
    prior64 = prior_log_prob(z64, model64.prior)
    lp64 = prior64 + logdet64
    size = float((prior64.abs() + logdet64.abs()).max())
    compare(f"float32 ln q(x) of {x.shape[0]} digits", lp32, lp64, atol=rtol * size,
            names=("float32", "float64 copy"))
    print(f"    (the tolerance is rtol {rtol:g} x {size:.0f} nats, the size of ln p(z) and ln|det| that cancel)")
    return float((lp32 - lp64).abs().max())


@torch.no_grad()
def check_interpolation_ends(model: FlowModel, x_a: torch.Tensor, x_b: torch.Tensor, path: torch.Tensor,
                             ulps: float = 64.0) -> float:
    """The decoded path of :func:`interpolate` starts at ``x_a`` and ends at ``x_b`` (the flow's
    inverse on trained weights). Tolerance: ``ulps`` float32 roundings (2^-24 each) of the
    largest value the decoder handles in data space (the outputs of its layers after the first,
    the scale layer's inverse, which brings the codes back to the data's size); 64 allows a few
    roundings per layer of a four-coupling NICE. Returns the largest error."""
    from tutorlib.checks import compare

    if not isinstance(model, FlowModel):
        raise ValueError(f"model must be a flow model, got {type(model).__name__}")
    ulps = positive_float("ulps", ulps)
    ends = torch.stack((x_a, x_b))
    y = model(ends)[0]
    largest = 1.0
    for layer in reversed(model.flow.layers):
        y = layer.inverse(y)
        largest = max(largest, float(y.abs().max()))
    err = float((path[[0, -1]] - ends).abs().max())
    compare("interpolation ends at the two digits", err, 0.0, atol=ulps * 2.0**-24 * largest,
            names=("max |decoded end - digit|", "zero"))
    return err


def own_pixel_share(model: FlowModel, z: torch.Tensor) -> torch.Tensor:
    """How local each latent coordinate is: for every ``k``, the share of the squared change of
    the decoded image, ``|dx/dz_k|^2`` summed over pixels, that falls on the pixel ``z_k`` sits on
    (``model.positions()[k]``). ``z``: one code, shape (dim,) or (1, dim). Computed from the full
    decoder Jacobian ``dx/dz`` at ``z`` by automatic differentiation (one vectorised call). A
    share of 1 means the coordinate changes its own pixel only (a flow made of the scale layer
    alone); couplings spread the change to other pixels. Returns a (dim,) tensor in [0, 1]."""
    from torch.autograd.functional import jacobian as _jacobian

    if not isinstance(model, FlowModel):
        raise ValueError(f"model must be a flow model, got {type(model).__name__}")
    if not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.numel() != model.dim or z.ndim > 2:
        raise ValueError(f"z must be one code, a floating-point tensor of shape ({model.dim},) or (1, {model.dim}), "
                         f"got {tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
    jac = _jacobian(lambda v: model.inverse(v[None])[0], z.detach().reshape(-1), vectorize=True)  # (pixel, k)
    power = jac.double() ** 2
    own = power[model.positions().to(power.device), torch.arange(model.dim, device=power.device)]
    return (own / power.sum(dim=0)).cpu()


def image_statistics(images: torch.Tensor, shape: tuple[int, int] = (28, 28), dot: float = 0.3,
                     dark: float = 0.1) -> dict[str, float]:
    """What the eye sees in a batch of images (n, h*w) with values in [0, 1] (clip first):

    - ``"dots"``: isolated dots per image, pixels above ``dot`` whose four neighbours are all
      below ``dark`` (the "speckle" of a flow's samples; real digits have almost none);
    - ``"grey"``: the share of pixels strictly between ``dark`` and ``1 - dark`` (a grey haze);
    - ``"ink"``: the share of pixels above 0.5 (how much bold stroke there is);
    - ``"spread"``: the standard deviation of each pixel across the images, averaged over pixels
      (how different the images are from one another).

    Returns a dict of floats."""
    h, w = (positive_int("shape[0]", shape[0]), positive_int("shape[1]", shape[1]))
    if not isinstance(images, torch.Tensor) or images.ndim != 2 or images.shape[1] != h * w or images.shape[0] < 2:
        raise ValueError(f"images must be a tensor of shape (n >= 2, {h * w}), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if not 0 <= dark < dot <= 1:
        raise ValueError(f"dark and dot must satisfy 0 <= dark < dot <= 1, got dark={dark}, dot={dot}")
    x = images.detach().double().cpu()
    if x.min() < 0 or x.max() > 1:
        raise ValueError("images must have values in [0, 1] (clamp them first)")
    a = x.reshape(-1, h, w)
    p = F.pad(a, (1, 1, 1, 1))
    neighbours = torch.stack((p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2], p[:, 1:-1, 2:])).amax(dim=0)
    return {
        "dots": float(((a > dot) & (neighbours < dark)).double().sum(dim=(1, 2)).mean()),
        "grey": float(((x > dark) & (x < 1 - dark)).double().mean()),
        "ink": float((x > 0.5).double().mean()),
        "spread": float(x.std(dim=0).mean()),
    }

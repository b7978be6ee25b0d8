"""One explicit training loop for every model of the book.

:func:`train` runs ``steps`` optimisation steps of ``loss_fn(batch)``:

- a ``tqdm.auto`` progress bar (off when ``TUTORLIB_PROGRESS=0``);
- a guard that stops at the first NaN/inf loss, naming the step and the last finite loss;
- checkpoints written atomically (a temporary file, then a rename) every ``checkpoint_every``
  steps, at the end, and when the run is interrupted (Ctrl-C, a Colab "interrupt"), so nothing
  is lost;
- resume: called again with the same checkpoint path it continues where it stopped, and -- since
  the batch of step ``s`` depends only on ``(seed, s)`` and the random state is saved -- ends
  with exactly the parameters of an uninterrupted run;
- a :class:`History` of every logged value, for plotting.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tutorlib._validate import positive_int


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite."""


class History:
    """Logged values per step: ``history["loss"]`` is a NumPy array, ``history.steps`` the steps."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.values: dict[str, list[float]] = {}

    def append(self, step: int, values: dict[str, float]) -> None:
        self.steps.append(int(step))
        for k in set(self.values) | set(values):
            self.values.setdefault(k, [math.nan] * (len(self.steps) - 1)).append(float(values.get(k, math.nan)))

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.values:
            raise KeyError(f"no logged value {name!r}; logged: {sorted(self.values)}")
        return np.asarray(self.values[name])

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def __len__(self) -> int:
        return len(self.steps)

    def keys(self) -> list[str]:
        return list(self.values)

    def state_dict(self) -> dict:
        return {"steps": list(self.steps), "values": {k: list(v) for k, v in self.values.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.steps = [int(s) for s in state["steps"]]
        self.values = {k: [float(x) for x in v] for k, v in state["values"].items()}

    def __repr__(self) -> str:
        return f"History(steps={len(self.steps)}, keys={self.keys()})"


class Batches:
    """Deterministic shuffled minibatches: ``batches(step)`` depends only on ``(seed, step)``.

    ``Batches(x, y, batch_size=64, seed=0)`` yields ``(x[idx], y[idx])`` (a single tensor when one
    is given). Each epoch is a fresh permutation drawn from a generator seeded by
    ``(seed, epoch)``; the last incomplete batch of an epoch is dropped. Tensors may live on any
    device: indexing happens there, with no DataLoader.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int = 0) -> None:
        if not tensors:
            raise ValueError("Batches needs at least one tensor")
        if not all(isinstance(t, torch.Tensor) for t in tensors):
            raise ValueError("tensors must all be torch tensors")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"tensors must share their first dimension, got {[tuple(t.shape) for t in tensors]}")
        self.batch_size = positive_int("batch_size", batch_size)
        if self.batch_size > n:
            raise ValueError(f"batch_size ({batch_size}) must not exceed the number of examples ({n})")
        self.seed = positive_int("seed", seed, minimum=0)
        self.tensors = tensors
        self.n = n
        self.steps_per_epoch = n // self.batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, step: int):
        step = positive_int("step", step, minimum=0)
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        idx = self._perm[i * self.batch_size:(i + 1) * self.batch_size].to(self.tensors[0].device)
        out = tuple(t[idx] for t in self.tensors)
        return out[0] if len(out) == 1 else out


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` with ``torch.save`` to a temporary file beside ``path``, then rename it into
    place, so a crash mid-write never leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain data only)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def restore(path: str | os.PathLike, parts: dict, history: History) -> int:
    """Load a checkpoint into ``parts`` (name -> object with ``load_state_dict``) and ``history``,
    restore the random state, and return the number of completed steps."""
    state = load_checkpoint(path)
    for name, obj in parts.items():
        obj.load_state_dict(state[name])
    history.load_state_dict(state["history"])
    _set_rng_state(state["rng"])
    return int(state["step"])


def snapshot(parts: dict, history: History, step: int, rng: dict) -> dict:
    """A checkpoint: every part's state dict, the history, the completed steps and the random state."""
    return {**{name: obj.state_dict() for name, obj in parts.items()}, "history": history.state_dict(),
            "step": step, "rng": rng}


def _as_dict(out) -> dict[str, torch.Tensor]:
    if isinstance(out, torch.Tensor):
        out = {"loss": out}
    if not isinstance(out, dict) or "loss" not in out:
        raise ValueError("loss_fn must return a scalar tensor or a dict with a 'loss' entry")
    loss = out["loss"]
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(f"the loss must be a scalar tensor, got {type(loss).__name__} "
                         f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}")
    return out


def train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable, batches: Callable[[int], object],
          steps: int, *, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 500,
          log_every: int = 1, clip_grad: float | None = None, desc: str = "training",
          progress: bool | None = None, resume: bool = True) -> History:
    """Run ``steps`` optimisation steps and return the :class:`History`.

    Each step: ``batch = batches(step)``, ``out = loss_fn(batch)`` (a scalar loss tensor, or a dict
    with ``"loss"`` and other scalars to log), backward, optional gradient-norm clipping, an
    optimiser step. With ``checkpoint`` set, the model, optimiser, step, history and random state
    are saved every ``checkpoint_every`` steps, at the end and on interruption; if the file exists
    and ``resume`` is true, training continues from it.

    Raises :class:`NonFiniteLossError` at the first NaN/inf loss, before it reaches the weights.
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not callable(loss_fn) or not callable(batches):
        raise ValueError("loss_fn and batches must be callables (batches(step) -> batch)")
    steps = positive_int("steps", steps)
    checkpoint_every = positive_int("checkpoint_every", checkpoint_every)
    log_every = positive_int("log_every", log_every)
    if clip_grad is not None and not (isinstance(clip_grad, (int, float)) and clip_grad > 0):
        raise ValueError(f"clip_grad must be None or a number > 0, got {clip_grad!r}")

    from tqdm.auto import tqdm

    from tutorlib.runtime import progress_enabled

    history, start = History(), 0
    parts = {"model": model, "optimizer": optimizer}
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and resume and path.exists():
        start = restore(path, parts, history)
        print(f"resumed from {path} at step {start} of {steps}")

    show = progress_enabled() if progress is None else progress
    last_finite = math.nan
    # `completed` steps are fully done and `rng` is the random state right after them: together
    # with the model and optimiser they are a consistent state to save on an interruption, except
    # while the weights are being updated (`updating`), when the last periodic checkpoint stands.
    completed, rng, updating = start, _rng_state(), False
    model.train()
    with tqdm(total=steps, initial=start, desc=desc, disable=not show, dynamic_ncols=True) as bar:
        try:
            for step in range(start, steps):
                optimizer.zero_grad(set_to_none=True)
                out = _as_dict(loss_fn(batches(step)))
                loss = out["loss"]
                if not torch.isfinite(loss.detach()).all():
                    raise NonFiniteLossError(
                        f"the loss became {loss.item()} at step {step} (last finite loss: {last_finite:.6g}); "
                        f"the weights were not updated. Try a smaller learning rate or clip_grad.")
                loss.backward()
                updating = True
                if clip_grad is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
                optimizer.step()
                last_finite = float(loss.detach())
                if step % log_every == 0 or step == steps - 1:
                    history.append(step, {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                                          for k, v in out.items()})
                    if show and step % max(1, steps // 100) == 0:
                        bar.set_postfix(loss=f"{last_finite:.4g}", refresh=False)
                completed, rng = step + 1, _rng_state()
                updating = False
                bar.update(1)
                if path is not None and completed % checkpoint_every == 0:
                    save_checkpoint(path, snapshot(parts, history, completed, rng))
        except KeyboardInterrupt:
            if path is not None and not updating:
                save_checkpoint(path, snapshot(parts, history, completed, rng))
                print(f"interrupted after {completed} steps; checkpoint saved to {path}: "
                      f"run the same call again to resume")
            raise
    if path is not None:
        save_checkpoint(path, snapshot(parts, history, steps, _rng_state()))
    return history

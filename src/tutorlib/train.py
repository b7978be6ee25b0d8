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
- a :class:`History` of every logged value, for plotting;
- optional: a learning-rate schedule (``lr_schedule(step)`` multiplies each parameter group's
  initial learning rate), and a validation every ``validate_every`` steps that keeps the best
  weights (model selection on a validation set, as NICE's paper does), checkpointed with the run.

:func:`forecast` times a few steps of any of the book's training calls (on throw-away copies,
with the random state restored afterwards) and prints the projected wall time of the full run on
the current device, so a reader knows what a full-mode cell is about to cost.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass
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
        #: ``(completed_steps, value)`` of every validation run by :func:`train` (``validate=``)
        self.evaluations: list[tuple[int, float]] = []
        #: ``{"step", "value"}`` of the best validation so far, else None
        self.best: dict | None = None

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
        return {"steps": list(self.steps), "values": {k: list(v) for k, v in self.values.items()},
                "evaluations": [[int(a), float(b)] for a, b in self.evaluations],
                "best": dict(self.best) if self.best else None}

    def load_state_dict(self, state: dict) -> None:
        self.steps = [int(s) for s in state["steps"]]
        self.values = {k: [float(x) for x in v] for k, v in state["values"].items()}
        self.evaluations = [(int(a), float(b)) for a, b in state.get("evaluations", [])]
        best = state.get("best")
        self.best = {"step": int(best["step"]), "value": float(best["value"])} if best else None

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
          progress: bool | None = None, resume: bool = True, lr_schedule: Callable[[int], float] | None = None,
          validate: Callable[[], float] | None = None, validate_every: int | None = None,
          restore_best: bool = True) -> History:
    """Run ``steps`` optimisation steps and return the :class:`History`.

    Each step: ``batch = batches(step)``, ``out = loss_fn(batch)`` (a scalar loss tensor, or a dict
    with ``"loss"`` and other scalars to log), backward, optional gradient-norm clipping, an
    optimiser step. With ``checkpoint`` set, the model, optimiser, step, history and random state
    are saved every ``checkpoint_every`` steps, at the end and on interruption; if the file exists
    and ``resume`` is true, training continues from it.

    ``lr_schedule(step)``: a factor > 0 applied to each parameter group's initial learning rate
    (the one the optimizer was built with) before step ``step`` -- a function of the step, so a
    resumed run follows the same schedule. ``validate()``: a number to minimise (e.g. the NLL of a
    validation set), computed in eval mode without gradients after every ``validate_every``
    completed steps and after the last; every value goes to ``history.evaluations``, the best to
    ``history.best``, and the best weights are kept (in the checkpoint too) and, with
    ``restore_best``, loaded into the model at the end.

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
    if lr_schedule is not None and not callable(lr_schedule):
        raise ValueError("lr_schedule must be None or a callable step -> factor of the initial learning rate")
    if validate is not None and not callable(validate):
        raise ValueError("validate must be None or a callable () -> number to minimise")
    if validate is not None:
        validate_every = positive_int("validate_every", validate_every if validate_every is not None else steps)
    elif validate_every is not None:
        raise ValueError("validate_every needs validate")

    from tqdm.auto import tqdm

    from tutorlib.runtime import progress_enabled

    history, start = History(), 0
    base_lrs = [group["lr"] for group in optimizer.param_groups]  # before a checkpoint overwrites them
    parts = {"model": model, "optimizer": optimizer}
    best_state: dict | None = None
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and resume and path.exists():
        start = restore(path, parts, history)
        best_state = load_checkpoint(path).get("best_model") if validate is not None else None
        print(f"resumed from {path} at step {start} of {steps}")

    def set_lr(step: int) -> None:
        factor = lr_schedule(step)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor <= 0:
            raise ValueError(f"lr_schedule({step}) must be a finite number > 0, got {factor!r}")
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * factor

    def run_validation(completed: int) -> None:
        nonlocal best_state
        was_training = model.training
        model.eval()
        with torch.no_grad():
            value = float(validate())
        model.train(was_training)
        if not math.isfinite(value):
            raise NonFiniteLossError(f"the validation value became {value} after {completed} steps")
        history.evaluations.append((completed, value))
        if history.best is None or value < history.best["value"]:
            history.best = {"step": completed, "value": value}
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def save(completed_steps: int, rng_state: dict) -> None:
        state = snapshot(parts, history, completed_steps, rng_state)
        if best_state is not None:
            state["best_model"] = best_state
        save_checkpoint(path, state)

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
                if lr_schedule is not None:
                    set_lr(step)
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
                if validate is not None and ((step + 1) % validate_every == 0 or step + 1 == steps):
                    run_validation(step + 1)  # still `updating`: an interrupt here keeps the last checkpoint
                completed, rng = step + 1, _rng_state()
                updating = False
                bar.update(1)
                if path is not None and completed % checkpoint_every == 0:
                    save(completed, rng)
        except KeyboardInterrupt:
            if path is not None and not updating:
                save(completed, rng)
                print(f"interrupted after {completed} steps; checkpoint saved to {path}: "
                      f"run the same call again to resume")
            raise
    if validate is not None and (not history.evaluations or history.evaluations[-1][0] != steps):
        run_validation(steps)  # a run resumed from a finished checkpoint validated already; others now
    if path is not None:
        save(steps, _rng_state())
    if validate is not None and restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return history


# --- projected wall time of a training run --------------------------------------------------------

def checkpoint_step(path: str | os.PathLike | None) -> int:
    """The number of completed steps in the checkpoint at ``path`` (0 if there is none): what a
    resumed run will skip."""
    if path is None or not Path(path).exists():
        return 0
    return int(load_checkpoint(path).get("step", 0))


def format_duration(seconds: float) -> str:
    """``3725.0`` -> ``"1 h 02 min"``; ``75`` -> ``"1 min 15 s"``; ``4.2`` -> ``"4.2 s"``."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours / 24:.1f} days"


@contextlib.contextmanager
def isolated_rng():
    """Run a block without touching the caller's random state (Python, NumPy, torch CPU and CUDA)."""
    py, np_state, torch_state = random.getstate(), np.random.get_state(), _rng_state()
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        _set_rng_state(torch_state)


@contextlib.contextmanager
def _quiet_progress():
    old = os.environ.get("TUTORLIB_PROGRESS")
    os.environ["TUTORLIB_PROGRESS"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TUTORLIB_PROGRESS", None)
        else:
            os.environ["TUTORLIB_PROGRESS"] = old


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@dataclass(frozen=True)
class Forecast:
    """What :func:`forecast` measured and projected (seconds)."""

    label: str
    device: str
    seconds_per_step: float
    steps: int
    done: int
    extra_seconds: float
    probe_steps: int

    @property
    def seconds(self) -> float:
        """Projected wall time of the remaining steps plus ``extra_seconds``."""
        return self.seconds_per_step * (self.steps - self.done) + self.extra_seconds

    def __str__(self) -> str:
        left = self.steps - self.done
        resumed = f" ({self.done:,} done, resuming)" if self.done else ""
        extra = f" + {format_duration(self.extra_seconds)} of evaluation" if self.extra_seconds else ""
        return (f"projected time on {self.device}: {format_duration(self.seconds)} for {self.label}: "
                f"{left:,} steps{resumed} x {1e3 * self.seconds_per_step:.2f} ms/step{extra} "
                f"(timed over {self.probe_steps} steps; a shared or throttled machine can be slower)")


def forecast(run: Callable[[int], object], steps: int, *, label: str = "training", probe: int = 20,
             warmup: int = 3, done: int = 0, extra_seconds: float = 0.0, when: str = "full",
             verbose: bool = True) -> Forecast | None:
    """Project the wall time of a training run from timing a few of its steps, and print it.

    ``run(n)`` must train for ``n`` steps exactly as the real call will, but on throw-away copies
    and without a checkpoint, e.g.
    ``lambda n: vae.fit(copy.deepcopy(model), x_train, n, objective="iwae", k=50)``.
    ``forecast`` calls ``run(warmup)`` and ``run(warmup + probe)`` and takes the difference, so
    the fixed costs of a call (building the optimiser, the first CUDA kernels) cancel; both calls
    run with progress bars off and the caller's random state restored afterwards (the real run
    then draws the same numbers as without a forecast). ``steps``: the steps of the real run;
    ``done``: those a checkpoint already holds (:func:`checkpoint_step`); ``extra_seconds``: a
    separately estimated cost (an evaluation). ``when="full"`` does nothing in quick mode (returns
    None without running anything); ``"always"`` forecasts in every mode. Returns the
    :class:`Forecast` (and prints it when ``verbose``).
    """
    from tutorlib._validate import one_of
    from tutorlib.runtime import device_name, run_mode

    one_of("when", when, ("full", "always"))
    if not callable(run):
        raise ValueError("run must be a callable n -> trains n steps on throw-away copies")
    steps = positive_int("steps", steps)
    probe, warmup = positive_int("probe", probe), positive_int("warmup", warmup)
    done = positive_int("done", done, minimum=0)
    if done > steps:
        raise ValueError(f"done ({done}) must not exceed steps ({steps})")
    if isinstance(extra_seconds, bool) or not isinstance(extra_seconds, (int, float)) or not extra_seconds >= 0:
        raise ValueError(f"extra_seconds must be a number >= 0, got {extra_seconds!r}")
    if when == "full" and run_mode() == "quick":
        return None
    with isolated_rng(), _quiet_progress():
        _sync()
        t0 = time.perf_counter()
        run(warmup)
        _sync()
        t1 = time.perf_counter()
        run(warmup + probe)
        _sync()
        t2 = time.perf_counter()
    per_step = max((t2 - t1) - (t1 - t0), 0.0) / probe
    if per_step == 0.0:  # timer noise larger than the probe: fall back to the whole second call
        per_step = (t2 - t1) / (warmup + probe)
    out = Forecast(label=label, device=device_name(), seconds_per_step=per_step, steps=steps, done=done,
                   extra_seconds=float(extra_seconds), probe_steps=probe)
    if verbose:
        print(out)
    return out

"""The training loop: exact resume after an interruption, the NaN guard, atomic checkpoints."""

import math

import pytest
import torch

from tutorlib.train import Batches, History, NonFiniteLossError, load_checkpoint, train


def _problem(seed=0):
    """The same data every time; the network's initial weights depend on ``seed``."""
    g = torch.Generator().manual_seed(2024)
    x = torch.randn(96, 5, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1 * torch.randn(96, generator=g)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss_fn(batch):
        xb, yb = batch
        noise = 0.05 * torch.randn_like(xb)  # randomness inside the step, as in a VAE
        pred = model(xb + noise)[:, 0]
        return {"loss": ((pred - yb) ** 2).mean(), "mae": (pred - yb).abs().mean()}

    return model, opt, loss_fn, Batches(x, y, batch_size=16, seed=3)


def test_batches_are_a_function_of_the_step():
    x = torch.arange(10.0)
    b = Batches(x, batch_size=3, seed=1)
    assert b.steps_per_epoch == 3
    first = [b(s) for s in range(6)]
    again = Batches(x, batch_size=3, seed=1)
    assert all(torch.equal(again(s), first[s]) for s in reversed(range(6)))
    assert len(set(torch.cat(first[:3]).tolist())) == 9  # one epoch: no repeats


def test_resume_after_interrupt_gives_the_same_parameters(tmp_path):
    steps = 40
    torch.manual_seed(11)
    model_a, opt_a, loss_a, batches_a = _problem()
    torch.manual_seed(99)
    hist_a = train(model_a, opt_a, loss_a, batches_a, steps, progress=False)

    model_b, opt_b, loss_b, batches_b = _problem()
    torch.manual_seed(99)
    calls = {"n": 0}

    def interrupting(batch):
        calls["n"] += 1
        if calls["n"] == 23:  # Ctrl-C in the middle of step 22
            raise KeyboardInterrupt
        return loss_b(batch)

    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(model_b, opt_b, interrupting, batches_b, steps, checkpoint=ckpt, checkpoint_every=10, progress=False)
    assert load_checkpoint(ckpt)["step"] == 22

    torch.manual_seed(12345)  # a new session: fresh objects and a different random state
    model_c, opt_c, loss_c, batches_c = _problem(seed=5)
    hist_c = train(model_c, opt_c, loss_c, batches_c, steps, checkpoint=ckpt, checkpoint_every=10, progress=False)
    for pa, pc in zip(model_a.parameters(), model_c.parameters()):
        assert torch.equal(pa, pc)
    assert hist_c.steps == hist_a.steps and hist_c["loss"].tolist() == hist_a["loss"].tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temporary files left


def test_nan_guard_names_the_step_and_keeps_the_weights():
    model, opt, loss_fn, batches = _problem()

    def poisoned(batch):
        out = loss_fn(batch)
        if poisoned.step == 7:
            out["loss"] = out["loss"] * math.nan
        poisoned.step += 1
        return out

    poisoned.step = 0
    with pytest.raises(NonFiniteLossError, match="at step 7") as err:
        train(model, opt, poisoned, batches, 20, progress=False)
    assert "last finite loss" in str(err.value)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_history_records_every_logged_value():
    model, opt, loss_fn, batches = _problem()
    hist = train(model, opt, loss_fn, batches, 30, log_every=5, progress=False)
    assert hist.steps == [0, 5, 10, 15, 20, 25, 29]
    assert set(hist.keys()) == {"loss", "mae"} and hist["loss"][-1] < hist["loss"][0]
    h = History()
    h.load_state_dict(hist.state_dict())
    assert h.steps == hist.steps


@pytest.mark.parametrize("kwargs, word", [
    (dict(steps=0), "steps"),
    (dict(steps=5, checkpoint_every=0), "checkpoint_every"),
    (dict(steps=5, log_every=-1), "log_every"),
    (dict(steps=5, clip_grad=0), "clip_grad"),
])
def test_bad_arguments_raise_value_errors(kwargs, word):
    model, opt, loss_fn, batches = _problem()
    with pytest.raises(ValueError, match=word):
        train(model, opt, loss_fn, batches, progress=False, **kwargs)


def test_bad_batches_and_losses():
    with pytest.raises(ValueError, match="batch_size"):
        Batches(torch.zeros(4), batch_size=5)
    with pytest.raises(ValueError, match="first dimension"):
        Batches(torch.zeros(4), torch.zeros(5), batch_size=2)
    model, opt, _, batches = _problem()
    with pytest.raises(ValueError, match="loss"):
        train(model, opt, lambda b: torch.zeros(3, requires_grad=True), batches, 2, progress=False)

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


# --- generic additions: learning-rate schedule, validation selection, forecast ----------------------

def test_lr_schedule_multiplies_each_groups_initial_rate_and_survives_a_resume(tmp_path):
    from tutorlib.train import train

    seen = []
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}], lr=0.1)

    def loss_fn(x):
        seen.append([g["lr"] for g in opt.param_groups])
        return model(x).pow(2).mean()

    batches = Batches(torch.randn(8, 3), batch_size=4)
    factor = lambda s: 1.0 if s < 3 else 0.1  # noqa: E731
    train(model, opt, loss_fn, batches, 6, lr_schedule=factor, progress=False, checkpoint=tmp_path / "c.pt",
          checkpoint_every=2)
    assert seen[2] == [0.1, 0.5] and seen[3] == pytest.approx([0.01, 0.05])
    # a resumed run starts from a checkpoint whose optimizer holds the decayed rates: still the right ones
    opt2 = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}], lr=0.1)
    seen.clear()
    opt = opt2
    train(model, opt2, loss_fn, batches, 8, lr_schedule=factor, progress=False, checkpoint=tmp_path / "c.pt")
    assert seen == [pytest.approx([0.01, 0.05])] * 2
    with pytest.raises(ValueError, match="lr_schedule"):
        train(model, opt2, loss_fn, batches, 2, lr_schedule=lambda s: 0.0, progress=False)


def test_validation_keeps_and_restores_the_best_weights(tmp_path):
    from tutorlib.train import load_checkpoint, train

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    # the loss pushes the weight up by 1 per step; the validation prefers the weight nearest 2.4
    loss_fn = lambda x: -model.weight.sum()  # noqa: E731
    validate = lambda: float((model.weight - 2.4).abs())  # noqa: E731
    batches = Batches(torch.zeros(4, 1), batch_size=2)
    hist = train(model, opt, loss_fn, batches, 5, validate=validate, validate_every=1, progress=False,
                 checkpoint=tmp_path / "v.pt")
    assert [s for s, _ in hist.evaluations] == [1, 2, 3, 4, 5]
    assert hist.best == {"step": 2, "value": pytest.approx(0.4)}
    assert float(model.weight.detach()) == 2.0  # restored: not the last weights (5.0)
    state = load_checkpoint(tmp_path / "v.pt")
    assert float(state["model"]["weight"]) == 5.0 and float(state["best_model"]["weight"]) == 2.0
    assert state["history"]["best"]["step"] == 2
    # resumed and extended, the best survives the resume and is still chosen
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    hist = train(model, opt, loss_fn, batches, 7, validate=validate, validate_every=1, progress=False,
                 checkpoint=tmp_path / "v.pt")
    assert hist.best["step"] == 2 and float(model.weight.detach()) == 2.0 and len(hist.evaluations) == 7
    with pytest.raises(ValueError, match="validate_every"):
        train(model, opt, loss_fn, batches, 2, validate_every=1, progress=False)


def test_forecast_times_a_few_steps_without_touching_the_random_state(monkeypatch, capsys):
    from tutorlib.train import Forecast, checkpoint_step, forecast, format_duration

    calls = []

    def run(n):
        calls.append(n)
        torch.randn(3)  # draws random numbers, like training does
        for _ in range(n):
            sum(i * i for i in range(2000))

    assert forecast(run, 1000) is None and calls == []  # quick mode: nothing runs
    torch.manual_seed(5)
    expected = torch.randn(4)
    torch.manual_seed(5)
    out = forecast(run, 1000, probe=10, warmup=2, when="always", done=200, extra_seconds=3.0, label="toy")
    assert calls == [2, 12] and torch.equal(torch.randn(4), expected)  # the caller's random state is restored
    assert isinstance(out, Forecast) and out.seconds_per_step > 0
    assert out.seconds == pytest.approx(800 * out.seconds_per_step + 3.0)
    printed = capsys.readouterr().out
    assert "projected time on CPU" in printed and "800 steps (200 done, resuming)" in printed and "toy" in printed
    monkeypatch.setenv("TUTORLIB_MODE", "full")
    assert forecast(run, 10, probe=2, warmup=1, verbose=False) is not None
    assert checkpoint_step(None) == 0
    assert format_duration(4.2) == "4.2 s" and format_duration(75) == "1 min 15 s"
    assert format_duration(3725) == "1 h 02 min" and format_duration(3 * 86400) == "3.0 days"
    for bad, word in [(dict(steps=0), "steps"), (dict(when="never"), "when"), (dict(done=20), "done"),
                      (dict(extra_seconds=-1), "extra_seconds")]:
        kw = {"steps": 10, **bad}
        with pytest.raises(ValueError, match=word):
            forecast(run, kw.pop("steps"), **kw)

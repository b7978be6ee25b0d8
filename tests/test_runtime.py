import pytest
import torch

from tutorlib import runtime


def test_run_mode_reads_the_environment(monkeypatch):
    monkeypatch.setenv("TUTORLIB_MODE", "full")
    assert runtime.run_mode() == "full"
    monkeypatch.setenv("TUTORLIB_MODE", "quick")
    assert runtime.run_mode() == "quick"
    monkeypatch.setenv("TUTORLIB_MODE", "auto")
    assert runtime.run_mode() == ("full" if torch.cuda.is_available() else "quick")
    assert runtime.run_mode("full") == "full"  # an explicit argument wins


def test_run_mode_rejects_unknown_modes(monkeypatch):
    monkeypatch.setenv("TUTORLIB_MODE", "fast")
    with pytest.raises(ValueError, match="TUTORLIB_MODE"):
        runtime.run_mode()
    with pytest.raises(ValueError, match="mode"):
        runtime.run_mode("slow")


def test_seed_everything_reproduces_draws():
    runtime.seed_everything(123)
    a = torch.randn(5)
    runtime.seed_everything(123)
    assert torch.equal(a, torch.randn(5))
    with pytest.raises(ValueError, match="seed"):
        runtime.seed_everything(-1)


def test_device_and_threads(monkeypatch):
    assert runtime.device().type in ("cpu", "cuda", "mps")
    before = torch.get_num_threads()
    try:
        assert runtime.set_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("TUTORLIB_THREADS", "two")
        with pytest.raises(ValueError, match="TUTORLIB_THREADS"):
            runtime.set_threads()
        with pytest.raises(ValueError, match="n"):
            runtime.set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_setup_prints_device_and_mode(capsys):
    rt = runtime.setup(mode="quick", seed=7, threads=torch.get_num_threads())
    out = capsys.readouterr().out
    assert rt.quick and not rt.full and rt.seed == 7
    assert "mode: quick" in out and f"device: {rt.device}" in out


def test_progress_switch(monkeypatch):
    monkeypatch.setenv("TUTORLIB_PROGRESS", "0")
    assert not runtime.progress_enabled()
    monkeypatch.setenv("TUTORLIB_PROGRESS", "1")
    assert runtime.progress_enabled()


def test_provenance_records_commit_device_and_extras():
    c = runtime.commit()
    assert c == "unknown" or (len(c.split("+")[0]) >= 7 and all(ch in "0123456789abcdef" for ch in c.split("+")[0]))
    assert runtime.device_name("cpu").startswith("CPU (")
    rec = runtime.run_record(seed=3, data={"source": "x"}, deviations=["one"])
    assert {"device", "torch", "python", "commit", "mode", "threads", "seed", "time_utc"} <= set(rec)
    assert rec["seed"] == 3 and rec["data"] == {"source": "x"} and rec["deviations"] == ["one"]
    assert rec["mode"] == "quick" and rec["time_utc"].endswith("Z")


def test_a_mode_given_to_setup_is_the_mode_everything_reads_later(monkeypatch):
    monkeypatch.setenv("TUTORLIB_MODE", "quick")
    rt = runtime.setup(mode="full", verbose=False)
    assert rt.full and runtime.run_mode() == "full"
    runtime.setup(mode="quick", verbose=False)
    assert runtime.run_mode() == "quick"
    monkeypatch.setenv("TUTORLIB_MODE", "full")
    runtime.setup(verbose=False)  # no mode given: the environment decides, and is left alone
    assert runtime.run_mode() == "full"

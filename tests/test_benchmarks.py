"""The benchmark scripts: each refuses to train without full MNIST (a missing file, a file with another
checksum), and each dry-runs end to end on a CPU with --tiny on the embedded subset. The GPU check's
device comparison bites on a broken loss. No test touches the network; fixtures are made here."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import fvae_compare  # noqa: E402
import gan_mnist  # noqa: E402
import gpu_check  # noqa: E402
import nice_vs_normflows  # noqa: E402
import vae_iwae  # noqa: E402

from tutorlib import IdentityError  # noqa: E402


@pytest.fixture()
def no_data(tmp_path, monkeypatch):
    """No mnist.npz anywhere the scripts look, and no network."""
    monkeypatch.setenv("TUTORLIB_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("TUTORLIB_MODE", "full")
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: (_ for _ in ()).throw(AssertionError("network")))
    monkeypatch.chdir(tmp_path)  # default --out and --checkpoints land here, if anything is written
    return tmp_path


@pytest.fixture()
def wrong_npz(tmp_path):
    """A small file in the Keras mnist.npz format that is not MNIST (its sha256 is not the known one)."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x_train=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_train=np.arange(20) % 10,
             x_test=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), y_test=np.arange(5))
    path = tmp_path / "fixture" / "mnist.npz"
    path.parent.mkdir()
    path.write_bytes(buf.getvalue())
    return path


SCRIPTS = {
    "vae_iwae": lambda argv: vae_iwae.main(argv),
    "gan_mnist": lambda argv: gan_mnist.main(argv),
    "fvae_compare": lambda argv: fvae_compare.main(argv),
    "nice_vs_normflows": lambda argv: nice_vs_normflows.main(["--mode", "full", *argv]),
}


def _refusal(script, argv, capsys):
    try:
        code = SCRIPTS[script](argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_each_script_refuses_without_full_mnist_and_trains_nothing(script, no_data, capsys):
    code, err = _refusal(script, [], capsys)
    assert code == 2
    assert "refusing to train" in err and "no file at" in err and "--data" in err and "TUTORLIB_DATA" in err
    assert sorted(p.name for p in no_data.iterdir()) == []  # no results, no checkpoints


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_each_script_refuses_a_file_that_is_not_mnist(script, no_data, wrong_npz, capsys):
    digest = hashlib.sha256(wrong_npz.read_bytes()).hexdigest()
    code, err = _refusal(script, ["--data", str(wrong_npz)], capsys)
    assert code == 2 and "checksum mismatch" in err and digest in err
    assert sorted(p.name for p in no_data.iterdir()) == ["fixture"]
    code, err = _refusal(script, ["--data", str(no_data / "nowhere.npz")], capsys)
    assert code == 2 and "nowhere.npz" in err


def test_vae_iwae_in_full_mode_exits_non_zero_with_the_message(tmp_path):
    """The issue's command, as a reader types it: no mnist.npz -> a non-zero exit, the message, nothing trained."""
    env = {**os.environ, "TUTORLIB_MODE": "full", "TUTORLIB_DATA": str(tmp_path / "nothing-here"),
           "TUTORLIB_THREADS": "1", "TUTORLIB_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vae_iwae.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Full MNIST is needed" in proc.stderr and "sha256" in proc.stderr and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_vae_iwae_tiny_dry_run(tmp_path, capsys):
    assert vae_iwae.main(["--tiny", "--runs", "iwae:2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| IWAE k=2 |" in out and "schedule x0.0002" in out and "Deviations from the paper" in out
    (row,) = json.loads((tmp_path / "vae_iwae.json").read_text())
    assert row["data"]["full"] is False and row["tiny"] is True and row["schedule_scale"] == 2e-4
    assert {"epochs", "schedule", "seed", "device", "commit", "deviations", "code_notes"} <= set(row)
    assert any("embedded subset" in d for d in row["deviations"])


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_gan_mnist_tiny_dry_run(tmp_path, capsys):
    assert gan_mnist.main(["--tiny", "--seeds", "0", "--lams", "10", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "real-vs-real floor" in out and "Over seeds" in out
    payload = json.loads((tmp_path / "gan_mnist.json").read_text())
    kinds = [(r["kind"], r["output_scale"]) for r in payload["rows"]]
    assert kinds == [("qp", None), ("wgan-gp", None), ("qp", 10.0)]  # the sweep runs the output-scaled critic
    assert all(r["updates"] <= 30 and r["curve"] and r["data"]["full"] is False for r in payload["rows"])
    assert payload["frechet_floor"] > 0 and 0 <= payload["classifier_accuracy"] <= 1
    assert (tmp_path / "gan_mnist_frechet.png").stat().st_size > 1000


def test_fvae_compare_tiny_dry_run_writes_rows_with_provenance(tmp_path, capsys):
    assert fvae_compare.main(["--tiny", "--out", str(tmp_path), "--checkpoints", str(tmp_path / "ckpt")]) == 0
    rows = json.loads((tmp_path / "fvae_compare.json").read_text())
    assert [r["model"] for r in rows] == ["vae", "flow", "fvae"]
    for r in rows:
        assert math.isfinite(r["test_bits_per_dim"]) and math.isfinite(r["train_bits_per_dim_at_equal_time"])
        assert r["device"] and r["commit"] and r["tiny"] is True and r["parameters"] > 0
        assert r["data"]["full"] is False and r["deviations"] and r["seed"] == 0 and r["epochs"] > 0
    out = capsys.readouterr().out
    assert out.count("projected time on CPU") == 3 and out.count("| ") >= 3
    assert (tmp_path / "fvae_samples.png").stat().st_size > 1000
    # bits() converts continuous nats to the discrete bound: 0 nats -> 8 bits/dim
    assert fvae_compare.bits(0.0) == 8.0


# --- the GPU check ------------------------------------------------------------------------------

def test_device_loss_check_passes_float32_rounding_and_bites_on_a_broken_loss():
    ref = np.array([1234.5678, -987.654, 3.25, 1e-7])
    f32 = ref.astype(np.float32).astype(np.float64)
    assert gpu_check.check_device_loss("rounded to float32", f32, ref) < 1e-6
    for broken in (ref * 1.01, -ref, np.zeros_like(ref), ref + np.array([0, 0, 0.5, 0])):
        with pytest.raises(IdentityError):
            gpu_check.check_device_loss("broken", broken, ref)
    with pytest.raises(ValueError, match="same non-empty shape"):
        gpu_check.check_device_loss("shapes", ref[:2], ref)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_gpu_check_tiny_runs_on_the_cpu_and_prints_its_tables(tmp_path, capsys):
    assert gpu_check.main(["--tiny", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for heading in ("Loss of one fixed batch", "Speed (one variant", "Projected wall time", "T4"):
        assert heading in out
    payload = json.loads((tmp_path / "gpu_check.json").read_text())
    assert len(payload["checks"]) == 9 and all(c["ok"] for c in payload["checks"])
    assert {r["variant"] for r in payload["speed"]} == {"eager", "loop"}
    assert all(r["steps_per_s"] > 0 for r in payload["speed"])
    reproductions = [p["reproduction"] for p in payload["projections"]]
    assert any("3,280 epochs" in r for r in reproductions) and any("1,500 epochs" in r for r in reproductions)
    assert all(p["seconds_here"] > 0 for p in payload["projections"])
    assert (tmp_path / "gpu_check.md").read_text().startswith("GPU check on CPU")


def test_gpu_check_without_a_gpu_says_so(capsys):
    if gpu_check.torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert gpu_check.main([]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.skipif(not nice_vs_normflows.__dict__.get("LIBRARIES"), reason="no libraries")
def test_normflows_fast_construction_is_equivalent():
    pytest.importorskip("normflows")
    import torch

    nice_vs_normflows.check_fast_construction("logistic", torch.device("cpu"), 0)
    nice_vs_normflows.check_fast_construction("gaussian", torch.device("cpu"), 1)


def test_the_nice_benchmark_uses_the_chapters_translation_of_the_papers_adam():
    from tutorlib import flows

    assert tuple(nice_vs_normflows.NICE_ADAM["betas"]) == flows.PAPER_BETAS
    assert nice_vs_normflows.NICE_ADAM["eps"] == flows.PAPER_EPS and nice_vs_normflows.NICE_ADAM["lr"] == 1e-3

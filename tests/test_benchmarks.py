"""The GPU benchmark of chapter 6 dry-runs end to end on a CPU with its tiny configuration
(the full run needs a GPU; see benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_fvae_compare_tiny_dry_run_writes_rows_with_provenance(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import fvae_compare
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert fvae_compare.main(["--tiny", "--out", str(tmp_path), "--checkpoints", str(tmp_path / "ckpt")]) == 0
    rows = json.loads((tmp_path / "fvae_compare.json").read_text())
    assert [r["model"] for r in rows] == ["vae", "flow", "fvae"]
    for r in rows:
        assert math.isfinite(r["test_bits_per_dim"]) and math.isfinite(r["train_bits_per_dim_at_equal_time"])
        assert r["device"] and r["commit"] and r["tiny"] is True and r["parameters"] > 0
    assert (tmp_path / "fvae_samples.png").stat().st_size > 1000
    assert capsys.readouterr().out.count("| ") >= 3
    # bits() converts continuous nats to the discrete bound: 0 nats -> 8 bits/dim
    assert fvae_compare.bits(0.0) == 8.0

"""The selection benchmark's one command in its smoke form: both arms through the real trainer."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the real trainer twice (minutes)

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_selection_benchmark_writes_both_arms(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    command = [sys.executable, "-m", "benchmarks.selection", "--smoke", "--out", str(out), "--cache", str(cache)]
    result = subprocess.run(command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f"benchmark failed; tail:\n{(result.stdout + result.stderr)[-4000:]}"
    payload = json.loads((out / "results.json").read_text())
    off, on = payload["rows"]
    assert (off["arm"], on["arm"]) == ("selection off", "selection on")
    assert off["counters_mean"]["hpt/selection/routed_prompts"] == 0
    for row in (off, on):
        assert 0.0 <= row["wasted_share_mean"] <= 1.0 and row["gen_seconds_per_step_mean"] > 0
    assert "| selection on |" in (out / "results.md").read_text()
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

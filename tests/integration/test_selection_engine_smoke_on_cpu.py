"""The selection benchmark's engine route in its smoke form: tuning on validation, both arms, tables, curves."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.selection.engine import CANDIDATES

pytestmark = pytest.mark.slow  # builds the smoke regime and trains 8 short engine runs (~1 min unloaded)

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_engine_selection_benchmark_tunes_then_compares_and_resumes(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    command = [sys.executable, "-m", "benchmarks.selection.engine", "--smoke", "--tune", "--out", str(out),
               "--cache", str(cache)]
    result = subprocess.run(command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"benchmark failed; tail:\n{(result.stdout + result.stderr)[-4000:]}"
    payload = json.loads((out / "results.json").read_text())
    off, on = payload["regimes"]["knowledge_gap"]["rows"]
    assert off["arm"] == "selection off" and on["arm"] == f"selection on ({payload['chosen']})"
    routed = "hpt/selection/routed_prompts"
    assert off["counters_mean"][routed] == 0 < on["counters_mean"][routed]
    assert len(payload["tuning"]) == 1 + len(CANDIDATES) and (out / "knowledge_gap.png").read_bytes()[:4] == b"\x89PNG"
    again = subprocess.run(command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "0 to run" in again.stderr

"""The learning benchmark's one command in its smoke form: regime, one real trainer run, table, curves.

The run is SFT→GRPO switching after step 1 of 2, so it also checks ``trainer.sft_warmup_steps`` in the
real trainer: step 1 trains every prompt on its demonstration, step 2 none.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the real trainer (minutes)

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_benchmark_writes_table_curves_and_run_logs(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    command = [sys.executable, "-m", "benchmarks.learning.trainer", "--smoke", "--out", str(out), "--cache", str(cache)]
    result = subprocess.run(command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"benchmark failed; tail:\n{(result.stdout + result.stderr)[-4000:]}"

    payload = json.loads((out / "results.json").read_text())
    [row] = payload["rows"]
    assert row["method"] == "sft_grpo" and row["seeds"] == [0]
    assert 0.0 <= row["final_acc_mean"] <= 1.0
    curves = payload["curves"]["sft_grpo"]["0"]
    assert sorted(int(step) for step in curves["val"]) == [0, 1, 2]  # before training, then every step
    assert sorted(int(step) for step in curves["step_seconds"]) == [1, 2]
    assert curves["sft_frac"] == {"1": 1.0, "2": 0.0}  # SFT warm-up for one step, then GRPO
    assert set(payload["competence"]) >= {"greedy_accuracy", "zero_share", "mixed_share", "all_share"}
    assert payload["machine"]["git_commit"]
    assert "| SFT→GRPO |" in (out / "results.md").read_text()
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "runs" / "sft_grpo_s0" / "done.json").is_file()

"""The learning benchmark's one command, in its ~1-minute smoke form: regime, a real trainer run, table, curves."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_benchmark_writes_table_curves_and_run_logs(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    command = [sys.executable, "-m", "benchmarks.learning", "--smoke", "--out", str(out), "--cache", str(cache)]
    result = subprocess.run(command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"benchmark failed; tail:\n{(result.stdout + result.stderr)[-4000:]}"

    payload = json.loads((out / "results.json").read_text())
    [row] = payload["rows"]
    assert row["method"] == "hpt_switch" and row["seeds"] == [0]
    assert 0.0 <= row["final_acc_mean"] <= 1.0
    curves = payload["curves"]["hpt_switch"]["0"]
    assert sorted(int(step) for step in curves["val"]) == [0, 1, 2]  # before training, then every step
    assert sorted(int(step) for step in curves["step_seconds"]) == [1, 2]
    assert set(payload["competence"]) >= {"greedy_accuracy", "zero_share", "mixed_share", "all_share"}
    assert payload["machine"]["git_commit"]
    assert "| HPT switch (gate 0) |" in (out / "results.md").read_text()
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "runs" / "hpt_switch_s0" / "done.json").is_file()

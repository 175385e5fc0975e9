"""The learning benchmark's smoke (``python -m benchmarks.learning --smoke``, ≤ 5 min): regime, sweep, choice, table.

A tiny knowledge-gap regime, four methods × two learning rates on seed 0, the chosen settings on seed 1,
through the in-process engine; then a rerun that finds every run finished and trains nothing.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a base model and trains 14 short runs (minutes)

ROOT = Path(__file__).resolve().parents[2]


def _smoke(out: Path, cache: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "benchmarks.learning", "--smoke", "--out", str(out), "--cache", str(cache)]
    return subprocess.run(command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600)


def test_smoke_benchmark_tunes_on_validation_and_resumes(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = _smoke(out, cache)  # 3.7 min measured on a loaded 2-core machine (budget: 5 min)
    assert result.returncode == 0, f"benchmark failed; tail:\n{(result.stdout + result.stderr)[-4000:]}"

    payload = json.loads((out / "results.json").read_text())
    regime = payload["regimes"]["knowledge_gap"]
    assert set(regime["skills"]) == {"ops=1", "ops=2", "ops=3"}
    rows = {row["method"]: row for row in regime["rows"]}
    assert set(rows) == {"sft_grpo", "hpt_switch", "chord_orig", "srft"}
    for row in rows.values():
        assert row["seeds"] == [0, 1] and row["missing"] == []
        assert 0.0 <= row["final"][0] <= 1.0 and row["rollout_tokens"] > 0
    assert rows["sft_grpo"]["chosen"].startswith("switch")
    assert len(list((out / "runs" / "knowledge_gap").glob("*_s0.json"))) == 10  # 5 candidates x 2 lrs
    assert "| SFT→GRPO |" in (out / "results.md").read_text()
    assert (out / "knowledge_gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = _smoke(out, cache)
    assert again.returncode == 0
    for phase in ("10 run(s) finished before, 0 to run", "4 run(s) finished before, 0 to run"):
        assert phase in again.stderr

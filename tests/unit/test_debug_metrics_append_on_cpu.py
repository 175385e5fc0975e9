"""debug.sh's metrics file survives a resume: appended to when the run resumes, fresh otherwise.

verl's file logger opens its file with truncation; ``hpt_train_appending_metrics`` (in
``exp_scripts/lib/recipe_utils.sh``) hands it a named pipe instead. A stub ``python`` that writes its
arguments the way verl does (open with truncation, one line) stands in for the trainer.
"""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path):
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    stub = stub_dir / "python"
    stub.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$*" > "$VERL_FILE_LOGGER_PATH"\nexit "${STUB_STATUS:-0}"\n')
    stub.chmod(0o755)
    metrics = tmp_path / "metrics.jsonl"

    def train(*args: str, status: int = 0) -> int:
        script = f'. exp_scripts/lib/recipe_utils.sh; hpt_train_appending_metrics "{tmp_path / "ckpt"}" "$@"'
        env = dict(os.environ, PATH=f"{stub_dir}:{os.environ['PATH']}", VERL_FILE_LOGGER_PATH=str(metrics),
                   STUB_STATUS=str(status), TMPDIR=str(tmp_path))
        return subprocess.run(["bash", "-c", script, "train", *args], cwd=ROOT, env=env, timeout=60).returncode

    return train, metrics, tmp_path / "ckpt"


def test_a_fresh_run_starts_the_file_and_a_resumed_run_appends(run):
    train, metrics, ckpt = run
    metrics.write_text("an older run\n")
    assert train("first") == 0
    assert metrics.read_text() == "-m hpt.main first\n"
    ckpt.mkdir()
    (ckpt / "latest_checkpointed_iteration.txt").write_text("4")
    assert train("resumed") == 0
    assert metrics.read_text() == "-m hpt.main first\n-m hpt.main resumed\n"
    assert train("again", "trainer.resume_mode=disable") == 0
    assert metrics.read_text() == "-m hpt.main again trainer.resume_mode=disable\n"
    assert not list(metrics.parent.glob("hpt_metrics.*"))  # the pipe is removed


def test_the_checkpoint_directory_override_decides_and_the_exit_status_passes_through(run, tmp_path):
    train, metrics, _ = run
    other = tmp_path / "other"
    other.mkdir()
    (other / "latest_checkpointed_iteration.txt").write_text("2")
    metrics.write_text("before the kill\n")
    assert train(f"trainer.default_local_dir={other}", status=3) == 3
    assert metrics.read_text() == f"before the kill\n-m hpt.main trainer.default_local_dir={other}\n"

"""One real ``python -m hpt.main`` run with the CPU overlay on a tiny model, shared by the end-to-end tests."""

import os
import subprocess
import sys
from pathlib import Path


def run_trainer(tiny: Path, out: Path, *overrides: str, metrics: str = "metrics.jsonl", log: str = "train.log",
                timeout: int = 900) -> str:
    """Train ``tiny/model_warm`` on ``tiny/data`` in ``out``, logging to ``out/metrics``; fail with the log's tail.

    Returns the run's console output (also written to ``out/log``).
    """
    env = dict(os.environ, VERL_FILE_LOGGER_PATH=str(out / metrics), VERL_PLATFORM="cpu")
    command = [
        sys.executable, "-m", "hpt.main", "--config-name", "hpt_trainer_cpu",
        f"actor_rollout_ref.model.path={tiny / 'model_warm'}",
        f"data.train_files={tiny / 'data' / 'train.parquet'}",
        f"data.val_files={tiny / 'data' / 'test.parquet'}",
        "trainer.logger=[console,file]",
        *overrides,
    ]
    result = subprocess.run(command, env=env, cwd=out, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    (out / log).write_text(output)
    assert result.returncode == 0, f"training failed; log tail:\n{output[-4000:]}"
    return output

"""Launch one method × seed through the real trainer and record where its metrics went.

Each run is a ``python -m hpt.main`` subprocess with the CPU overlay, its own file-logger path and
checkpoint directory. A finished run leaves ``done.json`` (wall time, overrides), so an interrupted
benchmark resumes where it stopped instead of re-running finished work; a run whose overrides
changed (other steps, batch, switch step...) is run again.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.learning.methods import Method
from benchmarks.learning.regime import Regime
from hpt.atomic import write_atomically

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
DONE_FILE = "done.json"
REPO_ROOT = Path(__file__).resolve().parents[2]
# The optimisation the recorded results ran with (the CPU overlay's before the demo was retuned);
# pinned so the benchmark does not change with the demo's defaults, and a --smoke batch of 8 still splits.
PPO_MINI_BATCH_PROMPTS = 4
LEARNING_RATE = 3e-4


@dataclass(frozen=True)
class Budget:
    """What every method gets: the same steps, batch, validation cadence and rollouts."""

    steps: int
    train_batch_size: int
    test_freq: int
    rollout_n: int
    switch_step: int  # SFT→GRPO: the last SFT step; GRPO from the next one


@dataclass(frozen=True)
class RunResult:
    """One finished trainer process: its metrics log, its wall time, and whether an earlier invocation ran it."""

    metrics: Path
    wall_seconds: float
    reused: bool = False


def run_dir(out: Path, method: Method, seed: int) -> Path:
    return out / "runs" / f"{method.name}_s{seed}"


def _overrides(regime: Regime, budget: Budget, method: Method, seed: int, directory: Path) -> list[str]:
    return [
        f"actor_rollout_ref.model.path={regime.base_model}",
        f"data.train_files={regime.train_file}",
        f"data.val_files={regime.test_file}",
        f"data.max_response_length={regime.max_response_length}",
        f"data.train_batch_size={budget.train_batch_size}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={PPO_MINI_BATCH_PROMPTS}",
        f"actor_rollout_ref.actor.optim.lr={LEARNING_RATE}",
        f"data.seed={seed}",
        f"actor_rollout_ref.rollout.n={budget.rollout_n}",
        f"trainer.test_freq={budget.test_freq}",
        f"trainer.total_training_steps={budget.steps}",
        "trainer.save_freq=-1",
        "trainer.logger=[console,file]",
        f"trainer.experiment_name=learning-{method.name}-s{seed}",
        f"trainer.default_local_dir={directory / 'checkpoints'}",
        "trainer.resume_mode=disable",  # a left-over checkpoint must never leak into a fresh run
        *method.overrides_for(budget.switch_step),
    ]


def run_method(out: Path, regime: Regime, budget: Budget, method: Method, seed: int) -> RunResult:
    """One trainer process for ``method`` with ``seed``, recorded in ``done.json``; a finished one is reused."""
    directory = run_dir(out, method, seed)
    return run_trainer(directory, _overrides(regime, budget, method, seed, directory))


def run_trainer(directory: Path, overrides: list[str]) -> RunResult:
    """One ``hpt.main`` process (CPU overlay) writing into ``directory``; reused while its overrides are the same."""
    done = directory / DONE_FILE
    if done.is_file():
        record = json.loads(done.read_text())
        if record.get("overrides") == overrides:
            logger.info("reusing finished run %s", directory)
            return RunResult(directory / METRICS_FILE, record["wall_seconds"], reused=True)
        logger.warning("%s was run with other settings; running it again", directory)
        done.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "hpt.main", "--config-name", "hpt_trainer_cpu", *overrides]
    env = {**os.environ, "VERL_FILE_LOGGER_PATH": str(directory / METRICS_FILE), "RAY_DEDUP_LOGS": "0"}
    logger.info("running %s", directory.name)
    start = time.perf_counter()
    with open(directory / "trainer.log", "w") as log:
        completed = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"{directory.name} failed (exit {completed.returncode}); see {directory / 'trainer.log'}")
    write_atomically(done, lambda tmp: tmp.write_text(json.dumps({"wall_seconds": wall, "overrides": overrides},
                                                                   indent=1) + "\n"))
    return RunResult(directory / METRICS_FILE, wall)

"""Launch one method × seed through the real trainer and record where its metrics went.

Each run is a ``python -m hpt.main`` subprocess with the CPU overlay, its own file-logger path and
checkpoint directory. A finished run leaves ``done.json`` (wall time, command), so an interrupted
benchmark resumes where it stopped instead of re-running finished work.
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

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
DONE_FILE = "done.json"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Budget:
    """What every method gets: the same steps, batch, validation cadence and rollouts."""

    steps: int
    train_batch_size: int
    test_freq: int
    rollout_n: int
    switch_step: int  # SFT→GRPO: the step where SFT stops and GRPO starts


@dataclass(frozen=True)
class StageResult:
    """One finished trainer process: its metrics log, the step offset of its first step, its wall time."""

    metrics: Path
    step_offset: int
    wall_seconds: float


def run_dir(out: Path, method: Method, seed: int) -> Path:
    return out / "runs" / f"{method.name}_s{seed}"


def _common_overrides(
    regime: Regime, budget: Budget, seed: int, stage_dir: Path, name: str, model: Path | None = None
) -> list[str]:
    return [
        f"actor_rollout_ref.model.path={model or regime.base_model}",
        f"data.train_files={regime.train_file}",
        f"data.val_files={regime.test_file}",
        f"data.max_response_length={regime.max_response_length}",
        f"data.train_batch_size={budget.train_batch_size}",
        f"data.seed={seed}",
        f"actor_rollout_ref.rollout.n={budget.rollout_n}",
        f"trainer.test_freq={budget.test_freq}",
        "trainer.logger=[console,file]",
        f"trainer.experiment_name={name}",
        f"trainer.default_local_dir={stage_dir / 'checkpoints'}",
        "trainer.resume_mode=disable",  # a left-over checkpoint must never leak into a fresh run
    ]


def _run_stage(stage_dir: Path, overrides: list[str], step_offset: int = 0) -> StageResult:
    """One trainer process, recorded in ``done.json`` when it succeeds; a finished one is reused."""
    done = stage_dir / DONE_FILE
    if done.is_file():
        record = json.loads(done.read_text())
        logger.info("reusing finished run %s", stage_dir)
        return StageResult(stage_dir / METRICS_FILE, record["step_offset"], record["wall_seconds"])
    stage_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "hpt.main", "--config-name", "hpt_trainer_cpu", *overrides]
    env = {**os.environ, "VERL_FILE_LOGGER_PATH": str(stage_dir / METRICS_FILE), "RAY_DEDUP_LOGS": "0"}
    logger.info("running %s", stage_dir.name)
    start = time.perf_counter()
    with open(stage_dir / "trainer.log", "w") as log:
        completed = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"{stage_dir.name} failed (exit {completed.returncode}); see {stage_dir / 'trainer.log'}")
    record = {"step_offset": step_offset, "wall_seconds": wall, "overrides": overrides}
    tmp = stage_dir / f".{DONE_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, done)
    return StageResult(stage_dir / METRICS_FILE, step_offset, wall)


def run_method(out: Path, regime: Regime, budget: Budget, method: Method, seed: int) -> list[StageResult]:
    """All stages of ``method`` with ``seed``; SFT→GRPO hands its saved HF weights to the GRPO stage."""
    base_dir = run_dir(out, method, seed)
    name = f"learning-{method.name}-s{seed}"
    if method.second_stage is None:
        overrides = [*_common_overrides(regime, budget, seed, base_dir, name), *method.overrides,
                     f"trainer.total_training_steps={budget.steps}", "trainer.save_freq=-1"]
        return [_run_stage(base_dir, overrides)]
    first_dir, second_dir = base_dir / "stage1", base_dir / "stage2"
    first = [*_common_overrides(regime, budget, seed, first_dir, f"{name}-stage1"), *method.overrides,
             f"trainer.total_training_steps={budget.switch_step}", f"trainer.save_freq={budget.switch_step}",
             "actor_rollout_ref.actor.checkpoint.save_contents=[model,hf_model]"]
    stage1 = _run_stage(first_dir, first)
    handoff = first_dir / "checkpoints" / f"global_step_{budget.switch_step}" / "actor" / "huggingface"
    second = [*_common_overrides(regime, budget, seed, second_dir, f"{name}-stage2", model=handoff),
              *method.second_stage, "trainer.val_before_train=false",
              f"trainer.total_training_steps={budget.steps - budget.switch_step}", "trainer.save_freq=-1"]
    return [stage1, _run_stage(second_dir, second, step_offset=budget.switch_step)]

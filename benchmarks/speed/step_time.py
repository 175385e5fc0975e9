"""Runs of the real trainer on CPU, and the steady-state step time of one (target: <= 3 s per step).

``run_training`` runs ``python -m hpt.main --config-name hpt_trainer_cpu`` (or verl's own ``main_ppo``)
on the tiny model in a subprocess and leaves verl's per-step metrics in a JSON-lines log; the other
parts of the systems benchmark build on it. As a command it reports the median step time and its
stages over the steps after warm-up (the first steps pay for Ray start, model load and the first
``generate``). Usage: ``python -m benchmarks.speed.step_time [--steps 10 --warmup 3]``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.speed.common import ROOT, emit, part_parser, read_steps, steady_medians

CONFIG_DIR = ROOT / "hpt" / "config"
TARGET_S = 3.0
LOG_TAIL_LINES = 40
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Shape:
    """The batch shape of a step: prompts per step x samples per prompt, up to ``response_length`` tokens."""

    prompts: int = 16
    samples: int = 4
    response_length: int = 32

    def overrides(self) -> list[str]:
        # The CPU overlay's mini-batch is 4 prompts x n rows and every 16-row micro-batch must divide it
        # (hpt.main checks): with fewer than 4 samples the micro-batches shrink to the mini-batch.
        micro = min(16, 4 * self.samples)
        return [f"data.train_batch_size={self.prompts}", f"actor_rollout_ref.rollout.n={self.samples}",
                f"data.max_response_length={self.response_length}",
                f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro}",
                f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro}"]


def build_tiny(tiny_dir: Path) -> Path:
    """Build (or find) the tiny model and task; returns the absolute directory."""
    subprocess.run([sys.executable, "-m", "hpt.toy.build_tiny", "--out", str(tiny_dir)], check=True,
                   stdout=subprocess.DEVNULL)
    return tiny_dir.resolve()


def run_training(tiny_dir: Path, shape: Shape, steps: int, overrides: list[str], log_path: Path,
                 stock_verl: bool = False) -> list[dict[str, float]]:
    """One training run of the real trainer; returns its steps (``common.read_steps``).

    ``stock_verl`` runs verl's own ``main_ppo`` (plain GRPO, verl's loss and trainer) on the same CPU
    overlay instead of ``hpt.main``. The run's output goes to ``log_path`` with suffix ``.out``; its
    tail is in the error when the run fails. A run that fails before logging a step is started once
    more: on a loaded machine Ray's start-up can time out, and a long benchmark should not die of it.
    """
    env = dict(os.environ, VERL_FILE_LOGGER_PATH=str(log_path), VERL_PLATFORM="cpu", WANDB_MODE="disabled")
    if stock_verl:
        entry = ["verl.trainer.main_ppo", f"--config-path={CONFIG_DIR}", "--config-name=hpt_trainer_cpu",
                 f"reward.custom_reward_function.path={ROOT / 'hpt' / 'rewards' / 'arithmetic.py'}"]
    else:
        entry = ["hpt.main", "--config-name", "hpt_trainer_cpu"]
    command = [
        sys.executable, "-m", *entry,
        f"actor_rollout_ref.model.path={tiny_dir / 'model'}",
        f"data.train_files={tiny_dir / 'data' / 'train.parquet'}",
        f"data.val_files={tiny_dir / 'data' / 'test.parquet'}",
        *shape.overrides(),
        f"trainer.total_training_steps={steps}", "trainer.val_before_train=false", "trainer.test_freq=-1",
        "trainer.save_freq=-1", "trainer.logger=[console,file]", *overrides,
    ]
    code = _run_logged(command, env, log_path)
    if code and not (log_path.exists() and log_path.read_text().strip()):
        logger.warning("training run failed before its first step (exit %d), starting it again:\n%s", code,
                       _tail(log_path))
        code = _run_logged(command, env, log_path)
    if code:
        raise RuntimeError(f"training run failed (exit {code}): {' '.join(command)}\n{_tail(log_path)}")
    return read_steps(log_path)


def _run_logged(command: list[str], env: dict[str, str], log_path: Path) -> int:
    with log_path.with_suffix(".out").open("w") as output:
        return subprocess.run(command, env=env, cwd=log_path.parent, stdout=output, stderr=subprocess.STDOUT).returncode


def _tail(log_path: Path) -> str:
    return "\n".join(log_path.with_suffix(".out").read_text().splitlines()[-LOG_TAIL_LINES:])


def main(argv: list[str] | None = None) -> dict:
    parser = part_parser(__doc__, steps=10, warmup=3)
    parser.add_argument("--strategy", default="switch")
    args = parser.parse_args(argv)
    shape = Shape()
    with tempfile.TemporaryDirectory() as scratch:
        steps = run_training(build_tiny(args.tiny_dir), shape, args.steps, [f"trainer.unify_strategy={args.strategy}"],
                             Path(scratch) / "metrics.jsonl")
    return emit("step_time", {"strategy": args.strategy, "shape": dataclasses.asdict(shape), "steps": steps,
                              "median_s": steady_medians([steps], args.warmup), "target_step_s": TARGET_S}, args.out)


if __name__ == "__main__":
    main()

"""Steady-state step time of the real trainer on CPU (target: <= 3 s per step).

Runs ``python -m hpt.main --config-name hpt_trainer_cpu`` on the tiny model with 16 prompts x 4
samples x up to 32 new tokens, reads verl's per-step timings from its file logger, and reports the
median over the steps after warm-up (the first steps pay for Ray start, model load and the first
``generate``). Usage: ``python benchmarks/cpu_step_time.py [--steps 10 --warmup 3]``.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "hpt" / "config"
STAGES = ("timing_s/step", "timing_s/gen", "timing_s/old_log_prob", "timing_s/adv", "timing_s/update_actor",
          "timing_s/update_weights")
TARGET_S = 3.0


def run_training(tiny_dir: Path, steps: int, overrides: list[str], log_path: Path, stock_verl: bool = False) -> None:
    """One training run of the real trainer; per-step metrics land in ``log_path`` (JSON lines).

    ``stock_verl`` runs verl's own ``main_ppo`` (plain GRPO, verl's loss and trainer) on the same
    CPU overlay instead of ``hpt.main``.
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
        "data.train_batch_size=16", "actor_rollout_ref.rollout.n=4", "data.max_response_length=32",
        f"trainer.total_training_steps={steps}", "trainer.val_before_train=false", "trainer.test_freq=-1",
        "trainer.save_freq=-1", "trainer.logger=[console,file]", *overrides,
    ]
    subprocess.run(command, env=env, check=True, cwd=log_path.parent, stdout=subprocess.DEVNULL)


def summarise(log_paths: Path | list[Path], warmup: int, with_train_part: bool = False) -> dict:
    """Median of each stage over the steps after ``warmup`` of every log; ``train_part`` = step - generation."""
    paths = log_paths if isinstance(log_paths, list) else [log_paths]
    records = [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]
    steady = [r["data"] for r in records if r["step"] > warmup]
    if not steady:
        raise SystemExit(f"no steps after the {warmup} warm-up steps were logged; raise --steps")
    medians = {stage: statistics.median(float(d[stage]) for d in steady) for stage in STAGES if stage in steady[0]}
    if with_train_part:
        medians["train_part"] = statistics.median(float(d["timing_s/step"] - d["timing_s/gen"]) for d in steady)
    return medians


def machine() -> dict:
    """What the numbers were measured on."""
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--strategy", default="switch")
    parser.add_argument("--tiny-dir", type=Path, default=ROOT / ".hpt_tiny")
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    subprocess.run([sys.executable, "-m", "hpt.data.build_tiny", "--out", str(args.tiny_dir)], check=True)
    with tempfile.TemporaryDirectory() as scratch:
        log_path = Path(scratch) / "metrics.jsonl"
        run_training(args.tiny_dir.resolve(), args.steps, [f"trainer.unify_strategy={args.strategy}"], log_path)
        medians = summarise(log_path, args.warmup)
    result = {
        "benchmark": "cpu_step_time", "strategy": args.strategy, "prompts": 16, "samples": 4, "max_new_tokens": 32,
        "steady_steps": args.steps - args.warmup, "median_s": medians, "target_step_s": TARGET_S,
        "machine": machine(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""HPT step time against a plain GRPO step on the same batch shape (target: <= 1.05x).

Runs the real trainer twice on the CPU overlay with the tiny model and the same data and settings:
verl's own ``main_ppo`` (plain GRPO: verl's trainer and loss) and ``hpt.main`` with
``trainer.unify_strategy=no`` (every prompt trained on its rollouts, so both train the same rows,
but through hpt's rebuild hook, counting engine and hybrid loss). Generation time varies with what
the model happens to sample, so besides the whole step the ratio of the training part (step minus
generation) is reported: that is where hpt adds work. Runs alternate (GRPO, HPT, GRPO, HPT, ...)
because this machine's speed drifts by more than the effect between consecutive runs (measured:
the same pair gave 1.22x in one order and 0.89x in the other); medians pool the steps after warm-up
of all rounds. Usage: ``python benchmarks/hpt_vs_grpo_step.py [--steps 10 --warmup 3 --rounds 2]``.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from cpu_step_time import ROOT, machine, run_training, summarise

TARGET_RATIO = 1.05


def measure(tiny_dir: Path, steps: int, warmup: int, rounds: int) -> dict[str, dict]:
    """Alternating runs of both trainers; per trainer, medians over all rounds' steady steps."""
    logs: dict[str, list[Path]] = {"verl_grpo": [], "hpt_no_gate": []}
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(rounds):
            for name, stock in (("verl_grpo", True), ("hpt_no_gate", False)):
                log_path = Path(scratch) / f"{name}-{round_index}.jsonl"
                overrides = [] if stock else ["trainer.unify_strategy=no"]
                run_training(tiny_dir, steps, overrides, log_path, stock_verl=stock)
                logs[name].append(log_path)
        return {name: summarise(paths, warmup, with_train_part=True) for name, paths in logs.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tiny-dir", type=Path, default=ROOT / ".hpt_tiny")
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    subprocess.run([sys.executable, "-m", "hpt.data.build_tiny", "--out", str(args.tiny_dir)], check=True)
    tiny_dir = args.tiny_dir.resolve()
    medians = measure(tiny_dir, args.steps, args.warmup, args.rounds)
    grpo, hpt = medians["verl_grpo"], medians["hpt_no_gate"]
    result = {
        "benchmark": "hpt_vs_grpo_step", "prompts": 16, "samples": 4, "max_new_tokens": 32,
        "steady_steps_per_trainer": args.rounds * (args.steps - args.warmup), "median_s": medians,
        "ratio_step": hpt["timing_s/step"] / grpo["timing_s/step"],
        "ratio_train_part": hpt["train_part"] / grpo["train_part"],
        "target_ratio": TARGET_RATIO, "machine": machine(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()

"""HPT step time against a plain GRPO step on the same batch shape (target: <= 1.05x).

Runs the real trainer on the CPU overlay with the tiny model and the same data and settings:
verl's own ``main_ppo`` (plain GRPO: verl's trainer and loss) and ``hpt.main`` with
``trainer.unify_strategy=no`` (every prompt trained on its rollouts, so both train the same rows,
but through hpt's rebuild hook, counting engine and hybrid loss). Generation time varies with what
the model happens to sample, so besides the whole step the ratio of the training part (step minus
generation) is reported: that is where hpt adds work. Runs alternate (GRPO, HPT, GRPO, HPT, ...)
because this machine's speed drifts by more than the effect between consecutive runs (measured:
the same pair gave 1.22x in one order and 0.89x in the other); medians pool the steps after warm-up
of all rounds. Usage: ``python -m benchmarks.speed.hpt_vs_grpo [--steps 10 --warmup 3 --rounds 2]``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from benchmarks.speed.common import TRAIN_PART, emit, part_parser, steady_medians
from benchmarks.speed.step_time import Shape, build_tiny, run_training

TARGET_RATIO = 1.05
GRPO, HPT = "verl_grpo", "hpt_no_gate"
HPT_OVERRIDES = ["trainer.unify_strategy=no"]


def measure(tiny_dir: Path, shape: Shape, steps: int, warmup: int, rounds: int, scratch: Path) -> dict:
    """Alternating runs of both trainers; per trainer, medians over all rounds' steady steps."""
    runs = []
    for round_index in range(rounds):
        for name, stock in ((GRPO, True), (HPT, False)):
            log_path = scratch / f"{name}-{round_index}.jsonl"
            overrides = [] if stock else HPT_OVERRIDES
            runs.append({"trainer": name, "round": round_index,
                         "steps": run_training(tiny_dir, shape, steps, overrides, log_path, stock_verl=stock)})
    medians = {name: steady_medians([run["steps"] for run in runs if run["trainer"] == name], warmup)
               for name in (GRPO, HPT)}
    return {
        "shape": dataclasses.asdict(shape), "steps_per_run": steps, "warmup": warmup, "rounds": rounds,
        "runs": runs, "median_s": medians,
        "ratio_step": medians[HPT]["timing_s/step"] / medians[GRPO]["timing_s/step"],
        "ratio_train_part": medians[HPT][TRAIN_PART] / medians[GRPO][TRAIN_PART],
        "target_ratio": TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> dict:
    args = part_parser(__doc__, steps=10, rounds=2, warmup=3).parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        result = measure(build_tiny(args.tiny_dir), Shape(), args.steps, args.warmup, args.rounds, Path(scratch))
    return emit("hpt_vs_grpo", result, args.out)


if __name__ == "__main__":
    main()

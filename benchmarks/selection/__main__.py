"""Rollout-selection benchmark: HPT switch with selection off and on, same regime, seeds and steps.

    python -m benchmarks.selection [--seeds 0 1 2] [--steps 20] [--train-prompts 128] [--smoke]

Runs the learning benchmark's regime (``benchmarks/learning/regime.py``: warm-started base, hard
split, ``verify`` demonstrations) through the real trainer, HPT switch (gate 0) with
``trainer.rollout_selection.enable`` false and true. Selection acts on prompts it has seen, so both
arms train on the first ``--train-prompts`` prompts (``data.train_max_samples``): several epochs in
the step budget. Writes into ``--out``: ``results.md`` (wasted-token share, rollout seconds per step,
accuracy), ``results.json``, ``curves.png``, ``runs/<arm>_s<seed>/``. Finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.learning.trainer import SMOKE_SPEC
from benchmarks.learning.methods import Method
from benchmarks.learning.regime import RegimeSpec, build_regime
from benchmarks.learning.runs import REPO_ROOT, Budget, run_method
from benchmarks.selection.compare import arm_row, load_cost, markdown_table, plot_accuracy
from benchmarks.speed.common import machine_description
from hpt.atomic import write_atomically

logger = logging.getLogger("benchmarks.selection")

SWITCH = ("trainer.unify_strategy=switch", "trainer.switch_gate=0")


def arms(train_prompts: int) -> list[Method]:
    """Selection off and on; the same prompts for both."""
    data = (f"data.train_max_samples={train_prompts}",)
    return [
        Method("select_off", "selection off", (*SWITCH, *data, "trainer.rollout_selection.enable=false")),
        Method("select_on", "selection on", (*SWITCH, *data, "trainer.rollout_selection.enable=true")),
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.selection", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32, help="prompts per step")
    parser.add_argument("--rollout-n", type=int, default=4)
    parser.add_argument("--train-prompts", type=int, default=128, help="training prompts (revisited every epoch)")
    parser.add_argument("--test-freq", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1, help="trainer runs at once (1: rollout times undisturbed)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "selection" / "results")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / ".hpt_learning", help="regime assets (built once)")
    parser.add_argument("--smoke", action="store_true", help="tiny regime, 1 seed, 4 steps over 16 prompts")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.steps, args.batch, args.train_prompts, args.test_freq = [0], 4, 8, 16, 2
    return args


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    machine = machine_description()
    start = time.perf_counter()
    spec = SMOKE_SPEC if args.smoke else RegimeSpec()
    regime = build_regime(args.cache, spec)
    budget = Budget(args.steps, args.batch, args.test_freq, args.rollout_n, switch_step=1)
    methods = arms(args.train_prompts)
    tasks = [(method, seed) for seed in args.seeds for method in methods]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        finished = list(pool.map(lambda task: run_method(args.out, regime, budget, *task), tasks))
    results = {method.label: {} for method in methods}
    for (method, seed), run in zip(tasks, finished, strict=True):
        results[method.label][seed] = load_cost(run.metrics)
    rows = [arm_row(label, runs) for label, runs in results.items()]
    header = (
        f"Commit `{machine['git_commit']}`{' (dirty)' if machine['git_dirty'] else ''}, {machine['date_utc']}, "
        f"{machine['cpu_model']} ({machine['cpus_usable']} cores). HPT switch (gate 0), {args.steps} steps × "
        f"{args.batch} prompts × {args.rollout_n} samples over {args.train_prompts} training prompts, seeds "
        f"{args.seeds}, {args.jobs} run(s) at a time; base groups at T=1: "
        f"{regime.competence['zero_share']:.0%} all-fail / {regime.competence['mixed_share']:.0%} mixed / "
        f"{regime.competence['all_share']:.0%} all-pass. {(time.perf_counter() - start) / 60:.1f} min.\n"
    )
    table = markdown_table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"settings": {**vars(args), "out": str(args.out), "cache": str(args.cache)}, "machine": machine,
               "competence": regime.competence, "rows": rows,
               "runs": {arm: {seed: vars(run) for seed, run in runs.items()} for arm, runs in results.items()}}
    write_atomically(args.out / "results.json", lambda tmp: tmp.write_text(json.dumps(payload, indent=1) + "\n"))
    write_atomically(args.out / "results.md", lambda tmp: tmp.write_text(header + "\n" + table))
    plot_accuracy(args.out / "curves.png", results)
    print(header + "\n" + table)


if __name__ == "__main__":
    main()

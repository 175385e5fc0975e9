"""Learning benchmark on the real trainer: SFT, GRPO, SFT→GRPO, LUFFY, HPT switch/soft and a λ-schedule method.

    python -m benchmarks.learning.trainer [--seeds 0 1 2] [--steps 20] [--methods ...] [--jobs 2] [--smoke]

The cross-check of the in-process benchmark (``python -m benchmarks.learning``): ~75 s of trainer
start-up per run makes it too slow for the full comparison, but one method × seed here shows that
the engine's curve is the trainer's.

Every method runs through the real trainer (``python -m hpt.main``, CPU overlay) from the same
warm-started base on the same hard split, with the same step budget, batch and validation cadence
(``regime.py`` for the data and base, ``methods.py`` for the overrides). Writes into ``--out``:
``results.md`` (table), ``results.json`` (every number and the settings), ``curves.png``, and
``runs/<method>_s<seed>/`` with each run's metrics log and trainer output. Finished runs are reused,
so an interrupted benchmark resumes; delete ``--out`` to start over. ``--smoke`` is the test suite's
short version: a tiny regime, SFT→GRPO switching after step 1 of 2 (one trainer process).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.learning.methods import METHODS, resolve
from benchmarks.learning.regime import RegimeSpec, build_regime, check_partial_competence
from benchmarks.learning.runs import REPO_ROOT, Budget, run_method
from benchmarks.learning.summarise import (
    RunCurves,
    load_curves,
    markdown_table,
    method_row,
    plot_curves,
    write_results,
)
from benchmarks.speed.common import machine_description

logger = logging.getLogger("benchmarks.learning")

SMOKE_SPEC = RegimeSpec(train_size=64, test_size=16, easy_size=1000, base_steps=100, probe_prompts=16)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning.trainer", description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help=f"any of {', '.join(METHODS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20, help="training steps per run (every method)")
    parser.add_argument("--batch", type=int, default=32, help="prompts per step")
    parser.add_argument("--rollout-n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--test-freq", type=int, default=5, help="validate every N steps")
    parser.add_argument("--switch-step", type=int, default=None, help="SFT→GRPO switch step (default: half)")
    parser.add_argument("--target-acc", type=float, default=None,
                        help="accuracy for 'steps to target' (default: halfway from the base to the best final mean)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="trainer runs at once (2 on 2 cores: ~1.2x the throughput of 1, each run slower)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "learning" / "results_trainer")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / ".hpt_learning", help="regime assets (built once)")
    parser.add_argument("--smoke", action="store_true", help="tiny regime, SFT→GRPO only, 2 steps, 1 seed")
    args = parser.parse_args(argv)
    if args.smoke:
        args.methods, args.seeds, args.steps, args.batch, args.test_freq = ["sft_grpo"], [0], 2, 8, 1
    args.switch_step = args.switch_step if args.switch_step is not None else args.steps // 2
    if not 0 < args.switch_step < args.steps:
        parser.error(f"--switch-step must be between 1 and --steps - 1, got {args.switch_step}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    machine = machine_description()  # at the start: the commit the runs were made at
    start = time.perf_counter()
    methods = resolve(args.methods)
    spec = SMOKE_SPEC if args.smoke else RegimeSpec()
    regime = build_regime(args.cache, spec)
    logger.info("base on the hard split: %s", regime.competence)
    if not args.smoke:  # the smoke base is deliberately under-trained; the real one must be partial
        check_partial_competence(regime.competence)
    budget = Budget(args.steps, args.batch, args.test_freq, args.rollout_n, args.switch_step)
    tasks = [(method, seed) for seed in args.seeds for method in methods]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        finished = list(pool.map(lambda task: run_method(args.out, regime, budget, *task), tasks))
    duration_min = (time.perf_counter() - start) / 60
    reused = sum(run.reused for run in finished)
    results: dict[str, dict[int, RunCurves]] = {method.name: {} for method in methods}
    for (method, seed), run in zip(tasks, finished, strict=True):
        results[method.name][seed] = load_curves(run)
    base_acc = statistics.fmean(c.val[0] for runs in results.values() for c in runs.values() if 0 in c.val)
    finals = {name: statistics.fmean(c.val[max(c.val)] for c in runs.values()) for name, runs in results.items()}
    target = args.target_acc if args.target_acc is not None else base_acc + (max(finals.values()) - base_acc) / 2
    rows = [method_row(method, results[method.name], target) for method in methods]
    settings = {**vars(args), "out": str(args.out), "cache": str(args.cache)}
    competence = regime.competence
    header = (
        f"Commit `{machine['git_commit']}`{' (dirty)' if machine['git_dirty'] else ''}, {machine['date_utc']}, "
        f"{machine['cpu_model']} "
        f"({machine['cpus_usable']} cores). {args.steps} steps × {args.batch} prompts × {args.rollout_n} samples, "
        f"seeds {args.seeds}, {args.jobs} run(s) at a time, validation every {args.test_freq} steps on "
        f"{spec.test_size} "
        f"held-out prompts. Base on the hard split: greedy {competence['greedy_accuracy']:.3f}, groups at T=1: "
        f"{competence['zero_share']:.0%} all-fail / {competence['mixed_share']:.0%} mixed / "
        f"{competence['all_share']:.0%} all-pass. Target accuracy {target:.3f}. "
        f"This invocation took {duration_min:.1f} min for {len(finished) - reused} run(s)"
        f"{f' ({reused} reused from an earlier one)' if reused else ''}.\n"
    )
    payload = {"settings": settings, "machine": machine, "duration_min": duration_min, "reused_runs": reused,
               "competence": regime.competence, "base_acc": base_acc,
               "target_acc": target, "rows": rows,
               "curves": {name: {seed: vars(c) for seed, c in runs.items()} for name, runs in results.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(args.out, payload, markdown_table(rows, base_acc, target), header)
    plot_curves(args.out / "curves.png", methods, results)
    print(header + "\n" + markdown_table(rows, base_acc, target))
    print(f"written: {args.out / 'results.md'}, {args.out / 'curves.png'}")


if __name__ == "__main__":
    main()

"""Rollout selection on the in-process engine, in the learning benchmark's three regimes.

    python -m benchmarks.selection.engine [--regimes on_style foreign knowledge_gap] [--seeds 0 1 2]
        [--steps 150] [--batch 32] [--n 4] [--lr 1e-3] [--train-prompts N] [--tune] [--jobs 2] [--smoke]

HPT switch (gate 0) with the rollout selection off and on (``hpt.toy.engine.train(selection=...)``, the
same ``hpt.core`` selection as the trainer's ``SelectingLoader``), the same seeds, steps, batch and lr,
on the regimes of ``benchmarks/learning/regime.py`` (same cache; built if missing). Runs go through the
learning benchmark's ``sweep.run_all`` (worker processes, one atomic JSON per run, finished runs
skipped). ``--tune`` first runs every ``CANDIDATES`` setting on seed 0 in ``--tune-regimes`` and keeps,
among those whose *validation* accuracy (mean of the last two evaluations) stays within ``--tolerance``
of selection off, the one with the lowest wasted-token share; without it the ``--select`` candidate is
used. Writes into ``--out``: ``results.md``, ``results.json``, ``<regime>.png`` (test accuracy and wasted
share per step), ``runs/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.learning.__main__ import SMOKE_SIZES
from benchmarks.learning.engine_methods import FAMILIES
from benchmarks.learning.regime import REGIMES, Regime, RegimeSpec, build_regime
from benchmarks.learning.sweep import Budget, eval_splits, run_all
from benchmarks.selection.compare import COUNTERS, RunCost, arm_row, markdown_table, plot_accuracy
from benchmarks.speed.common import machine_description
from hpt import metrics as M
from hpt.atomic import write_atomically
from hpt.core.pass_memory import MemoryConfig
from hpt.core.selection import SelectionConfig
from hpt.toy.engine import RunConfig

logger = logging.getLogger("benchmarks.selection.engine")
REPO_ROOT = Path(__file__).resolve().parents[2]
METHOD = FAMILIES["hpt_switch"].candidates(1)[""]  # HPT switch, gate 0
OFF = SelectionConfig()
CANDIDATES: dict[str, SelectionConfig] = {  # the knobs tried on validation; "default" = the trainer's defaults
    "default": SelectionConfig(enable=True),  # threshold 0.5, explore 1, Beta(1, 1), decay 0.8
    "lean_probe": SelectionConfig(enable=True, explore=0.3),
    "eager": SelectionConfig(enable=True, threshold=0.35, explore=0.3, memory=MemoryConfig(0.5, 0.5, 0.9)),
    "eager_lean": SelectionConfig(enable=True, threshold=0.35, explore=0.1, memory=MemoryConfig(0.5, 0.5, 0.9)),
    "greedy": SelectionConfig(enable=True, threshold=0.25, explore=0.2, memory=MemoryConfig(0.5, 0.5, 0.9)),
}


@dataclass(frozen=True)
class SelectionRun:
    """One run: a regime, selection off or one candidate, a seed."""

    regime: str
    arm: str  # "off" or a CANDIDATES name
    seed: int
    lr: float
    train_prompts: int  # the first N prompts of the train split (0: all of them)

    @property
    def selection(self) -> SelectionConfig:
        return OFF if self.arm == "off" else CANDIDATES[self.arm]

    def path(self, out: Path) -> Path:
        return out / "runs" / self.regime / f"{self.arm}_lr{self.lr:g}_p{self.train_prompts}_s{self.seed}.json"


def _run_config(spec: SelectionRun, regime: Regime, budget: Budget) -> RunConfig:
    return RunConfig(steps=budget.steps, prompts_per_step=budget.prompts_per_step, n=budget.n, lr=spec.lr,
                     max_new_tokens=regime.max_response_length, seed=spec.seed, eval_every=budget.eval_every)


def settings_of(spec: SelectionRun, regime: Regime, budget: Budget) -> dict[str, Any]:
    """Everything the run's result depends on (a finished run with other settings runs again)."""
    return json.loads(json.dumps({"spec": asdict(spec), "run": asdict(_run_config(spec, regime, budget)),
                                  "method": asdict(METHOD), "selection": asdict(spec.selection),
                                  "eval_size": budget.eval_size, "base_model": str(regime.base_model),
                                  "train_file": str(regime.train_file)}, default=str))


def execute(spec: SelectionRun, regime: Regime, budget: Budget, out: Path) -> dict[str, Any]:
    """Train one run in this (worker) process and write its record atomically."""
    import traceback

    import pandas as pd
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from hpt.toy.engine import train

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    settings = settings_of(spec, regime, budget)
    failed = spec.path(out).with_suffix(".failed.json")
    try:
        tokenizer = AutoTokenizer.from_pretrained(regime.base_model)
        model = AutoModelForCausalLM.from_pretrained(regime.base_model, dtype=torch.float32)
        rows = pd.read_parquet(regime.train_file).to_dict("records")
        rows = rows[: spec.train_prompts] if spec.train_prompts else rows
        splits = {name: rows for name, rows in eval_splits(regime, budget.eval_size).items() if name in ("val", "test")}
        history = train(model, tokenizer, rows, splits, _run_config(spec, regime, budget), METHOD, spec.selection)
    except Exception:
        write_atomically(failed, lambda tmp: tmp.write_text(json.dumps(
            {"settings": settings, "traceback": traceback.format_exc()}, indent=1)))
        raise
    record = {"settings": settings, "history": history, "wall_seconds": time.perf_counter() - start}
    write_atomically(spec.path(out), lambda tmp: tmp.write_text(json.dumps(record) + "\n"))
    failed.unlink(missing_ok=True)
    return record


def run_cost(history: list[dict[str, float]], split: str = "test") -> RunCost:
    """The engine's per-step log as the selection benchmark's ``RunCost`` (accuracy on ``split``)."""
    cost = RunCost(counters=dict.fromkeys(COUNTERS, 0.0))
    for record in history:
        step = int(record["step"])
        if f"{split}/acc" in record:
            cost.val[step] = record[f"{split}/acc"]
        if step == 0:
            continue
        cost.tokens[step] = record[M.ROLLOUT_TOKENS]
        cost.no_grad_share[step] = record[M.ROLLOUT_NO_GRAD_SHARE]
        cost.gen_seconds[step] = record["timing_s/gen"]
        for key in COUNTERS:
            cost.counters[key] += record.get(key, 0.0)
    return cost


def _last_two(curve: dict[int, float]) -> float:
    """Mean of the last two evaluations (the learning benchmark's validation criterion)."""
    return statistics.fmean(curve[step] for step in sorted(curve)[-2:])


def choose(results: dict[SelectionRun, dict | None], regimes: Sequence[str], tolerance: float) -> tuple[str, list]:
    """The candidate with the lowest wasted share whose validation accuracy stays within ``tolerance`` of off.

    Validation accuracy as the learning benchmark tunes: the mean of the last two evaluations.
    """
    table = []
    for arm in ["off", *CANDIDATES]:
        runs = [record for spec, record in results.items() if spec.arm == arm and spec.regime in regimes]
        if len(runs) != len(regimes) or any(record is None for record in runs):
            continue
        costs = [run_cost(record["history"], "val") for record in runs]
        table.append({"arm": arm, "val_acc": statistics.fmean(_last_two(c.val) for c in costs),
                      "wasted_share": statistics.fmean(c.wasted_share for c in costs),
                      "gen_seconds_per_step": statistics.fmean(c.gen_seconds_per_step for c in costs)})
    off = next((row for row in table if row["arm"] == "off"), None)
    floor = -1.0 if off is None else off["val_acc"] - tolerance
    eligible = [row for row in table if row["arm"] != "off" and row["val_acc"] >= floor]
    if not eligible:
        logger.warning("no candidate kept validation accuracy within %.3f of selection off; using 'default'", tolerance)
        return "default", table
    return min(eligible, key=lambda row: row["wasted_share"])["arm"], table


def _train_size(regime: Regime) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(regime.train_file).num_rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.selection.engine", description=__doc__.split("\n")[0])
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=32, help="prompts per step (generated + routed)")
    parser.add_argument("--n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-prompts", type=int, default=0, help="first N train prompts (0: the whole split)")
    parser.add_argument("--eval-every", type=int, default=15)
    parser.add_argument("--eval-size", type=int, default=256, help="validation and test prompts")
    parser.add_argument("--select", default="default", choices=list(CANDIDATES), help="the 'on' arm without --tune")
    parser.add_argument("--tune", action="store_true", help="choose the 'on' arm among CANDIDATES on validation")
    parser.add_argument("--tune-regimes", nargs="+", default=["knowledge_gap"], choices=list(REGIMES))
    parser.add_argument("--tolerance", type=float, default=0.02, help="validation accuracy a candidate may lose")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "selection" / "results_engine")
    parser.add_argument("--cache", type=Path, default=None,
                        help="regime assets, built once (default .hpt_learning; --smoke: .hpt_learning_smoke)")
    parser.add_argument("--smoke", action="store_true", help="tiny gap regime, 2 seeds, 4 steps, 16 prompts")
    args = parser.parse_args(argv)
    if args.smoke:
        args.regimes, args.tune_regimes, args.seeds = ["knowledge_gap"], ["knowledge_gap"], [0, 1]
        args.steps, args.batch, args.eval_every, args.eval_size, args.train_prompts = 4, 8, 2, 16, 16
    if args.cache is None:  # the smoke regime's assets have other sizes: never in the real cache
        args.cache = REPO_ROOT / (".hpt_learning_smoke" if args.smoke else ".hpt_learning")
    return args


def steady_table(rows: list[dict[str, Any]], first_epoch: int) -> str:
    """Rollout cost over the steps after the first epoch (every prompt seen once): what selection can act on."""
    lines = [f"After the first epoch (steps > {first_epoch}):\n",
             "| selection | wasted rollout tokens | rollout s / step | generated tokens / step |", "|---|---|---|---|"]
    lines += [f"| {row['arm']} | {row['wasted_share_mean']:.1%} ± {row['wasted_share_sd']:.1%} | "
              f"{row['gen_seconds_per_step_mean']:.2f} ± {row['gen_seconds_per_step_sd']:.2f} | "
              f"{row['tokens_per_step_mean']:.0f} |" for row in rows]
    if len(rows) == 2 and rows[1]["gen_seconds_per_step_mean"] > 0:
        ratio = rows[0]["gen_seconds_per_step_mean"] / rows[1]["gen_seconds_per_step_mean"]
        lines.append(f"\nRollout time per step after the first epoch, off ÷ on: {ratio:.2f}×.")
    return "\n".join(lines) + "\n"


def _regime_section(name: str, rows: list[dict[str, Any]], steady: str, regime: Regime) -> str:
    competence = regime.competence
    return (f"### {name}\n\nBase on the train split at T=1: {competence['zero_share']:.0%} all-fail / "
            f"{competence['mixed_share']:.0%} mixed / {competence['all_share']:.0%} all-pass groups.\n\n"
            f"{markdown_table(rows)}\n{steady}\n![{name}]({name}.png)\n")


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    machine = machine_description()
    start = time.perf_counter()
    regimes = {name: build_regime(args.cache, RegimeSpec(**{**vars(REGIMES[name]),
                                                            **(SMOKE_SIZES if args.smoke else {})}))
               for name in dict.fromkeys([*args.regimes, *args.tune_regimes])}
    budget = Budget(args.steps, args.batch, args.n, args.eval_every, args.eval_size)

    def runs(arms: Sequence[str], names: Sequence[str], seeds: Sequence[int]) -> dict:
        specs = [SelectionRun(r, arm, s, args.lr, args.train_prompts) for r in names for s in seeds for arm in arms]
        return run_all(specs, regimes, budget, args.out, args.jobs, settings=settings_of, run=execute)

    chosen, tuning = args.select, []
    if args.tune:
        chosen, tuning = choose(runs(["off", *CANDIDATES], args.tune_regimes, args.seeds[:1]), args.tune_regimes,
                                args.tolerance)
        logger.info("chosen on validation: %s (%s)", chosen, tuning)
    results = runs(["off", chosen], args.regimes, args.seeds)
    failed = sum(record is None for record in results.values())
    sections, payload = [], {}
    for name in args.regimes:
        costs = {arm: {spec.seed: run_cost(record["history"]) for spec, record in results.items()
                       if record is not None and spec.regime == name and spec.arm == arm} for arm in ("off", chosen)}
        labelled = {label: by_seed for label, by_seed in
                    (("selection off", costs["off"]), (f"selection on ({chosen})", costs[chosen])) if by_seed}
        rows = [arm_row(label, by_seed) for label, by_seed in labelled.items()]
        train_size = min(args.train_prompts or 10**9, _train_size(regimes[name]))
        first_epoch = -(-train_size // args.batch)
        steady = [arm_row(label, {seed: cost.after(first_epoch) for seed, cost in by_seed.items()})
                  for label, by_seed in labelled.items()]
        plot_accuracy(args.out / f"{name}.png", labelled)
        sections.append(_regime_section(name, rows, steady_table(steady, first_epoch), regimes[name]))
        payload[name] = {"rows": rows, "after_first_epoch": {"first_epoch_steps": first_epoch, "rows": steady},
                         "competence": regimes[name].competence}
    tuning_md = ""
    if tuning:
        tuning_md = ("Chosen on validation (seed 0, " + ", ".join(args.tune_regimes) + f"): **{chosen}**.\n\n"
                     "| arm | val acc (last two evaluations) | wasted share | rollout s / step |\n|---|---|---|---|\n"
                     + "".join(f"| {row['arm']} | {row['val_acc']:.3f} | {row['wasted_share']:.1%} | "
                               f"{row['gen_seconds_per_step']:.2f} |\n" for row in tuning) + "\n")
    header = (f"Commit `{machine['git_commit']}`{' (dirty)' if machine['git_dirty'] else ''}, {machine['date_utc']}, "
              f"{machine['cpu_model']} ({machine['cpus_usable']} cores), {args.jobs} run(s) at a time. HPT switch "
              f"(gate 0) on the in-process engine, {args.steps} steps × {args.batch} prompts × {args.n} samples, "
              f"lr {args.lr:g}, seeds {args.seeds}, train prompts {args.train_prompts or 'all'}, test accuracy "
              f"(greedy, {args.eval_size} prompts) every {args.eval_every} steps; on = {chosen}: "
              f"{asdict(CANDIDATES[chosen])}. {len(results)} runs ({failed} failed), "
              f"{(time.perf_counter() - start) / 60:.1f} min.\n")
    markdown = header + "\n" + tuning_md + "\n".join(sections)
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomically(args.out / "results.md", lambda tmp: tmp.write_text(markdown))
    document = {"settings": {**vars(args), "out": str(args.out), "cache": str(args.cache)}, "machine": machine,
                "chosen": chosen, "tuning": tuning, "regimes": payload, "failed_runs": failed}
    write_atomically(args.out / "results.json",
                     lambda tmp: tmp.write_text(json.dumps(document, indent=1, default=str) + "\n"))
    print(markdown)
    if failed:
        raise SystemExit(f"{failed} run(s) failed: see the .failed.json files under {args.out / 'runs'}")


if __name__ == "__main__":
    main()

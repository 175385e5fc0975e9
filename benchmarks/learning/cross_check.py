"""Rerun one engine method × seed on the real trainer and check its curve against the engine's seeds.

    python -m benchmarks.learning.cross_check [--regime knowledge_gap] [--family hpt_switch] [--seed 0]

The in-process engine (``hpt.toy.engine``) computes the trainer's loss term for term (a unit test);
this shows that whole runs agree too. It reads the engine benchmark's chosen setting of ``--family`` in
``--regime`` (``--engine-out``, written by ``python -m benchmarks.learning``), trains the same base on
the same data with the trainer (``python -m hpt.main``, CPU overlay) under the engine's budget and
optimiser (one AdamW step per batch, the same lr, response budget, samples and evaluation cadence, the
test split as verl's validation set), and compares its test curve with the engine's seeds at every
evaluated step. Rollout sampling and data order differ between the two (different generators), as they
differ between seeds. Writes ``cross_check.md``, ``cross_check.json`` and ``cross_check.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.learning import engine_report as report
from benchmarks.learning.regime import REGIMES, Regime, build_regime
from benchmarks.learning.runs import METRICS_FILE, REPO_ROOT, RunResult, run_trainer
from benchmarks.learning.summarise import load_curves
from benchmarks.learning.sweep import RunSpec
from benchmarks.speed.common import machine_description
from hpt.atomic import write_atomically

logger = logging.getLogger("benchmarks.learning")

# The engine families the trainer can run as they are (the CPU overlay's settings otherwise).
TRAINER_STRATEGIES: dict[str, tuple[str, ...]] = {
    "sft": ("trainer.unify_strategy=sft",),
    "grpo": ("trainer.unify_strategy=no",),
    "sft_grpo": ("trainer.unify_strategy=no",),
    "luffy": ("trainer.unify_strategy=luffy",),
    "hpt_switch": ("trainer.unify_strategy=switch", "trainer.switch_gate=0"),
    "hpt_soft": ("trainer.unify_strategy=soft", "trainer.soft_type=0"),
}
ORIGINAL_SUFFIX = "_orig"


def method_overrides(family: str, variant: str) -> tuple[str, ...]:
    """The trainer overrides of an engine family's candidate (``switchK`` = SFT for the first K steps)."""
    base = family.removesuffix(ORIGINAL_SUFFIX)
    if base not in TRAINER_STRATEGIES:
        raise ValueError(f"the cross-check runs {', '.join(TRAINER_STRATEGIES)} (and their {ORIGINAL_SUFFIX} "
                         f"variants), not {family!r}; pick one of them with --family")
    overrides = TRAINER_STRATEGIES[base]
    if family.endswith(ORIGINAL_SUFFIX):
        overrides += ("actor_rollout_ref.actor.loss_normalization=original",
                      "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm")
    if variant.startswith("switch"):
        overrides += (f"trainer.sft_warmup_steps={int(variant.removeprefix('switch'))}",)
    return overrides


def trainer_overrides(regime: Regime, run: dict[str, Any], eval_size: int, family: str, variant: str,
                      directory: Path) -> list[str]:
    """The engine run's budget and optimiser in the trainer's keys: one optimiser step per batch."""
    if eval_size < _rows(regime.test_file):
        raise ValueError(f"the engine evaluated {eval_size} test prompts but {regime.test_file} holds more: the "
                         f"trainer validates on the whole file, so rerun the engine with --eval-size >= its rows")
    return [
        f"actor_rollout_ref.model.path={regime.base_model}",
        f"data.train_files={regime.train_file}",
        f"data.val_files={regime.test_file}",
        f"data.max_response_length={run['max_new_tokens']}",
        f"data.train_batch_size={run['prompts_per_step']}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={run['prompts_per_step']}",
        "actor_rollout_ref.actor.ppo_epochs=1",
        f"actor_rollout_ref.actor.optim.lr={run['lr']}",
        f"actor_rollout_ref.rollout.n={run['n']}",
        f"actor_rollout_ref.rollout.temperature={run['temperature']}",
        f"data.seed={run['seed']}",
        f"trainer.test_freq={run['eval_every']}",
        f"trainer.total_training_steps={run['steps']}",
        "trainer.save_freq=-1",
        "trainer.logger=[console,file]",
        f"trainer.experiment_name=cross-check-{regime.name}-{family}",
        f"trainer.default_local_dir={directory / 'checkpoints'}",
        "trainer.resume_mode=disable",
        *method_overrides(family, variant),
    ]


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def engine_results(engine_out: Path, regime: str, family: str) -> report.Results:
    """Every finished engine run of ``family`` in ``regime``, keyed as the benchmark keys them."""
    results: report.Results = {}
    for path in sorted((engine_out / "runs" / regime).glob(f"{family}_*_s*.json")):
        if path.name.endswith(".failed.json"):
            continue
        record = json.loads(path.read_text())
        spec = RunSpec(**record["settings"]["spec"])
        if spec.family == family:  # the pattern "hpt_switch_*" also matches hpt_switch_orig's runs
            results[spec] = record
    return results


def compare(trainer: dict[int, float], engine: list[dict[int, float]], eval_prompts: int) -> dict[str, Any]:
    """The trainer's accuracy at each evaluated step against the engine seeds' range there.

    ``within`` counts steps inside [min, max] of the seeds; ``within_noise`` widens that range by one
    binomial standard error of an evaluation on ``eval_prompts`` prompts at the seeds' mean (what one
    more seed would add to the range by chance). Step 0 (the same base, greedy) is reported, not counted.
    """
    steps = sorted(set(trainer).intersection(*map(set, engine)))
    points = []
    for step in steps:
        values = [curve[step] for curve in engine]
        mean = statistics.fmean(values)
        noise = math.sqrt(mean * (1 - mean) / eval_prompts)
        low, high = min(values), max(values)
        acc = trainer[step]
        points.append({"step": step, "trainer": acc, "engine_mean": mean, "engine_min": low, "engine_max": high,
                       "noise": noise, "within": low <= acc <= high,
                       "within_noise": low - noise <= acc <= high + noise})
    counted = [p for p in points if p["step"] > 0]
    return {"points": points, "steps": len(counted), "within": sum(p["within"] for p in counted),
            "within_noise": sum(p["within_noise"] for p in counted),
            "mean_abs_diff": statistics.fmean(abs(p["trainer"] - p["engine_mean"]) for p in counted) if counted
            else math.nan}


def markdown(family: str, regime: str, chosen: RunSpec, seeds: list[int], result: dict[str, Any],
             wall_seconds: float, machine: dict[str, Any]) -> str:
    lines = [
        f"Cross-check, commit `{machine['git_commit']}`{' (dirty)' if machine['git_dirty'] else ''}, "
        f"{machine['date_utc']}: `{family}` ({chosen.candidate}) in `{regime}`, the real trainer (seed "
        f"{chosen.seed}, one process, {wall_seconds / 60:.1f} min) against the engine's seeds {seeds}. "
        f"Inside the seeds' range at {result['within']}/{result['steps']} evaluated steps, inside it widened by "
        f"one evaluation's standard error at {result['within_noise']}/{result['steps']}; mean |trainer − engine "
        f"mean| {result['mean_abs_diff']:.3f}.",
        "",
        "| step | trainer | engine mean | engine min | engine max | ± 1 s.e. | inside range | inside ± s.e. |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in result["points"]:
        lines.append(f"| {p['step']} | {p['trainer']:.3f} | {p['engine_mean']:.3f} | {p['engine_min']:.3f} | "
                     f"{p['engine_max']:.3f} | {p['noise']:.3f} | {'yes' if p['within'] else 'no'} | "
                     f"{'yes' if p['within_noise'] else 'no'} |")
    return "\n".join(lines) + "\n"


def plot(path: Path, title: str, trainer: dict[int, float], engine: dict[int, dict[int, float]]) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for seed, curve in sorted(engine.items()):
        axes.plot(list(curve), list(curve.values()), color="tab:blue", alpha=0.5, label=f"engine seed {seed}")
    axes.plot(list(trainer), list(trainer.values()), color="tab:red", marker="o", label="real trainer")
    axes.set(xlabel="step", ylabel="greedy test accuracy", title=title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning.cross_check",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--regime", default="knowledge_gap", choices=list(REGIMES))
    parser.add_argument("--family", default="hpt_switch")
    parser.add_argument("--seed", type=int, default=0, help="the trainer run's seed (data.seed)")
    results = REPO_ROOT / "benchmarks" / "learning" / "results"
    parser.add_argument("--engine-out", type=Path, default=results, help="the engine benchmark's --out")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / ".hpt_learning", help="the engine's regime cache")
    parser.add_argument("--out", type=Path, default=results / "cross_check")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    machine = machine_description()
    results = engine_results(args.engine_out, args.regime, args.family)
    chosen = report.choose(results, args.regime, args.family)
    if chosen is None:
        raise SystemExit(f"no finished engine run of {args.family} in {args.regime} under {args.engine_out}: run "
                         f"python -m benchmarks.learning --regimes {args.regime} --methods {args.family} first")
    engine_runs = {spec.seed: record for spec, record in results.items()
                   if (spec.variant, spec.lr) == (chosen.variant, chosen.lr)}
    settings = engine_runs[min(engine_runs)]["settings"]
    regime = build_regime(args.cache, REGIMES[args.regime])
    if str(regime.base_model) != settings["base_model"]:
        raise SystemExit(f"the engine ran from {settings['base_model']}, the cache holds {regime.base_model}: "
                         f"pass the engine's --cache")
    run = {**settings["run"], "seed": args.seed}
    directory = args.out / f"{args.regime}_{args.family}_s{args.seed}"
    trained: RunResult = run_trainer(directory, trainer_overrides(regime, run, settings["eval_size"], args.family,
                                                                  chosen.variant, directory))
    trainer_curve = load_curves(RunResult(directory / METRICS_FILE, trained.wall_seconds)).val
    results = engine_results(args.engine_out, args.regime, args.family)  # seeds that finished meanwhile too
    engine_curves = {spec.seed: report.curve(record, "test") for spec, record in results.items()
                     if (spec.variant, spec.lr) == (chosen.variant, chosen.lr)}
    result = compare(trainer_curve, list(engine_curves.values()), settings["eval_size"])
    text = markdown(args.family, args.regime, RunSpec(args.regime, args.family, chosen.variant, chosen.lr, args.seed),
                    sorted(engine_curves), result, trained.wall_seconds, machine)
    stem = args.out / f"{args.regime}_{args.family}_s{args.seed}"
    plot(stem.with_suffix(".png"), f"{args.family} ({chosen.candidate}), {args.regime}: trainer vs engine",
         trainer_curve, engine_curves)
    payload = {"machine": machine, "chosen": chosen.candidate, "engine_seeds": sorted(engine_curves),
               "trainer_seed": args.seed, "wall_seconds": trained.wall_seconds, **result}
    write_atomically(stem.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(payload, indent=1) + "\n"))
    write_atomically(stem.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    print(text)


if __name__ == "__main__":
    main()

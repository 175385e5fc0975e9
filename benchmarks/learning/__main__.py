"""Learning benchmark on the in-process engine: every method, tuned alike, in three regimes.

    python -m benchmarks.learning [--regimes on_style foreign knowledge_gap] [--methods ...] [--lrs 3e-4 1e-3]
                                  [--seeds 0 1 2] [--steps 150] [--batch 32] [--jobs 2] [--smoke]

Each regime (``regime.py``) is built once into ``--cache`` and its base probed per skill; a regime whose
base lacks the intended profile is refused with what to change. Each method (``engine_methods.py``)
runs every candidate × lr on seed 0; the best on validation runs on the other seeds; the test split
reports it (``engine_report.py``). Runs go through ``hpt.toy.engine`` (``sweep.py``: worker processes,
atomic per-run files, a rerun resumes). Writes into ``--out``: ``results.md``, ``results.json``,
``<regime>.png``, ``runs/``. ``--smoke`` (≤ 5 min, the slow test tier) is a tiny knowledge-gap regime,
four methods, two lrs, two seeds, four steps. The real trainer's version is ``benchmarks.learning.trainer``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.learning import engine_report as report
from benchmarks.learning.engine_methods import FAMILIES, resolve
from benchmarks.learning.regime import REGIMES, Regime, RegimeSpec, build_regime, check_profile
from benchmarks.learning.sweep import Budget, RunSpec, run_all
from benchmarks.speed.common import machine_description

logger = logging.getLogger("benchmarks.learning")
REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_SIZES = {"train_size": 64, "val_size": 16, "test_size": 16, "easy_size": 1000, "base_steps": 100,
               "probe_prompts": 16}
SMOKE_METHODS = ["sft_grpo", "hpt_switch", "chord_orig", "srft"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning", description=__doc__.split("\n")[0])
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--methods", nargs="+", default=list(FAMILIES), help=f"any of {', '.join(FAMILIES)}")
    parser.add_argument("--lrs", nargs="+", type=float, default=[3e-4, 1e-3], help="the sweep, every method")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="the first tunes; all report")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=32, help="prompts per step")
    parser.add_argument("--n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--eval-every", type=int, default=15)
    parser.add_argument("--eval-size", type=int, default=256, help="validation and test prompts")
    parser.add_argument("--target-acc", type=float, default=None,
                        help="'steps to target' accuracy (default: halfway from the base to the best final mean)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "learning" / "results")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / ".hpt_learning", help="regime assets (built once)")
    parser.add_argument("--smoke", action="store_true", help="tiny knowledge-gap regime, 4 methods, 4 steps")
    args = parser.parse_args(argv)
    if args.smoke:
        args.regimes, args.methods, args.lrs, args.seeds = ["knowledge_gap"], SMOKE_METHODS, [3e-4, 1e-3], [0, 1]
        args.steps, args.batch, args.eval_every, args.eval_size = 4, 8, 2, 16
    return args


def _regimes(args: argparse.Namespace) -> tuple[dict[str, Regime], dict[str, str]]:
    """Build every regime; one whose base lacks its profile is refused (its reason kept for the report)."""
    built, refused = {}, {}
    for name in args.regimes:
        spec = RegimeSpec(**{**vars(REGIMES[name]), **(SMOKE_SIZES if args.smoke else {})})
        regime = build_regime(args.cache, spec)
        logger.info("%s base: %s; per skill %s", name, regime.competence, regime.skills)
        if args.smoke:  # the smoke base is deliberately under-trained
            built[name] = regime
            continue
        try:
            check_profile(regime, spec)
        except RuntimeError as refusal:
            logger.error("refusing regime %s: %s", name, refusal)
            refused[name] = str(refusal)
            continue
        built[name] = regime
    return built, refused


def _specs(args: argparse.Namespace, regimes: dict[str, Regime], results=None) -> list[RunSpec]:
    """Phase 1 (``results`` None): every candidate × lr on the first seed; phase 2: the chosen on the others."""
    specs = []
    for regime in regimes:
        for family in resolve(args.methods):
            if results is None:
                specs += [RunSpec(regime, family.name, variant, lr, args.seeds[0])
                          for variant in family.candidates(args.steps) for lr in args.lrs]
                continue
            chosen = report.choose(results, regime, family.name)
            if chosen is not None:
                specs += [RunSpec(regime, family.name, chosen.variant, chosen.lr, s) for s in args.seeds[1:]]
    return specs


def _regime_section(name: str, regime: Regime, rows: list[dict], base: float, target: float) -> str:
    skills = ", ".join(f"{skill}: pass@1 {s['pass_at_1_t1']:.2f}, mixed {s['mixed_share']:.0%}, "
                       f"all-fail {s['zero_share']:.0%}" for skill, s in regime.skills.items())
    return (f"### {name}\n\nBase on the train split (T=1, {regime.competence['samples']} samples): {skills}.\n\n"
            f"{report.markdown_table(rows, base, target)}\n![{name}]({name}.png)\n")


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    machine = machine_description()  # at the start: the commit the runs were made at
    start = time.perf_counter()
    regimes, refused = _regimes(args)
    budget = Budget(args.steps, args.batch, args.n, args.eval_every, args.eval_size)
    results = run_all(_specs(args, regimes), regimes, budget, args.out, args.jobs)
    results.update(run_all(_specs(args, regimes, results), regimes, budget, args.out, args.jobs))
    sections, payload_rows = [], {}
    for name, regime in regimes.items():
        rows = [report.family_row(results, name, family, args.seeds, 0.0) for family in resolve(args.methods)]
        finished = [row for row in rows if row["chosen"] is not None]
        base = statistics.fmean(row["curve"][0] for row in finished) if finished else 0.0
        best = max((row["final"][0] for row in finished), default=base)
        target = args.target_acc if args.target_acc is not None else base + (best - base) / 2
        rows = [report.family_row(results, name, family, args.seeds, target) for family in resolve(args.methods)]
        report.plot(args.out / f"{name}.png", f"{name}: mean greedy test accuracy (chosen lr)", rows)
        sections.append(_regime_section(name, regime, rows, base, target))
        payload_rows[name] = {"rows": rows, "base_acc": base, "target": target, "skills": regime.skills}
    sections += [f"### {name}\n\nRefused: {reason}\n" for name, reason in refused.items()]
    failed = sum(r is None for r in results.values())
    full = parse_args([])
    projected = report.projected_minutes(results, args.steps, resolve(full.methods), full.steps, len(full.lrs),
                                         len(full.seeds), len(full.regimes), full.jobs)
    header = (f"Commit `{machine['git_commit']}`{' (dirty)' if machine['git_dirty'] else ''}, {machine['date_utc']}, "
              f"{machine['cpu_model']} ({machine['cpus_usable']} cores), {args.jobs} run(s) at a time. "
              f"{args.steps} steps × {args.batch} prompts × {args.n} samples, lrs {args.lrs}, seeds {args.seeds}, "
              f"evaluation every {args.eval_every} steps on {args.eval_size} val / test prompts. "
              f"{len(results)} runs ({failed} failed), {(time.perf_counter() - start) / 60:.1f} min. "
              f"The full default benchmark at these runs' measured seconds per step: "
              f"{'n/a' if projected is None else f'{projected:.0f} min'} on {full.jobs} processes.\n")
    markdown = header + "\n" + "\n".join(sections)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(markdown)
    payload = {"settings": {**vars(args), "out": str(args.out), "cache": str(args.cache)}, "machine": machine,
               "regimes": payload_rows, "refused": refused, "failed_runs": failed}
    (args.out / "results.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(markdown)
    if refused or failed:
        raise SystemExit(f"{len(refused)} regime(s) refused, {failed} run(s) failed: see {args.out / 'results.md'}")


if __name__ == "__main__":
    main()

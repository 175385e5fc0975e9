"""Choose each method's setting on validation, then tabulate and plot it on test, one table and PNG per regime.

- **chosen**: the candidate (variant × lr) whose seed-0 run has the best validation accuracy, averaged
  over its last two evaluations (one evaluation is noisy);
- **final**: test accuracy at the last step, mean ± sd over the chosen candidate's seeds;
- **half**: the same at the evaluation nearest half the budget;
- **steps to target**: first evaluated step where the seeds' mean test accuracy reaches the target;
- **AUC**: the mean test curve's area divided by the steps (the average accuracy along the run);
- **rollout tokens**: response tokens generated per run (mean over seeds; SFT steps generate none).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.learning.engine_methods import Family
from benchmarks.learning.sweep import RunSpec

Results = dict[RunSpec, dict[str, Any] | None]


def curve(record: dict[str, Any], split: str) -> dict[int, float]:
    """Step -> accuracy on ``split`` at every evaluated step."""
    return {int(m["step"]): m[f"{split}/acc"] for m in record["history"] if f"{split}/acc" in m}


def val_score(record: dict[str, Any]) -> float:
    values = list(curve(record, "val").values())
    return statistics.fmean(values[-2:])


def choose(results: Results, regime: str, family: str) -> RunSpec | None:
    """The seed-0 candidate of ``family`` with the best validation score (None when none finished)."""
    tuned = [(val_score(r), spec) for spec, r in results.items()
             if r is not None and spec.regime == regime and spec.family == family and spec.seed == 0]
    return max(tuned, key=lambda item: (item[0], -item[1].lr))[1] if tuned else None


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _mean_curve(records: list[dict[str, Any]]) -> dict[int, float]:
    curves = [curve(r, "test") for r in records]
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    return {step: statistics.fmean(c[step] for c in curves) for step in steps}


def _auc(mean: dict[int, float]) -> float:
    steps = sorted(mean)
    area = sum((b - a) * (mean[a] + mean[b]) / 2 for a, b in zip(steps, steps[1:], strict=False))
    return area / max(steps[-1] - steps[0], 1)


def family_row(results: Results, regime: str, family: Family, seeds: Sequence[int], target: float) -> dict[str, Any]:
    """One table row: the chosen candidate's numbers over the seeds that finished, and the missing ones."""
    chosen = choose(results, regime, family.name)
    row: dict[str, Any] = {"method": family.name, "label": family.label, "chosen": None, "seeds": [], "missing": []}
    if chosen is None:
        return row
    records = []
    for seed in seeds:
        spec = RunSpec(regime, family.name, chosen.variant, chosen.lr, seed)
        record = results.get(spec)
        if record is None:
            row["missing"].append(seed)
        else:
            records.append(record)
            row["seeds"].append(seed)
    mean = _mean_curve(records)
    half = min(mean, key=lambda step: abs(step - max(mean) / 2))
    reached = [step for step, acc in mean.items() if acc >= target and step > 0]
    finals = [curve(r, "test")[max(mean)] for r in records]
    halves = [curve(r, "test")[half] for r in records]
    row.update(
        chosen=chosen.candidate,
        final=_mean_sd(finals),
        half=_mean_sd(halves),
        half_step=half,
        steps_to_target=min(reached) if reached else None,
        auc=_auc(mean),
        rollout_tokens=statistics.fmean(sum(m.get("hpt/rollout/generated_tokens", 0) for m in r["history"])
                                        for r in records),
        seconds_per_step=statistics.fmean(statistics.fmean(m["timing_s/step"] for m in r["history"][1:])
                                          for r in records),
        curve=mean,
        final_by_skill={key.removeprefix("test_").removesuffix("/acc"): statistics.fmean(
            r["history"][-1][key] for r in records) for key in records[0]["history"][-1] if key.startswith("test_")},
    )
    return row


def markdown_table(rows: Sequence[dict[str, Any]], base_acc: float, target: float) -> str:
    """The per-regime table (rows with no finished run say so)."""
    lines = [f"Base (step 0) test accuracy {base_acc:.3f}; target {target:.3f}.", "",
             "| method | chosen (val) | seeds | final test acc | at half budget | steps to target | AUC | "
             "rollout tokens | s/step | final by skill |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        missing = f" (missing {row['missing']})" if row["missing"] else ""
        if row["chosen"] is None:
            lines.append(f"| {row['label']} | no finished run | | | | | | | | |")
            continue
        final, half = row["final"], row["half"]
        reach = "—" if row["steps_to_target"] is None else str(row["steps_to_target"])
        lines.append(
            f"| {row['label']} | {row['chosen']} | {len(row['seeds'])}{missing} | {final[0]:.3f} ± {final[1]:.3f} | "
            f"{half[0]:.3f} ± {half[1]:.3f} (step {row['half_step']}) | {reach} | {row['auc']:.3f} | "
            f"{row['rollout_tokens']:,.0f} | {row['seconds_per_step']:.2f} | "
            f"{' '.join(f'{skill} {acc:.2f}' for skill, acc in row['final_by_skill'].items())} |"
        )
    return "\n".join(lines) + "\n"


ORIGINAL_SUFFIX = "_orig"


def plot(path: Path, title: str, rows: Sequence[dict[str, Any]]) -> None:
    """Mean test accuracy against steps, one line per method (its chosen setting).

    A method and its ``_orig`` variant share a colour; the variant is dashed.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5))
    axes = figure.add_subplot()
    bases = list(dict.fromkeys(row["method"].removesuffix(ORIGINAL_SUFFIX) for row in rows))
    colours = colormaps["tab10"]
    for row in rows:
        if row["chosen"] is not None:
            steps = sorted(row["curve"])
            colour = colours(bases.index(row["method"].removesuffix(ORIGINAL_SUFFIX)) % colours.N)
            style = "--" if row["method"].endswith(ORIGINAL_SUFFIX) else "-"
            axes.plot(steps, [row["curve"][s] for s in steps], style, color=colour, marker=".",
                      label=f"{row['label']} ({row['chosen']})")
    axes.set(xlabel="step", ylabel="greedy test accuracy", title=title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def projected_minutes(results: Results, measured_steps: int, families: Sequence[Family], steps: int, lrs: int,
                      seeds: int, regimes: int, jobs: int) -> float | None:
    """Wall minutes of a benchmark of this shape, from the finished runs' wall seconds per step.

    Every run of a family costs its measured seconds per step (evaluations and start-up included) x
    ``steps``; a family not measured costs the mean of the measured ones; the runs share ``jobs``
    processes perfectly. Response lengths differ by regime, so this is a rough guide, not a promise.
    """
    per_step: dict[str, list[float]] = {}
    for spec, record in results.items():
        if record is not None:
            per_step.setdefault(spec.family, []).append(record["wall_seconds"] / max(measured_steps, 1))
    if not per_step:
        return None
    fallback = statistics.fmean(statistics.fmean(v) for v in per_step.values())
    total = 0.0
    for family in families:
        cost = statistics.fmean(per_step[family.name]) if family.name in per_step else fallback
        total += (len(family.candidates(steps)) * lrs + seeds - 1) * steps * cost
    return total * regimes / jobs / 60

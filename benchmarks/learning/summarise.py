"""Turn the runs' metrics logs into the benchmark's table, curves and JSON.

The headline is held-out greedy accuracy at the last step, mean ± sample standard deviation over seeds;
"to target" is the first validation at or above the target accuracy, with the training wall time
(sum of verl's ``timing_s/step``, start-up excluded) spent until then.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.learning.methods import Method
from benchmarks.learning.runs import RunResult
from hpt.metrics import GATE_SFT_FRAC, REWARD_MEAN
from hpt.atomic import write_atomically
from hpt.report.metrics_log import read_metrics_log

VAL_ACC = "val-core/hpt/arithmetic/acc/mean@1"
STEP_TIME = "timing_s/step"


@dataclass
class RunCurves:
    """One method × seed, on the global step axis."""

    val: dict[int, float] = field(default_factory=dict)
    reward: dict[int, float] = field(default_factory=dict)
    sft_frac: dict[int, float] = field(default_factory=dict)
    step_seconds: dict[int, float] = field(default_factory=dict)
    wall_seconds: float = 0.0  # the whole trainer process, start-up included


def load_curves(run: RunResult) -> RunCurves:
    """A run's validation, reward, SFT share and step times by training step."""
    curves = RunCurves(wall_seconds=run.wall_seconds)
    for step, values in read_metrics_log(run.metrics).steps.items():
        for key, target in ((VAL_ACC, curves.val), (REWARD_MEAN, curves.reward),
                            (GATE_SFT_FRAC, curves.sft_frac), (STEP_TIME, curves.step_seconds)):
            if key in values:
                target[step] = values[key]
    if not curves.val:
        raise ValueError(f"no {VAL_ACC} in {run.metrics}: did validation run?")
    return curves


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def first_reaching(curves: RunCurves, target: float) -> tuple[int, float] | None:
    """(step, training seconds up to it) of the first validation >= target, or None."""
    for step in sorted(curves.val):
        if curves.val[step] >= target:
            return step, sum(seconds for s, seconds in curves.step_seconds.items() if s <= step)
    return None


def method_row(method: Method, runs: dict[int, RunCurves], target: float) -> dict[str, Any]:
    """One table row: final accuracy over seeds, steps/time to target, cost."""
    finals = [curves.val[max(curves.val)] for curves in runs.values()]
    mean, std = _mean_std(finals)
    reached = [first_reaching(curves, target) for curves in runs.values()]
    hits = [hit for hit in reached if hit is not None]
    return {
        "method": method.name,
        "label": method.label,
        "seeds": sorted(runs),
        "final_acc_per_seed": finals,
        "final_acc_mean": mean,
        "final_acc_std": std,
        "reached_target": f"{len(hits)}/{len(reached)}",
        "steps_to_target_mean": statistics.fmean(h[0] for h in hits) if hits else None,
        "train_seconds_to_target_mean": statistics.fmean(h[1] for h in hits) if hits else None,
        "train_seconds_mean": statistics.fmean(sum(c.step_seconds.values()) for c in runs.values()),
        "wall_seconds_mean": statistics.fmean(c.wall_seconds for c in runs.values()),
        "last_step_sft_frac_mean": statistics.fmean(c.sft_frac[max(c.sft_frac)] for c in runs.values() if c.sft_frac)
        if any(c.sft_frac for c in runs.values()) else None,
    }


def _fmt(value: float | None, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def markdown_table(rows: Sequence[dict[str, Any]], base_acc: float, target: float) -> str:
    lines = [
        f"| method | held-out acc, last step (mean ± sd) | per seed | reached {target:.3f} | steps to it | "
        "train s to it | train s / run | wall s / run |",
        "|---|---|---|---|---|---|---|---|",
        f"| base (step 0) | {base_acc:.3f} | | | | | | |",
    ]
    for row in sorted(rows, key=lambda r: -r["final_acc_mean"]):
        per_seed = " / ".join(f"{acc:.3f}" for acc in row["final_acc_per_seed"])
        lines.append(
            f"| {row['label']} | **{row['final_acc_mean']:.3f}** ± {row['final_acc_std']:.3f} | {per_seed} | "
            f"{row['reached_target']} | {_fmt(row['steps_to_target_mean'], '{:.0f}')} | "
            f"{_fmt(row['train_seconds_to_target_mean'], '{:.0f}')} | {row['train_seconds_mean']:.0f} | "
            f"{row['wall_seconds_mean']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _mean_curve(runs: dict[int, RunCurves], attribute: str) -> tuple[list[int], list[float], list[float], list[float]]:
    series = [getattr(curves, attribute) for curves in runs.values()]
    steps = sorted(set.intersection(*(set(s) for s in series))) if series else []
    values = [[s[step] for s in series] for step in steps]
    return steps, [statistics.fmean(v) for v in values], [min(v) for v in values], [max(v) for v in values]


def plot_curves(path: Path, methods: Sequence[Method], results: dict[str, dict[int, RunCurves]]) -> None:
    """Held-out accuracy, rollout reward and SFT-prompt share per step: mean over seeds, band = min..max."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 4.5), layout="constrained")
    axes = figure.subplots(1, 3)
    panels = (("val", "held-out accuracy (greedy)"), ("reward", "mean rollout reward"),
              ("sft_frac", "share of prompts in SFT-only mode"))
    for axis, (attribute, title) in zip(axes, panels, strict=True):
        for method in methods:
            steps, mean, low, high = _mean_curve(results[method.name], attribute)
            if not steps:
                continue
            (line,) = axis.plot(steps, mean, label=method.label, marker="o" if attribute == "val" else None,
                                markersize=3)
            axis.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
        axis.set_title(title)
        axis.set_xlabel("training step")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    write_atomically(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))


def write_results(out: Path, payload: dict[str, Any], table: str, header: str) -> None:
    write_atomically(out / "results.json", lambda tmp: tmp.write_text(json.dumps(payload, indent=1) + "\n"))
    write_atomically(out / "results.md", lambda tmp: tmp.write_text(header + "\n" + table))

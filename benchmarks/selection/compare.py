"""What the selection benchmark measures in each run, and the side-by-side table.

Per run (from verl's metrics log): generated rollout tokens and the share of them that got no
gradient (token-weighted over the run: sum of each step's ``share x tokens`` over sum of tokens),
rollout time per step (verl's ``timing_s/gen``, mean over steps), the selection's counters, and the
held-out accuracy curve. Per arm: mean ± sample sd over seeds.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpt import metrics as M
from hpt.report.metrics_log import read_metrics_log

VAL_ACC = "val-core/hpt/arithmetic/acc/mean@1"
GEN_TIME = "timing_s/gen"
COUNTERS = (M.SELECTION_ROUTED, M.SELECTION_DEFERRED, M.SELECTION_PROBES, M.SELECTION_MISPREDICTIONS)


@dataclass
class RunCost:
    """One run: rollout cost per step and accuracy by step."""

    tokens: dict[int, float] = field(default_factory=dict)
    no_grad_share: dict[int, float] = field(default_factory=dict)
    gen_seconds: dict[int, float] = field(default_factory=dict)
    val: dict[int, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)  # totals over the run

    @property
    def wasted_share(self) -> float:
        total = sum(self.tokens.values())
        wasted = sum(self.no_grad_share[step] * tokens for step, tokens in self.tokens.items())
        return wasted / total if total else 0.0

    @property
    def gen_seconds_per_step(self) -> float:
        return statistics.fmean(self.gen_seconds.values()) if self.gen_seconds else float("nan")

    @property
    def tokens_per_step(self) -> float:
        return statistics.fmean(self.tokens.values()) if self.tokens else 0.0

    def after(self, step: int) -> RunCost:
        """The rollout cost of the steps after ``step`` (e.g. once the selection has seen every prompt)."""
        def later(values: dict[int, float]) -> dict[int, float]:
            return {k: v for k, v in values.items() if k > step}

        return RunCost(later(self.tokens), later(self.no_grad_share), later(self.gen_seconds), self.val,
                       self.counters)


def load_cost(metrics: Path) -> RunCost:
    """A run's per-step rollout cost and validation accuracy from its metrics log."""
    cost = RunCost(counters=dict.fromkeys(COUNTERS, 0.0))
    for step, values in read_metrics_log(metrics).steps.items():
        for key, target in ((M.ROLLOUT_TOKENS, cost.tokens), (M.ROLLOUT_NO_GRAD_SHARE, cost.no_grad_share),
                            (GEN_TIME, cost.gen_seconds), (VAL_ACC, cost.val)):
            if key in values:
                target[step] = values[key]
        for key in COUNTERS:
            cost.counters[key] += values.get(key, 0.0)
    if not cost.tokens or not cost.val:
        raise ValueError(f"{metrics} has no {M.ROLLOUT_TOKENS} or no {VAL_ACC}: did the run train and validate?")
    return cost


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def arm_row(name: str, runs: dict[int, RunCost]) -> dict[str, Any]:
    """One arm's numbers over its seeds."""
    finals = [run.val[max(run.val)] for run in runs.values()]
    row: dict[str, Any] = {"arm": name, "seeds": sorted(runs), "final_acc_per_seed": finals}
    for label, values in (("wasted_share", [r.wasted_share for r in runs.values()]),
                          ("gen_seconds_per_step", [r.gen_seconds_per_step for r in runs.values()]),
                          ("tokens_per_step", [r.tokens_per_step for r in runs.values()]),
                          ("final_acc", finals)):
        row[f"{label}_mean"], row[f"{label}_sd"] = _mean_sd(values)
    row["counters_mean"] = {key: statistics.fmean(r.counters[key] for r in runs.values()) for key in COUNTERS}
    return row


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| selection | wasted rollout tokens | rollout s / step | generated tokens / step | held-out acc, last step "
        "| per seed | routed / deferred / probes / mispredicted (run totals) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        counters = " / ".join(f"{row['counters_mean'][key]:.0f}" for key in COUNTERS)
        per_seed = " / ".join(f"{acc:.3f}" for acc in row["final_acc_per_seed"])
        lines.append(
            f"| {row['arm']} | {row['wasted_share_mean']:.1%} ± {row['wasted_share_sd']:.1%} | "
            f"{row['gen_seconds_per_step_mean']:.2f} ± {row['gen_seconds_per_step_sd']:.2f} | "
            f"{row['tokens_per_step_mean']:.0f} | {row['final_acc_mean']:.3f} ± {row['final_acc_sd']:.3f} | "
            f"{per_seed} | {counters} |"
        )
    if len(rows) == 2 and rows[1]["gen_seconds_per_step_mean"] > 0:
        speed_up = rows[0]["gen_seconds_per_step_mean"] / rows[1]["gen_seconds_per_step_mean"]
        lines.append(f"\nRollout time per step, off ÷ on: {speed_up:.2f}×.")
    return "\n".join(lines) + "\n"


def plot_accuracy(path: Path, results: dict[str, dict[int, RunCost]]) -> None:
    """Held-out accuracy and wasted-token share per step, the two arms side by side (mean, band = min..max)."""
    from matplotlib.figure import Figure

    from hpt.atomic import write_atomically

    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots(1, 2)
    for axis, attribute, title in ((axes[0], "val", "held-out accuracy (greedy)"),
                                   (axes[1], "no_grad_share", "share of rollout tokens with no gradient")):
        for arm, runs in results.items():
            series = [getattr(run, attribute) for run in runs.values()]
            steps = sorted(set.intersection(*(set(s) for s in series)))
            values = [[s[step] for s in series] for step in steps]
            (line,) = axis.plot(steps, [statistics.fmean(v) for v in values], label=arm, marker="o", markersize=3)
            axis.fill_between(steps, [min(v) for v in values], [max(v) for v in values],
                              color=line.get_color(), alpha=0.15)
        axis.set_title(title)
        axis.set_xlabel("training step")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    write_atomically(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))

"""The report's curves: which metrics each figure shows, and drawing them to PNG.

Drawn with matplotlib's object-oriented API (``matplotlib.figure.Figure``), which renders PNG with
the Agg backend and never opens a window or switches the process-wide pyplot backend.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hpt import metrics as M
from hpt.atomic import write_atomically
from hpt.report.metrics_log import MetricsLog

VERL_SCORE_MEAN = "critic/score/mean"  # verl: mean sequence score of the rebuilt batch (demonstrations included)
VERL_STEP_TIME = "timing_s/step"  # verl: wall-clock seconds of the whole training step
# verl's headline validation number per data source: mean over the n samples of the reward's
# `acc` (or its score when the reward returns no `acc`), e.g. val-core/hpt/arithmetic/acc/mean@1.
VALIDATION_CORE = re.compile(r"^val-core/.+/(acc|reward)/mean@\d+$")
MARKERS_UP_TO = 30  # points per curve up to which each point is marked (validations are few)

KeySelector = Callable[[Iterable[str]], list[str]]


def listed(*keys: str) -> KeySelector:
    """Those of ``keys`` the log has, in the given order."""

    def select(present: Iterable[str]) -> list[str]:
        have = set(present)
        return [key for key in keys if key in have]

    return select


def matching(pattern: re.Pattern[str]) -> KeySelector:
    """Every key of the log that matches ``pattern``, sorted."""
    return lambda present: sorted(key for key in present if pattern.match(key))


def only_with(key: str, select: KeySelector) -> KeySelector:
    """``select``'s keys when the log has ``key``, else none (a figure only some runs have)."""
    return lambda present: select(present) if key in set(present) else []


@dataclass(frozen=True)
class FigureSpec:
    name: str  # PNG file stem
    title: str
    ylabel: str
    select: KeySelector
    absent: str  # what the summary says when the log has none of the figure's metrics ("": say nothing)
    one_panel_per_metric: bool = False  # for metrics on different scales (the loss terms)
    unit_interval: bool = False  # y axis fixed to [0, 1] (fractions)


FIGURES = (
    FigureSpec(
        "modes", "Gate modes: share of prompt groups per mode", "fraction of groups",
        listed(M.GATE_SFT_FRAC, M.GATE_RL_FRAC, M.GATE_OFF_FRAC, M.GATE_MIX_FRAC),
        "no `hpt/gate/*_frac` metric: not an hpt run, or no training step logged yet", unit_interval=True,
    ),
    FigureSpec(
        "losses", "Loss terms (weighted, before their coefficients)", "loss",
        listed(M.LOSS_RL, M.LOSS_SFT, M.LOSS_OFF),
        "no `hpt/loss/*` metric: not an hpt run, or no training step logged yet", one_panel_per_metric=True,
    ),
    FigureSpec(
        "reward", "Mean reward per step", "reward", listed(M.REWARD_MEAN, VERL_SCORE_MEAN),
        f"neither `{M.REWARD_MEAN}` nor `{VERL_SCORE_MEAN}`: no training step logged yet",
    ),
    FigureSpec(
        "tool_use", "Tool agents: success rate and share of rollouts that call a tool", "fraction of rollouts",
        only_with(M.AGENT_TOOL_CALL_SHARE, listed(M.GATE_PASS_RATE, M.AGENT_TOOL_CALL_SHARE)), "", unit_interval=True,
    ),
    FigureSpec(
        "validation", "Validation (verl's val-core mean@n per data source)", "mean@n", matching(VALIDATION_CORE),
        "no `val-core/<data_source>/acc/mean@n` metric: validation did not run "
        "(set trainer.test_freq, or trainer.val_before_train=true)",
    ),
)


@dataclass(frozen=True)
class DrawnFigure:
    spec: FigureSpec
    keys: list[str]  # the metrics drawn; empty when the log has none of them
    path: Path | None  # the PNG; None when skipped


def draw_figures(log: MetricsLog, out_dir: Path) -> list[DrawnFigure]:
    """One PNG per figure whose metrics the log has; a skipped figure's PNG from an earlier report is removed."""
    present = log.keys()
    drawn = []
    for spec in FIGURES:
        keys = spec.select(present)
        path = out_dir / f"{spec.name}.png"
        if keys:
            _draw(spec, log, keys, path)
        else:
            path.unlink(missing_ok=True)
        drawn.append(DrawnFigure(spec, keys, path if keys else None))
    return drawn


def _draw(spec: FigureSpec, log: MetricsLog, keys: list[str], path: Path) -> None:
    panels = [[key] for key in keys] if spec.one_panel_per_metric else [keys]
    figure = Figure(figsize=(8, 1.0 + 2.4 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        for key in panel:
            steps, values = log.series(key)
            ax.plot(steps, values, label=key, marker="o" if len(steps) <= MARKERS_UP_TO else None, markersize=4)
        if spec.unit_interval:
            ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(spec.ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[-1].set_xlabel("step")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(spec.title)
    write_atomically(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))

"""The report's ``summary.md``: what the log covers, first/last/mean of every curve, the images, what is missing."""

from __future__ import annotations

from statistics import fmean

from hpt.report.figures import VERL_STEP_TIME, DrawnFigure
from hpt.report.metrics_log import MetricsLog


def render_summary(log: MetricsLog, figures: list[DrawnFigure]) -> str:
    """Markdown for one run; image links are relative (the PNGs sit next to ``summary.md``)."""
    lines = ["# hpt run report", "", f"- metrics log: `{log.path.resolve()}`", *_coverage(log), ""]
    drawn = [figure for figure in figures if figure.path is not None]
    if drawn:
        lines += ["## Key metrics", "", "| metric | logged at steps | first | last | mean |", "|---|---|---|---|---|"]
        lines += [_row(log, key) for figure in drawn for key in figure.keys]
        lines += ["", "## Curves", ""]
        for figure in drawn:
            lines += [f"![{figure.spec.title}]({figure.path.name})", ""]
    skipped = [figure for figure in figures if figure.path is None and figure.spec.absent]
    if skipped:
        lines += ["## Not in this log", ""]
        lines += [f"- {figure.spec.name}: {figure.spec.absent}" for figure in skipped]
        lines.append("")
    return "\n".join(lines)


def _coverage(log: MetricsLog) -> list[str]:
    training, validation = log.training_steps(), log.validation_steps()
    lines = [
        f"- training steps: {_steps(training)}",
        f"- validations: {len(validation)}" + (f" (steps {', '.join(map(str, validation))})" if validation else ""),
    ]
    step_times = log.series(VERL_STEP_TIME)[1]
    if step_times:
        lines.append(
            f"- mean step time: {fmean(step_times):.3g} s over {len(step_times)} steps "
            f"(total {sum(step_times):.4g} s, `{VERL_STEP_TIME}`)"
        )
    if log.malformed_lines:
        lines.append(f"- malformed lines skipped: {log.malformed_lines}")
    return lines


def _row(log: MetricsLog, key: str) -> str:
    steps, values = log.series(key)
    cells = [f"`{key}`", _steps(steps), _number(values[0]), _number(values[-1]), _number(fmean(values))]
    return "| " + " | ".join(cells) + " |"


def _steps(steps: list[int]) -> str:
    """``"12 (1–12)"``: how many steps and their range."""
    if not steps:
        return "0"
    return f"{len(steps)} ({steps[0]})" if len(steps) == 1 else f"{len(steps)} ({steps[0]}–{steps[-1]})"


def _number(value: float) -> str:
    return f"{value:.4g}"

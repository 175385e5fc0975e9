"""Building reports: every metrics log at a path → its own directory with the PNG curves and ``summary.md``."""

from __future__ import annotations

import logging
from pathlib import Path

from hpt.atomic import write_atomically
from hpt.report.figures import draw_figures
from hpt.report.metrics_log import MetricsLog, find_metric_logs, read_metrics_log
from hpt.report.summary import render_summary

logger = logging.getLogger(__name__)

SUMMARY = "summary.md"


def default_out_dir(run: Path) -> Path:
    """``RUN_DIR/report``; for a log file, ``report/`` next to it."""
    return (run if run.is_dir() else run.parent) / "report"


def write_report(run: Path, out: Path | None = None) -> list[Path]:
    """Report every metrics log of ``run`` (a log file or a run directory); returns the ``summary.md`` paths.

    One log is reported into ``out`` (default :func:`default_out_dir`); several into one subdirectory
    each, named after the log's path under ``run``. With several candidates, a file that is not a
    metrics log (e.g. a dump of validation generations) is skipped with a warning.
    """
    out = out or default_out_dir(run)
    paths = find_metric_logs(run)
    if len(paths) == 1:
        return [_report_one(read_metrics_log(paths[0]), out)]
    logs = _readable(paths)
    logger.info("%d metrics logs in %s: one report each under %s", len(logs), run, out)
    return [_report_one(log, out / log.path.relative_to(run).with_suffix("")) for log in logs]


def _readable(paths: list[Path]) -> list[MetricsLog]:
    logs = []
    for path in paths:
        try:
            logs.append(read_metrics_log(path))
        except ValueError as exc:
            logger.warning("skipping %s: %s", path, exc)
    if not logs:
        raise ValueError(f"none of {', '.join(map(str, paths))} is a metrics log: see the warnings above")
    return logs


def _report_one(log: MetricsLog, out_dir: Path) -> Path:
    """Figures first, summary last (each written atomically): a new ``summary.md`` means every figure is new too."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = draw_figures(log, out_dir)
    summary = out_dir / SUMMARY
    write_atomically(summary, lambda tmp: tmp.write_text(render_summary(log, figures), encoding="utf-8"))
    logger.info("%s: %d steps → %s", log.path, len(log.steps), summary)
    return summary

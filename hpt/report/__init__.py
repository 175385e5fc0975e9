"""``hpt report``: a run's logged metrics (verl's file logger) → PNG curves and a markdown summary."""

from hpt.report.build import write_report

__all__ = ["write_report"]

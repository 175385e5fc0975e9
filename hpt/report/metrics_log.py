"""Finding and reading the metrics log that verl's file logger writes.

verl's ``FileLogger`` (active when ``trainer.logger`` contains ``file``) writes one JSON object per
``Tracking.log`` call, ``{"step": <int>, "data": {<metric>: <value>, ...}}``: one line per training
step (validation metrics ride on the step they ran at), plus a step-0 line for the validation before
training. The file is ``$VERL_FILE_LOGGER_PATH`` or, by default,
``$VERL_FILE_LOGGER_ROOT/<project_name>/<experiment_name>.jsonl`` (root: the working directory).
It is often read while the run still writes it, or after a crash cut its last line, so reading is
lenient: a bad line is counted and skipped, and a value that is not a finite number (verl writes NaN
as ``null``) is dropped for that step only.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

HOW_TO_LOG = (
    "verl writes one when the run has trainer.logger=[console,file]; "
    "VERL_FILE_LOGGER_PATH=<run dir>/metrics.jsonl chooses where (exp_scripts/debug.sh sets both)"
)
VALIDATION_PREFIX = "val-"  # verl's val-core/ and val-aux/ sections


@dataclass(frozen=True)
class MetricsLog:
    """One run's metrics: ``steps[step][metric] = value`` with only finite numbers, steps ascending."""

    path: Path
    steps: dict[int, dict[str, float]]
    malformed_lines: int = 0

    def keys(self) -> set[str]:
        return {key for values in self.steps.values() for key in values}

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """The steps that logged ``key`` and its values there; steps without it are simply absent."""
        points = [(step, values[key]) for step, values in self.steps.items() if key in values]
        return [step for step, _ in points], [value for _, value in points]

    def training_steps(self) -> list[int]:
        """Steps that logged anything besides validation (the step-0 validation line is not one)."""
        return [step for step, values in self.steps.items() if any(not k.startswith(VALIDATION_PREFIX) for k in values)]

    def validation_steps(self) -> list[int]:
        return [step for step, values in self.steps.items() if any(k.startswith(VALIDATION_PREFIX) for k in values)]


def find_metric_logs(run: Path) -> list[Path]:
    """The metrics logs of ``run``: the file itself, else ``run/*.jsonl``, else ``run/*/*.jsonl``.

    The second level covers verl's default layout (``<project_name>/<experiment_name>.jsonl`` under
    the directory the run started in).
    """
    if run.is_file():
        return [run]
    if not run.is_dir():
        raise FileNotFoundError(f"{run} does not exist: give the run's directory or its metrics .jsonl file")
    logs = sorted(run.glob("*.jsonl")) or sorted(run.glob("*/*.jsonl"))
    if not logs:
        raise FileNotFoundError(f"no metrics log (*.jsonl) in {run} or its subdirectories: {HOW_TO_LOG}")
    return logs


def read_metrics_log(path: Path) -> MetricsLog:
    """Parse one log; a step logged on several lines is merged (later lines win)."""
    steps: dict[int, dict[str, float]] = {}
    malformed: list[int] = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        record = _parse_line(line)
        if record is None:
            malformed.append(number)
            continue
        step, values = record
        steps.setdefault(step, {}).update(values)
    if malformed:
        logger.warning("%s: skipped %d malformed line(s), first at line %d", path, len(malformed), malformed[0])
    if not steps:
        raise ValueError(
            f"{path} holds no metric line ({len(malformed)} malformed): it is empty until the run logs its first "
            f'step, and a metrics log has lines like {{"step": 1, "data": {{...}}}} ({HOW_TO_LOG})'
        )
    return MetricsLog(path=path, steps=dict(sorted(steps.items())), malformed_lines=len(malformed))


def _parse_line(line: str) -> tuple[int, dict[str, float]] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    step, data = record.get("step"), record.get("data")
    if not _is_int(step) or not isinstance(data, dict):
        return None
    values = {key: number for key, value in data.items() if (number := _finite_float(value)) is not None}
    return step, values


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_float(value: object) -> float | None:
    """The value as a float when it is a finite number (not a bool, string, list or null), else None."""
    if not (_is_int(value) or isinstance(value, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None

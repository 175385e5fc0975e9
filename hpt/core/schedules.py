"""Schedules for lambda, the weight of the demonstration term over training.

A schedule maps ``(progress, pass_rate, params)`` to a non-negative weight, where ``progress`` is
``global_step / total_steps`` and ``pass_rate`` the batch's mean rollout success, both in [0, 1].
``SCHEDULES`` is the registry: a new schedule is one decorated function.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ScheduleParams:
    """Parameters of every schedule; each schedule reads only the fields it documents."""

    start: float = 1.0  # lambda at progress 0 (linear, cosine, warmup_cosine) or at pass rate 0 (adaptive)
    end: float = 0.0  # lambda at progress 1 or at pass rate 1 (adaptive)
    warmup: float = 0.0  # fraction of training spent warming up (warmup_cosine), in [0, 1)
    peak: float = 1.0  # lambda at the end of the warm-up (warmup_cosine)
    value: float = 1.0  # lambda of the constant schedule

    def __post_init__(self) -> None:
        for field in ("start", "end", "peak", "value"):
            number = getattr(self, field)
            if not (math.isfinite(number) and number >= 0):
                raise ValueError(f"schedule {field} must be a finite lambda >= 0, got {number}")
        if not (0 <= self.warmup < 1):
            raise ValueError(f"schedule warmup must be a fraction in [0, 1), got {self.warmup}")


Schedule = Callable[[float, float, ScheduleParams], float]

SCHEDULES: dict[str, Schedule] = {}


def register_schedule(name: str) -> Callable[[Schedule], Schedule]:
    """Add a schedule to ``SCHEDULES`` under ``name``; a second schedule with the same name is refused.

    Refusing duplicates keeps a plug-in from silently replacing a built-in schedule.
    """

    def decorator(fn: Schedule) -> Schedule:
        if name in SCHEDULES:
            raise ValueError(
                f"schedule {name!r} is already registered; registered names: {', '.join(sorted(SCHEDULES))}"
            )
        validated = _validated(fn)
        SCHEDULES[name] = validated
        return validated

    return decorator


def build_schedule(name: str) -> Schedule:
    """Look a schedule up by name, failing with the list of valid names.

    The returned function validates ``progress`` and ``pass_rate`` before evaluating.
    """
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown lambda schedule {name!r}; valid schedules: {', '.join(sorted(SCHEDULES))}") from None


def _check_unit_interval(name: str, number: float) -> None:
    if not (0.0 <= number <= 1.0):  # also rejects NaN
        raise ValueError(f"schedule {name} must be in [0, 1], got {number}")


def _validated(fn: Schedule) -> Schedule:
    """Wrap a schedule so every registered one rejects out-of-range inputs the same way."""

    @functools.wraps(fn)
    def schedule(progress: float, pass_rate: float, params: ScheduleParams) -> float:
        _check_unit_interval("progress", progress)
        _check_unit_interval("pass_rate", pass_rate)
        return fn(progress, pass_rate, params)

    return schedule


def _cosine_between(high: float, low: float, fraction: float) -> float:
    """Half a cosine from ``high`` at fraction 0 to ``low`` at fraction 1."""
    return low + (high - low) * 0.5 * (1.0 + math.cos(math.pi * fraction))


@register_schedule("constant")
def constant_schedule(progress: float, pass_rate: float, params: ScheduleParams) -> float:
    """``params.value`` throughout training."""
    return params.value


@register_schedule("linear")
def linear_schedule(progress: float, pass_rate: float, params: ScheduleParams) -> float:
    """Straight line from ``start`` at progress 0 to ``end`` at progress 1."""
    return params.start + (params.end - params.start) * progress


@register_schedule("cosine")
def cosine_schedule(progress: float, pass_rate: float, params: ScheduleParams) -> float:
    """Half a cosine from ``start`` to ``end``: flat at both ends, fastest change mid-training."""
    return _cosine_between(params.start, params.end, progress)


@register_schedule("warmup_cosine")
def warmup_cosine_schedule(progress: float, pass_rate: float, params: ScheduleParams) -> float:
    """Linear ``start -> peak`` over ``[0, warmup]``, then half a cosine ``peak -> end`` over ``[warmup, 1]``."""
    if progress < params.warmup:
        return params.start + (params.peak - params.start) * progress / params.warmup
    return _cosine_between(params.peak, params.end, (progress - params.warmup) / (1.0 - params.warmup))


@register_schedule("adaptive")
def adaptive_schedule(progress: float, pass_rate: float, params: ScheduleParams) -> float:
    """``start`` when the batch fails, ``end`` when it succeeds, linear in between; progress is ignored.

    The policy leans on demonstrations exactly while its own rollouts do not solve the prompts.
    """
    return params.start * (1.0 - pass_rate) + params.end * pass_rate

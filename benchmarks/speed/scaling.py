"""How the real trainer's step time grows with prompts per step, samples per prompt and response length.

One axis at a time is varied from a base shape (the CPU overlay's 16 prompts x 4 samples x 32 tokens),
on hpt's trainer with ``trainer.unify_strategy=no`` (every rollout is trained: the most work a step
does; a gate only removes rows or swaps some for one demonstration). A point is the median of verl's
stage timings over the steps after warm-up of one run. The base point is taken from the HPT runs of
``hpt_vs_grpo`` when the caller has them, saving a run. Part (d) of ``python -m benchmarks.speed``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.speed.common import steady_medians
from benchmarks.speed.hpt_vs_grpo import HPT_OVERRIDES
from benchmarks.speed.step_time import Shape, run_training

AXES = ("prompts", "samples", "response_length")
FULL_GRID = {"prompts": (8, 16, 32), "samples": (2, 4, 8), "response_length": (16, 32, 64)}


def grid_shapes(base: Shape, grid: Mapping[str, Sequence[int]]) -> list[Shape]:
    """The base, then every shape that differs from it on one axis, each once."""
    shapes = [base]
    for axis, values in grid.items():
        for value in values:
            shape = dataclasses.replace(base, **{axis: value})
            if shape not in shapes:
                shapes.append(shape)
    return shapes


def measure(tiny_dir: Path, base: Shape, grid: Mapping[str, Sequence[int]], steps: int, warmup: int,
            scratch: Path, known: Mapping[Shape, dict[str, float]] | None = None) -> dict:
    """One run per shape of the grid not in ``known`` (medians measured elsewhere); medians per point."""
    points = []
    for shape in grid_shapes(base, grid):
        point: dict = {"shape": dataclasses.asdict(shape)}
        if known and shape in known:
            point.update(measured_in="hpt_vs_grpo", median_s=known[shape])
        else:
            label = f"{shape.prompts}x{shape.samples}x{shape.response_length}"
            run = run_training(tiny_dir, shape, steps, HPT_OVERRIDES, scratch / f"scaling-{label}.jsonl")
            point.update(measured_in="scaling", steps=run, median_s=steady_medians([run], warmup))
        points.append(point)
    return {"base": dataclasses.asdict(base), "grid": {axis: list(values) for axis, values in grid.items()},
            "steps_per_run": steps, "warmup": warmup, "points": points}

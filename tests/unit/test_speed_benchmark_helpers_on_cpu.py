"""The systems benchmark's pure helpers against hand-computed values (no timing is asserted anywhere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.speed.common import cpu_model, mem_total_gib, read_steps, steady_medians, summary
from benchmarks.speed.report import axis_points
from benchmarks.speed.scaling import grid_shapes
from benchmarks.speed.step_time import Shape


def write_log(path: Path, steps: list[tuple[float, float]]) -> Path:
    """A verl file-logger log: one JSON line per step with its step and generation seconds."""
    lines = [json.dumps({"step": i + 1, "data": {"timing_s/step": step, "timing_s/gen": gen, "actor/loss": 0.5}})
             for i, (step, gen) in enumerate(steps)]
    path.write_text("\n".join(lines) + "\n\n")
    return path


def test_summary_is_median_extremes_and_count() -> None:
    assert summary([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}
    with pytest.raises(ValueError):
        summary([])


def test_read_steps_keeps_timings_and_derives_the_training_part(tmp_path: Path) -> None:
    steps = read_steps(write_log(tmp_path / "m.jsonl", [(20.0, 18.0), (4.0, 2.5)]))
    assert steps == [{"step": 1, "timing_s/step": 20.0, "timing_s/gen": 18.0, "train_part": 2.0},
                     {"step": 2, "timing_s/step": 4.0, "timing_s/gen": 2.5, "train_part": 1.5}]


def test_steady_medians_drop_warmup_steps_and_pool_runs(tmp_path: Path) -> None:
    first = read_steps(write_log(tmp_path / "a.jsonl", [(30.0, 25.0), (4.0, 2.0), (6.0, 3.0)]))
    second = read_steps(write_log(tmp_path / "b.jsonl", [(40.0, 35.0), (5.0, 4.0), (9.0, 6.0)]))
    medians = steady_medians([first, second], warmup=1)
    # steady steps: (4, 2), (6, 3), (5, 4), (9, 6) -> step median 5.5, gen 3.5, train part (2, 3, 1, 3) -> 2.5
    assert medians == {"timing_s/step": 5.5, "timing_s/gen": 3.5, "train_part": 2.5}
    with pytest.raises(ValueError, match="warm-up"):
        steady_medians([first], warmup=3)


def test_machine_parsers_read_proc_files() -> None:
    cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\n"
    assert cpu_model(cpuinfo) == "AMD EPYC 7B13"
    assert cpu_model("processor\t: 0\n") is None
    assert mem_total_gib("MemTotal:       24683700 kB\nMemFree:  1 kB\n") == pytest.approx(24683700 / 2**20)
    assert mem_total_gib("") is None


def test_grid_varies_one_axis_at_a_time_without_repeats() -> None:
    base = Shape(16, 4, 32)
    shapes = grid_shapes(base, {"prompts": (8, 16, 32), "samples": (2, 4), "response_length": (32,)})
    assert shapes == [base, Shape(8, 4, 32), Shape(32, 4, 32), Shape(16, 2, 32)]


def test_axis_points_take_the_base_and_that_axis_only_in_order() -> None:
    def point(prompts: int, samples: int, step: float) -> dict:
        return {"shape": {"prompts": prompts, "samples": samples, "response_length": 32},
                "median_s": {"timing_s/step": step}}

    scaling = {"base": {"prompts": 16, "samples": 4, "response_length": 32},
               "points": [point(16, 4, 3.0), point(32, 4, 5.0), point(8, 4, 2.0), point(16, 8, 4.0)]}
    assert [(v, m["timing_s/step"]) for v, m in axis_points(scaling, "prompts")] == [(8, 2.0), (16, 3.0), (32, 5.0)]
    assert [(v, m["timing_s/step"]) for v, m in axis_points(scaling, "samples")] == [(4, 3.0), (8, 4.0)]
    assert [v for v, _ in axis_points(scaling, "response_length")] == [32]


def test_verifier_workload_is_seeded_and_has_the_stated_mix() -> None:
    from benchmarks.speed import verifier

    items = verifier.workload(200, seed=1)
    assert items == verifier.workload(200, seed=1) and items != verifier.workload(200, seed=2)
    assert len(items) == 200 * verifier.RESPONSES_PER_PROMPT
    shares = {kind: sum(k == kind for k, _, _ in items) / len(items) for kind, _ in verifier.KINDS}
    for kind, weight in verifier.KINDS:
        assert abs(shares[kind] - weight / 100) < 0.07, kind
    assert all(500 <= len(response) <= 4000 for kind, _, response in items if kind == "integer_boxed")
    assert len(verifier.math_verify_cases()) == 276

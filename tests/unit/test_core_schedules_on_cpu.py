"""Lambda schedules at their end points and at hand-computed interior points."""

import math

import pytest

from hpt.core.schedules import SCHEDULES, ScheduleParams, build_schedule, register_schedule


def _at(name: str, progress: float, params: ScheduleParams, pass_rate: float = 0.0) -> float:
    return build_schedule(name)(progress, pass_rate, params)


def test_registry_holds_the_five_schedules():
    assert set(SCHEDULES) == {"constant", "linear", "cosine", "warmup_cosine", "adaptive"}


@pytest.mark.parametrize("progress", [0.0, 0.5, 1.0])
def test_constant_schedule_returns_value_everywhere(progress):
    assert _at("constant", progress, ScheduleParams(value=0.3)) == pytest.approx(0.3)


def test_linear_schedule_goes_from_start_to_end():
    params = ScheduleParams(start=1.0, end=0.2)
    assert _at("linear", 0.0, params) == pytest.approx(1.0)
    assert _at("linear", 1.0, params) == pytest.approx(0.2)
    assert _at("linear", 0.25, params) == pytest.approx(0.8)  # 1 - 0.8 * 0.25


def test_cosine_schedule_end_points_and_midpoint():
    params = ScheduleParams(start=1.0, end=0.0)
    assert _at("cosine", 0.0, params) == pytest.approx(1.0)
    assert _at("cosine", 1.0, params) == pytest.approx(0.0)
    assert _at("cosine", 0.5, params) == pytest.approx(0.5)


def test_cosine_schedule_quarter_point_is_half_of_one_plus_cos_pi_over_four():
    params = ScheduleParams(start=1.0, end=0.0)
    assert _at("cosine", 0.25, params) == pytest.approx(0.5 + math.sqrt(2.0) / 4.0)


def test_cosine_schedule_can_increase():
    params = ScheduleParams(start=0.2, end=1.0)
    assert _at("cosine", 0.0, params) == pytest.approx(0.2)
    assert _at("cosine", 0.5, params) == pytest.approx(0.6)
    assert _at("cosine", 1.0, params) == pytest.approx(1.0)


def test_warmup_cosine_rises_linearly_then_decays_along_a_cosine():
    params = ScheduleParams(start=0.0, peak=1.0, end=0.1, warmup=0.2)
    assert _at("warmup_cosine", 0.0, params) == pytest.approx(0.0)
    assert _at("warmup_cosine", 0.1, params) == pytest.approx(0.5)  # halfway through the warm-up
    assert _at("warmup_cosine", 0.2, params) == pytest.approx(1.0)  # warm-up boundary: the peak
    assert _at("warmup_cosine", 0.6, params) == pytest.approx(0.55)  # halfway through the decay: (1 + 0.1) / 2
    assert _at("warmup_cosine", 1.0, params) == pytest.approx(0.1)


def test_warmup_cosine_is_continuous_at_the_warmup_boundary():
    params = ScheduleParams(start=0.0, peak=1.0, end=0.1, warmup=0.2)
    assert _at("warmup_cosine", 0.2 - 1e-9, params) == pytest.approx(1.0, abs=1e-6)


def test_warmup_cosine_without_warmup_starts_at_the_peak():
    params = ScheduleParams(start=0.0, peak=0.8, end=0.0, warmup=0.0)
    assert _at("warmup_cosine", 0.0, params) == pytest.approx(0.8)
    assert _at("warmup_cosine", 0.5, params) == pytest.approx(0.4)
    assert _at("warmup_cosine", 1.0, params) == pytest.approx(0.0)


@pytest.mark.parametrize("pass_rate, expected", [(0.0, 1.0), (1.0, 0.2), (0.25, 0.8)])
def test_adaptive_schedule_interpolates_on_pass_rate(pass_rate, expected):
    # 0.25: 1.0 * 0.75 + 0.2 * 0.25 = 0.8
    params = ScheduleParams(start=1.0, end=0.2)
    assert _at("adaptive", 0.3, params, pass_rate=pass_rate) == pytest.approx(expected)


def test_adaptive_schedule_ignores_progress():
    params = ScheduleParams(start=1.0, end=0.2)
    assert _at("adaptive", 0.0, params, 0.25) == _at("adaptive", 1.0, params, 0.25)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("progress", [1.5, -0.1, math.nan])
def test_every_schedule_rejects_progress_outside_zero_one(name, progress):
    with pytest.raises(ValueError, match=r"progress must be in \[0, 1\]"):
        build_schedule(name)(progress, 0.5, ScheduleParams())


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_rejects_pass_rate_outside_zero_one(name):
    with pytest.raises(ValueError, match=r"pass_rate must be in \[0, 1\]"):
        build_schedule(name)(0.5, 1.5, ScheduleParams())


@pytest.mark.parametrize("field", ["start", "end", "peak", "value"])
def test_params_reject_negative_lambda(field):
    with pytest.raises(ValueError, match=f"{field} must be a finite lambda >= 0"):
        ScheduleParams(**{field: -0.1})


@pytest.mark.parametrize("warmup", [1.0, -0.1])
def test_params_reject_warmup_outside_zero_one(warmup):
    with pytest.raises(ValueError, match=r"warmup must be a fraction in \[0, 1\)"):
        ScheduleParams(warmup=warmup)


def test_unknown_schedule_error_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        build_schedule("exponential")
    for name in SCHEDULES:
        assert name in str(excinfo.value)


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_schedule("linear")(lambda progress, pass_rate, params: 0.0)


def test_registered_custom_schedule_is_validated_like_the_built_ins():
    try:
        register_schedule("test_half")(lambda progress, pass_rate, params: 0.5)
        assert build_schedule("test_half")(0.3, 0.0, ScheduleParams()) == 0.5
        with pytest.raises(ValueError, match="progress"):
            build_schedule("test_half")(2.0, 0.0, ScheduleParams())
    finally:
        SCHEDULES.pop("test_half", None)

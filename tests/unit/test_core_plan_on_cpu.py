from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hpt.core.gates import GateConfig, GroupOutcome, Mode, build_gate
from hpt.core.groups import count_successes
from hpt.core.plan import DemoRow, padding_needed, plan_rebuild


def _groups(successes_per_group, n):
    scores = torch.tensor([1.0 if j < k else 0.0 for k in successes_per_group for j in range(n)])
    index = torch.arange(len(successes_per_group)).repeat_interleave(n)
    return count_successes(scores, index)


# ---------------------------------------------------------------- hand examples


def test_switch_plan_replaces_failed_groups_with_one_demo_row():
    # 3 prompts x 4 samples: group 0 solved twice, group 1 never, group 2 once
    groups = _groups([2, 0, 1], n=4)
    plan = plan_rebuild(groups, [True, True, True], build_gate("switch"), GateConfig(0), multiple=4)
    assert plan.keep_rows == (0, 1, 2, 3, 8, 9, 10, 11)
    assert plan.keep_weights == (1.0,) * 8
    assert plan.demos == (DemoRow(source_row=4, sft_weight=1.0, off_weight=0.0, in_group=False),)
    assert plan.demo_source_rows == (4,)
    assert plan.num_pad == 3  # 8 + 1 = 9 rows -> 12
    assert plan.mode_counts == {Mode.SFT: 1, Mode.RL: 2}
    assert plan.missing_demo_groups == 0
    assert plan.num_rows == 12


def test_switch_plan_with_off_band_routes_sft_off_and_rl_groups():
    # successes 0, 2, 4 of 4 with switch_gate=0, switch_gate_off=2 -> SFT, OFF, RL
    groups = _groups([0, 2, 4], n=4)
    config = GateConfig(switch_gate=0, switch_gate_off=2)
    plan = plan_rebuild(groups, [True] * 3, build_gate("switch"), config, multiple=8)
    assert plan.keep_rows == (8, 9, 10, 11)  # only the RL group's rollouts stay
    assert plan.keep_weights == (1.0, 1.0, 1.0, 1.0)
    assert plan.demos == (
        DemoRow(source_row=0, sft_weight=1.0, off_weight=0.0, in_group=False),
        DemoRow(source_row=4, sft_weight=0.0, off_weight=1.0, in_group=False),
    )
    assert plan.num_pad == 2  # 4 rollouts + 2 demos = 6 rows -> 8
    assert plan.num_rows == 8
    assert plan.mode_counts == {Mode.SFT: 1, Mode.OFF: 1, Mode.RL: 1}
    assert plan.fraction(Mode.SFT) == pytest.approx(1 / 3)
    assert plan.fraction(Mode.MIX) == 0.0
    assert plan.missing_demo_groups == 0


def test_luffy_plan_keeps_rollouts_and_adds_in_group_demo():
    groups = _groups([1, 3], n=4)
    plan = plan_rebuild(groups, [True, True], build_gate("luffy"), GateConfig(), multiple=4)
    assert plan.keep_rows == tuple(range(8))
    assert plan.keep_weights == (1.0,) * 8
    assert plan.demos == (
        DemoRow(source_row=0, sft_weight=0.0, off_weight=1.0, in_group=True),
        DemoRow(source_row=4, sft_weight=0.0, off_weight=1.0, in_group=True),
    )
    assert plan.num_pad == 2  # 8 + 2 = 10 -> 12
    assert plan.mode_counts == {Mode.MIX: 2}


def test_mix_plan_keeps_every_rollout_and_adds_an_sft_demo_outside_the_group():
    groups = _groups([0, 4], n=4)
    plan = plan_rebuild(groups, [True, True], build_gate("mix"), GateConfig(), multiple=4)
    assert plan.keep_rows == tuple(range(8))
    assert plan.keep_weights == (1.0,) * 8
    assert plan.demos == (
        DemoRow(source_row=0, sft_weight=1.0, off_weight=0.0, in_group=False),
        DemoRow(source_row=4, sft_weight=1.0, off_weight=0.0, in_group=False),
    )
    assert plan.num_pad == 2  # 8 + 2 = 10 -> 12
    assert plan.mode_counts == {Mode.MIX: 2}


def test_soft_plan_with_zero_successes_drops_rollouts_and_trains_demo_with_sft():
    # soft_type 0 at pass rate 0 is (rollout 0, off 0, sft 1): nothing to keep as a baseline
    groups = _groups([0], n=4)
    plan = plan_rebuild(groups, [True], build_gate("soft"), GateConfig(soft_type=0), multiple=1)
    assert plan.keep_rows == ()
    assert plan.keep_weights == ()
    assert plan.demos == (DemoRow(source_row=0, sft_weight=1.0, off_weight=0.0, in_group=False),)
    assert plan.num_pad == 0
    assert plan.mode_counts == {Mode.SFT: 1}


def test_soft_plan_keeps_zero_weight_rollouts_as_baseline_of_off_policy_demo():
    # soft_type 1 at pass rate 0 is (rollout 0, off 1, sft 1): rollouts stay with RL weight 0
    groups = _groups([0], n=4)
    plan = plan_rebuild(groups, [True], build_gate("soft"), GateConfig(soft_type=1), multiple=1)
    assert plan.keep_rows == (0, 1, 2, 3)
    assert plan.keep_weights == (0.0, 0.0, 0.0, 0.0)
    assert plan.demos == (DemoRow(source_row=0, sft_weight=1.0, off_weight=1.0, in_group=True),)
    assert plan.mode_counts == {Mode.OFF: 1}


def test_soft_plan_interpolated_group_keeps_weighted_rollouts():
    # n=4, s=2 under soft_type 0 -> (0.75, 0.375, 0.0625), see the gate tests
    groups = _groups([2], n=4)
    plan = plan_rebuild(groups, [True], build_gate("soft"), GateConfig(soft_type=0), multiple=1)
    assert plan.keep_rows == (0, 1, 2, 3)
    assert plan.keep_weights == pytest.approx((0.75,) * 4)
    (demo,) = plan.demos
    assert (demo.source_row, demo.in_group) == (0, True)
    assert (demo.sft_weight, demo.off_weight) == pytest.approx((0.0625, 0.375))
    assert plan.mode_counts == {Mode.MIX: 1}


def test_group_without_demonstration_is_trained_as_rl_and_counted():
    groups = _groups([0, 0], n=2)
    plan = plan_rebuild(groups, [False, True], build_gate("switch"), GateConfig(0), multiple=1)
    assert plan.keep_rows == (0, 1)
    assert plan.keep_weights == (1.0, 1.0)
    assert plan.demo_source_rows == (2,)
    assert plan.missing_demo_groups == 1
    assert plan.mode_counts == {Mode.SFT: 1, Mode.RL: 1}


def test_luffy_group_without_demonstration_falls_back_to_rl():
    groups = _groups([1], n=3)
    plan = plan_rebuild(groups, [False], build_gate("luffy"), GateConfig(), multiple=1)
    assert plan.keep_rows == (0, 1, 2)
    assert plan.keep_weights == (1.0, 1.0, 1.0)
    assert plan.demos == ()
    assert plan.missing_demo_groups == 1
    assert plan.mode_counts == {Mode.RL: 1}


def test_no_strategy_keeps_batch_unchanged():
    groups = _groups([0, 4, 1], n=4)
    plan = plan_rebuild(groups, [True] * 3, build_gate("no"), GateConfig(0), multiple=4)
    assert plan.keep_rows == tuple(range(12))
    assert plan.keep_weights == (1.0,) * 12
    assert plan.demo_source_rows == ()
    assert plan.num_pad == 0
    assert plan.mode_counts == {Mode.RL: 3}


def test_rl_group_without_demonstration_is_not_counted_missing():
    groups = _groups([3], n=4)
    plan = plan_rebuild(groups, [False], build_gate("switch"), GateConfig(0), multiple=1)
    assert plan.missing_demo_groups == 0


def test_plan_rejects_mismatched_demo_flags():
    with pytest.raises(ValueError, match="demonstration flags"):
        plan_rebuild(_groups([0, 1], n=2), [True], build_gate("switch"), GateConfig(0), multiple=1)


@pytest.mark.parametrize(("rows", "multiple", "expected"), [(9, 4, 3), (8, 4, 0), (1, 16, 15), (5, 1, 0), (0, 8, 0)])
def test_padding_needed(rows, multiple, expected):
    assert padding_needed(rows, multiple) == expected


def test_padding_rejects_non_positive_multiple():
    with pytest.raises(ValueError, match="multiple"):
        padding_needed(3, 0)


def test_fraction_of_empty_plan_is_zero():
    plan = plan_rebuild([], [], build_gate("switch"), GateConfig(0), multiple=4)
    assert plan.num_rows == 0
    assert plan.fraction(Mode.SFT) == 0.0


# ---------------------------------------------------------------- properties


@st.composite
def _gate_configs(draw):
    switch_gate = draw(st.integers(-1, 8))
    band = draw(st.one_of(st.none(), st.integers(0, 4)))
    return GateConfig(
        switch_gate=switch_gate,
        switch_gate_off=None if band is None else switch_gate + band,
        soft_type=draw(st.sampled_from([0, 1, 2])),
    )


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 16),
    successes=st.lists(st.integers(0, 16), min_size=1, max_size=12),
    demo_flags=st.lists(st.booleans(), min_size=12, max_size=12),
    gate_name=st.sampled_from(["switch", "soft", "no", "sft", "luffy", "mix"]),
    config=_gate_configs(),
    multiple=st.integers(1, 64),
)
def test_plan_never_loses_or_duplicates_loss_rows(n, successes, demo_flags, gate_name, config, multiple):
    successes = [min(k, n) for k in successes]
    groups = _groups(successes, n)
    has_demo = demo_flags[: len(groups)]
    gate = build_gate(gate_name)
    plan = plan_rebuild(groups, has_demo, gate, config, multiple)

    # layout
    assert plan.num_rows % multiple == 0
    assert 0 <= plan.num_pad < multiple
    assert plan.num_rows == len(plan.keep_rows) + len(plan.demos) + plan.num_pad
    assert len(plan.keep_weights) == len(plan.keep_rows)
    assert len(set(plan.keep_rows)) == len(plan.keep_rows)  # no rollout row carried twice
    assert all(w >= 0 for w in plan.keep_weights)
    assert sum(plan.mode_counts.values()) == len(groups)

    first_rows = {stats.rows[0]: (stats, demo) for stats, demo in zip(groups, has_demo, strict=True)}
    sources = Counter(plan.demo_source_rows)
    assert all(count == 1 for count in sources.values())  # at most one demonstration per group
    for source in sources:
        assert source in first_rows  # a demo reuses the prompt of its group's first row
        assert first_rows[source][1]  # ... and only groups with a demonstration get one

    weight_of = dict(zip(plan.keep_rows, plan.keep_weights, strict=True))
    demo_of = {d.source_row: d for d in plan.demos}
    missing = 0
    for stats, demo_available in zip(groups, has_demo, strict=True):
        route = gate(GroupOutcome(stats.successes, stats.size), config)
        kept = [r for r in stats.rows if r in weight_of]
        assert kept == [] or kept == list(stats.rows)  # a group is fully kept or fully dropped
        assert len({weight_of[r] for r in kept}) <= 1  # one RL weight per group
        demo = demo_of.get(stats.rows[0])
        assert kept or demo is not None  # every group teaches something
        if demo is not None:
            assert demo.sft_weight > 0 or demo.off_weight > 0
            assert demo.in_group == (bool(kept) and route.demo_in_group)  # shares a uid only with kept rollouts
        if kept and demo is None:
            assert weight_of[kept[0]] > 0  # zero-weight rollouts only stay as an in-group demo's baseline
        if kept and weight_of[kept[0]] == 0:
            assert demo is not None and demo.in_group and demo.off_weight > 0
        if route.uses_demo and not demo_available:
            missing += 1
            assert demo is None and weight_of[kept[0]] == 1.0  # RL fallback
    assert plan.missing_demo_groups == missing


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 8),
    successes=st.lists(st.integers(0, 8), min_size=1, max_size=12),
    demo_flags=st.lists(st.booleans(), min_size=12, max_size=12),
    switch_gate=st.integers(-1, 8),
    band=st.integers(0, 4),
)
def test_switch_plan_follows_thresholds(n, successes, demo_flags, switch_gate, band):
    successes = [min(k, n) for k in successes]
    groups = _groups(successes, n)
    has_demo = demo_flags[: len(groups)]
    config = GateConfig(switch_gate=switch_gate, switch_gate_off=switch_gate + band)
    plan = plan_rebuild(groups, has_demo, build_gate("switch"), config, multiple=1)
    demo_of = {d.source_row: d for d in plan.demos}
    expected_modes = Counter()
    for stats, demo_available in zip(groups, has_demo, strict=True):
        kept = stats.rows[0] in plan.keep_rows
        demo = demo_of.get(stats.rows[0])
        # switch never mixes: all rollouts or the single demonstration
        assert kept != (demo is not None)
        if not demo_available or stats.successes > switch_gate + band:
            assert kept
            expected_modes[Mode.RL] += 1
        elif stats.successes <= switch_gate:
            assert demo == DemoRow(stats.rows[0], 1.0, 0.0, False)
            expected_modes[Mode.SFT] += 1
        else:
            assert demo == DemoRow(stats.rows[0], 0.0, 1.0, False)
            expected_modes[Mode.OFF] += 1
    assert plan.mode_counts == dict(expected_modes)

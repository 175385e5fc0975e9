from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hpt.core.gates import GateConfig, build_gate
from hpt.core.groups import count_successes
from hpt.core.plan import padding_needed, plan_rebuild


def _groups(successes_per_group, n):
    scores = torch.tensor([1.0 if j < k else 0.0 for k in successes_per_group for j in range(n)])
    index = torch.arange(len(successes_per_group)).repeat_interleave(n)
    return count_successes(scores, index)


def test_switch_plan_replaces_failed_groups_with_one_demo_row():
    # 3 prompts x 4 samples: group 0 solved twice, group 1 never, group 2 once
    groups = _groups([2, 0, 1], n=4)
    plan = plan_rebuild(groups, [True, True, True], build_gate("switch"), GateConfig(0), multiple=4)
    assert plan.keep_rows == (0, 1, 2, 3, 8, 9, 10, 11)
    assert plan.demo_source_rows == (4,)
    assert plan.num_pad == 3  # 8 + 1 = 9 rows -> 12
    assert (plan.sft_groups, plan.rl_groups, plan.missing_demo_groups) == (1, 2, 0)
    assert plan.num_rows == 12


def test_group_without_demonstration_is_trained_as_rl_and_counted():
    groups = _groups([0, 0], n=2)
    plan = plan_rebuild(groups, [False, True], build_gate("switch"), GateConfig(0), multiple=1)
    assert plan.keep_rows == (0, 1)
    assert plan.demo_source_rows == (2,)
    assert plan.missing_demo_groups == 1
    assert (plan.sft_groups, plan.rl_groups) == (1, 1)


def test_no_strategy_keeps_batch_unchanged():
    groups = _groups([0, 4, 1], n=4)
    plan = plan_rebuild(groups, [True] * 3, build_gate("no"), GateConfig(0), multiple=4)
    assert plan.keep_rows == tuple(range(12))
    assert plan.demo_source_rows == ()
    assert plan.num_pad == 0


@pytest.mark.parametrize(("rows", "multiple", "expected"), [(9, 4, 3), (8, 4, 0), (1, 16, 15), (5, 1, 0)])
def test_padding_needed(rows, multiple, expected):
    assert padding_needed(rows, multiple) == expected


def test_padding_rejects_non_positive_multiple():
    with pytest.raises(ValueError, match="multiple"):
        padding_needed(3, 0)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 8),
    successes=st.lists(st.integers(0, 8), min_size=1, max_size=12),
    demo_flags=st.lists(st.booleans(), min_size=12, max_size=12),
    gate=st.integers(-1, 8),
    multiple=st.integers(1, 64),
)
def test_plan_never_loses_or_duplicates_loss_rows(n, successes, demo_flags, gate, multiple):
    successes = [min(k, n) for k in successes]
    groups = _groups(successes, n)
    has_demo = demo_flags[: len(groups)]
    plan = plan_rebuild(groups, has_demo, build_gate("switch"), GateConfig(gate), multiple)

    assert plan.num_rows % multiple == 0
    assert 0 <= plan.num_pad < multiple
    assert len(set(plan.keep_rows)) == len(plan.keep_rows)  # no rollout row carried twice
    assert plan.sft_groups + plan.rl_groups == len(groups)
    demo_groups = Counter()
    for stats, demo in zip(groups, has_demo, strict=True):
        kept = [r for r in stats.rows if r in plan.keep_rows]
        has_demo_row = stats.rows[0] in plan.demo_source_rows
        demo_groups[stats.group] += has_demo_row
        # every group contributes exactly one way: all its rollouts, or its single demonstration
        assert (len(kept) == stats.size) != has_demo_row
        if has_demo_row:
            assert demo and stats.successes <= gate
        elif stats.successes <= gate:
            assert not demo
    assert all(count <= 1 for count in demo_groups.values())

import pytest
import torch

from hpt.core.gates import GATES, GateConfig, Mode, build_gate
from hpt.core.groups import count_successes


def test_switch_gate_routes_zero_pass_prompts_to_sft():
    gate = build_gate("switch")
    assert gate(0, 4, GateConfig(switch_gate=0)) is Mode.SFT
    assert gate(1, 4, GateConfig(switch_gate=0)) is Mode.RL
    assert gate(4, 4, GateConfig(switch_gate=0)) is Mode.RL


def test_switch_gate_threshold_is_inclusive():
    gate = build_gate("switch")
    assert gate(2, 8, GateConfig(switch_gate=2)) is Mode.SFT
    assert gate(3, 8, GateConfig(switch_gate=2)) is Mode.RL


def test_switch_gate_minus_one_sends_everything_to_rl():
    gate = build_gate("switch")
    assert gate(0, 4, GateConfig(switch_gate=-1)) is Mode.RL


def test_no_gate_is_pure_rl():
    gate = build_gate("no")
    assert [gate(k, 4, GateConfig()) for k in range(5)] == [Mode.RL] * 5


def test_unknown_strategy_error_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        build_gate("balance")
    for name in GATES:
        assert name in str(excinfo.value)


def test_gate_config_rejects_gate_below_minus_one():
    with pytest.raises(ValueError, match="switch_gate"):
        GateConfig(switch_gate=-2)


def test_count_successes_groups_in_first_appearance_order():
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.2])
    groups = torch.tensor([7, 3, 7, 3, 7, 3])
    stats = count_successes(scores, groups)
    assert [s.group for s in stats] == [7, 3]
    assert [s.rows for s in stats] == [(0, 2, 4), (1, 3, 5)]
    assert [s.successes for s in stats] == [2, 1]
    assert stats[0].pass_rate == pytest.approx(2 / 3)


def test_count_successes_uses_threshold_not_equality():
    stats = count_successes(torch.tensor([0.9, -0.5, 0.5]), torch.tensor([0, 0, 0]), threshold=0.5)
    assert stats[0].successes == 1


def test_count_successes_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="equal length"):
        count_successes(torch.zeros(3), torch.zeros(4, dtype=torch.long))

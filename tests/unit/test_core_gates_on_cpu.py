import pytest
import torch

from hpt.core.gates import GATES, GateConfig, GroupOutcome, Mode, Route, build_gate, gate_name_at_step, register_gate
from hpt.core.groups import count_successes


def _route(name, successes, size, **config):
    return build_gate(name)(GroupOutcome(successes, size), GateConfig(**config))


def _weights(route):
    return (route.rollout_weight, route.off_weight, route.sft_weight)


def _assert_sft(route):
    assert route.mode is Mode.SFT
    assert (route.rollout_weight, route.sft_weight, route.off_weight) == (0.0, 1.0, 0.0)


def _assert_off(route):
    assert route.mode is Mode.OFF
    assert (route.rollout_weight, route.sft_weight, route.off_weight) == (0.0, 0.0, 1.0)


def _assert_rl(route):
    assert route.mode is Mode.RL
    assert (route.rollout_weight, route.sft_weight, route.off_weight) == (1.0, 0.0, 0.0)
    assert not route.uses_demo


# ---------------------------------------------------------------- switch


def test_switch_gate_routes_zero_pass_prompts_to_sft_and_drops_rollouts():
    _assert_sft(_route("switch", 0, 4, switch_gate=0))
    _assert_rl(_route("switch", 1, 4, switch_gate=0))
    _assert_rl(_route("switch", 4, 4, switch_gate=0))


def test_switch_gate_threshold_is_inclusive():
    _assert_sft(_route("switch", 2, 8, switch_gate=2))
    _assert_rl(_route("switch", 3, 8, switch_gate=2))


def test_switch_gate_off_band_trains_demo_with_off_policy_loss():
    # switch_gate=1, switch_gate_off=3: k in {0, 1} -> SFT, k in {2, 3} -> OFF, k >= 4 -> RL
    for k in (0, 1):
        _assert_sft(_route("switch", k, 8, switch_gate=1, switch_gate_off=3))
    for k in (2, 3):
        _assert_off(_route("switch", k, 8, switch_gate=1, switch_gate_off=3))
    for k in range(4, 9):
        _assert_rl(_route("switch", k, 8, switch_gate=1, switch_gate_off=3))


def test_switch_gate_off_equal_to_gate_opens_no_band():
    _assert_sft(_route("switch", 2, 8, switch_gate=2, switch_gate_off=2))
    _assert_rl(_route("switch", 3, 8, switch_gate=2, switch_gate_off=2))


def test_switch_gate_minus_one_sends_everything_to_rl():
    for k in range(5):
        _assert_rl(_route("switch", k, 4, switch_gate=-1))


def test_switch_gate_minus_one_with_off_band_has_no_sft_groups():
    _assert_off(_route("switch", 0, 4, switch_gate=-1, switch_gate_off=1))
    _assert_off(_route("switch", 1, 4, switch_gate=-1, switch_gate_off=1))
    _assert_rl(_route("switch", 2, 4, switch_gate=-1, switch_gate_off=1))


def test_gate_config_rejects_gate_below_minus_one():
    with pytest.raises(ValueError, match="switch_gate"):
        GateConfig(switch_gate=-2)


def test_gate_config_rejects_off_gate_below_switch_gate():
    with pytest.raises(ValueError, match="switch_gate_off"):
        GateConfig(switch_gate=2, switch_gate_off=1)


# ---------------------------------------------------------------- soft

# The original HPT table, indexed by s = successful rollouts out of 7: (rollout/on, off, sft) weights.
SOFT_ROWS_BY_HAND = {
    0: [
        (0, 0, 1),
        (0.125, 0.5, 0.5),
        (0.25, 1, 0.25),
        (0.5, 0.5, 0.125),
        (1, 0.25, 0),
        (1, 0.125, 0),
        (1, 0, 0),
        (1, 0, 0),
    ],
    1: [(0, 1, 1), (0.125, 1, 0.5), (0.25, 1, 0.25), (0.5, 1, 0.125), (1, 1, 0), (1, 1, 0), (1, 1, 0), (1, 1, 0)],
    2: [(0, 0, 1), (0.125, 0, 0.5), (0.25, 0, 0.25), (0.5, 0, 0.125), (1, 0, 0), (1, 0, 0), (1, 0, 0), (1, 0, 0)],
}


def _expected_mode(on, off, sft):
    if on == 0:
        return Mode.SFT if off == 0 else Mode.OFF
    return Mode.RL if off == 0 and sft == 0 else Mode.MIX


@pytest.mark.parametrize("soft_type", [0, 1, 2])
@pytest.mark.parametrize("s", range(8))
def test_soft_gate_with_seven_rollouts_reproduces_original_table_row(soft_type, s):
    on, off, sft = SOFT_ROWS_BY_HAND[soft_type][s]
    route = _route("soft", s, 7, soft_type=soft_type)
    assert _weights(route) == pytest.approx((on, off, sft), abs=1e-12)
    assert route.mode is _expected_mode(on, off, sft)
    assert route.demo_in_group is True


def test_soft_gate_modes_for_hand_picked_rows():
    assert _route("soft", 0, 7, soft_type=0).mode is Mode.SFT  # (0, 0, 1)
    assert _route("soft", 0, 7, soft_type=1).mode is Mode.OFF  # (0, 1, 1)
    assert _route("soft", 1, 7, soft_type=0).mode is Mode.MIX  # (0.125, 0.5, 0.5)
    assert _route("soft", 6, 7, soft_type=0).mode is Mode.RL  # (1, 0, 0)
    assert _route("soft", 5, 7, soft_type=1).mode is Mode.MIX  # (1, 1, 0)


def test_soft_gate_interpolates_pass_rate_for_other_group_sizes():
    # n=4, s=2: pass rate 0.5 -> position 3.5, halfway between (0.5, 0.5, 0.125) and (1, 0.25, 0)
    route = _route("soft", 2, 4, soft_type=0)
    assert _weights(route) == pytest.approx((0.75, 0.375, 0.0625))
    assert route.mode is Mode.MIX


def test_soft_gate_interpolation_hits_table_ends_exactly():
    assert _weights(_route("soft", 0, 4, soft_type=0)) == (0.0, 0.0, 1.0)
    assert _weights(_route("soft", 4, 4, soft_type=0)) == (1.0, 0.0, 0.0)
    assert _weights(_route("soft", 1, 1, soft_type=1)) == (1.0, 1.0, 0.0)


@pytest.mark.parametrize("soft_type", [0, 1, 2])
def test_soft_gate_covers_every_success_count_of_sixteen_rollouts(soft_type):
    for s in range(17):
        route = _route("soft", s, 16, soft_type=soft_type)
        for w in _weights(route):
            assert 0.0 <= w <= 1.0


def test_soft_gate_uses_user_table_verbatim():
    table = [(0, 0, 1), (0.2, 0.3, 0.4), (0.5, 0, 0), (0.7, 0.1, 0), (1, 0, 0)]
    for s, row in enumerate(table):
        route = _route("soft", s, 4, soft_table=table)
        assert _weights(route) == tuple(float(w) for w in row)
        assert route.demo_in_group is True


def test_soft_user_table_of_wrong_length_says_how_many_rows_are_needed():
    with pytest.raises(ValueError, match="5 rows"):
        _route("soft", 0, 4, soft_table=[(0, 0, 1)] * 4)


def test_soft_user_table_rejects_negative_weight():
    table = [(0, 0, 1), (0, 0, 1), (0.5, -0.1, 0), (1, 0, 0), (1, 0, 0)]
    with pytest.raises(ValueError, match="row 2"):
        _route("soft", 0, 4, soft_table=table)


def test_unknown_soft_type_error_lists_valid_types():
    with pytest.raises(ValueError, match=r"soft_type=9.*\[0, 1, 2\]"):
        _route("soft", 0, 7, soft_type=9)


# ---------------------------------------------------------------- no / sft / luffy / mix


def test_no_gate_is_pure_rl():
    for k in range(5):
        _assert_rl(_route("no", k, 4))


def test_sft_gate_is_pure_sft():
    for k in range(5):
        _assert_sft(_route("sft", k, 4))


def test_luffy_gate_mixes_rollouts_and_demo_in_one_group():
    for k in range(5):
        route = _route("luffy", k, 4)
        assert route.mode is Mode.MIX
        assert (route.rollout_weight, route.sft_weight, route.off_weight) == (1.0, 0.0, 1.0)
        assert route.demo_in_group is True


def test_mix_gate_trains_rollouts_and_demo_sft_outside_the_group():
    for k in range(5):
        route = _route("mix", k, 4)
        assert route.mode is Mode.MIX
        assert (route.rollout_weight, route.sft_weight, route.off_weight) == (1.0, 1.0, 0.0)
        assert route.demo_in_group is False


def test_chord_gate_trains_rollouts_and_the_experts_demo_outside_the_group():
    for k in range(5):  # the (1 - mu) / mu weights come from the trainer's schedule, not the gate
        route = _route("chord", k, 4)
        assert (route.rollout_weight, route.sft_weight, route.off_weight, route.demo_in_group) == (1, 1, 0, False)


def test_srft_gate_trains_the_demo_with_sft_and_off_policy_rl_inside_the_group():
    for k in range(5):
        route = _route("srft", k, 4)
        assert (route.rollout_weight, route.sft_weight, route.off_weight, route.demo_in_group) == (1, 1, 1, True)


# ---------------------------------------------------------------- registry


@pytest.fixture
def scratch_gate_names():
    names = []
    yield names
    for name in names:
        GATES.pop(name, None)


def test_builtin_gates_are_registered():
    assert {"switch", "soft", "no", "sft", "luffy", "mix", "chord", "srft"} <= set(GATES)


def test_unknown_strategy_error_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        build_gate("balance")
    for name in GATES:
        assert name in str(excinfo.value)


def test_registered_custom_gate_is_returned_by_build_gate(scratch_gate_names):
    scratch_gate_names.append("test_half_rl")

    @register_gate("test_half_rl")
    def half_rl(outcome, config):
        return Route(Mode.RL, rollout_weight=0.5)

    assert build_gate("test_half_rl") is half_rl
    assert build_gate("test_half_rl")(GroupOutcome(1, 4), GateConfig()).rollout_weight == 0.5


def test_registering_a_taken_name_raises(scratch_gate_names):
    scratch_gate_names.append("test_dup")
    register_gate("test_dup")(lambda outcome, config: Route(Mode.RL, rollout_weight=1.0))
    with pytest.raises(ValueError, match="already registered"):
        register_gate("test_dup")(lambda outcome, config: Route(Mode.SFT, sft_weight=1.0))
    builtin = GATES["switch"]
    with pytest.raises(ValueError, match="already registered"):
        register_gate("switch")(lambda outcome, config: Route(Mode.SFT, sft_weight=1.0))
    assert GATES["switch"] is builtin


# ---------------------------------------------------------------- value objects


@pytest.mark.parametrize("field", ["rollout_weight", "sft_weight", "off_weight"])
def test_route_rejects_negative_weight(field):
    with pytest.raises(ValueError, match=">= 0"):
        Route(Mode.MIX, **{field: -0.5})


def test_route_uses_demo_only_with_a_positive_demo_weight():
    assert not Route(Mode.RL, rollout_weight=1.0).uses_demo
    assert Route(Mode.SFT, sft_weight=0.1).uses_demo
    assert Route(Mode.OFF, off_weight=0.1).uses_demo


def test_group_outcome_rejects_more_successes_than_rollouts():
    with pytest.raises(ValueError, match="successes"):
        GroupOutcome(5, 4)


def test_group_outcome_rejects_negative_successes_and_empty_group():
    with pytest.raises(ValueError):
        GroupOutcome(-1, 4)
    with pytest.raises(ValueError):
        GroupOutcome(0, 0)


def test_group_outcome_pass_rate():
    assert GroupOutcome(3, 4).pass_rate == 0.75


# ---------------------------------------------------------------- count_successes


def test_count_successes_groups_in_first_appearance_order():
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.2])
    groups = torch.tensor([7, 3, 7, 3, 7, 3])
    stats = count_successes(scores, groups)
    assert [s.group for s in stats] == [7, 3]
    assert [s.rows for s in stats] == [(0, 2, 4), (1, 3, 5)]
    assert [s.successes for s in stats] == [2, 1]
    assert [s.size for s in stats] == [3, 3]
    assert stats[0].pass_rate == pytest.approx(2 / 3)


def test_count_successes_uses_threshold_not_equality():
    stats = count_successes(torch.tensor([0.9, -0.5, 0.5]), torch.tensor([0, 0, 0]), threshold=0.5)
    assert stats[0].successes == 1


def test_count_successes_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="equal length"):
        count_successes(torch.zeros(3), torch.zeros(4, dtype=torch.long))


def test_sft_warmup_routes_its_steps_through_the_sft_gate_then_the_strategy():
    assert [gate_name_at_step(step, "no", 2) for step in (1, 2, 3, 4)] == ["sft", "sft", "no", "no"]
    assert gate_name_at_step(1, "switch", 0) == "switch"  # 0 = no warm-up


def test_negative_sft_warmup_is_refused():
    with pytest.raises(ValueError, match="sft_warmup_steps"):
        gate_name_at_step(1, "no", -1)

"""The pass-rate memory and the selection policy, against hand-computed posteriors and probabilities."""

import pytest

from hpt.core.gates import GateConfig, GroupOutcome, build_gate
from hpt.core.groups import GroupStats
from hpt.core.pass_memory import MemoryConfig, PassRateMemory
from hpt.core.plan import plan_rebuild
from hpt.core.selection import Decision, RolloutSelector, SelectionConfig, mispredicted

N = 4


def test_posterior_adds_successes_and_failures_to_the_prior_and_decays_old_visits():
    memory = PassRateMemory(MemoryConfig(prior_alpha=1.0, prior_beta=1.0, decay=0.5))
    memory.update("q", successes=1, trials=4)
    assert memory.posterior("q") == (2.0, 4.0)  # 1 + 1, 1 + 3
    assert memory.mean("q") == pytest.approx(1 / 3)
    assert memory.variance("q") == pytest.approx(2 * 4 / (6 * 6 * 7))  # ab / ((a+b)^2 (a+b+1))
    memory.update("q", successes=0, trials=4)
    assert memory.posterior("q") == (1.5, 6.5)  # 1 + 0.5*1 + 0, 1 + 0.5*3 + 4
    assert memory.evidence("q") == 6.0
    assert memory.posterior("unseen") == (1.0, 1.0) and "unseen" not in memory


def test_predictive_all_fail_and_all_pass_probabilities_by_hand():
    memory = PassRateMemory(MemoryConfig(decay=1.0))
    memory.update("q", successes=0, trials=4)  # Beta(1, 5)
    assert memory.prob_all_fail("q", 4) == pytest.approx(5 / 6 * 6 / 7 * 7 / 8 * 8 / 9)  # = 5/9
    assert memory.prob_all_pass("q", 4) == pytest.approx(1 / 6 * 2 / 7 * 3 / 8 * 4 / 9)  # = 1/126
    assert memory.prob_all_fail("unseen", 4) == pytest.approx(1 / 5)  # uniform prior: 1/(n+1)


def test_memory_state_round_trips_and_rejects_bad_input():
    memory = PassRateMemory()
    memory.update(3, 2, 4)
    other = PassRateMemory()
    other.load_state_dict(memory.state_dict())
    assert other.counts == memory.counts
    with pytest.raises(ValueError, match="successes <= trials"):
        memory.update(3, 5, 4)
    with pytest.raises(ValueError, match="decay"):
        MemoryConfig(decay=0.0)


def _selector(explore: float = 0.0, **kwargs) -> RolloutSelector:
    return RolloutSelector(SelectionConfig(enable=True, explore=explore, memory=MemoryConfig(decay=1.0), **kwargs), N)


def test_predicted_fail_routes_only_with_a_demonstration_predicted_pass_defers_unseen_generates():
    selector = _selector()
    selector.observe("fail", 0)  # P(all fail) = 5/9 >= 0.5
    selector.observe("pass", 4)  # P(all pass) = 5/9
    selector.observe("mixed", 2)  # Beta(3, 3): P(all fail) = 3*4*5*6/(6*7*8*9) = 5/42
    assert selector.choose("fail", has_demo=True).decision is Decision.ROUTE
    assert selector.choose("fail", has_demo=False).decision is Decision.GENERATE
    assert selector.choose("pass", has_demo=True).decision is Decision.DEFER
    assert selector.choose("mixed", has_demo=True).decision is Decision.GENERATE
    assert selector.choose("unseen", has_demo=True).decision is Decision.GENERATE
    strict = _selector(threshold=0.6)  # 5/9 < 0.6: not confident enough
    strict.observe("fail", 0)
    assert strict.choose("fail", has_demo=True).decision is Decision.GENERATE


def test_probe_probability_falls_with_evidence_but_keeps_a_floor_under_decay():
    selector = RolloutSelector(SelectionConfig(explore=1.0, memory=MemoryConfig(decay=0.8)), N)
    assert selector.probe_probability("q") == 1.0  # no evidence
    selector.observe("q", 0)
    assert selector.probe_probability("q") == pytest.approx(1 / 5)  # evidence 4
    selector.observe("q", 0)
    assert selector.probe_probability("q") == pytest.approx(1 / (1 + 0.8 * 4 + 4))  # evidence 7.2
    for _ in range(200):
        selector.observe("q", 0)
    assert selector.probe_probability("q") == pytest.approx(1 / (1 + 4 / 0.2))  # evidence -> n / (1 - decay)


def test_skipped_prompts_are_probed_at_the_probe_rate_with_seeded_draws():
    def decisions(seed: int) -> list[Decision]:
        selector = RolloutSelector(SelectionConfig(explore=1.0, seed=seed, memory=MemoryConfig(decay=1.0)), N)
        selector.observe("q", 0)  # probe probability 1/5
        return [selector.choose("q", has_demo=True).decision for _ in range(4000)]

    first = decisions(7)
    assert set(first) == {Decision.PROBE, Decision.ROUTE}
    assert first.count(Decision.PROBE) / len(first) == pytest.approx(0.2, abs=0.02)
    assert decisions(7) == first and decisions(8) != first


def test_selector_state_restores_memory_and_the_draw_sequence():
    selector = _selector(explore=1.0)
    selector.observe("q", 0)
    selector.choose("q", True)
    state = selector.state_dict()
    after = [selector.choose("q", True).decision for _ in range(50)]
    resumed = _selector(explore=1.0)
    resumed.load_state_dict(state)
    assert [resumed.choose("q", True).decision for _ in range(50)] == after


def test_a_probe_contradicting_its_prediction_is_a_misprediction():
    assert mispredicted(Decision.ROUTE, successes=1, n=N) and not mispredicted(Decision.ROUTE, 0, N)
    assert mispredicted(Decision.DEFER, successes=3, n=N) and not mispredicted(Decision.DEFER, 4, N)


def test_routed_prompts_become_demonstration_rows_weighted_like_an_all_fail_group():
    gate, config = build_gate("switch"), GateConfig(0)
    groups = [GroupStats(group=0, rows=(0, 1), successes=1), GroupStats(group=1, rows=(2, 3), successes=0)]
    route = gate(GroupOutcome(0, 2), config)
    plan = plan_rebuild(groups, [True, True], gate, config, multiple=1, routed_rows=[4, 5], routed_route=route)
    assert plan.keep_rows == (0, 1)
    assert [(d.source_row, d.sft_weight, d.in_group) for d in plan.demos] == [(2, 1.0, False), (4, 1.0, False),
                                                                             (5, 1.0, False)]
    assert plan.routed_prompts == 2 and plan.fraction(route.mode) == pytest.approx(3 / 4)
    luffy_route = build_gate("luffy")(GroupOutcome(0, 2), config)
    with pytest.raises(ValueError, match="demonstration only"):
        plan_rebuild(groups, [True, True], gate, config, multiple=1, routed_rows=[4], routed_route=luffy_route)

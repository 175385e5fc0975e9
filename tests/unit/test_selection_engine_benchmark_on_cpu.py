"""The engine route of the selection benchmark: costs read from the engine's log, the choice on validation."""

import pytest

from benchmarks.selection.engine import CANDIDATES, OFF, SelectionRun, choose, run_cost
from hpt import metrics as M


def _history(shares: list[float], val: float, test: float, routed: int = 0) -> list[dict]:
    steps = [{"step": 0, "val/acc": 0.1, "test/acc": 0.1}]
    for step, share in enumerate(shares, start=1):
        steps.append({"step": step, M.ROLLOUT_TOKENS: 100.0 * step, M.ROLLOUT_NO_GRAD_SHARE: share,
                      "timing_s/gen": float(step), M.SELECTION_ROUTED: routed})
    steps[-1].update({"val/acc": val, "test/acc": test})
    return steps


def test_run_cost_weights_the_wasted_share_by_tokens_and_after_drops_the_first_epoch():
    cost = run_cost(_history([1.0, 0.5, 0.0], val=0.3, test=0.4, routed=2))
    assert cost.wasted_share == pytest.approx((100 + 100 + 0) / 600)
    assert cost.val == {0: 0.1, 3: 0.4} and cost.counters[M.SELECTION_ROUTED] == 6
    later = cost.after(1)
    assert later.wasted_share == pytest.approx(100 / 500) and later.gen_seconds_per_step == 2.5
    assert run_cost(_history([0.0], val=0.7, test=0.2), "val").val == {0: 0.1, 1: 0.7}  # the tuning split


def test_the_choice_is_the_least_wasteful_candidate_within_the_validation_tolerance():
    def spec(arm: str) -> SelectionRun:
        return SelectionRun("knowledge_gap", arm, 0, 1e-3, 0)

    # validation = mean of the last two evaluations: step 0 (0.1) and the last one
    results = {spec("off"): {"history": _history([0.8], val=0.50, test=0.0)},  # 0.30
               spec("default"): {"history": _history([0.6], val=0.48, test=0.0)},  # 0.29
               spec("eager"): {"history": _history([0.3], val=0.40, test=0.9)},  # 0.25: lowest waste, loses 0.05
               spec("greedy"): None}  # failed: not a candidate
    chosen, table = choose(results, ["knowledge_gap"], tolerance=0.02)
    assert chosen == "default" and [row["arm"] for row in table] == ["off", "default", "eager"]
    assert choose(results, ["knowledge_gap"], tolerance=0.06)[0] == "eager"
    assert spec("off").selection == OFF and not OFF.enable and all(c.enable for c in CANDIDATES.values())

"""The selection benchmark's numbers from metrics logs: token-weighted wasted share, rollout time, table."""

import json

import pytest

from benchmarks.selection.__main__ import arms
from benchmarks.selection.compare import GEN_TIME, VAL_ACC, arm_row, load_cost, markdown_table
from hpt import metrics as M


def _log(path, steps: list[dict]) -> None:
    path.write_text("".join(json.dumps({"step": i + 1, "data": data}) + "\n" for i, data in enumerate(steps)))


def test_wasted_share_is_token_weighted_and_the_table_compares_the_arms(tmp_path):
    off, on = tmp_path / "off.jsonl", tmp_path / "on.jsonl"
    _log(off, [{M.ROLLOUT_TOKENS: 100.0, M.ROLLOUT_NO_GRAD_SHARE: 0.5, GEN_TIME: 4.0},
               {M.ROLLOUT_TOKENS: 300.0, M.ROLLOUT_NO_GRAD_SHARE: 0.1, GEN_TIME: 2.0, VAL_ACC: 0.4}])
    _log(on, [{M.ROLLOUT_TOKENS: 100.0, M.ROLLOUT_NO_GRAD_SHARE: 0.0, GEN_TIME: 1.0, M.SELECTION_ROUTED: 3,
               M.SELECTION_PROBES: 1, M.SELECTION_MISPREDICTIONS: 1},
              {M.ROLLOUT_TOKENS: 100.0, M.ROLLOUT_NO_GRAD_SHARE: 0.2, GEN_TIME: 1.0, VAL_ACC: 0.5,
               M.SELECTION_ROUTED: 2}])
    cost_off, cost_on = load_cost(off), load_cost(on)
    assert cost_off.wasted_share == pytest.approx((50 + 30) / 400)
    assert cost_off.gen_seconds_per_step == 3.0 and cost_on.wasted_share == pytest.approx(20 / 200)
    rows = [arm_row("selection off", {0: cost_off}), arm_row("selection on", {0: cost_on})]
    assert rows[1]["counters_mean"][M.SELECTION_ROUTED] == 5 and rows[1]["final_acc_mean"] == 0.5
    table = markdown_table(rows)
    assert "| selection off | 20.0% ± 0.0% | 3.00 ± 0.00 | 200 | 0.400" in table
    assert "| 5 / 0 / 1 / 1 |" in table and "off ÷ on: 3.00×" in table


def test_the_two_arms_differ_only_in_the_selection_switch():
    off, on = arms(64)
    assert [o for o in off.overrides if "rollout_selection" not in o] == \
        [o for o in on.overrides if "rollout_selection" not in o]
    assert "data.train_max_samples=64" in on.overrides and "trainer.rollout_selection.enable=true" in on.overrides


def test_a_run_without_rollout_metrics_is_refused(tmp_path):
    _log(tmp_path / "m.jsonl", [{VAL_ACC: 0.1}])
    with pytest.raises(ValueError, match="did the run train"):
        load_cost(tmp_path / "m.jsonl")

"""Rollout selection in the in-process engine: the step's refill, routed prompts as demonstration rows
without rollouts, the memory fed by every generated group, and the no-gradient token share."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hpt import metrics as M
from hpt.core import GateConfig, GroupStats, build_gate, plan_rebuild
from hpt.core.pass_memory import MemoryConfig
from hpt.core.plan import rollouts_with_gradient
from hpt.core.selection import Decision, RolloutSelector, SelectionConfig, pick_step
from hpt.toy.arithmetic import make_rows
from hpt.toy.engine import (
    ADAMW,
    MethodConfig,
    RunConfig,
    SelectingOrder,
    demonstration,
    plan_step,
    train,
    train_step,
)
from hpt.toy.tiny_model import save_tiny_model

N = 2
SWITCH = MethodConfig("switch", gate=GateConfig(switch_gate=0))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("engine_selection")
    save_tiny_model(out / "model", seed=0)
    rows = make_rows(12, seed=0, split="train", max_operand=5, max_ops=1)
    assert [row["extra_info"]["index"] for row in rows] == list(range(12))
    return out / "model", rows


class InOrder:
    """Prompts in their given order, cycling (a hand-checkable stand-in for the shuffled ``PromptOrder``)."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows, self.position = rows, 0

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, count: int) -> list[dict]:
        taken = [self.rows[(self.position + i) % len(self.rows)] for i in range(count)]
        self.position += count
        return taken


def _selector(explore: float = 0.0) -> RolloutSelector:
    """Prompts 0, 1 seen all-fail (routed), 2, 3 seen all-pass (deferred); the rest unseen (generated)."""
    selector = RolloutSelector(SelectionConfig(enable=True, explore=explore, memory=MemoryConfig(decay=1.0)), N)
    for key in (0, 1):
        selector.observe(key, 0)
    for key in (2, 3):
        selector.observe(key, N)
    return selector


def _keys(rows: list[dict]) -> list[int]:
    return [row["extra_info"]["index"] for row in rows]


def _model(toy):
    tokenizer = AutoTokenizer.from_pretrained(toy[0])
    return AutoModelForCausalLM.from_pretrained(toy[0], dtype=torch.float32), tokenizer


def test_pick_step_counts_routed_prompts_towards_the_batch_and_draws_past_deferred_ones():
    # Beta(1, 1 + 2) after 0/2: P(both fail) = 3/4 * 4/5 = 0.6 >= 0.5 -> ROUTE; 2/2 likewise -> DEFER
    keys = iter(range(12))
    pick = pick_step(lambda: next(keys, None), _selector(), 4, key=lambda k: k, has_demo=lambda k: True)
    assert (pick.route, pick.deferred, pick.generate, pick.complete) == ([0, 1], 2, [4, 5], True)
    assert next(keys) == 6  # nothing drawn beyond the step
    keys = iter(range(4))
    short = pick_step(lambda: next(keys, None), _selector(), 4, key=lambda k: k, has_demo=lambda k: True)
    assert (short.route, short.deferred, short.generate, short.complete) == ([0, 1], 2, [], False)
    keys = iter([0, 1, 4])
    forced = pick_step(lambda: next(keys, None), _selector(), 3, lambda k: k, lambda k: True, multiple=2)
    assert (forced.generate, forced.route, forced.forced) == ([4, 1], [0], 1)  # 2 generated: one routed moved


def test_a_prompt_without_demonstration_is_generated_and_a_probe_records_its_prediction():
    keys = iter([0, 2])
    pick = pick_step(lambda: next(keys, None), _selector(explore=100.0), 2, lambda k: k, lambda k: k != 0)
    assert pick.generate == [0, 2] and pick.probes == {2: Decision.DEFER}  # 0 has no demo; 2 probed (p = 1)


def test_the_engine_step_refills_to_the_batch_and_routed_prompts_get_demonstration_rows_only(toy):
    model, tokenizer = _model(toy)
    selecting = SelectingOrder(InOrder(toy[1]), _selector(), batch_size=4)
    pick = selecting.next_step()
    assert _keys(pick.route) == [0, 1] and pick.deferred == 2 and _keys(pick.generate) == [4, 5]
    run = RunConfig(steps=1, prompts_per_step=4, n=N, max_new_tokens=12, seed=0)
    torch.manual_seed(0)
    with_routed = plan_step(model, tokenizer, pick.generate, 1, run, SWITCH, pick.route)
    torch.manual_seed(0)
    without = plan_step(model, tokenizer, pick.generate, 1, run, SWITCH)
    assert with_routed.rollout_tokens == without.rollout_tokens  # routing generates nothing
    added = with_routed.rows[len(without.rows):]
    assert [r.response for r in added] == [demonstration(tokenizer, p, 12) for p in pick.route]
    assert all(r.demo and r.sft_weight == 1.0 and r.rl_weight == 0.0 and r.group < 0 for r in added)
    assert with_routed.plan.routed_prompts == 2 and len(with_routed.groups) == 2  # groups: generated prompts only


def test_every_generated_group_updates_the_memory_and_the_step_logs_the_counters(toy):
    model, tokenizer = _model(toy)
    selector = _selector(explore=100.0)  # every predicted skip is probed
    selecting = SelectingOrder(InOrder(toy[1]), selector, batch_size=4)
    pick = selecting.next_step()
    assert _keys(pick.generate) == [0, 1, 2, 3] and pick.probes == {
        0: Decision.ROUTE, 1: Decision.ROUTE, 2: Decision.DEFER, 3: Decision.DEFER}
    run = RunConfig(steps=1, prompts_per_step=4, n=N, max_new_tokens=12, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, **ADAMW)
    metrics, planned = train_step(model, tokenizer, optimizer, pick.generate, 1, run, SWITCH, pick.route)
    counters = selecting.observe(pick, planned.groups)
    successes = {g.group: g.successes for g in planned.groups}
    for position, key in enumerate([0, 1, 2, 3]):
        seen_before = (0.0, 2.0) if key < 2 else (2.0, 0.0)
        assert selector.memory.counts[key] == (seen_before[0] + successes[position],
                                               seen_before[1] + N - successes[position])
    wrong = sum(successes[k] > 0 for k in (0, 1)) + sum(successes[k] < N for k in (2, 3))
    assert counters == {M.SELECTION_GENERATED: 4, M.SELECTION_ROUTED: 0, M.SELECTION_DEFERRED: 0,
                        M.SELECTION_PROBES: 4, M.SELECTION_MISPREDICTIONS: wrong, M.SELECTION_MEMORY: 4}
    assert metrics[M.ROLLOUT_TOKENS] == planned.rollout_tokens > 0
    assert metrics[M.ROLLOUT_NO_GRAD_SHARE] == pytest.approx(planned.no_grad_tokens / planned.rollout_tokens)


def test_rollouts_with_gradient_are_kept_with_rl_weight_and_a_nonzero_advantage():
    scores = torch.tensor([0.0, 0, 1, 1, 1, 0])  # all-fail (to SFT under switch), all-pass, mixed
    groups = [GroupStats(0, (0, 1), 0), GroupStats(1, (2, 3), 2), GroupStats(2, (4, 5), 1)]
    plan = plan_rebuild(groups, [True] * 3, build_gate("switch"), GateConfig(switch_gate=0), multiple=1)
    assert rollouts_with_gradient(scores, groups, plan).tolist() == [False, False, False, False, True, True]


def test_a_run_with_selection_logs_its_counters_each_step_and_is_refused_for_a_gate_keeping_failures(toy):
    model, tokenizer = _model(toy)
    run = RunConfig(steps=3, prompts_per_step=4, n=N, lr=1e-3, max_new_tokens=12, seed=0, eval_every=0)
    selection = SelectionConfig(enable=True, seed=3)
    history = train(model, tokenizer, toy[1], {"val": toy[1][:2]}, run, SWITCH, selection)
    for step in history[1:]:
        assert step[M.SELECTION_GENERATED] + step[M.SELECTION_ROUTED] == 4
        assert 0.0 <= step[M.ROLLOUT_NO_GRAD_SHARE] <= 1.0 and step["timing_s/gen"] > 0
    # the first epoch (12 prompts, 3 steps) sees only unseen prompts: each is generated and remembered
    assert [step[M.SELECTION_MEMORY] for step in history[1:]] == [4, 8, 12]
    assert [step[M.SELECTION_ROUTED] + step[M.SELECTION_DEFERRED] for step in history[1:]] == [0, 0, 0]
    with pytest.raises(ValueError, match="route_fail"):
        train(model, tokenizer, toy[1], {}, run, MethodConfig("no"), selection)

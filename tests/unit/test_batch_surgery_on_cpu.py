"""DataProto surgery: the rebuilt batch has the planned rows, consistent masks and no duplicated loss."""

import numpy as np
import pytest
import torch
from verl import DataProto

from hpt.core.gates import GateConfig, build_gate
from hpt.core.groups import count_successes
from hpt.core.plan import plan_rebuild
from hpt.toy.tiny_model import build_tokenizer
from hpt.trainer.batch import DemoOptions, apply_plan, demonstration_target, group_index, tokenize_demonstration

PROMPT_LEN, RESPONSE_LEN, N = 5, 8, 2
SWITCH_AT_0 = GateConfig(0)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def _rollout_batch(successes: list[int], targets: list[str | None]) -> DataProto:
    """Agent-loop-shaped batch: N rollouts per prompt, reward on the last response token."""
    rows = len(successes) * N
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(3, 21, (rows, PROMPT_LEN), generator=g)
    prompt_mask = torch.ones_like(prompts)
    prompt_mask[:, 0] = 0
    response_mask = (torch.arange(RESPONSE_LEN)[None] < torch.randint(2, RESPONSE_LEN, (rows, 1), generator=g)).long()
    scores = torch.zeros(rows, RESPONSE_LEN)
    for p, k in enumerate(successes):
        for j in range(k):
            scores[p * N + j, 0] = 1.0
    attention = torch.cat([prompt_mask, response_mask], 1)
    batch = DataProto.from_single_dict({
        "prompts": prompts * prompt_mask, "responses": torch.randint(3, 21, (rows, RESPONSE_LEN), generator=g),
        "input_ids": torch.zeros(rows, PROMPT_LEN + RESPONSE_LEN, dtype=torch.long), "attention_mask": attention,
        "position_ids": (attention.cumsum(1) - 1).clamp(min=0), "response_mask": response_mask, "rm_scores": scores,
    })
    batch.non_tensor_batch["uid"] = np.array([f"q{p}" for p in range(len(successes)) for _ in range(N)], dtype=object)
    batch.non_tensor_batch["extra_info"] = np.array(
        [{"index": p, "target": targets[p]} for p in range(len(successes)) for _ in range(N)], dtype=object
    )
    return batch


def _rebuild(batch: DataProto, tokenizer, multiple: int, gate: str = "switch", config=SWITCH_AT_0, scale=1.0):
    groups = count_successes(batch.batch["rm_scores"].sum(-1), group_index(batch.non_tensor_batch["uid"]))
    infos = batch.non_tensor_batch["extra_info"]
    has_demo = [demonstration_target(infos[g.rows[0]]) is not None for g in groups]
    plan = plan_rebuild(groups, has_demo, build_gate(gate), config, multiple)
    demos = [tokenize_demonstration(tokenizer, demonstration_target(infos[r]), RESPONSE_LEN)
             for r in plan.demo_source_rows]
    options = DemoOptions(tokenizer.pad_token_id, scale=scale, reward=1.0)
    return plan, demos, apply_plan(batch, plan, demos, options)


def test_group_index_follows_first_appearance():
    assert group_index(np.array(["b", "a", "b", "c", "a"], dtype=object)).tolist() == [0, 1, 0, 2, 1]


def test_demonstration_target_treats_blank_as_missing():
    assert demonstration_target({"target": "1+2=3#3"}) == "1+2=3#3"
    assert demonstration_target({"target": "  "}) is None
    assert demonstration_target({"target": None}) is None
    assert demonstration_target(None) is None


def test_tokenize_demonstration_appends_eos_and_counts_truncation(tokenizer):
    short = tokenize_demonstration(tokenizer, "1+2=3#3", max_tokens=8)
    assert short.token_ids == (*tokenizer("1+2=3#3", add_special_tokens=False)["input_ids"], tokenizer.eos_token_id)
    assert not short.truncated
    long = tokenize_demonstration(tokenizer, "12+7=19,19-3=16#16", max_tokens=8)
    assert len(long.token_ids) == 8 and long.truncated


def test_failed_group_becomes_one_demo_row_with_its_prompt(tokenizer):
    batch = _rollout_batch([1, 0, 2], ["1+1=2#2", "2+2=4#4", None])
    original_prompts = batch.batch["prompts"].clone()
    plan, demos, rebuilt = _rebuild(batch, tokenizer, multiple=4)

    assert len(rebuilt) == 8  # 2 RL groups x 2 rollouts + 1 demo + 3 pads
    demo = rebuilt[[4]]
    ids = list(demos[0].token_ids)
    assert torch.equal(demo.batch["prompts"][0], original_prompts[2])
    assert demo.batch["responses"][0, : len(ids)].tolist() == ids
    assert demo.batch["response_mask"][0].tolist() == [1] * len(ids) + [0] * (RESPONSE_LEN - len(ids))
    assert torch.equal(demo.batch["prefix_mask"][0], demo.batch["response_mask"][0].bool())
    assert torch.equal(demo.batch["input_ids"][0], torch.cat([original_prompts[2], demo.batch["responses"][0]]))
    assert demo.non_tensor_batch["extra_info"][0]["index"] == 1
    assert not rebuilt.batch["prefix_mask"][:4].any()  # rollouts are on-policy
    pads = rebuilt[[5, 6, 7]]
    assert pads.batch["response_mask"].sum() == 0 and pads.batch["prefix_mask"].sum() == 0
    assert pads.batch["rm_scores"].sum() == 0
    assert pads.batch["attention_mask"].sum(-1).tolist() == [1, 1, 1]  # one token each: nearly free to run
    assert demo.batch["rm_scores"].sum() == 0  # an SFT demonstration's advantage is unused: no reward
    weights = [rebuilt.batch[k].tolist() for k in ("hpt_rl_weight", "hpt_sft_weight", "hpt_off_weight")]
    assert weights == [[1.0] * 4 + [0.0] * 4, [0.0] * 4 + [1.0] + [0.0] * 3, [0.0] * 8]
    uids = rebuilt.non_tensor_batch["uid"]
    assert len(set(uids[4:])) == 4 and not set(uids[4:]) & set(uids[:4])  # singleton groups: zero advantage


def test_every_loss_row_appears_exactly_once(tokenizer):
    batch = _rollout_batch([0, 2, 0, 1, 0], ["1+1=2#2"] * 5)
    responses = batch.batch["responses"].clone()
    plan, _, rebuilt = _rebuild(batch, tokenizer, multiple=8)
    assert len(rebuilt) % 8 == 0
    loss_rows = rebuilt.batch["response_mask"].sum(-1) > 0
    assert int(loss_rows.sum()) == len(plan.keep_rows) + len(plan.demo_source_rows)
    kept = rebuilt.batch["responses"][: len(plan.keep_rows)]
    assert torch.equal(kept, responses[list(plan.keep_rows)])


def test_luffy_demo_joins_its_group_with_the_demo_reward(tokenizer):
    batch = _rollout_batch([0, 1], ["1+1=2#2", "2+2=4#4"])
    plan, demos, rebuilt = _rebuild(batch, tokenizer, multiple=1, gate="luffy", scale=0.5)
    assert len(rebuilt) == 6  # 2 groups x (2 rollouts + 1 demo)
    uids = rebuilt.non_tensor_batch["uid"]
    assert list(uids[4:]) == ["q0", "q1"]  # advantage over the mixed group
    scores = rebuilt.batch["rm_scores"][4:]
    last = [len(d.token_ids) - 1 for d in demos]
    assert scores.sum(-1).tolist() == [1.0, 1.0] and [int(s.nonzero()[0, 0]) for s in scores] == last
    assert rebuilt.batch["hpt_off_weight"].tolist() == [0.0] * 4 + [0.5, 0.5]  # weight x lambda
    assert rebuilt.batch["hpt_rl_weight"].tolist() == [1.0] * 4 + [0.0, 0.0]


def test_off_band_demo_is_its_own_group_scored_as_success(tokenizer):
    batch = _rollout_batch([1, 2], ["1+1=2#2", "2+2=4#4"])
    plan, _, rebuilt = _rebuild(batch, tokenizer, multiple=1, config=GateConfig(switch_gate=0, switch_gate_off=1))
    assert len(rebuilt) == 3  # group 0 (1 success) -> off-policy demo; group 1 kept
    demo_uid = rebuilt.non_tensor_batch["uid"][2]
    assert demo_uid.startswith("demo-")
    assert rebuilt.batch["rm_scores"][2].sum() == 1.0
    assert rebuilt.batch["hpt_off_weight"].tolist() == [0.0, 0.0, 1.0]
    assert rebuilt.batch["hpt_sft_weight"].tolist() == [0.0, 0.0, 0.0]

"""The HPT rebuild on multi-turn tool rollouts: the gate counts successes on the final reward, an all-fail
group trains its replayed trajectory (tool tokens attended, untrained), and the hpt/agent metrics."""

import verl  # noqa: F401
import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from verl import DataProto
from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

from hpt import metrics as M
from hpt.config import resolvers
from hpt.config.schema import HPTSettings
from hpt.core.gates import build_gate
from hpt.main import CPU_OVERLAY
from hpt.padding import left_pad
from hpt.toy.tool_model import build_tool_tokenizer, tool_call_text
from hpt.trainer.multiturn import DemoSource, TurnLimits, TurnReplayer, load_tools
from hpt.trainer.ray_trainer import HPTRayTrainer
from tests.unit.test_multiturn_demo_on_cpu import SEARCH_TOOL

N, PROMPT_WIDTH, RESPONSE_WIDTH = 4, 96, 160
CALL = tool_call_text("search", {"query": "zorbex moons"})
FOUND = [{"role": "assistant", "content": CALL}, {"role": "tool", "content": "zorbex has 4 moons"}]
ERROR = [{"role": "assistant", "content": tool_call_text("browse", {"url": "x"})},
         {"role": "tool", "content": "Unknown function 'browse'. Available tools: ['search']"}]


def _answer(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


@pytest.fixture(scope="module")
def replayer():
    path = SEARCH_TOOL
    tokenizer = build_tool_tokenizer()
    builder = create_continuous_token_builder(tokenizer, hf_model_type="qwen3")
    tools = load_tools(OmegaConf.create({"function_tool_path": str(path), "tool_config_path": None}))
    return TurnReplayer(builder, tokenizer, tools, "hermes", TurnLimits())


def _rollouts(replayer, groups: list[tuple[str, list[tuple[list[dict], float]]]]) -> DataProto:
    """Rollout rows as the agent loop leaves them: replayed trajectories, reward on the last attended token."""
    tok = replayer.tokenizer
    prompts, responses, masks, scores, infos, raw, uids = [], [], [], [], [], [], []
    for g, (question, rollouts) in enumerate(groups):
        messages = [{"role": "user", "content": question}]
        prompt_ids = replayer.builder.build_initial_tokens(messages, tools=replayer.schemas)
        target = json.dumps(FOUND + _answer("#4"))
        for turns, score in rollouts:
            demo = replayer.replay(prompt_ids, messages, turns, RESPONSE_WIDTH)
            prompts.append(prompt_ids)
            responses.append(list(demo.token_ids))
            masks.append(list(demo.loss_mask))
            row_scores = torch.zeros(RESPONSE_WIDTH)
            row_scores[len(demo.token_ids) - 1] = score
            scores.append(row_scores)
            infos.append({"index": g, "target_turns": target})
            raw.append(messages)
            uids.append(f"g{g}")
    prompt_ids, prompt_mask = left_pad(prompts, tok.pad_token_id, width=PROMPT_WIDTH)
    response_ids = torch.full((len(responses), RESPONSE_WIDTH), tok.pad_token_id)
    response_mask = torch.zeros(len(responses), RESPONSE_WIDTH, dtype=torch.long)
    attended = torch.zeros_like(response_mask)
    for i, (ids, mask) in enumerate(zip(responses, masks, strict=True)):
        response_ids[i, : len(ids)], response_mask[i, : len(ids)], attended[i, : len(ids)] = (
            torch.tensor(ids), torch.tensor(mask), 1)
    attention = torch.cat([prompt_mask.long(), attended], 1)
    batch = DataProto.from_single_dict({
        "prompts": prompt_ids, "responses": response_ids, "response_mask": response_mask,
        "input_ids": torch.cat([prompt_ids, response_ids], 1), "attention_mask": attention,
        "position_ids": (attention.cumsum(1) - 1).clamp(min=0), "rm_scores": torch.stack(scores),
    })
    for key, values in (("extra_info", infos), ("raw_prompt", raw), ("uid", uids),
                        ("agent_name", ["tool_agent"] * len(uids))):
        batch.non_tensor_batch[key] = np.empty(len(values), dtype=object)
        batch.non_tensor_batch[key][:] = values
    return batch


def _trainer(replayer) -> HPTRayTrainer:
    """The trainer's rebuild state without Ray or workers (what ``__init__`` sets up)."""
    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        config = compose(CPU_OVERLAY, overrides=[f"actor_rollout_ref.rollout.n={N}",
                                                 "actor_rollout_ref.actor.ppo_mini_batch_size=1"])
    trainer = HPTRayTrainer.__new__(HPTRayTrainer)
    trainer.config = config
    trainer.hpt = HPTSettings.from_trainer_config(config.trainer)
    trainer._gates = {"switch": build_gate("switch")}
    trainer._sft_stream, trainer._history, trainer._warned_truncation, trainer._selector = None, None, False, None
    trainer.tokenizer, trainer.processor = replayer.tokenizer, None
    trainer._demo_source = DemoSource(replayer.tokenizer, replayer)
    trainer.global_steps, trainer.total_training_steps = 1, 4
    trainer._get_dp_size = lambda worker_group, role: 1
    trainer.actor_rollout_wg = None
    return trainer


def test_switch_gates_multi_turn_groups_on_the_final_reward_and_trains_the_replayed_trajectory(replayer):
    batch = _rollouts(replayer, [
        ("moons of zorbex?", [(FOUND + _answer("#5"), 0.0), (_answer("#3"), 0.0), (ERROR + _answer("#1"), 0.0),
                              (FOUND + _answer("#6"), 0.0)]),  # all fail: SFT on the demonstration
        ("moons of zorbex, again?", [(FOUND + _answer("#4"), 1.0), (FOUND + _answer("#4"), 1.0),
                                     (_answer("#2"), 0.0), (_answer("#9"), 0.0)]),  # 2/4: RL
    ])
    metrics = {}
    rebuilt = _trainer(replayer)._rebuild(batch, metrics)

    assert metrics[M.GATE_SFT_FRAC] == 0.5 and metrics[M.GATE_RL_FRAC] == 0.5
    assert metrics[M.GATE_SUCCESS_HIST.format(k=0)] == 0.5 and metrics[M.GATE_SUCCESS_HIST.format(k=2)] == 0.5
    # the demo row: the group's own prompt, then the replayed trajectory; tool tokens attended, not trained
    demo = rebuilt[[N]]
    expected = replayer.replay(replayer.builder.build_initial_tokens([{"role": "user", "content": "moons of zorbex?"}],
                                                                     tools=replayer.schemas),
                               [{"role": "user", "content": "moons of zorbex?"}], FOUND + _answer("#4"), RESPONSE_WIDTH)
    length = len(expected.token_ids)
    assert demo.batch["responses"][0, :length].tolist() == list(expected.token_ids)
    assert demo.batch["response_mask"][0, :length].tolist() == list(expected.loss_mask)
    assert int(demo.batch["attention_mask"][0, PROMPT_WIDTH:].sum()) == length
    assert demo.batch["prefix_mask"][0].tolist() == demo.batch["response_mask"][0].bool().tolist()
    assert metrics[M.BATCH_DEMO_TOKENS] == sum(expected.loss_mask) < length
    # tool use, counted from the rollouts' own turns with the hermes parser
    calls = [1, 0, 1, 1, 1, 1, 0, 0]
    assert metrics[M.AGENT_TOOL_CALL_SHARE] == pytest.approx(np.mean([c > 0 for c in calls]))
    assert metrics[M.AGENT_TOOL_CALLS] == pytest.approx(np.mean(calls))
    assert metrics[M.AGENT_TOOL_ERRORS] == 1
    assert metrics[M.AGENT_DEMO_TOOL_ROWS] == 1 and metrics[M.AGENT_RL_TOOL_ROWS] == 2
    assert metrics[M.AGENT_DEMO_TURNS_DROPPED] == 0 and metrics[M.AGENT_DEMO_IMAGES] == 0  # text observations


def test_a_scored_demonstration_gets_its_reward_on_the_last_attended_token(replayer):
    batch = _rollouts(replayer, [("moons of zorbex?", [(_answer("#3"), 0.0)] * N)])
    trainer = _trainer(replayer)
    trainer.config.trainer.unify_strategy = "luffy"
    trainer.hpt = HPTSettings.from_trainer_config(trainer.config.trainer)
    trainer._gates = {"luffy": build_gate("luffy")}
    rebuilt = trainer._rebuild(batch, {})
    demo = rebuilt[[N]]  # luffy: the group's rollouts, then its demonstration in the group
    length = int(demo.batch["attention_mask"][0, PROMPT_WIDTH:].sum())
    assert demo.batch["response_mask"][0, length - 1] == 1  # ends on the answer's eos
    assert demo.batch["rm_scores"][0].nonzero().flatten().tolist() == [length - 1]

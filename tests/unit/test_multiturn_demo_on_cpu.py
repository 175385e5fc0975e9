"""Multi-turn demonstrations: the CT replay's tokens and loss mask, equality with verl's ToolAgentLoop,
demo rows (attention vs loss), and bad ``target_turns``."""

import verl  # noqa: F401
import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap
from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder
from verl.workers.rollout.replica import TokenOutput

from hpt.core.loss import term_counts, term_masks
from hpt.toy.tool_model import build_tool_tokenizer, tool_call_text
from hpt.trainer.batch import demonstration_rows
from hpt.trainer.multiturn import DemoTurnsError, TurnLimits, TurnReplayer, load_tools, parse_turns

SEARCH_TOOL = Path(__file__).parents[1] / "data" / "search_function_tool.py"  # one file: verl registers a name once
PROMPT = [{"role": "user", "content": "how many moons do zorbex and quil have?"}]
TURNS = [
    {"role": "assistant", "content": tool_call_text("search", {"query": "zorbex moons"})},
    {"role": "tool", "content": "zorbex has 4 moons"},
    {"role": "assistant", "content": tool_call_text("search", {"query": "quil moons"})},
    {"role": "tool", "content": "quil has 3 moons"},
    {"role": "assistant", "content": "#7"},
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tool_tokenizer()


@pytest.fixture(scope="module")
def multi_turn():
    return OmegaConf.create({"function_tool_path": str(SEARCH_TOOL), "tool_config_path": None, "format": "hermes"})


@pytest.fixture(scope="module")
def replayer(tokenizer, multi_turn):
    builder = create_continuous_token_builder(tokenizer, hf_model_type="qwen3")
    return TurnReplayer(builder, tokenizer, load_tools(multi_turn), "hermes", TurnLimits())


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_two_turn_demonstration_trains_assistant_tokens_and_attends_tool_tokens(tokenizer, replayer):
    turns = TURNS[:2] + TURNS[4:]  # call, result, answer
    prompt_ids = replayer.builder.build_initial_tokens(PROMPT, tools=replayer.schemas)
    demo = replayer.replay(prompt_ids, PROMPT, turns, budget=400)

    call = _ids(tokenizer, turns[0]["content"] + "<|im_end|>")
    tool = _ids(tokenizer, "\n<|im_start|>user\n<tool_response>zorbex has 4 moons</tool_response><|im_end|>\n"
                           "<|im_start|>assistant\n")
    answer = _ids(tokenizer, "#7<|im_end|>")
    assert list(demo.token_ids) == call + tool + answer  # the prompt is not part of the response
    assert list(demo.loss_mask) == [1] * len(call) + [0] * len(tool) + [1] * len(answer)
    assert (demo.truncated, demo.dropped_turns, demo.tool_calls) == (False, 0, 1)
    assert prompt_ids[-3:] == _ids(tokenizer, "<|im_start|>assistant\n")[-3:]


class ScriptedServer:
    """Replies with fixed assistant texts, one per call, as a token-in/token-out rollout server would."""

    def __init__(self, tokenizer, replies: list[str]):
        self.tokenizer, self.replies = tokenizer, list(replies)

    async def generate(self, request_id, prompt_ids, sampling_params, **kwargs) -> TokenOutput:
        ids = _ids(self.tokenizer, self.replies.pop(0)) + [self.tokenizer.eos_token_id]
        return TokenOutput(token_ids=ids, log_probs=[0.0] * len(ids), stop_reason="completed")


def _tool_agent_loop(tokenizer, multi_turn, response_length: int) -> ToolAgentLoop:
    config = OmegaConf.create({
        "actor_rollout_ref": {"rollout": {
            "prompt_length": 256, "response_length": response_length, "full_determinism": False,
            "multi_turn": {"max_user_turns": None, "max_assistant_turns": None, "max_parallel_calls": 1,
                           "max_tool_response_length": 256, "tool_response_truncate_side": "middle",
                           "format": "hermes"},
        }},
        "data": {},
    })
    assistant = [t["content"] for t in TURNS if t["role"] == "assistant"]
    return ToolAgentLoop(
        trainer_config=DictConfigWrap(config), server_manager=ScriptedServer(tokenizer, assistant),
        tokenizer=tokenizer, processor=None, dataset_cls=None, data_config=DictConfigWrap(config.data),
        hf_model_type="qwen3", tools=ToolListWrap(load_tools(multi_turn)),
    )


@pytest.mark.parametrize("response_length", [400, 90])
def test_replay_equals_tool_agent_loop_bit_for_bit(tokenizer, multi_turn, replayer, response_length):
    """verl's ToolAgentLoop with a scripted server and the real function tool vs the CT replay of the same turns."""
    loop = _tool_agent_loop(tokenizer, multi_turn, response_length)
    out = loop.loop.run_until_complete(loop.run(sampling_params={}, raw_prompt=PROMPT, extra_info={}))
    demo = replayer.replay(out.prompt_ids, PROMPT, TURNS, budget=response_length)
    assert list(demo.token_ids) == out.response_ids
    assert list(demo.loss_mask) == out.response_mask
    if response_length == 400:
        assert (demo.truncated, demo.tool_calls, out.num_turns) == (False, 2, 6)
    else:  # the first tool result does not fit: the rollout drops it (and stops); so does the demo
        assert out.num_turns == 2 and set(out.response_mask) == {1}
        assert demo.truncated and demo.dropped_turns == 2 and demo.tool_calls == 0


def test_overflowing_turn_is_dropped_whole_and_counted(tokenizer, replayer):
    prompt_ids = replayer.builder.build_initial_tokens(PROMPT, tools=replayer.schemas)
    full = replayer.replay(prompt_ids, PROMPT, TURNS, budget=400)
    call_1 = full.loss_mask.index(0)
    second_call_start = call_1 + full.loss_mask[call_1:].index(1)
    second_call_end = second_call_start + full.loss_mask[second_call_start:].index(0)
    demo = replayer.replay(prompt_ids, PROMPT, TURNS, budget=second_call_end - 1)  # call 2 does not fit
    # kept: call 1 only (its result is context for a turn that was dropped), never half a turn
    assert demo.token_ids == full.token_ids[:call_1] and set(demo.loss_mask) == {1}
    assert demo.truncated and demo.dropped_turns == 2 and demo.tool_calls == 0  # no tool result is kept


def test_demo_rows_attend_tool_tokens_but_train_only_assistant_tokens(tokenizer, replayer):
    from verl import DataProto
    import numpy as np

    prompt_ids = replayer.builder.build_initial_tokens(PROMPT, tools=replayer.schemas)
    demo = replayer.replay(prompt_ids, PROMPT, TURNS, budget=400)
    width, pad = len(prompt_ids) + 2, tokenizer.pad_token_id
    prompts = torch.tensor([[pad, pad] + prompt_ids])
    prompt_mask = torch.tensor([[0, 0] + [1] * len(prompt_ids)])
    responses = torch.full((1, 400), pad)
    source = DataProto.from_dict({
        "prompts": prompts, "responses": responses, "response_mask": torch.zeros(1, 400, dtype=torch.long),
        "attention_mask": torch.cat([prompt_mask, torch.zeros(1, 400, dtype=torch.long)], -1),
        "input_ids": torch.cat([prompts, responses], -1), "position_ids": torch.zeros(1, width + 400, dtype=torch.long),
        "prefix_mask": torch.zeros(1, 400, dtype=torch.bool),
    }, non_tensors={"uid": np.array(["g"], dtype=object)})
    rows = demonstration_rows(source, [demo], pad, np.array(["d"], dtype=object))
    attended = rows.batch["attention_mask"][0, width:]
    assert int(attended.sum()) == len(demo.token_ids)
    assert rows.batch["response_mask"][0, : len(demo.token_ids)].tolist() == list(demo.loss_mask)
    counts = term_counts(term_masks(rows.batch["response_mask"], rows.batch["prefix_mask"],
                                    torch.zeros(1), torch.ones(1), torch.zeros(1)))
    assert counts[1] == sum(demo.loss_mask) < len(demo.token_ids)  # hpt_sft_tokens: assistant tokens only


@pytest.mark.parametrize("turns, message", [
    ("not json", "not JSON"),
    (json.dumps([{"role": "tool", "content": "x"}]), "starts with a tool"),
    (json.dumps([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]), "both assistant"),
    (json.dumps(TURNS[:2]), "ends with a tool"),
    (json.dumps([{"role": "user", "content": "x"}]), "role 'user'"),
])
def test_malformed_target_turns_are_refused_with_the_row(turns, message):
    with pytest.raises(DemoTurnsError, match=message) as info:
        parse_turns(turns, "train.parquet row 3")
    assert "row 3" in str(info.value)


def test_unknown_tool_and_missing_tool_result_are_refused(replayer):
    unknown = [{"role": "assistant", "content": tool_call_text("browse", {"url": "x"})},
               {"role": "tool", "content": "r"}, {"role": "assistant", "content": "#1"}]
    with pytest.raises(DemoTurnsError, match=r"unknown tool\(s\) \['browse'\]"):
        replayer.check(unknown, "row 0")
    with pytest.raises(DemoTurnsError, match="0 tool message"):
        replayer.check([TURNS[0], {"role": "assistant", "content": "#1"}], "row 0")

"""The agent toy's token streams and rollouts: a demonstration encodes to exactly the stream verl's tool agent
loop builds (assistant tokens trained, tool tokens context), and the in-process rollout follows the loop's
rules (first call only, unknown tool text, turn limit, a tool turn that would overflow the budget dropped)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer

from hpt.toy.agent_rollout import RolloutLimits, response_text, rollout
from hpt.toy.tool_model import save_tool_model, tool_call_text
from hpt.toy.trajectory import IGNORE_INDEX, encode_trajectory, parse_tool_call, prompt_ids
from hpt.tools.schemas import SEARCH_SCHEMA

TOOLS = [SEARCH_SCHEMA]
PROMPT = [{"role": "user", "content": "zorbex moons + kalitu roads?"}]
TURNS = [
    {"role": "assistant", "content": tool_call_text("search", {"query": "zorbex moons"})},
    {"role": "tool", "content": "zorbex moons 4"},
    {"role": "assistant", "content": tool_call_text("search", {"query": "kalitu roads"})},
    {"role": "tool", "content": "kalitu roads 7"},
    {"role": "assistant", "content": "4+7=11#11"},
]
FACTS = {"zorbex moons": "zorbex moons 4", "kalitu roads": "kalitu roads 7"}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("tool_model")
    save_tool_model(out, seed=0)
    return AutoTokenizer.from_pretrained(out)


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_demonstration_labels_cover_assistant_turns_only(tokenizer) -> None:
    ids, labels = encode_trajectory(tokenizer, PROMPT, TURNS, TOOLS)
    prompt = prompt_ids(tokenizer, PROMPT, TOOLS)
    assert ids[: len(prompt)] == prompt and labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    trained = [token for token, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    eos = tokenizer.eos_token_id
    expected = [*_encode(tokenizer, TURNS[0]["content"]), eos, *_encode(tokenizer, TURNS[2]["content"]), eos]
    assert trained == expected + [*_encode(tokenizer, "4+7=11#11"), eos]
    context = "\n<|im_start|>user\n<tool_response>zorbex moons 4</tool_response><|im_end|>\n<|im_start|>assistant\n"
    first_call = len(prompt) + len(_encode(tokenizer, TURNS[0]["content"])) + 1
    assert ids[first_call : first_call + len(_encode(tokenizer, context))] == _encode(tokenizer, context)
    assert set(labels[first_call : first_call + len(_encode(tokenizer, context))]) == {IGNORE_INDEX}


def test_demonstration_stream_equals_verls_continuous_token_replay(tokenizer) -> None:
    from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

    builder = create_continuous_token_builder(tokenizer, hf_model_type="qwen3")
    stream = builder.build_initial_tokens(PROMPT, tools=TOOLS)
    mask = [IGNORE_INDEX] * len(stream)
    history = list(PROMPT)
    for turn in TURNS:
        if turn["role"] == "assistant":
            ids = _encode(tokenizer, turn["content"]) + [tokenizer.eos_token_id]
            stream = builder.merge_assistant_tokens(stream, ids).token_ids
            mask += ids
            call = parse_tool_call(turn["content"])
            calls = [{"type": "function", "function": {"name": call.name, "arguments": call.arguments}}] if call else []
            history.append({"role": "assistant", "content": "", "tool_calls": calls})
        else:
            merged = builder.merge_context_tokens(history, [*history, turn], stream, tools=TOOLS).token_ids
            mask += [IGNORE_INDEX] * (len(merged) - len(stream))
            stream = merged
            history.append(turn)
    assert encode_trajectory(tokenizer, PROMPT, TURNS, TOOLS) == (stream, mask)


def test_parse_tool_call_takes_the_first_well_formed_call() -> None:
    text = '<tool_call>{bad</tool_call><tool_call>{"name": "search", "arguments": {"query": "a"}}</tool_call>'
    call = parse_tool_call(text)
    assert (call.name, call.arguments) == ("search", {"query": "a"})
    assert parse_tool_call('<tool_call>{"name": "search"}</tool_call>') is None
    assert parse_tool_call("#4") is None


class ScriptedModel(torch.nn.Module):
    """A stand-in policy whose ``generate`` emits fixed turns (one script per row, a turn per call)."""

    def __init__(self, tokenizer, scripts: list[list[str]]):
        super().__init__()
        self.tokenizer, self.scripts, self.calls = tokenizer, scripts, 0

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def generate(self, input_ids, attention_mask, max_new_tokens, **_):
        rows = []
        for script in self.scripts[: input_ids.shape[0]]:
            ids = _encode(self.tokenizer, script[min(self.calls, len(script) - 1)]) + [self.tokenizer.eos_token_id]
            rows.append(ids[:max_new_tokens])
        self.calls += 1
        width = max(map(len, rows))
        padded = [row + [self.tokenizer.pad_token_id] * (width - len(row)) for row in rows]
        return torch.cat([input_ids, torch.tensor(padded)], dim=1)


def _search(query: str) -> list[str]:
    return [FACTS[query]] if query in FACTS else []


def test_scripted_rollout_reproduces_the_demonstration_stream(tokenizer) -> None:
    model = ScriptedModel(tokenizer, [[TURNS[0]["content"], TURNS[2]["content"], "4+7=11#11"]])
    prompt = prompt_ids(tokenizer, PROMPT, TOOLS)
    (trajectory,) = rollout(model, tokenizer, [prompt], _search, TOOLS, RolloutLimits(256, 3))
    ids, labels = encode_trajectory(tokenizer, PROMPT, TURNS, TOOLS)
    assert prompt + trajectory.response == ids
    assert trajectory.mask == [int(label != IGNORE_INDEX) for label in labels[len(prompt) :]]
    assert (trajectory.assistant_turns, trajectory.tool_calls, trajectory.tool_errors) == (3, 2, 0)
    assert response_text(tokenizer, trajectory).endswith("kalitu roads 7</tool_response>\nassistant\n4+7=11#11")


def test_rollout_limits_unknown_tools_and_budget(tokenizer) -> None:
    prompt = prompt_ids(tokenizer, PROMPT, TOOLS)
    call = TURNS[0]["content"]
    unknown = tool_call_text("lookup", {"query": "x"})
    model = ScriptedModel(tokenizer, [[unknown, "#0"], [call, call, call, call]])
    unknown_run, looping = rollout(model, tokenizer, [prompt, prompt], _search, TOOLS, RolloutLimits(256, 3))
    assert "Unknown function 'lookup'. Available tools: ['search']" in response_text(tokenizer, unknown_run)
    assert (unknown_run.tool_calls, unknown_run.tool_errors) == (1, 1)
    assert (looping.assistant_turns, looping.tool_calls) == (3, 2), "the third turn ends it, its call not run"
    budget = len(_encode(tokenizer, call)) + 1 + 10  # room for the call, not for the tool's answer
    (short,) = rollout(
        ScriptedModel(tokenizer, [[call]]), tokenizer, [prompt], _search, TOOLS, RolloutLimits(budget, 3)
    )
    assert short.mask == [1] * (budget - 10) and short.done, "the tool turn that would overflow is dropped"
    assert json.loads(response_text(tokenizer, short).removeprefix("<tool_call>").removesuffix("</tool_call>"))

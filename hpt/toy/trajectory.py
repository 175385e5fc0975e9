"""Token streams of tool trajectories, built the way verl's tool agent loop builds them (no verl import).

verl's Continuous-Token path (Qwen builder, which the tool-capable tiny model selects with
``model_type: qwen3``) makes a trajectory's tokens as: the chat-templated prompt with ``tools=`` and the
generation prompt; each assistant turn as the model's raw tokens ending in eos (trained); each run of
tool messages as ``\\n`` (the newline Qwen's template puts after ``<|im_end|>``, which generation does
not produce) plus the template's rendering of those messages after an assistant turn, fused with the
next generation prompt (context, not trained). The warm start trains on exactly these streams and the
toy's rollouts produce them, so what the model learns is what the trainer's rollouts will show it.
``tests/unit/test_agent_toy_on_cpu.py`` checks the equality against verl's builder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # label of tokens that take no part in the loss (same value as hpt.toy.warm_start)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
# A neutral history ending in an assistant turn: the text a tool group adds after it is its rendering.
_BEFORE_TOOLS = [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]


def _encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict], tools: list[dict] | None) -> list[int]:
    """The templated prompt with the tool schemas and the generation prompt, as the agent loop starts it."""
    text = tokenizer.apply_chat_template(list(messages), tools=tools, add_generation_prompt=True, tokenize=False)
    return _encode(tokenizer, text)


def context_ids(
    tokenizer: PreTrainedTokenizerBase, tool_messages: Sequence[dict], tools: list[dict] | None
) -> list[int]:
    """Tokens appended after an assistant turn (ending in eos) for a run of tool messages, up to the next turn."""
    before = tokenizer.apply_chat_template(_BEFORE_TOOLS, tools=tools, tokenize=False)
    after = tokenizer.apply_chat_template(
        _BEFORE_TOOLS + list(tool_messages), tools=tools, add_generation_prompt=True, tokenize=False
    )
    if not after.startswith(before):
        raise ValueError("the chat template is not prefix-stable: rendering more messages changed earlier text")
    return _encode(tokenizer, "\n") + _encode(tokenizer, after[len(before) :])


def assistant_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """One assistant turn as the model emits it: its raw text, then eos."""
    return [*_encode(tokenizer, text), tokenizer.eos_token_id]


def encode_trajectory(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[dict],
    turns: Sequence[dict[str, Any]],
    tools: list[dict] | None,
) -> tuple[list[int], list[int]]:
    """Input ids of prompt + demonstration turns, and labels that are ``IGNORE_INDEX`` except on assistant tokens.

    ``turns`` are the messages after the prompt (``extra_info.target_turns``): assistant turns with their
    raw text (tool calls written inline), runs of ``tool`` messages between them.
    """
    ids = prompt_ids(tokenizer, messages, tools)
    labels = [IGNORE_INDEX] * len(ids)
    index = 0
    while index < len(turns):
        if turns[index]["role"] == "assistant":
            part = assistant_ids(tokenizer, turns[index]["content"])
            ids, labels, index = ids + part, labels + part, index + 1
            continue
        end = index
        while end < len(turns) and turns[end]["role"] != "assistant":
            end += 1
        part = context_ids(tokenizer, turns[index:end], tools)
        ids, labels, index = ids + part, labels + [IGNORE_INDEX] * len(part), end
    return ids, labels


@dataclass(frozen=True)
class ToolCall:
    """The call a turn makes (the first well-formed one: verl's ``max_parallel_calls`` defaults to 1)."""

    name: str
    arguments: Any  # a JSON value; the tool decides what it accepts


def parse_tool_call(text: str) -> ToolCall | None:
    """The first well-formed ``<tool_call>{"name", "arguments"}</tool_call>`` of a turn, or None.

    As verl's hermes parser: a block with bad JSON or without both keys is skipped, and a turn without
    any well-formed call ends the trajectory.
    """
    for block in _TOOL_CALL.findall(text):
        try:
            call = json.loads(block)
        except json.JSONDecodeError:
            continue
        if isinstance(call, dict) and "name" in call and "arguments" in call:
            return ToolCall(name=str(call["name"]), arguments=call["arguments"])
    return None

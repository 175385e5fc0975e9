"""Checks for multi-turn demonstrations (``extra_info.target_turns``) before they reach a parquet file.

A demonstration the trainer cannot replay as a rollout would train the model on a conversation it can
never have, so preparers reject (and report with its row and reason) a trajectory that:

- ``bad_turns``: is not a non-empty list of ``assistant``/``tool`` messages with text content;
- ``bad_alternation``: does not start and end with an assistant turn, has a tool message that does not
  answer a call, an assistant turn with a call that no tool message answers, or an assistant turn
  without a call that is not the last;
- ``bad_tool_call``: has a ``<tool_call>`` block that is not hermes JSON with ``name`` and ``arguments``;
- ``unknown_tool``: calls a tool that is not among the run's tools;
- ``too_long``: does not fit the response budget (``data.max_response_length``), counted in the tokens
  the trainer's replay produces (assistant tokens + eos, tool turns as the chat template renders them).

One call per assistant turn: verl's ``multi_turn.max_parallel_calls`` defaults to 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from typing import Any

BAD_TURNS, BAD_ALTERNATION, BAD_TOOL_CALL, UNKNOWN_TOOL, TOO_LONG = (
    "bad_turns",
    "bad_alternation",
    "bad_tool_call",
    "unknown_tool",
    "too_long",
)
_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def _calls(content: str) -> list[Any] | str:
    """The parsed calls of one assistant turn, or the reason it is rejected."""
    calls = []
    for block in _BLOCK.findall(content):
        try:
            call = json.loads(block)
        except json.JSONDecodeError:
            return f"{BAD_TOOL_CALL}: not JSON: {block[:80]!r}"
        if not isinstance(call, dict) or not {"name", "arguments"} <= set(call):
            return f"{BAD_TOOL_CALL}: needs name and arguments: {block[:80]!r}"
        calls.append(call)
    if content.count("<tool_call>") != len(calls):
        return f"{BAD_TOOL_CALL}: an unclosed <tool_call>"
    return calls


def _structure_problem(turns: Any, tool_names: Collection[str]) -> str | None:
    if not isinstance(turns, list) or not turns:
        return f"{BAD_TURNS}: expected a non-empty list of messages"
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("role") not in ("assistant", "tool"):
            return f"{BAD_TURNS}: message {i} is not an assistant or tool message"
        if not isinstance(turn.get("content"), str):
            return f"{BAD_TURNS}: message {i} has no text content"
    if turns[0]["role"] != "assistant" or turns[-1]["role"] != "assistant":
        return f"{BAD_ALTERNATION}: must start and end with an assistant turn"
    pending = 0  # calls of the last assistant turn not yet answered by a tool message
    for i, turn in enumerate(turns):
        if turn["role"] == "tool":
            if pending == 0:
                return f"{BAD_ALTERNATION}: tool message {i} answers no call"
            pending -= 1
            continue
        if pending:
            return f"{BAD_ALTERNATION}: assistant turn {i} follows a call that no tool message answered"
        calls = _calls(turn["content"])
        if isinstance(calls, str):
            return f"{calls} (message {i})"
        unknown = sorted({str(c["name"]) for c in calls} - set(tool_names))
        if unknown:
            return f"{UNKNOWN_TOOL}: message {i} calls {unknown}, tools are {sorted(tool_names)}"
        if len(calls) > 1:
            return f"{BAD_ALTERNATION}: message {i} makes {len(calls)} calls; one per turn is replayed"
        if not calls and i != len(turns) - 1:
            return f"{BAD_ALTERNATION}: assistant turn {i} makes no call but is not the last"
        pending = len(calls)
    return None


def trajectory_problem(
    turns: Any,
    tool_names: Collection[str],
    budget: tuple[Any, int, list[dict] | None] | None = None,
    prompt: Sequence[dict[str, Any]] = (),
) -> str | None:
    """Why ``turns`` cannot be a demonstration (``reason: detail``), or None when it can.

    ``budget`` = ``(tokenizer, max_response_tokens, tool schemas)`` adds the length check; the prompt
    messages only matter for templates whose turn rendering depends on them.
    """
    problem = _structure_problem(turns, tool_names)
    if problem is not None or budget is None:
        return problem
    from hpt.toy.trajectory import IGNORE_INDEX, encode_trajectory

    tokenizer, max_tokens, tools = budget
    ids, labels = encode_trajectory(tokenizer, list(prompt) or [{"role": "user", "content": ""}], turns, tools)
    first = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    if len(ids) - first > max_tokens:
        return f"{TOO_LONG}: {len(ids) - first} response tokens, over the budget of {max_tokens}"
    return None

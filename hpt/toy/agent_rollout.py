"""In-process multi-turn rollouts with a search function: what verl's tool agent loop does, for measuring.

The warm start reports how competent it left the model as the trainer's gate will see it, so the
rollouts here follow ``ToolAgentLoop``'s rules (hermes calls, first well-formed call only, a turn limit,
a response budget that ends the trajectory and drops a tool turn that would overflow it, verl's text
for an unknown tool) and tokenise like its Continuous-Token path (``hpt.toy.trajectory``). Generation
is batched over the trajectories still running, one ``generate`` per assistant turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from hpt.generation import generate_response_ids
from hpt.toy.trajectory import context_ids, parse_tool_call
from hpt.tools.index import search_observation

SearchFn = Callable[[str], list[str]]


@dataclass
class Trajectory:
    """One rollout: response tokens with their mask (1 = generated, 0 = tool context) and what happened."""

    prompt: list[int]
    response: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    assistant_turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    done: bool = False


@dataclass(frozen=True)
class RolloutLimits:
    """verl's ``response_length`` and ``multi_turn.max_assistant_turns`` for these rollouts."""

    response_length: int = 256
    max_assistant_turns: int = 3


def _tool_message(call, search: SearchFn, tool_name: str) -> tuple[str, bool]:
    if call.name != tool_name:  # verl's own text for an unknown tool
        return f"Unknown function '{call.name}'. Available tools: ['{tool_name}']", True
    return search_observation(call.arguments, search)


def _after_turn(
    trajectory: Trajectory,
    generated: list[int],
    tokenizer: PreTrainedTokenizerBase,
    step: tuple[SearchFn, list[dict], str, RolloutLimits],
) -> None:
    """Append one generated turn, then the tool's answer when the turn made a call and the budget allows."""
    search, tools, tool_name, limits = step
    trajectory.response += generated
    trajectory.mask += [1] * len(generated)
    trajectory.assistant_turns += 1
    ended = not generated or generated[-1] != tokenizer.eos_token_id
    if ended or len(trajectory.response) >= limits.response_length:
        trajectory.done = True
        return
    call = parse_tool_call(tokenizer.decode(generated))
    if trajectory.assistant_turns >= limits.max_assistant_turns or call is None:
        trajectory.done = True
        return
    text, error = _tool_message(call, search, tool_name)
    trajectory.tool_calls += 1
    trajectory.tool_errors += int(error)
    context = context_ids(tokenizer, [{"role": "tool", "content": text}], tools)
    if len(trajectory.response) + len(context) >= limits.response_length:
        trajectory.done = True  # verl drops a tool turn that would not fit
        return
    trajectory.response += context
    trajectory.mask += [0] * len(context)


def rollout(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    search: SearchFn,
    tools: list[dict],
    limits: RolloutLimits = RolloutLimits(),
    temperature: float | None = 1.0,
) -> list[Trajectory]:
    """One trajectory per prompt (``temperature=None``: greedy); the caller seeds torch's RNG for sampling."""
    tool_name = tools[0]["function"]["name"]
    trajectories = [Trajectory(prompt=list(ids)) for ids in prompts]
    while active := [t for t in trajectories if not t.done]:
        budgets = [limits.response_length - len(t.response) for t in active]
        outputs = generate_response_ids(
            model, tokenizer, [t.prompt + t.response for t in active], max(budgets), temperature
        )
        for trajectory, generated, budget in zip(active, outputs, budgets, strict=True):
            _after_turn(trajectory, generated[:budget], tokenizer, (search, tools, tool_name, limits))
    return trajectories


def response_text(tokenizer: PreTrainedTokenizerBase, trajectory: Trajectory) -> str:
    """The response as verl's reward manager reads it: every token, special ones skipped."""
    return tokenizer.decode(trajectory.response, skip_special_tokens=True)

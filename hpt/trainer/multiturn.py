"""Multi-turn demonstrations: ``extra_info.target_turns`` replayed into the token stream a tool rollout has.

A tool-agent rollout's response is built by verl's Continuous Token (CT) builder: each generated turn
is appended as the model emitted it (loss mask 1), each run of tool results is rendered as a suffix
diff of the chat template and fused with the next generation prompt (mask 0), and model-specific
boundary tokens are inserted at the junctions (mask 0). A demonstration trajectory therefore goes
through the same builder calls, in the same order, from the group's own templated prompt (which
already carries the tool schemas): its tokens equal those a rollout emitting the same turns would
have, bit for bit, for every model family verl supports. Re-rendering the whole conversation with the
chat template would not be equivalent (Qwen3's template rewrites past assistant turns).

Truncation keeps whole turns: a turn that overflows the response budget is dropped with everything
after it (only a first assistant turn that alone overflows is cut), and the dropped turns are counted.

A tool message may name images (``"images": [path, ...]``, e.g. a retrieved page and a crop of it): it
is replayed as the tool agent loop builds an image tool response, a list of image parts then the text,
so a vision-language builder expands each image into its tokens (mask 0, never trained), and the kept
turns' images travel with the demonstration (``Demonstration.images``) into the row's pixel inputs.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import asyncio
import concurrent.futures
import json
import logging
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig
from verl.experimental.agent_loop.tool_parser import ToolParser
from verl.tools.schemas import OpenAIFunctionCallSchema, OpenAIFunctionParsedSchema
from verl.tools.tool_registry import load_all_tools
from verl.utils.import_utils import resolve_config_path

from hpt.trainer.batch import Demonstration, demonstration_target, tokenize_demonstration

logger = logging.getLogger(__name__)

TOOL_AGENT = "tool_agent"
TURNS_KEY = "target_turns"
TOOL_PATH_KEYS = ("tool_config_path", "function_tool_path")
IMAGES_KEY = "images"
MULTI_TURN = "actor_rollout_ref.rollout.multi_turn"


class DemoTurnsError(ValueError):
    """A ``target_turns`` demonstration that no rollout could produce; the message names the row and the fix."""


def target_turns(extra_info: Any) -> str | None:
    """The raw ``extra_info.target_turns`` JSON string, or None when absent/empty."""
    raw = extra_info.get(TURNS_KEY) if isinstance(extra_info, dict) else None
    return raw if isinstance(raw, str) and raw.strip() else None


def parse_turns(raw: str, where: str) -> list[dict[str, Any]]:
    """The messages of a ``target_turns`` string, checked for the shape a tool rollout has.

    assistant, then (tool+, assistant)*: every run of tool results answers the assistant turn before
    it and the trajectory ends on an assistant turn (the answer).
    """
    try:
        turns = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DemoTurnsError(f"{where}: extra_info.{TURNS_KEY} is not JSON ({exc}); store json.dumps(turns)") from exc
    if not isinstance(turns, list) or not turns:
        raise DemoTurnsError(f"{where}: extra_info.{TURNS_KEY} must be a non-empty JSON list of messages")
    previous = None
    for i, message in enumerate(turns):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise DemoTurnsError(f"{where}: message {i} of extra_info.{TURNS_KEY} needs a string 'content'")
        role = message.get("role")
        if role not in ("assistant", "tool"):
            raise DemoTurnsError(f"{where}: message {i} has role {role!r}; {TURNS_KEY} holds assistant and tool turns")
        if role == "assistant" and previous == "assistant":
            raise DemoTurnsError(
                f"{where}: messages {i - 1} and {i} are both assistant turns; a rollout ends after an assistant "
                "turn without a tool call, so put the tool results between them or merge the turns"
            )
        if role == "tool" and previous is None:
            raise DemoTurnsError(f"{where}: {TURNS_KEY} starts with a tool message; start it with an assistant turn")
        images = message.get(IMAGES_KEY)
        if images is not None and (
            role != "tool" or not isinstance(images, list) or not all(isinstance(p, str) and p for p in images)
        ):
            raise DemoTurnsError(f"{where}: message {i}: '{IMAGES_KEY}' is a list of image paths on tool messages")
        previous = role
    if previous != "assistant":
        raise DemoTurnsError(f"{where}: {TURNS_KEY} ends with a tool message; end it with the assistant's answer")
    return turns


@dataclass(frozen=True)
class TurnLimits:
    """The ``multi_turn`` settings a tool rollout stops or truncates by."""

    max_assistant_turns: int | None = None
    max_user_turns: int | None = None
    max_parallel_calls: int = 1
    max_tool_response_length: int = 256
    tool_response_truncate_side: str = "middle"

    @classmethod
    def from_rollout_config(cls, multi_turn: DictConfig) -> "TurnLimits":
        return cls(
            max_assistant_turns=multi_turn.get("max_assistant_turns"),
            max_user_turns=multi_turn.get("max_user_turns"),
            max_parallel_calls=int(multi_turn.get("max_parallel_calls", 1)),
            max_tool_response_length=int(multi_turn.get("max_tool_response_length", 256)),
            tool_response_truncate_side=str(multi_turn.get("tool_response_truncate_side", "middle")),
        )

    def clip_tool_text(self, text: str) -> str:
        """A tool result as the rollout shows it: cut to ``max_tool_response_length`` characters."""
        limit = self.max_tool_response_length
        if len(text) <= limit:
            return text
        if self.tool_response_truncate_side == "left":
            return "(truncated)..." + text[-limit:]
        if self.tool_response_truncate_side == "right":
            return text[:limit] + "...(truncated)"
        return text[: limit // 2] + "...(truncated)..." + text[-(limit // 2) :]


def load_tools(multi_turn: DictConfig) -> list:
    """The rollout's tools, loaded once as the agent loop loads them (empty without tool paths)."""
    paths = {key: multi_turn.get(key) for key in TOOL_PATH_KEYS}
    return load_all_tools(**{key: resolve_config_path(path) if path else None for key, path in paths.items()})


def run_sync(coroutine):
    """Run a coroutine to completion from sync code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@dataclass
class _Replay:
    """The growing token stream of one replayed trajectory and what was kept of it."""

    runtime: list[int]
    mask: list[int]
    messages: list[dict[str, Any]]
    assistant_turns: int = 0
    user_turns: int = 0
    tool_calls: int = 0
    images: tuple = ()


class TurnReplayer:
    """Replays ``target_turns`` through verl's CT builder exactly as ``ToolAgentLoop`` builds a rollout."""

    def __init__(self, builder, tokenizer, tools: list, tool_format: str, limits: TurnLimits):
        self.builder, self.tokenizer, self.limits = builder, tokenizer, limits
        self.parser = ToolParser.get_tool_parser(tool_format, tokenizer)
        self.tool_objects = [tool.tool_schema for tool in tools]
        self.schemas = [schema.model_dump(exclude_unset=True, exclude_none=True) for schema in self.tool_objects]
        self.tool_names = {tool.name for tool in tools}

    def calls(self, ids: list[int]) -> tuple[str, list]:
        """The tool calls the rollout's parser reads in one assistant turn (content, calls)."""
        return run_sync(self.parser.extract_tool_calls(ids, self.tool_objects))

    def turn_ids(self, text: str) -> list[int]:
        """An assistant turn's tokens as generated: the raw text, then EOS."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]

    def check(self, turns: list[dict[str, Any]], where: str) -> None:
        """Every tool run answers the calls of the turn before it; every called tool exists."""
        i = 0
        while i < len(turns):
            _, calls = self.calls(self.turn_ids(turns[i]["content"]))
            unknown = sorted({call.name for call in calls} - self.tool_names)
            if unknown:
                raise DemoTurnsError(
                    f"{where}: assistant message {i} calls unknown tool(s) {unknown}; the rollout's tools are "
                    f"{sorted(self.tool_names)} ({MULTI_TURN}.tool_config_path / function_tool_path)"
                )
            end = i + 1
            while end < len(turns) and turns[end]["role"] == "tool":
                end += 1
            expected = min(len(calls), self.limits.max_parallel_calls)
            if end - i - 1 != expected:
                raise DemoTurnsError(
                    f"{where}: assistant message {i} makes {len(calls)} tool call(s) the rollout would run "
                    f"{expected} of (max_parallel_calls={self.limits.max_parallel_calls}), but {end - i - 1} tool "
                    "message(s) follow it; give one tool result per executed call"
                )
            i = end

    def replay(
        self, prompt_ids: list[int], prompt_messages: list[dict[str, Any]], turns: list[dict[str, Any]], budget: int
    ) -> Demonstration:
        """The demonstration's response tokens and loss mask (assistant 1, tool results and scaffolding 0)."""
        state = _Replay(runtime=list(prompt_ids), mask=[], messages=[dict(m) for m in prompt_messages])
        kept = None  # (runtime, mask, assistant turns) after the last whole assistant turn that fits
        i = 0
        while i < len(turns):
            ids = self.turn_ids(turns[i]["content"])
            self._merge(state, self.builder.merge_assistant_tokens(state.runtime, ids))
            state.assistant_turns += 1
            i += 1
            if len(state.mask) > budget and kept is not None:
                break  # keep whole turns: drop this one
            kept = (list(state.runtime), list(state.mask), state.assistant_turns, state.tool_calls, state.images)
            if len(state.mask) >= budget or self._turn_limit_reached(state):
                break
            content, calls = self.calls(ids)
            if not calls:
                break
            state.tool_calls += min(len(calls), self.limits.max_parallel_calls)
            state.messages.append(_assistant_message(content, calls[: self.limits.max_parallel_calls]))
            end = i
            while end < len(turns) and turns[end]["role"] == "tool":
                end += 1
            previous = list(state.messages)
            results = [self._tool_message(m) for m in turns[i:end]]
            state.messages.extend(message for message, _ in results)
            i = end
            merged = self.builder.merge_context_tokens(previous, state.messages, state.runtime, tools=self.schemas)
            mask, _ = self.builder.align_response_metadata(merged, state.mask)
            if len(mask) >= budget:
                break  # the rollout drops a tool turn that does not fit (its result is not in the sample)
            state.runtime, state.mask = merged.token_ids, mask
            state.images += tuple(image for _, images in results for image in images)
            state.user_turns += 1
        runtime, mask, kept_turns, tool_calls, images = kept
        total_turns = sum(m["role"] == "assistant" for m in turns)
        response = runtime[len(runtime) - len(mask) :]
        if runtime[: len(runtime) - len(mask)] != list(prompt_ids):
            raise RuntimeError("Continuous Token replay changed the prompt tokens; report this with the model type")
        return Demonstration(
            token_ids=tuple(response[:budget]),
            truncated=kept_turns < total_turns or len(mask) > budget,
            loss_mask=tuple(mask[:budget]),
            dropped_turns=total_turns - kept_turns,
            tool_calls=tool_calls,
            images=images,
        )

    def _merge(self, state: _Replay, merged) -> None:
        state.mask, _ = self.builder.align_response_metadata(merged, state.mask)
        state.runtime = merged.token_ids

    def _turn_limit_reached(self, state: _Replay) -> bool:
        limits = self.limits
        return bool(
            (limits.max_assistant_turns and state.assistant_turns >= limits.max_assistant_turns)
            or (limits.max_user_turns and state.user_turns >= limits.max_user_turns)
        )

    def _tool_message(self, message: dict[str, Any]) -> tuple[dict[str, Any], tuple]:
        """The tool message as the rollout records it, and the images it shows (opened)."""
        text = self.limits.clip_tool_text(message["content"])
        images = tuple(open_image(path) for path in message.get(IMAGES_KEY) or ())
        if images:  # verl's image tool response: image parts, then the text if any
            content = [{"type": "image", "image": image} for image in images]
            out = {"role": "tool", "content": content + ([{"type": "text", "text": text}] if text else [])}
        else:
            out = {"role": "tool", "content": text}
        if message.get("tool_call_id") is not None:
            out["tool_call_id"] = message["tool_call_id"]
        return out, images


def open_image(path: str):
    """A demonstration's observation image, loaded as RGB (what the image tools return)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as err:
        raise DemoTurnsError(
            f"demonstration image {path} cannot be read ({type(err).__name__}: {err}); the start-up check "
            f"reports every missing image of extra_info.{TURNS_KEY} with its row"
        ) from err


def _assistant_message(content: str, calls: list) -> dict[str, Any]:
    """The history entry a tool rollout records for a turn with tool calls (arguments as a dict)."""
    tool_calls = []
    for call in calls:
        parsed, bad = OpenAIFunctionCallSchema.from_openai_function_parsed_schema(
            OpenAIFunctionParsedSchema(name=call.name, arguments=call.arguments)
        )
        function = {"name": call.name, "arguments": call.arguments} if bad else parsed.model_dump()
        entry = {"type": "function", "function": function}
        if call.tool_call_id is not None:
            entry["id"] = call.tool_call_id
        tool_calls.append(entry)
    return {"role": "assistant", "content": content or "", "tool_calls": tool_calls}


def agent_names(batch) -> list[str | None]:
    """Each row's ``agent_name``; None where the batch no longer carries it (verl hands the column to the
    agent loop with the other prompt-side fields, so a rollout batch may come back without it)."""
    names = batch.non_tensor_batch.get("agent_name")
    return [None] * len(batch) if names is None else [str(n) for n in names]


def has_demonstration(extra_info: Any, agent_name: str | None) -> bool:
    """A row trains a demonstration: ``target``, or ``target_turns`` on a tool-agent (or unknown-agent) row."""
    return uses_turns(extra_info, agent_name) or demonstration_target(extra_info) is not None


def uses_turns(extra_info: Any, agent_name: str | None) -> bool:
    """The row's demonstration is its ``target_turns`` trajectory (start-up checks refuse them elsewhere)."""
    return agent_name in (TOOL_AGENT, None) and target_turns(extra_info) is not None


def unpadded_prompt(batch, row: int) -> list[int]:
    """A row's templated prompt ids without the left padding (what the agent loop built)."""
    width = batch.batch["prompts"].shape[-1]
    attended = batch.batch["attention_mask"][row, :width].bool()
    return batch.batch["prompts"][row][attended].tolist()


class DemoSource:
    """Per row, the demonstration to train: a tool-agent row's ``target_turns`` replayed through the CT
    builder, otherwise ``extra_info.target`` as one response (single-turn, unchanged)."""

    def __init__(self, tokenizer, replayer: TurnReplayer | None):
        self.tokenizer, self.replayer = tokenizer, replayer

    def tools_for(self, agent_name: str | None) -> list[dict] | None:
        """The tool schemas the agent loop templates a prompt with (None for single-turn rows)."""
        return self.replayer.schemas if agent_name == TOOL_AGENT and self.replayer is not None else None

    def demo(self, batch, row: int, budget: int) -> Demonstration:
        """Row ``row``'s demonstration, from its own unpadded prompt and ``raw_prompt``."""
        info = batch.non_tensor_batch["extra_info"][row]
        if not uses_turns(info, agent_names(batch[[row]])[0]):
            return tokenize_demonstration(self.tokenizer, demonstration_target(info), budget)
        where = f"prompt extra_info.index={info.get('index')!r}"
        if self.replayer is None:
            raise DemoTurnsError(
                f"{where} has extra_info.{TURNS_KEY} but no tools are configured; set {MULTI_TURN}.tool_config_path "
                "or function_tool_path"
            )
        turns = parse_turns(target_turns(info), where)
        self.replayer.check(turns, where)
        messages = list(batch.non_tensor_batch["raw_prompt"][row])
        return self.replayer.replay(unpadded_prompt(batch, row), messages, turns, budget)


def demo_source(config: DictConfig, tokenizer, builder) -> DemoSource:
    """The trainer's demonstration source: tools and parser loaded once from ``multi_turn``."""
    rollout = config.actor_rollout_ref.rollout
    multi_turn = rollout.multi_turn
    if not any(multi_turn.get(key) for key in TOOL_PATH_KEYS):
        return DemoSource(tokenizer, None)
    replayer = TurnReplayer(
        builder, tokenizer, load_tools(multi_turn), str(multi_turn.get("format") or "hermes"),
        TurnLimits.from_rollout_config(multi_turn),
    )
    return DemoSource(tokenizer, replayer)

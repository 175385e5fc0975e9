"""Tool-use telemetry of a step: turns, tool calls and tool errors of the rollouts, and what the
demonstration and RL rows of the rebuilt batch contain.

verl's agent loop reports only ``num_turns`` per rollout (``__num_turns__``). Tool calls are read back
from each rollout's assistant turns (the maximal runs of loss-mask tokens) with the rollout's own tool
parser, so they count what the agent loop ran, in any tool-call format; tool errors are the tool
results that carry verl's error observations plus the failures hpt's own tools report per trajectory.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import asyncio

import numpy as np
import torch
from verl import DataProto

from hpt import metrics as M
from hpt.core.plan import RebuildPlan
from hpt.tools.search import ERRORS_FIELD
from hpt.trainer.batch import Demonstration
from hpt.trainer.multiturn import TOOL_AGENT, TurnReplayer, run_sync

# The observations ToolAgentLoop returns instead of a tool result (verl 0.9.1, ``_call_tool``).
TOOL_ERROR_MARKERS = ("Unknown function '", "Invalid JSON in arguments for '", "Error executing tool '")


def segments(ids_T: torch.Tensor, mask_T: torch.Tensor, attended_T: torch.Tensor) -> tuple[list, list]:
    """A response's assistant turns (runs of mask 1) and context runs (mask 0, attended), as id lists."""
    turns, context = [], []
    length = int(attended_T.sum())
    start = 0
    for end in range(1, length + 1):
        if end == length or bool(mask_T[end]) != bool(mask_T[start]):
            (turns if mask_T[start] else context).append(ids_T[start:end].tolist())
            start = end
    return turns, context


def rollout_tool_calls(batch: DataProto, replayer: TurnReplayer) -> tuple[np.ndarray, np.ndarray]:
    """Per rollout: tool calls run (at most ``max_parallel_calls`` per turn) and tool error observations."""
    width = batch.batch["prompts"].shape[-1]
    attended = batch.batch["attention_mask"][:, width:]
    per_row = [segments(batch.batch["responses"][i], batch.batch["response_mask"][i], attended[i])
               for i in range(len(batch))]
    flat = [turn for turns, _ in per_row for turn in turns]

    async def parse_all():
        return await asyncio.gather(*(replayer.parser.extract_tool_calls(ids, replayer.tool_objects) for ids in flat))

    parsed = iter(run_sync(parse_all()) if flat else [])
    cap = replayer.limits.max_parallel_calls
    calls = np.array([sum(min(len(next(parsed)[1]), cap) for _ in turns) for turns, _ in per_row])
    decode = replayer.tokenizer.decode
    errors = np.array([sum(decode(ids).count(marker) for ids in context for marker in TOOL_ERROR_MARKERS)
                       for _, context in per_row])
    reported = batch.non_tensor_batch.get(ERRORS_FIELD)  # failures hpt's own tools count (e.g. search errors)
    if reported is not None:
        errors = errors + np.array([int(value or 0) for value in reported])
    return calls, errors


def agent_metrics(
    batch: DataProto, agents: list, plan: RebuildPlan, demos: list[Demonstration], replayer: TurnReplayer | None
) -> dict[str, float]:
    """The ``hpt/agent/*`` metrics; nothing when no tools are configured or no row is a tool-agent row."""
    if replayer is None or not any(name in (TOOL_AGENT, None) for name in agents):
        return {}
    calls, errors = rollout_tool_calls(batch, replayer)
    kept = [row for row, weight in zip(plan.keep_rows, plan.keep_weights, strict=True) if weight > 0]
    trained = [demo for row, demo in zip(plan.demos, demos, strict=True) if row.sft_weight + row.off_weight > 0]
    metrics = {
        M.AGENT_TOOL_CALL_SHARE: float((calls > 0).mean()),
        M.AGENT_TOOL_CALLS: float(calls.mean()),
        M.AGENT_TOOL_ERRORS: int(errors.sum()),
        M.AGENT_DEMO_TURNS_DROPPED: sum(demo.dropped_turns for demo in demos),
        M.AGENT_DEMO_TOOL_ROWS: sum(demo.tool_calls > 0 for demo in trained),
        M.AGENT_DEMO_IMAGES: sum(len(demo.images) for demo in trained),
        M.AGENT_RL_TOOL_ROWS: int(sum(calls[row] > 0 for row in kept)),
    }
    turns = batch.non_tensor_batch.get("__num_turns__")
    if turns is not None:
        metrics[M.AGENT_TURNS] = float(np.asarray(turns, dtype=np.float64).mean())
    return metrics

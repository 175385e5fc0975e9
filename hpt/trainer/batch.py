"""DataProto surgery: turn a rollout batch and a ``RebuildPlan`` into the batch that gets trained.

Demonstration rows reuse their group's already templated, left-padded ``prompts`` tensor, so the
prompt tokens are exactly those the policy saw; pad rows are copies with no loss tokens and a
singleton ``uid`` (zero GRPO advantage), never duplicates that carry loss.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import uuid
from dataclasses import dataclass

import numpy as np
import torch
from tensordict import TensorDict
from verl import DataProto
from verl.utils.model import compute_position_id_with_mask

from hpt.core.plan import RebuildPlan


@dataclass(frozen=True)
class Demonstration:
    """A demonstration's response token ids (EOS included), cut to the response budget."""

    token_ids: tuple[int, ...]
    truncated: bool


def tokenize_demonstration(tokenizer, text: str, max_tokens: int) -> Demonstration:
    """Tokenise a demonstration as a response: no special tokens, EOS appended, cut to budget."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return Demonstration(token_ids=tuple(ids[:max_tokens]), truncated=len(ids) > max_tokens)


def group_index(uids: np.ndarray) -> torch.Tensor:
    """Dense integer group ids in order of first appearance (what ``hpt.core`` expects)."""
    _, first, inverse = np.unique(uids, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return torch.as_tensor(order[inverse], dtype=torch.long)


def demonstration_target(extra_info) -> str | None:
    """The demonstration text stored in a row's ``extra_info.target``, or None when absent/empty."""
    target = extra_info.get("target") if isinstance(extra_info, dict) else None
    return target if isinstance(target, str) and target.strip() else None


def _fresh_uids(count: int, prefix: str) -> np.ndarray:
    return np.array([f"{prefix}-{uuid.uuid4().hex}" for _ in range(count)], dtype=object)


def _demo_rows(batch: DataProto, sources: list[int], demos: list[Demonstration], pad_id: int) -> DataProto:
    """One row per demonstration: prompt of the source row, response = demonstration tokens."""
    source = batch[sources]
    rows, width = len(sources), source.batch["responses"].shape[-1]
    responses = torch.full((rows, width), pad_id, dtype=source.batch["responses"].dtype)
    response_mask = torch.zeros((rows, width), dtype=source.batch["response_mask"].dtype)
    for i, demo in enumerate(demos):
        responses[i, : len(demo.token_ids)] = torch.tensor(demo.token_ids)
        response_mask[i, : len(demo.token_ids)] = 1
    prompts = source.batch["prompts"]
    prompt_mask = source.batch["attention_mask"][:, : prompts.shape[-1]]
    attention_mask = torch.cat([prompt_mask, response_mask.to(prompt_mask.dtype)], dim=-1)
    built = {
        "prompts": prompts,
        "responses": responses,
        "response_mask": response_mask,
        "input_ids": torch.cat([prompts, responses], dim=-1),
        "attention_mask": attention_mask,
        "position_ids": compute_position_id_with_mask(attention_mask),
        "prefix_mask": response_mask.bool(),
    }
    tensors = {key: built.get(key, torch.zeros_like(value)) for key, value in source.batch.items()}
    non_tensors = {key: value.copy() for key, value in source.non_tensor_batch.items()}
    non_tensors["uid"] = _fresh_uids(rows, "demo")
    return DataProto(
        batch=TensorDict(tensors, batch_size=[rows]), non_tensor_batch=non_tensors, meta_info=batch.meta_info
    )


def _pad_rows(batch: DataProto, count: int) -> DataProto:
    """Zero-loss filler rows (copies of row 0 with every loss and reward mask cleared)."""
    filler = batch[[0] * count]
    for key in ("response_mask", "prefix_mask", "rm_scores"):
        filler.batch[key] = torch.zeros_like(filler.batch[key])
    filler.non_tensor_batch["uid"] = _fresh_uids(count, "pad")
    return filler


def apply_plan(
    batch: DataProto, plan: RebuildPlan, demos: list[Demonstration], pad_id: int
) -> DataProto:
    """Build the trained batch: kept rollouts, then demonstration rows, then pad rows."""
    if len(demos) != len(plan.demo_source_rows):
        raise ValueError(f"{len(plan.demo_source_rows)} demonstration rows planned, {len(demos)} given")
    batch.batch["prefix_mask"] = torch.zeros_like(batch.batch["response_mask"], dtype=torch.bool)
    parts = []
    if plan.keep_rows:
        parts.append(batch[list(plan.keep_rows)])
    if plan.demo_source_rows:
        parts.append(_demo_rows(batch, list(plan.demo_source_rows), demos, pad_id))
    rebuilt = DataProto.concat(parts)
    if plan.num_pad:
        rebuilt = DataProto.concat([rebuilt, _pad_rows(rebuilt, plan.num_pad)])
    return rebuilt

"""DataProto surgery: turn a rollout batch and a ``RebuildPlan`` into the batch that gets trained.

Every row leaves with three weights (``hpt_rl_weight``, ``hpt_sft_weight``, ``hpt_off_weight``) and a
``prefix_mask``. Demonstration rows reuse their group's already templated, left-padded ``prompts``
tensor, so the prompt tokens are exactly those the policy saw; a demonstration whose advantage is
used (off-policy RL, mixed groups) gets ``demo_reward`` at its last token and, in a mixed group,
its group's ``uid``. Pad rows are copies with no loss tokens, zero weights and a singleton ``uid``
(zero GRPO advantage), never duplicates that carry loss.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from verl import DataProto
from verl.utils.model import compute_position_id_with_mask

from hpt.core.plan import DemoRow, RebuildPlan
from hpt.trainer import vision_rows
from hpt.trainer.engine import WEIGHT_KEYS


@dataclass(frozen=True)
class Demonstration:
    """A demonstration's response token ids (EOS included), cut to the response budget.

    ``loss_mask`` (same length; None = every token) marks the tokens the policy emits: a multi-turn
    demonstration's tool results and template scaffolding are attended context with mask 0.
    ``dropped_turns`` and ``tool_calls`` describe a multi-turn demonstration (``hpt.trainer.multiturn``);
    ``images`` are the images its tool observations show, in order (visual RAG: retrieved pages, crops).
    """

    token_ids: tuple[int, ...]
    truncated: bool
    loss_mask: tuple[int, ...] | None = None
    dropped_turns: int = 0
    tool_calls: int = 0
    images: tuple[Any, ...] = ()


@dataclass(frozen=True)
class DemoOptions:
    """How demonstration rows are stamped: ``scale`` (this step's lambda) multiplies their weights.

    ``processor`` (a vision-language policy's, as verl built it) rebuilds the images of VLM rows.
    """

    pad_token_id: int
    scale: float = 1.0
    reward: float = 1.0
    processor: Any = None


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


def stamp_weights(batch: DataProto, rl: torch.Tensor, sft: torch.Tensor, off: torch.Tensor) -> None:
    """Attach the three per-row loss weights (float32, one value per row)."""
    for key, values in zip(WEIGHT_KEYS, (rl, sft, off), strict=True):
        batch.batch[key] = values.to(torch.float32).reshape(len(batch))


def demo_position_ids(source_positions: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int) -> torch.Tensor:
    """Positions of demonstration rows: 1-D from the mask, or a VLM's (B, 4, L) continued from its prompt.

    A vision-language policy (Qwen2.5-VL) gets ``(B, 4, L)`` positions from verl's agent loop: row 0
    the text positions, rows 1-3 the mrope t/h/w positions, where an image's tokens share positions.
    The prompt part is the group's own; the demonstration is text after a text generation prompt, so
    each of the four rows continues from the last prompt token's position by one per token (what
    ``get_rope_index`` gives for the same prompt + demonstration on every attended token).
    """
    if source_positions.dim() == 2:
        return compute_position_id_with_mask(attention_mask)
    prompt = source_positions[..., :prompt_width]
    width = attention_mask.shape[-1] - prompt_width
    steps = torch.arange(1, width + 1, dtype=prompt.dtype)
    return torch.cat([prompt, prompt[..., -1:] + steps], dim=-1)  # prompts are left-padded: last token is real


def demonstration_rows(
    source: DataProto, demos: list[Demonstration], pad_token_id: int, uids: np.ndarray, processor: Any = None
) -> DataProto:
    """One row per demonstration: the prompt of the matching ``source`` row, response = demonstration.

    Attention covers the whole demonstration; ``response_mask`` (hence ``prefix_mask``) only its
    loss-mask tokens. Every tensor the rebuilt rows do not define (rewards, log-probs, ...) is zero.
    With ``processor`` a VLM row carries its prompt's images and its demonstration's (``vision_rows``);
    without, it keeps the group row's multi-modal inputs (exact when rollouts add no images).
    """
    rows, width = len(source), source.batch["responses"].shape[-1]
    responses = torch.full((rows, width), pad_token_id, dtype=source.batch["responses"].dtype)
    response_mask = torch.zeros((rows, width), dtype=source.batch["response_mask"].dtype)
    attended = torch.zeros((rows, width), dtype=source.batch["attention_mask"].dtype)
    for i, demo in enumerate(demos):
        length = len(demo.token_ids)
        responses[i, :length] = torch.tensor(demo.token_ids)
        attended[i, :length] = 1
        response_mask[i, :length] = 1 if demo.loss_mask is None else torch.tensor(demo.loss_mask)
    prompts = source.batch["prompts"]
    prompt_mask = source.batch["attention_mask"][:, : prompts.shape[-1]]
    attention_mask = torch.cat([prompt_mask, attended], dim=-1)
    built = {
        "prompts": prompts,
        "responses": responses,
        "response_mask": response_mask,
        "input_ids": torch.cat([prompts, responses], dim=-1),
        "attention_mask": attention_mask,
        "position_ids": demo_position_ids(source.batch["position_ids"], attention_mask, prompts.shape[-1]),
        "prefix_mask": response_mask.bool(),
    }
    tensors = {key: built.get(key, torch.zeros_like(value)) for key, value in source.batch.items()}
    non_tensors = {key: value.copy() for key, value in source.non_tensor_batch.items()}
    non_tensors["uid"] = uids
    if any(demo.images for demo in demos) or (processor is not None and "multi_modal_inputs" in non_tensors):
        _demo_images(tensors, non_tensors, demos, processor)
    return DataProto(
        batch=TensorDict(tensors, batch_size=[rows]), non_tensor_batch=non_tensors, meta_info=source.meta_info
    )


def _demo_images(tensors: dict, non_tensors: dict, demos: list[Demonstration], processor: Any) -> None:
    """Each VLM demonstration row's multi-modal inputs, and mrope positions where its demonstration has images."""
    if processor is None or "multi_modal_inputs" not in non_tensors or tensors["position_ids"].dim() != 3:
        raise ValueError(
            "a demonstration with images (extra_info.target_turns tool results with 'images') needs a "
            "vision-language policy and its processor; the batch has no multi-modal inputs or no processor was given"
        )
    inputs = non_tensors["multi_modal_inputs"]
    for i, demo in enumerate(demos):
        inputs[i] = vision_rows.demo_inputs(processor, inputs[i], tensors["prompts"][i], demo.images)
        vision_rows.check_aligned(tensors["input_ids"][i], inputs[i], processor, f"demonstration row {i}")
        if demo.images:
            tensors["position_ids"][i] = vision_rows.mrope_positions(
                processor, tensors["input_ids"][i], tensors["attention_mask"][i], inputs[i].get("image_grid_thw")
            )


def _planned_demo_rows(
    batch: DataProto, planned: tuple[DemoRow, ...], demos: list[Demonstration], options: DemoOptions
) -> DataProto:
    source = batch[[d.source_row for d in planned]]
    fresh = _fresh_uids(len(planned), "demo")
    uids = np.array(
        [source.non_tensor_batch["uid"][i] if d.in_group else fresh[i] for i, d in enumerate(planned)], dtype=object
    )
    rows = demonstration_rows(source, demos, options.pad_token_id, uids, options.processor)
    scored = torch.tensor([d.in_group or d.off_weight > 0 for d in planned])
    if "rm_scores" in rows.batch.keys() and scored.any():
        prompt_width = rows.batch["prompts"].shape[-1]
        last = (rows.batch["attention_mask"][:, prompt_width:].sum(-1) - 1).clamp(min=0)  # last attended token
        index = torch.arange(len(rows))[scored]
        rows.batch["rm_scores"][index, last[scored]] = options.reward
    stamp_weights(
        rows,
        torch.zeros(len(rows)),
        torch.tensor([d.sft_weight for d in planned]) * options.scale,
        torch.tensor([d.off_weight for d in planned]) * options.scale,
    )
    return rows


def _pad_rows(batch: DataProto, count: int, pad_token_id: int) -> DataProto:
    """Zero-loss filler rows: copies of row 0 with every loss, weight and reward cleared.

    Only the last prompt token stays attended, so in verl's no-padding layout a pad row is one token
    long and costs next to nothing in the forward/backward passes, whatever the sequence length.
    """
    filler = batch[[0] * count]
    for key in ("response_mask", "prefix_mask", "rm_scores", *WEIGHT_KEYS):
        filler.batch[key] = torch.zeros_like(filler.batch[key])
    prompt_width = filler.batch["prompts"].shape[-1]
    attention_mask = torch.zeros_like(filler.batch["attention_mask"])
    attention_mask[:, prompt_width - 1] = 1  # prompts are left-padded: the last prompt token is real
    filler.batch["attention_mask"] = attention_mask
    if filler.batch["position_ids"].dim() == 3:
        _clear_images(filler, prompt_width, pad_token_id)
    else:
        filler.batch["position_ids"] = compute_position_id_with_mask(attention_mask)
    filler.non_tensor_batch["uid"] = _fresh_uids(count, "pad")
    return filler


def _clear_images(filler: DataProto, prompt_width: int, pad_token_id: int) -> None:
    """A VLM pad row carries no image: pad ids around its one attended token, no pixels, zero mrope positions.

    verl's Qwen2.5-VL forward requires every image token of a micro-batch to have its features; a
    pad row that kept its group's image tokens (in the prompt, or in a tool observation of the
    response) but dropped them from attention would break that. ``{}`` is verl's "no multi-modal
    inputs" row (it then runs a dummy image so vision grads exist).
    """
    ids = filler.batch["input_ids"]
    ids[:, : prompt_width - 1] = pad_token_id
    ids[:, prompt_width:] = pad_token_id
    filler.batch["prompts"] = ids[:, :prompt_width].clone()
    filler.batch["responses"] = ids[:, prompt_width:].clone()
    filler.batch["position_ids"] = torch.zeros_like(filler.batch["position_ids"])
    if "multi_modal_inputs" in filler.non_tensor_batch:
        filler.non_tensor_batch["multi_modal_inputs"] = np.array([{} for _ in range(len(filler))], dtype=object)


def apply_plan(
    batch: DataProto,
    plan: RebuildPlan,
    demos: list[Demonstration],
    options: DemoOptions,
    stream: DataProto | None = None,
) -> DataProto:
    """Build the trained batch: kept rollouts, demonstration rows, SFT-stream rows, then pad rows."""
    if len(demos) != len(plan.demos):
        raise ValueError(f"{len(plan.demos)} demonstration rows planned, {len(demos)} given")
    if plan.stream_rows != (0 if stream is None else len(stream)):
        raise ValueError(f"{plan.stream_rows} SFT-stream rows planned, {0 if stream is None else len(stream)} given")
    batch.batch["prefix_mask"] = torch.zeros_like(batch.batch["response_mask"], dtype=torch.bool)
    parts = []
    if plan.keep_rows:
        kept = batch[list(plan.keep_rows)]
        zeros = torch.zeros(len(kept))
        stamp_weights(kept, torch.tensor(plan.keep_weights), zeros, zeros)
        parts.append(kept)
    if plan.demos:
        parts.append(_planned_demo_rows(batch, plan.demos, demos, options))
    if stream is not None:
        parts.append(stream)
    rebuilt = DataProto.concat(parts)
    if plan.num_pad:
        rebuilt = DataProto.concat([rebuilt, _pad_rows(rebuilt, plan.num_pad, options.pad_token_id)])
    return rebuilt

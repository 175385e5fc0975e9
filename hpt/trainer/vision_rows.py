"""Multi-modal inputs and mrope positions of demonstration rows whose demonstration carries images.

A visual-RAG demonstration (search -> page image -> crop -> answer) has images inside its response: the
tool observations. Its row must then carry exactly the images its tokens show, in order: the prompt's
images (the first ones of the group's rollout row, whose own later images are whatever that rollout
retrieved) followed by the demonstration's, processed as verl's agent loop processes a rollout's images
(``pixel_values``, ``image_grid_thw``, ``images_seqlens``); and its ``(4, L)`` positions must be what
verl's agent loop computes for such a sequence: text positions in row 0, the model's ``get_rope_index``
(which verl binds onto the processor) in rows 1-3, image tokens marked by ``mm_token_type_ids``.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
from typing import Any

import torch


def image_token_id(processor: Any) -> int:
    """The id of the processor's image placeholder token (``<|image_pad|>`` for Qwen2.5-VL)."""
    return int(processor.image_token_id)


def tokens_per_image(grid_thw: torch.Tensor, merge_size: int) -> list[int]:
    """Image tokens of each image: ``t * h * w / merge^2`` (one token per merged patch)."""
    return (grid_thw.prod(dim=-1) // merge_size**2).tolist()


def prompt_share(inputs: dict, prompt_image_tokens: int, merge_size: int) -> dict[str, torch.Tensor]:
    """The part of a rollout row's multi-modal inputs that belongs to its prompt's images (the first ones)."""
    grid = inputs.get("image_grid_thw") if inputs else None
    if prompt_image_tokens == 0 or grid is None:
        if prompt_image_tokens:
            raise ValueError(f"the prompt has {prompt_image_tokens} image tokens but its row carries no images")
        return {}
    counts, total, images = tokens_per_image(grid, merge_size), 0, 0
    while total < prompt_image_tokens and images < len(counts):
        total, images = total + counts[images], images + 1
    if total != prompt_image_tokens:
        raise ValueError(f"the prompt's {prompt_image_tokens} image tokens match no prefix of its images {counts}")
    patches = int(grid[:images].prod(dim=-1).sum())
    return {"pixel_values": inputs["pixel_values"][:patches], "image_grid_thw": grid[:images]}


def with_images_seqlens(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add verl's ``images_seqlens`` (patches per image frame), read by its trainer after balancing."""
    grid = inputs.get("image_grid_thw")
    if grid is not None:
        inputs["images_seqlens"] = torch.repeat_interleave(grid[:, 1] * grid[:, 2], grid[:, 0])
    return inputs


def demo_inputs(processor: Any, source_inputs: dict, prompt_ids: torch.Tensor, images: tuple) -> dict:
    """A demonstration row's multi-modal inputs: its prompt's share of the group row's, then its own images."""
    merge = int(processor.image_processor.merge_size)
    shared = prompt_share(source_inputs, int((prompt_ids == image_token_id(processor)).sum()), merge)
    if not images:
        return with_images_seqlens(dict(shared))
    own = processor.image_processor(images=list(images), return_tensors="pt")
    parts = [shared, {"pixel_values": own["pixel_values"], "image_grid_thw": own["image_grid_thw"]}]
    merged = {key: torch.cat([p[key] for p in parts if p]) for key in ("pixel_values", "image_grid_thw")}
    return with_images_seqlens(merged)


def mrope_positions(processor: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, grid_thw) -> torch.Tensor:
    """``(4, L)`` positions of one row as verl's agent loop computes them (text row, then mrope t/h/w)."""
    ids, mask = input_ids.unsqueeze(0), attention_mask.unsqueeze(0)
    token_types = (ids == image_token_id(processor)).long()
    vision, _ = processor.get_rope_index(
        input_ids=ids, attention_mask=mask, image_grid_thw=grid_thw, mm_token_type_ids=token_types
    )
    text = torch.ones_like(input_ids)
    attended = mask[0].bool()
    text[attended] = torch.arange(int(attended.sum()), dtype=text.dtype)
    return torch.cat([text.unsqueeze(0), vision[:, 0, :].to(text.dtype)], dim=0)


def check_aligned(input_ids: torch.Tensor, inputs: dict, processor: Any, where: str) -> None:
    """A row's image tokens equal its images' features (verl's Qwen2.5-VL forward refuses anything else)."""
    grid = inputs.get("image_grid_thw")
    features = sum(tokens_per_image(grid, int(processor.image_processor.merge_size))) if grid is not None else 0
    tokens = int((input_ids == image_token_id(processor)).sum())
    if tokens != features:
        raise ValueError(f"{where}: {tokens} image tokens but {features} image features")

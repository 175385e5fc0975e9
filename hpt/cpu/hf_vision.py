"""The image side of the ``hf`` rollout: which model class to load, and each batch's vision inputs.

A model whose config has a ``vision_config`` is a vision-language policy: it loads with
``AutoModelForImageTextToText`` (``AutoModelForCausalLM`` rejects e.g. ``Qwen2_5_VLConfig``) and its
requests carry images, which the rollout turns into ``pixel_values``/``image_grid_thw`` with the
processor verl built, once per batch, in row order. Three facts of Qwen2.5-VL in transformers 5:
``generate`` needs ``mm_token_type_ids`` (1 on image tokens) to place the mrope positions; the
prompt ids verl sends are already expanded (one ``<|image_pad|>`` per merged patch); and a random or
weak policy can sample vision tokens, which verl's post-processing would then count as images it has
no pixels for (``get_rope_index`` fails), so those ids are suppressed during sampling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, PreTrainedModel

VISION_TOKEN_ATTRIBUTES = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")


@dataclasses.dataclass(frozen=True)
class VisionSettings:
    """What the engine needs to feed images: the image processor, the image token id, ids never to sample."""

    image_processor: Any
    image_token_id: int
    suppressed_token_ids: tuple[int, ...]


def is_vision_language(hf_config: Any) -> bool:
    """A model with a vision tower (``vision_config``), e.g. Qwen2.5-VL."""
    return getattr(hf_config, "vision_config", None) is not None


def load_policy(path: str, hf_config: Any, trust_remote_code: bool) -> PreTrainedModel:
    """The rollout's float32 SDPA copy of the policy, with the auto class its config needs."""
    auto_class = AutoModelForImageTextToText if is_vision_language(hf_config) else AutoModelForCausalLM
    return auto_class.from_pretrained(
        path, dtype=torch.float32, attn_implementation="sdpa", trust_remote_code=trust_remote_code
    )


def vision_settings(hf_config: Any, processor: Any, path: str) -> VisionSettings | None:
    """Settings for a vision-language ``hf_config``; None for a text model. No processor is an error."""
    if not is_vision_language(hf_config):
        return None
    if processor is None or getattr(processor, "image_processor", None) is None:
        raise RuntimeError(
            f"hf rollout: {path} is a vision-language model but verl built no processor for it (verl logs "
            "'Failed to create processor' with the cause). On the CPU build the model with hpt's torchvision-free "
            "processor (python -m hpt.toy.build_vlm); elsewhere install torchvision and qwen-vl-utils (pip install "
            "'hpt[vlm]')"
        )
    ids = [getattr(hf_config, name, None) for name in VISION_TOKEN_ATTRIBUTES]
    if ids[0] is None:
        raise RuntimeError(f"hf rollout: {path}'s config has a vision_config but no image_token_id")
    return VisionSettings(processor.image_processor, int(ids[0]), tuple(int(i) for i in ids if i is not None))


def batch_vision_inputs(
    settings: VisionSettings, images_per_row: Sequence[Sequence[Any]], input_ids: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``generate`` kwargs for one left-padded batch: pixels of every row's images in row order.

    Each row's image tokens must match its images' patches; a mismatch is reported with the row
    (verl expands prompts with the same processor, so it means the images changed on the way).
    """
    images = [image for row in images_per_row for image in row]
    if not images:
        return {}
    pixels = settings.image_processor(images=images, return_tensors="pt")
    merge = int(getattr(settings.image_processor, "merge_size", 2))
    tokens_per_image = (pixels["image_grid_thw"].prod(dim=-1) // merge**2).tolist()
    is_image = input_ids == settings.image_token_id
    start = 0
    for row, row_images in enumerate(images_per_row):
        expected = sum(tokens_per_image[start : start + len(row_images)])
        start += len(row_images)
        if int(is_image[row].sum()) != expected:
            raise ValueError(
                f"hf rollout: request {row} has {int(is_image[row].sum())} image tokens but its "
                f"{len(row_images)} image(s) give {expected} features"
            )
    return {
        "pixel_values": pixels["pixel_values"],
        "image_grid_thw": pixels["image_grid_thw"],
        "mm_token_type_ids": is_image.long(),
    }

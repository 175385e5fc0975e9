"""verl's RL dataset with images opened and resized by Pillow: the CPU VLM path without torchvision.

verl's ``RLHFDataset`` reads images through ``qwen_vl_utils.process_vision_info``, and that module
imports torchvision at its top although its image path only uses Pillow (torchvision is only for
videos). On the CPU torch no torchvision can be installed (see ``hpt.cpu.images_only_video``), so
hpt's CPU VLM runs select this subclass with verl's documented seam for custom vision extraction:

    data.custom_cls.path=pkg://hpt.cpu.vision_dataset data.custom_cls.name=PillowVisionDataset

Images are converted to RGB and resized to the same sides qwen_vl_utils gives (each side a multiple
of ``2 * patch size``, pixel count within the part's ``min_pixels``/``max_pixels`` or 4 to 16384
merged tokens), using transformers' own ``smart_resize``; the processor then sees identical inputs.
Videos and remote URLs are refused with a clear error. Text-only runs never need this class.
"""

from __future__ import annotations

import base64
from io import BytesIO
from typing import Any

from omegaconf import DictConfig
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
from verl.utils.dataset.rl_dataset import RLHFDataset

MIN_IMAGE_TOKENS, MAX_IMAGE_TOKENS = 4, 16384  # qwen_vl_utils' defaults per image, in merged tokens
MERGE_SIZE = 2


def open_image(source: Any) -> Image.Image:
    """A PIL image from what verl's ``_build_messages`` puts in an image part (PIL, path, file:// or data URI)."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, dict) and "bytes" in source:
        return Image.open(BytesIO(source["bytes"]))
    if isinstance(source, str):
        if source.startswith(("http://", "https://")):
            raise ValueError(f"remote images are not fetched by hpt's CPU dataset; download {source} to a local file")
        if source.startswith("data:image") and "base64," in source:
            return Image.open(BytesIO(base64.b64decode(source.split("base64,", 1)[1])))
        return Image.open(source.removeprefix("file://"))
    raise TypeError(f"unsupported image value of type {type(source).__name__}: expected PIL image, bytes dict or path")


def resize_for_model(part: dict[str, Any], image_patch_size: int) -> Image.Image:
    """RGB image resized as qwen_vl_utils would for ``part`` (an image content part)."""
    image = open_image(part.get("image", part.get("image_url")))
    image = image.convert("RGB")
    factor = image_patch_size * MERGE_SIZE
    if "resized_height" in part and "resized_width" in part:
        height, width = smart_resize(part["resized_height"], part["resized_width"], factor=factor)
    else:
        height, width = smart_resize(
            image.height,
            image.width,
            factor=factor,
            min_pixels=part.get("min_pixels", MIN_IMAGE_TOKENS * factor**2),
            max_pixels=part.get("max_pixels", MAX_IMAGE_TOKENS * factor**2),
        )
    return image.resize((width, height))


def image_parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The image parts of ``messages`` in order; a video part is an error (no torchvision here)."""
    parts = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "video" or "video" in part:
                raise NotImplementedError(
                    "hpt's Pillow dataset handles images only; videos need verl's default dataset with "
                    "qwen-vl-utils and torchvision (a GPU machine)"
                )
            if part.get("type") == "image" or "image" in part or "image_url" in part:
                parts.append(part)
    return parts


class PillowVisionDataset(RLHFDataset):
    """``RLHFDataset`` whose image extraction needs Pillow only (used by verl's dataset and agent loop)."""

    @classmethod
    def _process_multi_modal_info(
        cls, messages: list[dict], image_patch_size: int, config: DictConfig
    ) -> tuple[list[Image.Image] | None, None, list[Any] | None]:
        images = [resize_for_model(part, image_patch_size) for part in image_parts(messages)]
        return images or None, None, cls._extract_audio_info(messages)

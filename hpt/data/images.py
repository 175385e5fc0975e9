"""Image checks for VLM data: every image a row names must open, and fit the prompt once tokenised.

Run by ``hpt.main`` before Ray starts (``hpt.data.checks``) and by the builders/preparers that write
image rows, so a missing, unreadable or oversized image is reported with its row instead of failing
inside a rollout worker. Image tokens are counted as Qwen2.5-VL's processor counts them: the image
is resized (``smart_resize``: sides multiples of 28, pixels within the processor's bounds) and each
28x28 block is one token.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

PATCH_FACTOR = 28  # patch 14 x spatial merge 2
DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS = 4 * 28 * 28, 16384 * 28 * 28
MAX_REPORTED = 5


@dataclass(frozen=True)
class ImageBounds:
    """The processor's pixel bounds and the prompt budget an image's tokens must fit."""

    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_prompt_tokens: int | None = None


def image_tokens(width: int, height: int, bounds: ImageBounds) -> int:
    """Tokens the processor will give a ``width`` x ``height`` image."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    resized_h, resized_w = smart_resize(
        height, width, factor=PATCH_FACTOR, min_pixels=bounds.min_pixels, max_pixels=bounds.max_pixels
    )
    return (resized_h // PATCH_FACTOR) * (resized_w // PATCH_FACTOR)


def _open(value: Any, base_dir: str | None) -> Image.Image:
    if isinstance(value, dict) and value.get("bytes") is not None:
        return Image.open(io.BytesIO(value["bytes"]))
    path = value.get("path") if isinstance(value, dict) else value
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"an image must be {{'bytes': ...}}, {{'path': ...}} or a path, got {type(value).__name__}")
    path = os.fspath(path).removeprefix("file://")
    if base_dir is not None and not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no image file at {path}")
    return Image.open(path)


def row_image_problem(images: Iterable[Any] | None, bounds: ImageBounds, base_dir: str | None = None) -> str | None:
    """Why a row's images cannot be used (missing, unreadable, too many tokens), or None if they can."""
    total = 0
    for position, value in enumerate(images if images is not None else []):
        try:
            with _open(value, base_dir) as image:
                image.verify()  # decodes headers and checks the data without keeping the pixels
                width, height = image.size
        except (OSError, UnidentifiedImageError, TypeError, ValueError) as error:
            return f"image {position}: {type(error).__name__}: {error}"
        total += image_tokens(width, height, bounds)
    if bounds.max_prompt_tokens is not None and total > bounds.max_prompt_tokens:
        return (
            f"its images take {total} tokens, over the {bounds.max_prompt_tokens}-token prompt budget "
            "(data.max_prompt_length); resize them or lower the processor's max_pixels"
        )
    return None


def image_problems(rows: Iterable[Any], bounds: ImageBounds, base_dir: str | None = None) -> list[tuple[int, str]]:
    """``(row, problem)`` for every row of ``rows`` (each an ``images`` value) whose images are unusable."""
    problems = []
    for row, images in enumerate(rows):
        problem = row_image_problem(images, bounds, base_dir)
        if problem is not None:
            problems.append((row, problem))
    return problems


def describe(problems: list[tuple[int, str]], where: str) -> str:
    """One message naming the first few bad rows of ``where``."""
    shown = "; ".join(f"row {row}: {problem}" for row, problem in problems[:MAX_REPORTED])
    more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
    return f"{where}: {len(problems)} row(s) with unusable images: {shown}{more}"

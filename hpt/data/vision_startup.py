"""Start-up checks for vision-language runs, before Ray starts (called by ``hpt.main``).

Each failure here would otherwise surface late or silently: verl turns a processor that fails to
load into ``processor=None`` with a warning (the VLM is then treated as text-only and the first
image row fails inside a worker); a text model given image rows fails in the rollout; a missing or
oversized image stops a worker mid-step; the SFT stream pairs stream prompts with another row's
image. Nothing here runs for a text model on text data beyond reading two parquet schemas.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hpt.data.checks import local_parquets
from hpt.data.images import ImageBounds, describe, image_problems

logger = logging.getLogger(__name__)

PILLOW_DATASET = "data.custom_cls.path=pkg://hpt.cpu.vision_dataset data.custom_cls.name=PillowVisionDataset"


def _image_column(path: Path, image_key: str) -> list[Any] | None:
    """The ``image_key`` column of a parquet file, or None when it has none or every row is empty."""
    import pyarrow.parquet as pq

    if image_key not in pq.read_schema(path).names:
        return None
    column = pq.read_table(path, columns=[image_key]).column(image_key).to_pylist()
    return column if any(column) else None


def _model_config(path: str, trust_remote_code: bool) -> Any | None:
    """The model's HF config when ``path`` is a local directory that has one; else None (left to verl)."""
    if not os.path.isdir(path):
        return None
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:  # verl reports an unloadable model with its own message
        logger.debug("no HF config read from %s (%s); vision checks skipped", path, exc)
        return None


def _processor_error(path: str, trust_remote_code: bool) -> tuple[Any, str | None]:
    """Load the processor as verl will (``AutoProcessor``); return it, or the reason it fails."""
    from transformers import AutoProcessor

    import hpt.cpu.images_only_video as images_only

    images_only.register()
    try:
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises many types here; verl would swallow all of them
        return None, f"{type(exc).__name__}: {exc}"
    if getattr(processor, "image_processor", None) is None:
        return None, f"AutoProcessor gave a {type(processor).__name__}, which has no image processor"
    return processor, None


def check_vision(config: DictConfig) -> None:
    """Model/data agreement for images, the processor, the dataset class and every image (``ValueError``)."""
    data, model = config.data, config.actor_rollout_ref.model
    image_key = str(data.get("image_key", "images") or "images")
    files = [(key, path) for key in ("train_files", "val_files") for path in local_parquets(data.get(key))]
    images = {(key, path): column for key, path in files if (column := _image_column(path, image_key)) is not None}
    trust = bool(model.get("trust_remote_code", False))
    hf_config = _model_config(str(model.path), trust)
    vision = hf_config is not None and getattr(hf_config, "vision_config", None) is not None
    if images and hf_config is not None and not vision:
        where = ", ".join(str(path) for _, path in images)
        raise ValueError(
            f"{where} hold images ({image_key!r} column) but {model.path} is a text model "
            f"({type(hf_config).__name__}); images need a vision-language policy that "
            "AutoModelForImageTextToText loads (e.g. Qwen2.5-VL), or drop the image column"
        )
    if not vision:
        return
    processor, error = _processor_error(str(model.path), trust)
    if error is not None:
        raise ValueError(
            f"{model.path} is a vision-language model but its processor does not load ({error}); verl would "
            "carry on without one and fail at the first image. On a CPU machine (no torchvision) build the model "
            "with hpt's torchvision-free processor (python -m hpt.toy.build_vlm, see docs/vlm.md); elsewhere "
            "install torchvision and qwen-vl-utils (pip install 'hpt[vlm]')"
        )
    if OmegaConf.select(config, "data.sft_stream.train_files") is not None:
        raise ValueError(
            "data.sft_stream supports text-only models: a stream prompt would be paired with another row's image. "
            "Put the demonstrations in the RL files' extra_info.target instead, or unset data.sft_stream"
        )
    if images and OmegaConf.select(data, "custom_cls.path") is None and importlib.util.find_spec("torchvision") is None:
        raise ValueError(
            "verl's default dataset reads images with qwen_vl_utils, which needs torchvision (not installed). "
            f"Use hpt's Pillow dataset: {PILLOW_DATASET}"
        )
    bounds = _bounds(processor, int(data.get("max_prompt_length", 512)))
    for (key, path), column in images.items():
        problems = image_problems(column, bounds, base_dir=str(path.parent))
        if problems:
            raise ValueError(describe(problems, f"data.{key} {path}"))


def _bounds(processor: Any, max_prompt_length: int) -> ImageBounds:
    image_processor = processor.image_processor
    size = getattr(image_processor, "size", None) or {}
    min_pixels = getattr(image_processor, "min_pixels", None) or size.get("shortest_edge")
    max_pixels = getattr(image_processor, "max_pixels", None) or size.get("longest_edge")
    defaults = ImageBounds()
    return ImageBounds(
        min_pixels=int(min_pixels or defaults.min_pixels),
        max_pixels=int(max_pixels or defaults.max_pixels),
        max_prompt_tokens=max_prompt_length,
    )

"""A video processor that refuses videos, so a Qwen2-VL-family processor can be built without torchvision.

Why this exists (the decision, in one place): transformers 5 makes every Qwen2.5-VL processor hold a
video processor, and its only implementation (``Qwen2VLVideoProcessor``) imports torchvision. PyPI's
torchvision wheel for the CPU torch hpt runs on is CUDA-linked: installed next to the CPU torch,
``import torchvision`` fails and takes every transformers processor import with it (text-only hpt
included). So the CPU path never installs torchvision. Images do not need it: transformers ships a
PIL/numpy image processor (``Qwen2VLImageProcessorPil``) and hpt's dataset opens and resizes images
with Pillow (``hpt.cpu.vision_dataset``). What remains is the mandatory video slot, filled by this
class: it constructs without torchvision, saves as ``video_processor_type: ImagesOnlyVideoProcessor``,
and raises a clear error if a video ever reaches it.

``register()`` makes ``AutoProcessor.from_pretrained`` find it by that name (what verl's
``hf_processor`` calls in every process); ``hpt.plugin`` calls it, so every verl process has it.
It is registered under a private config class, never under Qwen2.5-VL's: real Qwen2.5-VL
checkpoints keep resolving to transformers' own (torchvision) video processor, as on GPU machines.

One transformers detail is patched, only when torchvision is absent: processors type-check their
video slot against ``transformers.BaseVideoProcessor``, which transformers then replaces by a
placeholder that raises "requires torchvision" (``dummy_torchvision_objects``), although the real
base class imports and constructs without it. ``register()`` puts the real class back on the
``transformers`` namespace that ``processing_utils`` checks against (tested in
``tests/unit/test_vlm_inputs_on_cpu.py``, in a fresh process as verl's workers load it).
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig, processing_utils
from transformers.models.auto.video_processing_auto import AutoVideoProcessor
from transformers.utils import is_torchvision_available
from transformers.video_processing_utils import BaseVideoProcessor


class _ImagesOnlyConfig(PretrainedConfig):
    """Registration key only: no model has this config, so no real checkpoint resolves to it."""

    model_type = "hpt_images_only"


class ImagesOnlyVideoProcessor(BaseVideoProcessor):
    """Fills a VLM processor's video slot on machines without torchvision; any video is an error."""

    model_input_names = ["pixel_values_videos", "video_grid_thw"]

    def __init__(self, merge_size: int = 2, temporal_patch_size: int = 2, patch_size: int = 14, **kwargs: Any):
        super().__init__(**kwargs)
        # Read by Qwen2_5_VLProcessor (token counts) and verl (patch size) even when no video is given.
        self.merge_size = merge_size
        self.temporal_patch_size = temporal_patch_size
        self.patch_size = patch_size

    def preprocess(self, videos: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "this processor was built without torchvision and handles images only; videos need a processor "
            "with transformers' Qwen2VLVideoProcessor (torchvision installed, e.g. on a GPU machine)"
        )


_registered = False


def register() -> None:
    """Let ``AutoVideoProcessor`` resolve ``ImagesOnlyVideoProcessor`` by name (idempotent)."""
    global _registered
    if not _registered:
        AutoVideoProcessor.register(_ImagesOnlyConfig, ImagesOnlyVideoProcessor, exist_ok=True)
        if not is_torchvision_available():
            # The namespace processors type-check against (processing_utils' own handle on transformers:
            # importing processing_utils the first time replaces sys.modules["transformers"] by a new one).
            processing_utils.transformers_module.BaseVideoProcessor = BaseVideoProcessor
        _registered = True

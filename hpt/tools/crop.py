"""The ``crop`` tool: zoom into a region of the last image of the trajectory (VRAG-RL's region selection).

A region is ``[left, top, right, bottom]`` in pixels of the last image the model saw (the latest page or
crop; verl keeps a trajectory's images in ``agent_data.image_data``). The region is cut out and enlarged
``zoom`` times, so small print becomes more image tokens. A bad region (not four integers, empty, outside
the image, smaller than ``min_side``) or a call before any image is an error observation the model reads,
never an exception.

    tools:
      - class_name: hpt.tools.crop.CropTool
        config: {type: native, zoom: 2, min_side: 8}
        tool_schema: <hpt.tools.schemas.CROP_SCHEMA>
"""

import verl  # noqa: F401  (first: a Ray worker may import this module before anything else)

import logging
from typing import Any

from PIL import Image
from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from hpt.tools.schemas import CROP_SCHEMA
from hpt.tools.search import record_call

logger = logging.getLogger(__name__)

DEFAULT_ZOOM, DEFAULT_MIN_SIDE = 2, 8


class CropError(ValueError):
    """A region the crop tool cannot cut; the message is the observation the model reads."""


def check_region(region: Any, width: int, height: int, min_side: int) -> tuple[int, int, int, int]:
    """``region`` as a box inside a ``width`` x ``height`` image, at least ``min_side`` pixels each way."""
    if not isinstance(region, list | tuple) or len(region) != 4:
        raise CropError(f"region must be [left, top, right, bottom], got {region!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in region):
        raise CropError(f"region must hold four integers (pixels), got {region!r}")
    left, top, right, bottom = region
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise CropError(f"region {list(region)} is not inside the {width}x{height} image with left<right, top<bottom")
    if right - left < min_side or bottom - top < min_side:
        raise CropError(f"region {list(region)} is smaller than {min_side} pixels on a side")
    return left, top, right, bottom


def crop_zoom(image: Image.Image, region: Any, zoom: int, min_side: int = DEFAULT_MIN_SIDE) -> Image.Image:
    """The region of ``image`` enlarged ``zoom`` times (bicubic), as a new RGB image."""
    box = check_region(region, image.width, image.height, min_side)
    part = image.convert("RGB").crop(box)
    return part.resize((part.width * zoom, part.height * zoom), Image.Resampling.BICUBIC)


def crop_observation(parameters: Any, images: list | None, zoom: int, min_side: int) -> tuple[ToolResponse, bool]:
    """The tool's answer to one call given the trajectory's images so far, and whether it failed."""
    try:
        if not images:
            raise CropError("there is no image to crop yet; call search first")
        region = parameters.get("region") if isinstance(parameters, dict) else None
        return ToolResponse(image=[crop_zoom(images[-1], region, zoom, min_side)]), False
    except CropError as err:
        logger.info("crop refused: %s", err)
        return ToolResponse(text=f"crop error: {err}"), True


class CropTool(BaseTool):
    """``crop(region)``: the last image's region, enlarged; an error observation for a bad region."""

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None):
        super().__init__(config, tool_schema or OpenAIFunctionToolSchema.model_validate(CROP_SCHEMA))
        self.zoom = int(config.get("zoom", DEFAULT_ZOOM))
        self.min_side = int(config.get("min_side", DEFAULT_MIN_SIDE))
        if self.zoom < 1 or self.min_side < 1:
            raise ValueError(f"crop tool: zoom and min_side must be >= 1, got {self.zoom} and {self.min_side}")

    async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs) -> tuple[ToolResponse, float, dict]:
        """Crop the last image of the trajectory (``agent_data.image_data``); never raises."""
        agent_data = kwargs.get("agent_data")
        images = getattr(agent_data, "image_data", None)
        response, error = crop_observation(parameters, images, self.zoom, self.min_side)
        record_call(agent_data, error)
        return response, 0.0, {"crop_error": int(error)}

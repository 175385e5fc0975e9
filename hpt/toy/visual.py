"""The visual toy task: read a digit drawn on a 56x56 image and add a number given in the text.

A prompt is ``<image>D+b?`` (``D`` = the digit in the image); the demonstration ``a+b=c#c`` first
reads the digit, then answers after ``#``, so ``hpt.rewards.arithmetic`` scores it unchanged (data
source ``hpt/visual``). The image is a PNG (grey digit on black at a jittered position), stored in
verl's ``images`` column as ``{"bytes": ...}``; 56x56 is the smallest Qwen2.5-VL input (4 tokens).
"""

from __future__ import annotations

import io
import random
from typing import Any

from PIL import Image, ImageDraw, ImageFont

DATA_SOURCE = "hpt/visual"
IMAGE_SIDE = 56
FONT_SIZE = 30
MAX_ADDEND = 9


def render_digit(digit: int, rng: random.Random) -> bytes:
    """PNG bytes of ``digit`` drawn at a random offset (the position varies, the glyph does not)."""
    image = Image.new("RGB", (IMAGE_SIDE, IMAGE_SIDE), (0, 0, 0))
    font = ImageFont.load_default(size=FONT_SIZE)
    shade = rng.randint(160, 255)
    ImageDraw.Draw(image).text((rng.randint(4, 30), rng.randint(0, 18)), str(digit), fill=(shade,) * 3, font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_rows(n: int, seed: int, split: str) -> list[dict[str, Any]]:
    """``n`` rows in hpt's parquet schema with one image each, seeded by (seed, split)."""
    rng = random.Random(f"{DATA_SOURCE}:{split}:{seed}")
    rows = []
    for index in range(n):
        digit, addend = rng.randint(0, 9), rng.randint(0, MAX_ADDEND)
        total = digit + addend
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": "user", "content": f"<image>D+{addend}?"}],
                "images": [{"bytes": render_digit(digit, rng)}],
                "ability": "vision",
                "reward_model": {"style": "rule", "ground_truth": str(total)},
                "extra_info": {"index": index, "split": split, "target": f"{digit}+{addend}={total}#{total}"},
            }
        )
    return rows

"""The VRAG toy's policy: the tiny Qwen2.5-VL of ``hpt.toy.tiny_vlm`` speaking the tool model's language.

A visual search agent needs both halves at once: hermes tool calls, ChatML turns with real ``<|im_end|>``
and ``\\n`` tokens (verl's Qwen VL Continuous-Token builder looks both up) from ``hpt.toy.tool_model``,
and the four Qwen vision tokens plus a template whose user and tool turns may hold image parts (a tool
that answers with an image becomes a tool message ``[{"type": "image", ...}, ...]`` in verl's tool agent
loop). The model is ``tiny_vlm``'s architecture with 512 positions: a trajectory with two observation
images is a few hundred tokens.
"""

from __future__ import annotations

import os
from pathlib import Path

from tokenizers import AddedToken
from transformers import PreTrainedTokenizerFast

from hpt.toy import tiny_vlm
from hpt.toy.tool_model import build_tool_tokenizer, chat_template

MAX_POSITIONS = 512
IMAGE_PART = tiny_vlm.VISION_START + tiny_vlm.IMAGE_PAD + tiny_vlm.VISION_END
CHAT_TEMPLATE = chat_template(IMAGE_PART)


def build_vrag_tokenizer() -> PreTrainedTokenizerFast:
    """The tool tokenizer plus the vision tokens (special, so decoded rewards never see them)."""
    tokenizer = build_tool_tokenizer()
    tokens = [AddedToken(t, special=True, normalized=False) for t in tiny_vlm.VISION_TOKENS]
    tokenizer.add_tokens(tokens, special_tokens=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_vrag_model(out_dir: str | os.PathLike[str], seed: int) -> int:
    """Write processor (tokenizer, template) and random model into ``out_dir``; return the parameter count."""
    out_dir = Path(out_dir)
    tokenizer = build_vrag_tokenizer()
    tiny_vlm.build_processor(tokenizer).save_pretrained(out_dir)
    model = tiny_vlm.build_model(tokenizer, seed, MAX_POSITIONS)
    model.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())

"""A tiny random Qwen2.5-VL (182k parameters) with its processor, saved as an HF model dir; nothing downloaded.

The text side reuses the tiny model's character tokenizer (one token per character, so digits stay
visible) with the four Qwen vision tokens added as single special tokens; the chat template lets a
user turn be a list of parts, an image part rendering as ``<|vision_start|><|image_pad|><|vision_end|>``
(the processor expands ``<|image_pad|>`` to one token per merged 28x28 patch: a 56x56 image -> 4).

The processor is built without torchvision (see ``hpt.cpu.images_only_video``): transformers' PIL
image processor and hpt's images-only video processor. verl loads it with ``AutoProcessor``, the model
with its vision-to-sequence auto class.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tokenizers import AddedToken
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from hpt.cpu.images_only_video import ImagesOnlyVideoProcessor, register
from hpt.toy import tiny_model

VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
VISION_TOKENS = (VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)
CHARACTERS = tiny_model.CHARACTERS + "D"  # "D" is the visual task's question letter
PATCH_SIZE, MERGE_SIZE, TEMPORAL_PATCH_SIZE = 14, 2, 2
PATCH_FACTOR = PATCH_SIZE * MERGE_SIZE  # 28: image sides are resized to multiples of this
MIN_PIXELS, MAX_PIXELS = 56 * 56, 4 * 56 * 56  # 4 to 16 image tokens per image
MAX_POSITIONS = 256

_IMAGE_PART = VISION_START + IMAGE_PAD + VISION_END
_VIDEO_PART = VISION_START + VIDEO_PAD + VISION_END
# The tiny template (``<bos>`` + user text, ``:`` + answer + ``<eos>``) where a user turn may be a list
# of parts as verl builds them from ``<image>`` markers: {"type": "image"} / {"type": "video"} / text.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part -%}{{- '" + _IMAGE_PART + "' -}}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}{{- '" + _VIDEO_PART + "' -}}"
    "{%- else -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '" + tiny_model.GENERATION_PROMPT + "' + message['content'] + eos_token -}}"
    "{%- else -%}{{- raise_exception('the tiny VLM chat template has no role ' + message['role']) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '" + tiny_model.GENERATION_PROMPT + "' -}}{%- endif -%}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The tiny character tokenizer (``D`` added) plus the four vision tokens, each kept whole."""
    tokenizer = tiny_model.build_tokenizer(CHARACTERS, MAX_POSITIONS)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in VISION_TOKENS], special_tokens=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_processor(tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLProcessor:
    """Qwen2.5-VL processor from torchvision-free parts (the tokenizer's chat template), 4-16 tokens per image."""
    register()
    sizes = {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS}
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=PATCH_SIZE, merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE, **sizes
    )
    video_processor = ImagesOnlyVideoProcessor(
        merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE, patch_size=PATCH_SIZE
    )
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=tokenizer.chat_template,
    )


def build_config(tokenizer: PreTrainedTokenizerFast, max_positions: int = MAX_POSITIONS) -> Qwen2_5_VLConfig:
    """2-layer x 64 text model (mrope sections sum to head_dim/2 = 8) and a 1-block x 32 vision tower."""
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in VISION_TOKENS}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 192,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": max_positions,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    vision = {
        "depth": 1,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": 64,
        "patch_size": PATCH_SIZE,
        "spatial_merge_size": MERGE_SIZE,
        "temporal_patch_size": TEMPORAL_PATCH_SIZE,
        "window_size": 56,
        "fullatt_block_indexes": [0],
    }
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        dtype="float32",
    )


def build_model(
    tokenizer: PreTrainedTokenizerFast, seed: int, max_positions: int = MAX_POSITIONS
) -> Qwen2_5_VLForConditionalGeneration:
    """Seeded random init in a forked RNG (the caller's torch RNG is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(build_config(tokenizer, max_positions)).to(torch.float32)
    generation = model.generation_config
    generation.pad_token_id = tokenizer.pad_token_id
    generation.bos_token_id = tokenizer.bos_token_id
    generation.eos_token_id = tokenizer.eos_token_id
    return model


def save_tiny_vlm(out_dir: str | os.PathLike[str], seed: int) -> int:
    """Write model, tokenizer and processor into ``out_dir``; return the parameter count."""
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer()
    build_processor(tokenizer).save_pretrained(out_dir)
    model = build_model(tokenizer, seed)
    model.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())

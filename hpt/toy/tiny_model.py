"""A character-level tokenizer and a randomly initialised 108k-parameter Qwen3, saved as an HF model dir.

Character tokens keep every digit visible to the model, so arithmetic is learnable rather than a
lookup table of number tokens; the architecture is a stock ``Qwen3ForCausalLM`` so verl's HF loading
paths work unchanged. Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS)
CHARACTERS = "0123456789+-=?#,Q:"
GENERATION_PROMPT = ":"
MAX_POSITIONS = 128

# <bos>, each user turn verbatim, ":" before each assistant turn (ending in <eos>) and as the
# generation prompt. Unused kwargs such as enable_thinking are simply ignored by jinja.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{- message['content'] -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '" + GENERATION_PROMPT + "' + message['content'] + eos_token -}}"
    "{%- else -%}{{- raise_exception('the tiny arithmetic chat template has no role ' + message['role']) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '" + GENERATION_PROMPT + "' -}}{%- endif -%}"
)


def build_tokenizer(characters: str = CHARACTERS, max_positions: int = MAX_POSITIONS) -> PreTrainedTokenizerFast:
    """One token per character; specials first so pad/bos/eos are ids 0/1/2, ``<unk>`` last.

    The unknown token exists because verl probes every tokenizer with text outside the task's
    alphabet (e.g. a newline when it looks for the chat-turn separator) and a WordLevel model
    without one raises there.
    """
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *characters, UNK])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()  # join characters back without spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        clean_up_tokenization_spaces=False,
        model_max_length=max_positions,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(tokenizer: PreTrainedTokenizerFast, seed: int, max_positions: int = MAX_POSITIONS) -> Qwen3ForCausalLM:
    """A seeded random-init Qwen3 (2 layers x 64 hidden, tied embeddings) in float32, sized to ``tokenizer``.

    The seed is applied inside a forked RNG so building a model does not disturb the caller's torch RNG.
    """
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=16,
        intermediate_size=192,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config).to(torch.float32)
    generation = model.generation_config
    generation.pad_token_id = tokenizer.pad_token_id
    generation.bos_token_id = tokenizer.bos_token_id
    generation.eos_token_id = tokenizer.eos_token_id
    return model


def save_tiny_model(out_dir: str | os.PathLike[str], seed: int) -> int:
    """Write tokenizer and model into ``out_dir``; return the parameter count for the build summary."""
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed)
    tokenizer.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())

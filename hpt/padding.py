"""Left padding of prompt token ids, the one layout decoder-only generation and verl's ``prompts`` use."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def left_pad(
    prompts: Sequence[Sequence[int]], pad_token_id: int, width: int | None = None, dtype: torch.dtype = torch.long
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` with every prompt right-aligned in ``width`` columns (default: the longest).

    A prompt longer than ``width`` is a caller error (it would be cut silently), so it raises.
    """
    width = max((len(prompt) for prompt in prompts), default=0) if width is None else width
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=dtype)
    attention_mask = torch.zeros((len(prompts), width), dtype=dtype)
    for row, prompt in enumerate(prompts):
        if len(prompt) > width:
            raise ValueError(f"prompt {row} has {len(prompt)} tokens, more than the padded width {width}")
        if prompt:
            input_ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=dtype)
            attention_mask[row, width - len(prompt) :] = 1
    return input_ids, attention_mask

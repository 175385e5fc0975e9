"""The published methods whose loss is more than row weights: CHORD's mu schedule and SRFT's weights.

- CHORD (arXiv 2508.11408): ``(1 - mu) * L_GRPO + mu * L_SFT``; mu rises linearly from 0 to
  ``mu_peak`` over ``mu_warmup_steps``, falls along half a cosine to ``mu_valley`` over
  ``mu_decay_steps``, then stays there (the keys are named as in Trinity-RFT's ``mix_chord``).
- SRFT (arXiv 2506.19767, as re-implemented in the original HPT repository, ``srft_type=paper``):
  demonstrations get an SFT term weighted ``0.5 * exp(-H)`` *and* LUFFY's shaped off-policy term;
  rollouts get ``-A_hat * log p`` with ``A_hat = 0.1 * exp(H)`` for a successful rollout and ``-1``
  otherwise. H is the row's mean token entropy under the current policy, detached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

SRFT_SFT_SCALE = 0.5  # w_SFT = 0.5 * exp(-H)
SRFT_POSITIVE_SCALE = 0.1  # w_RL = 0.1 * exp(H) on successful rollouts
SRFT_NEGATIVE_ADVANTAGE = -1.0  # failed rollouts: plain policy gradient with reward -1


@dataclass(frozen=True)
class ChordSchedule:
    """``trainer.chord``: the mu schedule of CHORD (steps are 0-based: training step 1 is step 0)."""

    mu_warmup_steps: int = 0
    mu_decay_steps: int = 0
    mu_peak: float = 0.5
    mu_valley: float = 0.02
    enable_phi_function: bool = False  # weight each SFT token by phi = p * (1 - p) (CHORD-phi)

    def __post_init__(self) -> None:
        if self.mu_warmup_steps < 0 or self.mu_decay_steps < 0:
            raise ValueError(
                f"trainer.chord.mu_warmup_steps and mu_decay_steps must be >= 0, got "
                f"{self.mu_warmup_steps}, {self.mu_decay_steps}"
            )
        for name in ("mu_peak", "mu_valley"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):  # also rejects NaN
                raise ValueError(f"trainer.chord.{name} must be in [0, 1] (mu weighs SFT against GRPO), got {value}")

    def mu(self, step: int) -> float:
        """mu at 0-based ``step``: warm-up 0 -> peak, half-cosine peak -> valley, then valley.

        ``mu_decay_steps=0`` means no decay: mu stays at ``mu_peak`` after the warm-up.
        """
        if step < self.mu_warmup_steps:
            return self.mu_peak * step / self.mu_warmup_steps
        decayed = step - self.mu_warmup_steps
        if self.mu_decay_steps == 0:
            return self.mu_peak
        if decayed >= self.mu_decay_steps:
            return self.mu_valley
        cosine = 0.5 * (1.0 + math.cos(math.pi * decayed / self.mu_decay_steps))
        return self.mu_valley + (self.mu_peak - self.mu_valley) * cosine


def row_mean(values_B_T: Tensor, mask_B_T: Tensor) -> Tensor:
    """Per-row mean of ``values`` over ``mask`` (0 for an empty row), detached."""
    mask = mask_B_T.to(values_B_T.dtype)
    return ((values_B_T.detach() * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).detach()


def srft_sft_weight(row_entropy_B: Tensor) -> Tensor:
    """SRFT's per-row weight of the demonstration NLL: ``0.5 * exp(-H)``."""
    return SRFT_SFT_SCALE * torch.exp(-row_entropy_B)


def srft_rollout_loss(log_prob_B_T: Tensor, success_B: Tensor, row_entropy_B: Tensor) -> Tensor:
    """SRFT's per-token rollout loss ``-A_hat * log p`` (``A_hat`` per row, no gradient through it)."""
    positive = SRFT_POSITIVE_SCALE * torch.exp(row_entropy_B.detach())
    negative = torch.full_like(positive, SRFT_NEGATIVE_ADVANTAGE)
    advantage_B = torch.where(success_B.bool(), positive, negative).to(log_prob_B_T.dtype)
    return -advantage_B[:, None] * log_prob_B_T

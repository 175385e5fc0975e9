"""The hybrid loss of the in-process engine: the trainer's ``hpt_actor_loss`` for one process, without verl.

Same terms, same per-token losses (``hpt.core.offpolicy``, ``hpt.core.methods``) and the same
normalisers as the trainer's ``_normalisers`` with one data-parallel rank and one micro-batch per
mini-batch (what the engine trains):

- RL: verl's ``vanilla`` PPO loss (clipped ratio, dual clip ``clip_ratio_c`` for negative advantages)
  with advantages x the row's RL weight; SRFT's rollout loss for ``method="srft"``;
- SFT: ``offline_loss`` (``phi_nll`` under CHORD-phi) x the row's SFT weight (x SRFT's ``0.5 exp(-H)``);
- off-policy RL: ``off_loss`` x the row's off weight.

``global``: each term over its own tokens (rows for ``seq-mean-token-sum-norm``); ``original``: RL and
off-policy tokens share one normaliser (their token count, or ``sum / L``), SFT is its token mean.
``tests/unit/test_engine_loss_matches_trainer_on_cpu.py`` checks values and gradients against the trainer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hpt.core.loss import HybridLossParts, TermMasks, check_normalization, term_masks
from hpt.core.methods import row_mean, srft_rollout_loss, srft_sft_weight
from hpt.core.offpolicy import OffPolicyInputs, OffPolicyParams, build_off_policy_loss

AGG_MODES = ("token-mean", "seq-mean-token-sum-norm")


@dataclass(frozen=True)
class LossSettings:
    """The actor keys the loss reads, named as in the trainer's config (``actor_rollout_ref.actor.*``)."""

    loss_normalization: str = "global"
    loss_agg_mode: str = "token-mean"
    loss_scale_factor: float | None = None  # L of seq-mean-token-sum-norm (None: the response width)
    clip_ratio: float = 0.2
    clip_ratio_c: float = 3.0
    offline_loss_type: str = "nll"
    off_policy_loss_type: str = "shaped"
    off_policy: OffPolicyParams = field(default_factory=OffPolicyParams)
    sft_loss_coef: float = 1.0
    off_loss_coef: float = 1.0

    def __post_init__(self) -> None:
        check_normalization(self.loss_normalization)
        if self.loss_agg_mode not in AGG_MODES:
            raise ValueError(f"the engine's loss_agg_mode must be one of {', '.join(AGG_MODES)}, "
                             f"got {self.loss_agg_mode!r}")


@dataclass(frozen=True)
class LossBatch:
    """Padded ``B x T`` response tensors and ``B`` row tensors of one update."""

    log_prob: torch.Tensor
    old_log_prob: torch.Tensor
    entropy: torch.Tensor
    response_mask: torch.Tensor
    prefix_mask: torch.Tensor  # demonstration tokens
    advantages: torch.Tensor  # B x T
    rl_weight: torch.Tensor
    sft_weight: torch.Tensor
    off_weight: torch.Tensor
    success: torch.Tensor  # B, SRFT's rollout sign
    method: str = ""  # the step's gate name: "srft" switches the RL and SFT weights
    phi: bool = False  # CHORD-phi: phi_nll on the SFT tokens


def _aggregate(loss_B_T: torch.Tensor, mask: torch.Tensor, mode: str, tokens: int, rows: int,
               scale: float | None) -> torch.Tensor:
    """verl's ``agg_loss`` on one rank: masked sum over ``tokens``, or per-row sums over ``rows`` / L."""
    total = torch.where(mask, loss_B_T, torch.zeros_like(loss_B_T))
    if mode == "token-mean":
        return total.sum() / max(tokens, 1)
    horizon = scale if scale is not None else mask.shape[-1]
    return total.sum() / max(rows, 1) / horizon


def _counts(mask: torch.Tensor) -> tuple[int, int]:
    return int(mask.sum()), int(mask.any(-1).sum())


def _rl_loss(b: LossBatch, s: LossSettings, row_entropy: torch.Tensor | None) -> torch.Tensor:
    """Per-token RL loss: SRFT's for srft, else PPO's clipped surrogate with dual clip."""
    weight = b.rl_weight.to(b.log_prob.dtype)[:, None]
    if b.method == "srft":
        return srft_rollout_loss(b.log_prob, b.success, row_entropy) * weight
    advantages = b.advantages * weight
    ratio = torch.exp((b.log_prob - b.old_log_prob).clamp(-20.0, 20.0))
    clipped = torch.maximum(-advantages * ratio, -advantages * ratio.clamp(1 - s.clip_ratio, 1 + s.clip_ratio))
    dual = torch.minimum(clipped, -advantages * s.clip_ratio_c)
    return torch.where(advantages < 0, dual, clipped)


def _demo_losses(b: LossBatch, s: LossSettings, row_entropy: torch.Tensor | None):
    """Per-token SFT and off-policy losses, each x its row weight."""
    inputs = OffPolicyInputs(advantages_B_T=b.advantages, old_log_prob_B_T=b.old_log_prob, entropy_B_T=b.entropy)
    sft_weight = b.sft_weight
    if b.method == "srft":
        sft_weight = sft_weight * srft_sft_weight(row_entropy).to(sft_weight.dtype)
    sft = build_off_policy_loss("phi_nll" if b.phi else s.offline_loss_type)(b.log_prob, inputs, s.off_policy)
    off = build_off_policy_loss(s.off_policy_loss_type)(b.log_prob, inputs, s.off_policy)
    return sft * sft_weight.to(sft.dtype)[:, None], off * b.off_weight.to(off.dtype)[:, None]


def hybrid_loss(b: LossBatch, s: LossSettings) -> HybridLossParts:
    """The three terms of the trainer's loss for one process and one micro-batch."""
    masks: TermMasks = term_masks(b.response_mask, b.prefix_mask, b.rl_weight, b.sft_weight, b.off_weight)
    row_entropy = row_mean(b.entropy, b.response_mask.bool()) if b.method == "srft" else None
    rl_B_T = _rl_loss(b, s, row_entropy)
    sft_B_T, off_B_T = _demo_losses(b, s, row_entropy)
    mode, scale = s.loss_agg_mode, s.loss_scale_factor
    if s.loss_normalization == "global":
        rl = _aggregate(rl_B_T, masks.on, mode, *_counts(masks.on), scale)
        off = _aggregate(off_B_T, masks.off, "token-mean", *_counts(masks.off), scale)
    else:  # original: on- and off-policy tokens share the micro-batch normaliser, no division by rows
        shared = int((masks.on | masks.off).sum())
        rl = _aggregate(rl_B_T, masks.on, mode, shared, 1, scale)
        off = _aggregate(off_B_T, masks.off, mode, shared, 1, scale)
    sft = _aggregate(sft_B_T, masks.sft, "token-mean", *_counts(masks.sft), scale)
    return HybridLossParts(rl=rl, sft=sft, off=off, sft_coef=s.sft_loss_coef, off_coef=s.off_loss_coef)

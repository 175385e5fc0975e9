"""Adaptive hybrid loss for the seed-003 contract: the SFT weight follows the policy's competence.

When the policy fails most rollouts, RL has little to learn from and the demonstrations should
carry the update; as it succeeds more often, RL takes over. Rewards are not part of the contract, so
competence is estimated from the advantages (a batch-level proxy): the share of rollout sequences in
this micro-batch with a positive GRPO advantage (see ``positive_advantage_share`` for its bias).
The SFT weight falls linearly from ``MAX_SFT_WEIGHT`` at an estimated success rate of 0 to 0 at
``SATURATION`` and above; the RL weight is its complement.

The estimate is per micro-batch: each holds whichever rows verl put there (batch balancing and
shuffling reorder rows, so a prompt group may even be split), and the weight is noisier the smaller
the micro-batches are.
"""

from typing import Any

import torch
import verl.utils.torch_functional as verl_F
from verl.trainer.ppo.core_algos import agg_loss, register_policy_loss
from verl.workers.config import ActorConfig

MAX_SFT_WEIGHT = 1.0  # SFT weight when no rollout has a positive advantage
SATURATION = 0.5  # estimated success rate at and above which the loss is pure RL


def _as_float(value: Any) -> float:
    """Metrics must be plain floats; the contract's scalars may be 0-dim tensors with a graph."""
    return float(value.detach()) if torch.is_tensor(value) else float(value)


def _ppo_clip_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str,
    config: ActorConfig,
    rollout_is_weights: torch.Tensor | None,
) -> tuple[torch.Tensor, float]:
    """PPO's pessimistic clipped surrogate with the symmetric ``config.clip_ratio``, as the seed specifies.

    ``agg_loss(..., **config.global_batch_info)`` divides by the global count rather than this
    micro-batch's, so the term is a true global mean whatever the micro-batch size.
    """
    eps = config.clip_ratio
    # the clamp keeps exp() finite when a token's probability collapsed since the rollout
    ratio = torch.exp(torch.clamp(log_prob - old_log_prob, min=-20.0, max=20.0))
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - eps, 1.0 + eps)
    per_token = torch.maximum(unclipped, clipped)
    if rollout_is_weights is not None:
        per_token = per_token * rollout_is_weights
    loss = agg_loss(per_token, response_mask, loss_agg_mode, **config.global_batch_info)
    clip_fraction = verl_F.masked_mean((clipped > unclipped).float(), response_mask)
    return loss, _as_float(clip_fraction)


def positive_advantage_share(advantages: torch.Tensor, response_mask: torch.Tensor) -> tuple[float, int]:
    """Share of this micro-batch's rollout sequences with a positive advantage, and their number.

    With binary rewards, GRPO gives a positive advantage exactly to the correct answers of a group
    that has both correct and wrong ones, so the share estimates the success rate. Groups whose
    rollouts all agree get advantage 0 and count as failures, all-pass groups included: the
    estimate is biased low when the policy solves whole groups. Rows without rollout tokens
    (demonstrations, padding) are not sequences here; with none left the share is 0.
    """
    rollout_rows = response_mask.bool().any(dim=-1)
    num_rows = int(rollout_rows.sum())
    if num_rows == 0:
        return 0.0, 0
    sequence_advantage = verl_F.masked_sum(advantages.detach(), response_mask, axis=-1)
    positive = (sequence_advantage > 0) & rollout_rows
    return float(positive.sum()) / num_rows, num_rows


def competence_sft_weight(success_rate: float) -> float:
    """``MAX_SFT_WEIGHT`` at success rate 0, falling linearly to 0 at ``SATURATION``."""
    return MAX_SFT_WEIGHT * min(max(1.0 - success_rate / SATURATION, 0.0), 1.0)


@register_policy_loss("custom")
def compute_custom_policy_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config: ActorConfig | None = None,
    rollout_is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The whole loss of one micro-batch: competence-weighted mix of ``sft_loss`` and PPO."""
    if config is None:
        raise ValueError("compute_custom_policy_loss needs the actor config (clip_ratio, global_batch_info)")
    success_rate, num_rollouts = positive_advantage_share(advantages, response_mask)
    sft_weight = competence_sft_weight(success_rate)
    rl_weight = 1.0 - sft_weight
    sft_loss = config.global_batch_info["sft_loss"]
    rl_loss, clip_fraction = _ppo_clip_loss(
        old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config, rollout_is_weights
    )
    loss = sft_weight * sft_loss + rl_weight * rl_loss
    metrics = {
        "sft_weight": sft_weight,
        "rl_weight": rl_weight,
        "sft_loss": _as_float(sft_loss),
        "rl_loss": _as_float(rl_loss),
        "success_rate_proxy": success_rate,
        "rollout_sequences": float(num_rollouts),
        "pg_clipfrac": clip_fraction,
    }
    return loss, metrics

"""Static hybrid loss for the seed-003 contract: ``ALPHA * sft_loss + (1 - ALPHA) * rl_loss``.

The simplest mix: one fixed coefficient for the whole run. The RL term is PPO's clipped surrogate on
the rollout tokens (``response_mask``); the SFT term is the contract's pre-computed ``sft_loss``,
already a global token mean over the demonstration tokens, so the ratio between the two terms is
``ALPHA : 1 - ALPHA`` whatever the micro-batch packing.

Run with ``actor_rollout_ref.actor.policy_loss.loss_mode=custom`` and
``actor_rollout_ref.actor.custom_loss_path=examples/custom_losses/static_weighting.py``.
"""

from typing import Any

import torch
import verl.utils.torch_functional as verl_F
from verl.trainer.ppo.core_algos import agg_loss, register_policy_loss
from verl.workers.config import ActorConfig

ALPHA = 0.5  # weight of the SFT term; the RL term gets 1 - ALPHA


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
    """The whole loss of one micro-batch: fixed-weight sum of the SFT and PPO terms."""
    if config is None:
        raise ValueError("compute_custom_policy_loss needs the actor config (clip_ratio, global_batch_info)")
    sft_loss = config.global_batch_info["sft_loss"]
    rl_loss, clip_fraction = _ppo_clip_loss(
        old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config, rollout_is_weights
    )
    sft_weight, rl_weight = ALPHA, 1.0 - ALPHA
    loss = sft_weight * sft_loss + rl_weight * rl_loss
    metrics = {
        "sft_weight": sft_weight,
        "rl_weight": rl_weight,
        "sft_loss": _as_float(sft_loss),
        "rl_loss": _as_float(rl_loss),
        "pg_clipfrac": clip_fraction,
    }
    return loss, metrics

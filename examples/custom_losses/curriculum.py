"""Curriculum hybrid loss for the seed-003 contract: the SFT weight decays with training progress.

Early on the policy rarely solves the task, so rollouts carry little signal and imitation does the
work; later the policy can improve on the demonstrations, so RL takes over. The SFT weight moves from
``SFT_WEIGHT_START`` at step 1 to ``SFT_WEIGHT_END`` at the last step, linearly or along a half
cosine (which stays near the start value longer, then hands over quickly in the middle of the run);
the RL weight is its complement, so the loss stays a convex combination of the two terms.

The RL term is PPO's clipped surrogate on the rollout tokens; the SFT term is the contract's
``sft_loss`` (a global token mean over the demonstration tokens).
"""

from typing import Any

import numpy as np
import torch
import verl.utils.torch_functional as verl_F
from verl.trainer.ppo.core_algos import agg_loss, register_policy_loss
from verl.workers.config import ActorConfig

SFT_WEIGHT_START = 1.0  # SFT weight at global_step 1
SFT_WEIGHT_END = 0.0  # SFT weight at global_step == total_steps
SCHEDULE = "linear"  # "linear" or "cosine"


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


def training_progress(global_step: int, total_steps: int) -> float:
    """0 at the first step (``global_step`` is 1-indexed), 1 at the last, clamped to [0, 1]."""
    return float(np.clip((global_step - 1) / max(total_steps - 1, 1), 0.0, 1.0))


def scheduled_sft_weight(progress: float) -> float:
    """The SFT weight at ``progress`` in [0, 1] under ``SCHEDULE``."""
    if SCHEDULE == "linear":
        shape = 1.0 - progress
    elif SCHEDULE == "cosine":
        shape = 0.5 * (1.0 + float(np.cos(np.pi * progress)))
    else:
        raise ValueError(f"SCHEDULE must be 'linear' or 'cosine', got {SCHEDULE!r}")
    return SFT_WEIGHT_END + (SFT_WEIGHT_START - SFT_WEIGHT_END) * shape


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
    """The whole loss of one micro-batch: scheduled SFT weight times ``sft_loss`` plus the rest times PPO."""
    if config is None:
        raise ValueError("compute_custom_policy_loss needs the actor config (clip_ratio, global_batch_info)")
    info = config.global_batch_info
    progress = training_progress(int(info["global_step"]), int(info["total_steps"]))
    sft_weight = scheduled_sft_weight(progress)
    rl_weight = 1.0 - sft_weight
    sft_loss = info["sft_loss"]
    rl_loss, clip_fraction = _ppo_clip_loss(
        old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config, rollout_is_weights
    )
    loss = sft_weight * sft_loss + rl_weight * rl_loss
    metrics = {
        "sft_weight": sft_weight,
        "rl_weight": rl_weight,
        "sft_loss": _as_float(sft_loss),
        "rl_loss": _as_float(rl_loss),
        "progress": progress,
        "pg_clipfrac": clip_fraction,
    }
    return loss, metrics

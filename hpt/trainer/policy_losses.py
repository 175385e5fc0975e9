"""RL policy losses hpt adds to verl's registry (``actor_rollout_ref.actor.policy_loss.loss_mode``).

``unclipped``: the plain importance-ratio surrogate ``-A * pi/pi_old`` with no trust-region clip, the
on-policy loss of the original HPT and LUFFY runs (``loss_remove_clip=True``). Together with
``loss_agg_mode=seq-mean-token-sum-norm``, ``loss_scale_factor=<max_response_length>`` and
``loss_normalization=original`` it reproduces their RL term (sum / L per micro-batch, not divided by
rows; ``global`` divides by the global row count as well).
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import torch
from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, agg_loss, register_policy_loss

UNCLIPPED = "unclipped"


def unclipped_policy_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config=None,
    rollout_is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """``-A * exp(log_prob - old_log_prob)``, optionally times verl's rollout importance weights."""
    log_ratio = log_prob - old_log_prob
    loss_B_T = -advantages * torch.exp(log_ratio)
    if rollout_is_weights is not None:
        loss_B_T = loss_B_T * rollout_is_weights
    info = config.global_batch_info if config is not None else {}
    loss = agg_loss(loss_B_T, response_mask, loss_agg_mode, **info)
    mask = response_mask.to(log_ratio.dtype)
    ppo_kl = (-log_ratio * mask).sum() / mask.sum().clamp(min=1)
    return loss, {"actor/ppo_kl": ppo_kl.detach().item(), "actor/pg_clipfrac": 0.0}


if UNCLIPPED not in POLICY_LOSS_REGISTRY:
    register_policy_loss(UNCLIPPED)(unclipped_policy_loss)

"""Importance-weighted SFT for the seed-003 contract: softer imitation of off-policy demonstrations.

Plain NLL pulls every demonstration token equally hard, including tokens the policy finds very
unlikely; those are the most off-policy ones and pull the policy furthest from its own distribution.
Here each demonstration token's NLL is scaled by a detached weight computed from the probability
``p = exp(sft_log_prob)`` the current policy gives it:

    w(p) = clip((1 + GAMMA) * p / (p + GAMMA), MIN_WEIGHT, 1)

This is LUFFY's shaping ``p / (p + GAMMA)`` rescaled so that a token the policy is sure of (p = 1)
keeps weight 1, i.e. plain NLL, while a token with ``p << GAMMA`` gets about ``p / GAMMA``, floored at
``MIN_WEIGHT`` so that no demonstration token is ignored completely. The weight is detached: a token's
gradient is ``w * grad(-log p)``, an SFT gradient reweighted, never differentiated through ``w``.
(The seed's ``exp(log_prob - sft_log_prob)`` cannot be used as such: under this contract both are the
current policy's log-probs of the same rows, so that ratio is 1 on every demonstration token. The
behaviour policy of a demonstration is unknown; LUFFY, too, weights by the current probability alone.)

Normalisation. The term is a token mean over the *global* demonstration-token count ``N`` (every
micro-batch and data-parallel rank of the mini-batch), like the contract's own ``sft_loss``, so that
the SFT:RL ratio does not depend on how rows are packed into micro-batches. The contract does not pass
``N``, but it defines ``sft_loss`` as this micro-batch's share of the global mean NLL:

    sft_loss = dp_size / N * sum over local sft_labels_mask tokens of (-sft_log_prob)

so the factor ``dp_size / N`` is ``sft_loss / local NLL sum`` (both detached), and the weighted term
is that factor times ``sum(w * -sft_log_prob)`` over the same tokens. This is exact with hpt's
defaults (``offline_loss_type=nll``, ``offline_loss_agg_mode=token-mean``, demonstration rows of SFT
weight 1); the file refuses other SFT loss settings. If the trainer scales demonstration rows by a
weight ``lambda`` (``trainer.lambda_schedule``), the factor carries the NLL-weighted mean ``lambda`` of
this micro-batch's demonstration rows, so the scaling is kept on average. A micro-batch without
demonstration tokens contributes 0.

The whole loss is ``SFT_WEIGHT * weighted_sft + RL_WEIGHT * ppo``; both default to 1, LUFFY's
additive mix, the shaping rather than a small coefficient keeping imitation soft.
"""

from typing import Any

import torch
import verl.utils.torch_functional as verl_F
from verl.trainer.ppo.core_algos import agg_loss, register_policy_loss
from verl.workers.config import ActorConfig

GAMMA = 0.1  # LUFFY's shaping constant: tokens with p well below GAMMA are down-weighted
MIN_WEIGHT = 0.1  # floor of the importance weight
SFT_WEIGHT = 1.0  # coefficient of the importance-weighted SFT term
RL_WEIGHT = 1.0  # coefficient of the PPO term


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


def importance_weights(sft_log_prob: torch.Tensor) -> torch.Tensor:
    """Detached per-token weights ``clip((1 + GAMMA) p / (p + GAMMA), MIN_WEIGHT, 1)``, ``p = exp(sft_log_prob)``."""
    p = torch.exp(sft_log_prob.detach())
    return torch.clamp((1.0 + GAMMA) * p / (p + GAMMA), min=MIN_WEIGHT, max=1.0)


def importance_weighted_sft(info: dict) -> tuple[torch.Tensor, float]:
    """This micro-batch's share of the global-mean weighted NLL (module docstring), and the mean weight."""
    sft_log_prob = info["sft_log_prob"]
    mask = info["sft_labels_mask"].to(sft_log_prob.dtype)
    nll = -sft_log_prob
    weights = importance_weights(sft_log_prob)
    local_nll = verl_F.masked_sum(nll.detach(), mask)
    sft_loss = info["sft_loss"]
    sft_loss = sft_loss.detach() if torch.is_tensor(sft_loss) else torch.tensor(float(sft_loss), device=nll.device)
    # dp_size / N recovered from the contract's own normalisation; 0 where the micro-batch has no NLL
    scale = torch.where(local_nll > 0, sft_loss / local_nll.clamp(min=torch.finfo(local_nll.dtype).tiny), 0.0)
    weighted = scale * verl_F.masked_sum(weights * nll, mask)
    num_tokens = float(mask.sum())
    mean_weight = float(verl_F.masked_sum(weights, mask)) / num_tokens if num_tokens else 0.0
    return weighted, mean_weight


def _check_sft_settings(config: ActorConfig) -> None:
    """The normalisation relies on ``sft_loss`` being the token-mean NLL (hpt's defaults)."""
    loss_type = getattr(config, "offline_loss_type", "nll")
    agg_mode = getattr(config, "offline_loss_agg_mode", "token-mean")
    if loss_type != "nll" or agg_mode != "token-mean":
        raise ValueError(
            "importance_weighted_sft.py derives the global demonstration-token count from sft_loss and needs "
            "actor_rollout_ref.actor.offline_loss_type=nll and offline_loss_agg_mode=token-mean, got "
            f"{loss_type!r} and {agg_mode!r}"
        )


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
    """The whole loss of one micro-batch: importance-weighted SFT plus PPO."""
    if config is None:
        raise ValueError("compute_custom_policy_loss needs the actor config (clip_ratio, global_batch_info)")
    _check_sft_settings(config)
    info = config.global_batch_info
    sft_loss, mean_weight = importance_weighted_sft(info)
    rl_loss, clip_fraction = _ppo_clip_loss(
        old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config, rollout_is_weights
    )
    loss = SFT_WEIGHT * sft_loss + RL_WEIGHT * rl_loss
    metrics = {
        "sft_weight": SFT_WEIGHT,
        "rl_weight": RL_WEIGHT,
        "sft_loss": _as_float(sft_loss),
        "rl_loss": _as_float(rl_loss),
        "sft_nll": _as_float(info["sft_loss"]),
        "sft_is_weight_mean": mean_weight,
        "pg_clipfrac": clip_fraction,
    }
    return loss, metrics

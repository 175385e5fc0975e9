"""The hybrid loss ``L = L_RL(on-policy tokens) + lambda * L_off(demonstration tokens)``.

Each term is normalised by its own *global* count (summed over the whole mini-batch and every
data-parallel rank), never by the micro-batch it happens to sit in. With FSDP, gradients are
averaged over DP ranks, so every rank scales its local sum by ``dp_size / global_count``; summed
over micro-batches and averaged over ranks this is exactly the global mean, and the RL:SFT ratio
is the configured lambda whatever the packing (the original code's ratio depended on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def split_token_masks(
    response_mask_B_T: torch.Tensor, prefix_mask_B_T: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split valid response tokens into on-policy (rollout) and off-policy (demonstration) tokens.

    The demonstration mask is ``prefix_mask AND response_mask``: padding after a demonstration is
    never trained, whatever ``prefix_mask`` says there.
    """
    valid_B_T = response_mask_B_T.bool()
    off_B_T = prefix_mask_B_T.bool() & valid_B_T
    return valid_B_T & ~off_B_T, off_B_T


def token_counts(response_mask_B_T: torch.Tensor, prefix_mask_B_T: torch.Tensor) -> torch.Tensor:
    """Local counts ``[on-policy tokens, demonstration tokens, on-policy rows, demonstration rows]``.

    Returned as one float tensor so an engine can all-reduce it across DP ranks in one call.
    """
    on_B_T, off_B_T = split_token_masks(response_mask_B_T, prefix_mask_B_T)
    return torch.stack(
        [
            on_B_T.sum(),
            off_B_T.sum(),
            on_B_T.any(dim=-1).sum(),
            off_B_T.any(dim=-1).sum(),
        ]
    ).to(torch.float64)


def global_token_mean(
    values_B_T: torch.Tensor, mask_B_T: torch.Tensor, global_count: float, dp_size: int
) -> torch.Tensor:
    """This rank's share of the global masked mean of ``values``.

    An empty term (``global_count == 0``) gives an exact zero that still carries a gradient
    graph, instead of the NaN a per-micro-batch mean would produce.
    """
    local_sum = (values_B_T * mask_B_T.to(values_B_T.dtype)).sum()
    return local_sum * (dp_size / max(float(global_count), 1.0))


def nll_term(
    log_prob_B_T: torch.Tensor, off_mask_B_T: torch.Tensor, global_off_tokens: float, dp_size: int
) -> torch.Tensor:
    """SFT on demonstration tokens: negative log-likelihood, global token mean."""
    return global_token_mean(-log_prob_B_T, off_mask_B_T, global_off_tokens, dp_size)


@dataclass(frozen=True)
class HybridLossParts:
    """The terms of one micro-batch's loss, kept apart for telemetry."""

    rl: torch.Tensor
    off: torch.Tensor
    off_coef: float

    @property
    def total(self) -> torch.Tensor:
        return self.rl + self.off_coef * self.off


def hybrid_loss(rl: torch.Tensor, off: torch.Tensor, off_coef: float) -> HybridLossParts:
    """Combine the RL and off-policy terms with the configured coefficient (``sft_loss_coef``)."""
    if off_coef < 0:
        raise ValueError(f"actor_rollout_ref.actor.sft_loss_coef must be >= 0, got {off_coef}")
    return HybridLossParts(rl=rl, off=off, off_coef=off_coef)

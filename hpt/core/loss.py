"""The hybrid loss ``L = L_RL(on-policy) + c_sft * L_SFT(demonstrations) + c_off * L_off(demonstrations)``.

The mix is per-row weight streams, not loss-type branches: the gate stamps every row with an RL
weight, an SFT weight and an off-policy weight, and each term is a weighted sum over its own tokens
divided by its own *global* count (the whole mini-batch on every data-parallel rank), a weight of 0
taking a row out of that term and its count. With FSDP, gradients are averaged over DP ranks, so
every rank scales its local sum by ``dp_size / global_count``; summed over micro-batches and averaged
over ranks this is exactly the global mean, and the SFT:RL ratio is the configured coefficient
whatever the packing, micro-batch size or DP size. That is ``loss_normalization=global``.

``loss_normalization=original`` instead reproduces the original HPT/LUFFY code's per-micro-batch sums
(hpt_spec §2.2-2.3), packing dependence included: on-policy and off-policy tokens share one
normaliser per micro-batch (``sum / L`` with L the response budget, no division by rows, or the
micro-batch's token mean), the SFT term is the micro-batch's token mean, and the micro-batch losses
are summed (verl's FSDP engine back-propagates each micro-batch loss as is and averages over ranks,
as the original did).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NORMALIZATIONS = ("global", "original")
COUNT_NAMES = ("on_tokens", "sft_tokens", "off_tokens", "on_rows", "sft_rows", "off_rows")


@dataclass(frozen=True)
class TermMasks:
    """Boolean ``B x T`` masks of the tokens each term trains."""

    on: torch.Tensor  # rollout tokens with RL weight > 0
    sft: torch.Tensor  # demonstration tokens with SFT weight > 0
    off: torch.Tensor  # demonstration tokens with off-policy RL weight > 0


def term_masks(
    response_mask_B_T: torch.Tensor,
    prefix_mask_B_T: torch.Tensor,
    rl_weight_B: torch.Tensor,
    sft_weight_B: torch.Tensor,
    off_weight_B: torch.Tensor,
) -> TermMasks:
    """Split valid response tokens by term.

    Demonstration tokens are ``prefix_mask AND response_mask``: padding after a demonstration is
    never trained, whatever ``prefix_mask`` says there; every other valid token is on-policy.
    """
    valid_B_T = response_mask_B_T.bool()
    demo_B_T = prefix_mask_B_T.bool() & valid_B_T
    return TermMasks(
        on=valid_B_T & ~demo_B_T & (rl_weight_B > 0)[:, None],
        sft=demo_B_T & (sft_weight_B > 0)[:, None],
        off=demo_B_T & (off_weight_B > 0)[:, None],
    )


def term_counts(masks: TermMasks) -> torch.Tensor:
    """Local counts in ``COUNT_NAMES`` order: tokens then rows of each term.

    One float64 tensor, so an engine can all-reduce every count across DP ranks in one call.
    """
    terms = (masks.on, masks.sft, masks.off)
    return torch.stack([m.sum() for m in terms] + [m.any(dim=-1).sum() for m in terms]).to(torch.float64)


def global_token_mean(
    values_B_T: torch.Tensor, mask_B_T: torch.Tensor, global_count: float, dp_size: int
) -> torch.Tensor:
    """This rank's share of the global masked mean of ``values``.

    An empty term (``global_count == 0``) gives an exact zero that still carries a gradient
    graph, instead of the NaN a per-micro-batch mean would produce.
    """
    # where(), not a product: an inf/NaN at a masked-out position must not poison the sum.
    local_sum = torch.where(mask_B_T.bool(), values_B_T, torch.zeros_like(values_B_T)).sum()
    return local_sum * (dp_size / max(float(global_count), 1.0))


def weighted_token_mean(
    loss_B_T: torch.Tensor, weight_B: torch.Tensor, mask_B_T: torch.Tensor, global_count: float, dp_size: int
) -> torch.Tensor:
    """Global token mean of a per-token loss scaled by its row's weight."""
    return global_token_mean(loss_B_T * weight_B.to(loss_B_T.dtype)[:, None], mask_B_T, global_count, dp_size)


@dataclass(frozen=True)
class HybridLossParts:
    """The terms of one micro-batch's loss, kept apart for telemetry."""

    rl: torch.Tensor
    sft: torch.Tensor
    off: torch.Tensor
    sft_coef: float
    off_coef: float

    def __post_init__(self) -> None:
        if self.sft_coef < 0 or self.off_coef < 0:
            raise ValueError(
                f"actor_rollout_ref.actor.sft_loss_coef and off_loss_coef must be >= 0, got "
                f"{self.sft_coef} and {self.off_coef}"
            )

    @property
    def total(self) -> torch.Tensor:
        return self.rl + self.sft_coef * self.sft + self.off_coef * self.off


def check_normalization(name: str) -> str:
    """``name`` if it is a known ``loss_normalization``, else an error listing the valid ones."""
    if name not in NORMALIZATIONS:
        raise ValueError(
            f"unknown actor_rollout_ref.actor.loss_normalization={name!r}; valid: {', '.join(NORMALIZATIONS)}"
        )
    return name

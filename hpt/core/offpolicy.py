"""Per-token losses for demonstration (off-policy) tokens.

The demonstration term of the hybrid loss can be plain NLL or one of several reweightings from
the literature. Each loss maps per-token log-probs ``B x T`` to per-token losses ``B x T``; masking
and aggregation stay in :mod:`hpt.core.loss`, so every variant is normalised the same way.
``OFF_POLICY_LOSSES`` is the registry: a new variant is one decorated function.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class OffPolicyInputs:
    """Per-token side information some losses need; each field is ``B x T`` or ``None``."""

    advantages_B_T: Tensor | None = None  # advantage of the demonstration tokens (shaped, importance)
    old_log_prob_B_T: Tensor | None = None  # log-prob under the pre-update policy (importance)
    entropy_B_T: Tensor | None = None  # entropy of the current policy at each token (srft)


@dataclass(frozen=True)
class OffPolicyParams:
    """Scalar hyper-parameters shared by the off-policy losses."""

    gamma: float = 0.1  # shaping constant of f(p) = p / (p + gamma)
    is_clip: float = 2.0  # upper clip of the importance ratio

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"off-policy gamma must be a finite number > 0, got {self.gamma}")
        if not (math.isfinite(self.is_clip) and self.is_clip > 0):
            raise ValueError(f"off-policy is_clip must be a finite number > 0, got {self.is_clip}")


OffPolicyLoss = Callable[[Tensor, OffPolicyInputs, OffPolicyParams], Tensor]

OFF_POLICY_LOSSES: dict[str, OffPolicyLoss] = {}


def register_off_policy_loss(name: str) -> Callable[[OffPolicyLoss], OffPolicyLoss]:
    """Add a loss to ``OFF_POLICY_LOSSES`` under ``name``; a second loss with the same name is refused.

    Refusing duplicates keeps a plug-in from silently replacing a built-in loss.
    """

    def decorator(fn: OffPolicyLoss) -> OffPolicyLoss:
        if name in OFF_POLICY_LOSSES:
            raise ValueError(
                f"off-policy loss {name!r} is already registered; registered names: "
                f"{', '.join(sorted(OFF_POLICY_LOSSES))}"
            )
        OFF_POLICY_LOSSES[name] = fn
        return fn

    return decorator


def build_off_policy_loss(name: str) -> OffPolicyLoss:
    """Look a loss up by name, failing with the list of valid names."""
    try:
        return OFF_POLICY_LOSSES[name]
    except KeyError:
        raise ValueError(
            f"unknown off-policy loss {name!r}; valid losses: {', '.join(sorted(OFF_POLICY_LOSSES))}"
        ) from None


def _require(tensor: Tensor | None, field: str, loss: str, log_prob_B_T: Tensor) -> Tensor:
    """Return a required side input, detached, after checking it exists and matches ``log_prob``.

    Side inputs are weights or baselines, never something the demonstration loss should train.
    """
    if tensor is None:
        raise ValueError(f"off-policy loss {loss!r} needs inputs.{field}, got None")
    if tensor.shape != log_prob_B_T.shape:
        raise ValueError(
            f"off-policy loss {loss!r}: inputs.{field} must have the shape of log_prob "
            f"{tuple(log_prob_B_T.shape)}, got {tuple(tensor.shape)}"
        )
    return tensor.detach()


@register_off_policy_loss("nll")
def nll_loss(log_prob_B_T: Tensor, inputs: OffPolicyInputs, params: OffPolicyParams) -> Tensor:
    """Plain supervised fine-tuning: ``-log p``."""
    return -log_prob_B_T


@register_off_policy_loss("shaped")
def shaped_loss(log_prob_B_T: Tensor, inputs: OffPolicyInputs, params: OffPolicyParams) -> Tensor:
    """Policy shaping ``-A * p / (p + gamma)`` with the behaviour probability taken as 1.

    The shaping lifts the gradient of low-probability demonstration tokens, which plain importance
    weighting would nearly ignore.
    """
    advantages_B_T = _require(inputs.advantages_B_T, "advantages_B_T", "shaped", log_prob_B_T)
    prob_B_T = log_prob_B_T.exp()
    return -advantages_B_T * prob_B_T / (prob_B_T + params.gamma)


@register_off_policy_loss("importance")
def importance_loss(log_prob_B_T: Tensor, inputs: OffPolicyInputs, params: OffPolicyParams) -> Tensor:
    """``-A * min(p / p_old, is_clip)``: ratio to the pre-update policy, clipped above.

    Once clipped the token gives no gradient, so one batch cannot push a token's probability far
    above its pre-update value.
    """
    advantages_B_T = _require(inputs.advantages_B_T, "advantages_B_T", "importance", log_prob_B_T)
    old_log_prob_B_T = _require(inputs.old_log_prob_B_T, "old_log_prob_B_T", "importance", log_prob_B_T)
    ratio_B_T = (log_prob_B_T - old_log_prob_B_T).exp()
    return -advantages_B_T * ratio_B_T.clamp(max=params.is_clip)


@register_off_policy_loss("chord")
def chord_loss(log_prob_B_T: Tensor, inputs: OffPolicyInputs, params: OffPolicyParams) -> Tensor:
    """NLL weighted by ``p * (1 - p)`` (no gradient through the weight).

    The weight fades out tokens the policy already knows (p near 1) and tokens far from it
    (p near 0), which would otherwise dominate and disrupt the policy.
    """
    prob_B_T = log_prob_B_T.detach().exp()
    return -(prob_B_T * (1.0 - prob_B_T)) * log_prob_B_T


@register_off_policy_loss("srft")
def srft_loss(log_prob_B_T: Tensor, inputs: OffPolicyInputs, params: OffPolicyParams) -> Tensor:
    """NLL weighted by ``exp(-H)`` (no gradient through the weight).

    High-entropy positions get a smaller weight, so demonstrations do not flatten the policy
    where it is still uncertain.
    """
    entropy_B_T = _require(inputs.entropy_B_T, "entropy_B_T", "srft", log_prob_B_T)
    return -torch.exp(-entropy_B_T) * log_prob_B_T


_RESHAPE_PREFIX = "p_div_p_"
_NO_RESHAPE = "no_reshape"
# A plain decimal number (optional exponent): stricter than float(), which also takes "inf", "1_0", " 1".
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def parse_reshape(value: str) -> float | None:
    """Parse the ``off_policy_reshape`` config string: the shaping gamma, or ``None`` for no shaping.

    Accepted forms are ``no_reshape`` and ``p_div_p_<gamma>`` with gamma a decimal number > 0
    (for example ``p_div_p_0.1``).
    """
    accepted = f"accepted forms: {_NO_RESHAPE!r} or '{_RESHAPE_PREFIX}<gamma>' with gamma > 0, e.g. 'p_div_p_0.1'"
    if value == _NO_RESHAPE:
        return None
    if not value.startswith(_RESHAPE_PREFIX):
        raise ValueError(f"unknown off_policy_reshape={value!r}; {accepted}")
    text = value[len(_RESHAPE_PREFIX) :]
    if _DECIMAL.fullmatch(text) is None:
        raise ValueError(f"off_policy_reshape={value!r} has no numeric gamma; {accepted}")
    gamma = float(text)
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"off_policy_reshape={value!r} has gamma={gamma}, which must be finite and > 0; {accepted}")
    return gamma

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

    advantages_B_T: Tensor | None = None  # advantage of the demonstration tokens (shaped, clipped_old_ratio)
    old_log_prob_B_T: Tensor | None = None  # log-prob under the pre-update policy (clipped_old_ratio)
    entropy_B_T: Tensor | None = None  # entropy of the current policy at each token (entropy_weighted_nll)


RESHAPES = ("p_div_p", "no_reshape", "logp", "p_logp", "square_root", "pow")


@dataclass(frozen=True)
class OffPolicyParams:
    """Scalar hyper-parameters shared by the off-policy losses.

    ``reshape`` picks g in the shaped loss ``-A * g(p)`` (the original's ``off_policy_reshape``):
    ``p_div_p`` p/(p+gamma), ``no_reshape`` p, ``logp`` w*log p, ``p_logp`` p + w*log p,
    ``square_root`` sqrt(p), ``pow`` p**k; ``max_clip``/``min_clip`` clamp g (no gradient beyond).
    """

    gamma: float = 0.1  # shaping constant of f(p) = p / (p + gamma)
    is_clip: float = 2.0  # upper clip of the ratio to the pre-update policy (clipped_old_ratio)
    reshape: str = "p_div_p"
    reshape_weight: float = 0.1  # w of logp / p_logp
    pow_exp: float = 0.5  # k of pow
    max_clip: float | None = None  # upper clamp of g (None = off)
    min_clip: float | None = None  # lower clamp of g (None = off)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"off-policy gamma must be a finite number > 0, got {self.gamma}")
        if not (math.isfinite(self.is_clip) and self.is_clip > 0):
            raise ValueError(f"off-policy is_clip must be a finite number > 0, got {self.is_clip}")
        if self.reshape not in RESHAPES:
            raise ValueError(f"unknown off-policy reshape {self.reshape!r}; valid: {', '.join(RESHAPES)}")
        for name in ("reshape_weight", "pow_exp"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"off-policy {name} must be finite, got {getattr(self, name)}")
        if self.max_clip is not None and self.min_clip is not None and self.min_clip > self.max_clip:
            raise ValueError(f"off_policy_min_clip={self.min_clip} is above off_policy_max_clip={self.max_clip}")


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


RENAMED = {"importance": "clipped_old_ratio", "chord": "phi_nll", "srft": "entropy_weighted_nll"}
ADVANTAGE_LOSSES = frozenset({"shaped", "clipped_old_ratio"})  # train nothing on a row whose advantage is 0


def build_off_policy_loss(name: str) -> OffPolicyLoss:
    """Look a loss up by name, failing with the list of valid names (and the new name of a renamed one)."""
    if name in RENAMED and name not in OFF_POLICY_LOSSES:
        raise ValueError(
            f"off-policy loss {name!r} was renamed {RENAMED[name]!r} (it is what it computes; CHORD and SRFT "
            "as published are trainer.unify_strategy=chord / srft); valid losses: "
            f"{', '.join(sorted(OFF_POLICY_LOSSES))}"
        )
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


def reshape_probability(log_prob_B_T: Tensor, params: OffPolicyParams) -> Tensor:
    """g(p) of the shaped loss, clamped to ``[min_clip, max_clip]`` when set (the original's hard clamp)."""
    prob_B_T = log_prob_B_T.exp()
    if params.reshape == "p_div_p":
        shaped_B_T = prob_B_T / (prob_B_T + params.gamma)
    elif params.reshape == "no_reshape":
        shaped_B_T = prob_B_T
    elif params.reshape == "logp":
        shaped_B_T = params.reshape_weight * log_prob_B_T
    elif params.reshape == "p_logp":
        shaped_B_T = prob_B_T + params.reshape_weight * log_prob_B_T
    elif params.reshape == "square_root":
        shaped_B_T = prob_B_T.sqrt()
    else:  # pow
        shaped_B_T = prob_B_T.pow(params.pow_exp)
    if params.max_clip is not None or params.min_clip is not None:
        shaped_B_T = shaped_B_T.clamp(min=params.min_clip, max=params.max_clip)
    return shaped_B_T


@register_off_policy_loss("shaped")
def shaped_loss(log_prob_B_T: Tensor, inputs: OffPolicyInputs, params: OffPolicyParams) -> Tensor:
    """Policy shaping ``-A * g(p)`` with the behaviour probability taken as 1 (LUFFY; g from ``params``).

    The default g = p / (p + gamma) lifts the gradient of low-probability demonstration tokens, which
    plain importance weighting would nearly ignore.
    """
    advantages_B_T = _require(inputs.advantages_B_T, "advantages_B_T", "shaped", log_prob_B_T)
    return -advantages_B_T * reshape_probability(log_prob_B_T, params)


@register_off_policy_loss("clipped_old_ratio")
def clipped_old_ratio_loss(log_prob_B_T: Tensor, inputs: OffPolicyInputs, params: OffPolicyParams) -> Tensor:
    """``-A * min(p / p_old, is_clip)``: ratio to the *pre-update policy* (not to the teacher), clipped above.

    Once clipped the token gives no gradient, so one batch cannot push a token's probability far
    above its pre-update value.
    """
    advantages_B_T = _require(inputs.advantages_B_T, "advantages_B_T", "clipped_old_ratio", log_prob_B_T)
    old_log_prob_B_T = _require(inputs.old_log_prob_B_T, "old_log_prob_B_T", "clipped_old_ratio", log_prob_B_T)
    ratio_B_T = (log_prob_B_T - old_log_prob_B_T).exp()
    return -advantages_B_T * ratio_B_T.clamp(max=params.is_clip)


@register_off_policy_loss("phi_nll")
def phi_nll_loss(log_prob_B_T: Tensor, inputs: OffPolicyInputs, params: OffPolicyParams) -> Tensor:
    """NLL weighted by ``phi = p * (1 - p)`` (no gradient through the weight): CHORD-phi's token weight.

    The weight fades out tokens the policy already knows (p near 1) and tokens far from it
    (p near 0), which would otherwise dominate and disrupt the policy.
    """
    prob_B_T = log_prob_B_T.detach().exp()
    return -(prob_B_T * (1.0 - prob_B_T)) * log_prob_B_T


@register_off_policy_loss("entropy_weighted_nll")
def entropy_weighted_nll_loss(log_prob_B_T: Tensor, inputs: OffPolicyInputs, params: OffPolicyParams) -> Tensor:
    """NLL weighted per token by ``exp(-H_t)`` (no gradient through the weight).

    High-entropy positions get a smaller weight, so demonstrations do not flatten the policy where it
    is still uncertain. (SRFT as published weights by the *sequence* entropy: ``unify_strategy=srft``.)
    """
    entropy_B_T = _require(inputs.entropy_B_T, "entropy_B_T", "entropy_weighted_nll", log_prob_B_T)
    return -torch.exp(-entropy_B_T) * log_prob_B_T


_RESHAPE_PREFIX = "p_div_p_"
# A plain decimal number (optional exponent): stricter than float(), which also takes "inf", "1_0", " 1".
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def parse_reshape(value: str) -> tuple[str, float]:
    """Parse the ``off_policy_reshape`` config string into ``(reshape, gamma)`` for ``OffPolicyParams``.

    Accepted forms are the original's ``no_reshape``, ``logp``, ``p_logp``, ``square_root``, ``pow`` and
    ``p_div_p_<gamma>`` with gamma a decimal number > 0 (for example ``p_div_p_0.1``); gamma is
    ``OffPolicyParams.gamma`` for the forms that have none.
    """
    named = [r for r in RESHAPES if r != "p_div_p"]
    accepted = (
        f"accepted forms: {', '.join(repr(r) for r in named)} or '{_RESHAPE_PREFIX}<gamma>' with gamma > 0, "
        "e.g. 'p_div_p_0.1'"
    )
    if value in named:
        return value, OffPolicyParams.gamma
    if not value.startswith(_RESHAPE_PREFIX):
        raise ValueError(f"unknown off_policy_reshape={value!r}; {accepted}")
    text = value[len(_RESHAPE_PREFIX) :]
    if _DECIMAL.fullmatch(text) is None:
        raise ValueError(f"off_policy_reshape={value!r} has no numeric gamma; {accepted}")
    gamma = float(text)
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"off_policy_reshape={value!r} has gamma={gamma}, which must be finite and > 0; {accepted}")
    return "p_div_p", gamma

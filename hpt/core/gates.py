"""Gates: decide per prompt group whether it teaches by demonstration (SFT) or by rollouts (RL).

A gate is a function ``(successes, group_size, config) -> Mode``; ``GATES`` is the registry, so a
new gate is one function plus one entry, with no change to the trainer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Mode(str, Enum):
    """What one prompt group contributes to the update."""

    SFT = "sft"  # drop the rollouts, train on the demonstration with the off-policy loss
    RL = "rl"  # keep the rollouts, train them with the policy-gradient loss


@dataclass(frozen=True)
class GateConfig:
    """Gate parameters, mirroring ``trainer.switch_gate``."""

    switch_gate: int = 0

    def __post_init__(self) -> None:
        if self.switch_gate < -1:
            raise ValueError(
                f"trainer.switch_gate must be >= -1 (-1 sends every prompt to RL), got {self.switch_gate}"
            )


Gate = Callable[[int, int, GateConfig], Mode]


def switch_gate(successes: int, group_size: int, config: GateConfig) -> Mode:
    """HPT switch: at most ``switch_gate`` successes -> SFT on the demonstration, else RL."""
    return Mode.SFT if successes <= config.switch_gate else Mode.RL


def no_gate(successes: int, group_size: int, config: GateConfig) -> Mode:
    """Plain GRPO: every group is trained on its rollouts."""
    return Mode.RL


GATES: dict[str, Gate] = {"switch": switch_gate, "no": no_gate}


def build_gate(name: str) -> Gate:
    """Look a gate up by its ``trainer.unify_strategy`` name, failing with the valid names."""
    try:
        return GATES[name]
    except KeyError:
        raise ValueError(
            f"unknown trainer.unify_strategy={name!r}; valid strategies: {', '.join(sorted(GATES))}"
        ) from None

"""Typed HPT settings, validated once at start-up so bad values fail before any compute."""

from __future__ import annotations

from dataclasses import dataclass

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
from verl.workers.config import FSDPActorConfig

from hpt.core.gates import GateConfig, build_gate


@dataclass
class HPTActorConfig(FSDPActorConfig):
    """verl's FSDP actor config plus the hybrid loss's coefficient.

    The actor section is instantiated from ``_target_`` and rejects unknown keys, so hpt's own
    keys need this subclass (``actor_rollout_ref.actor._target_`` points here).
    """

    sft_loss_coef: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.sft_loss_coef < 0:
            raise ValueError(
                f"actor_rollout_ref.actor.sft_loss_coef must be >= 0, got {self.sft_loss_coef}"
            )


@dataclass(frozen=True)
class HPTSettings:
    """The driver-side HPT keys that live under ``trainer.*``."""

    unify_strategy: str
    gate: GateConfig
    success_threshold: float

    @classmethod
    def from_trainer_config(cls, trainer_cfg) -> HPTSettings:
        settings = cls(
            unify_strategy=str(trainer_cfg.unify_strategy),
            gate=GateConfig(switch_gate=int(trainer_cfg.switch_gate)),
            success_threshold=float(trainer_cfg.success_threshold),
        )
        build_gate(settings.unify_strategy)
        return settings

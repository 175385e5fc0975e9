"""Typed HPT settings, validated once at start-up so bad values fail before any compute."""

from __future__ import annotations

from dataclasses import dataclass

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
from omegaconf import OmegaConf
from verl.workers.config import FSDPActorConfig

from hpt.core.gates import GateConfig, build_gate, gate_name_at_step, in_sft_warmup
from hpt.core.offpolicy import OffPolicyParams, build_off_policy_loss, parse_reshape
from hpt.core.schedules import ScheduleParams, build_schedule
from hpt.trainer.custom_contract import CUSTOM_LOSS_MODE, GlobalBatchInfo

AGG_MODES = ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-sum-norm", "seq-mean-token-mean")


@dataclass
class HPTActorConfig(FSDPActorConfig):
    """verl's FSDP actor config plus the hybrid loss's keys.

    The actor section is instantiated from ``_target_`` and rejects unknown keys, so hpt's own
    keys need this subclass (``actor_rollout_ref.actor._target_`` points here).
    """

    sft_loss_coef: float = 1.0  # weight of the SFT term on demonstration tokens
    off_loss_coef: float = 1.0  # weight of the off-policy RL term on demonstration tokens
    offline_loss_type: str = "nll"  # per-token loss of the SFT term (hpt.core.offpolicy registry)
    off_policy_loss_type: str = "shaped"  # per-token loss of the off-policy RL term
    off_policy_reshape: str = "p_div_p_0.1"  # LUFFY's shaping f(p) = p / (p + gamma) of the shaped loss
    off_policy_is_clip: float = 2.0  # upper clip of the importance ratio of the importance loss
    offline_loss_agg_mode: str = "token-mean"  # aggregation of both demonstration terms
    custom_loss_path: str | None = None  # .py file registering policy loss "custom" (loss_mode=custom)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "global_batch_info", GlobalBatchInfo(self.global_batch_info))
        prefix = "actor_rollout_ref.actor"
        if self.sft_loss_coef < 0 or self.off_loss_coef < 0:
            raise ValueError(
                f"{prefix}.sft_loss_coef and off_loss_coef must be >= 0, got {self.sft_loss_coef}, {self.off_loss_coef}"
            )
        build_off_policy_loss(self.offline_loss_type)
        build_off_policy_loss(self.off_policy_loss_type)
        self.off_policy_params()
        if self.offline_loss_agg_mode not in AGG_MODES:
            raise ValueError(
                f"unknown {prefix}.offline_loss_agg_mode={self.offline_loss_agg_mode!r}; valid: {AGG_MODES}"
            )
        needs_entropy = "srft" in (self.offline_loss_type, self.off_policy_loss_type)
        if needs_entropy and not (self.calculate_entropy or self.entropy_coeff != 0):
            raise ValueError(f"the srft loss weights tokens by entropy: set {prefix}.calculate_entropy=true")
        if self.policy_loss.get("loss_mode", "vanilla") == CUSTOM_LOSS_MODE and not self.custom_loss_path:
            raise ValueError(
                f"policy_loss.loss_mode=custom needs {prefix}.custom_loss_path=/path/to/custom_hybrid_loss.py"
            )

    def off_policy_params(self) -> OffPolicyParams:
        """Parameters of the demonstration losses; ``no_reshape`` is only valid without the shaped loss."""
        gamma = parse_reshape(self.off_policy_reshape)
        if gamma is None and self.off_policy_loss_type == "shaped":
            raise ValueError(
                "actor_rollout_ref.actor.off_policy_reshape=no_reshape conflicts with off_policy_loss_type=shaped; "
                "choose a gamma (p_div_p_0.1) or another off_policy_loss_type (importance, nll, chord, srft)"
            )
        return OffPolicyParams(gamma=gamma or OffPolicyParams.gamma, is_clip=self.off_policy_is_clip)


@dataclass(frozen=True)
class ScheduleSettings:
    """``trainer.lambda_schedule``: how the demonstration terms' weight moves over training."""

    name: str
    params: ScheduleParams

    def __call__(self, progress: float, pass_rate: float) -> float:
        return build_schedule(self.name)(progress, pass_rate, self.params)


@dataclass(frozen=True)
class HPTSettings:
    """The driver-side HPT keys that live under ``trainer.*``."""

    unify_strategy: str
    gate: GateConfig
    sft_warmup_steps: int
    success_threshold: float
    demo_reward: float
    schedule: ScheduleSettings

    def gate_name_at_step(self, step: int) -> str:
        return gate_name_at_step(step, self.unify_strategy, self.sft_warmup_steps)

    def in_sft_warmup(self, step: int) -> bool:
        return in_sft_warmup(step, self.sft_warmup_steps)

    @classmethod
    def from_trainer_config(cls, trainer_cfg) -> HPTSettings:
        schedule_cfg = OmegaConf.to_container(trainer_cfg.lambda_schedule, resolve=True)
        name = schedule_cfg.pop("name")
        soft_table = trainer_cfg.soft_table
        settings = cls(
            unify_strategy=str(trainer_cfg.unify_strategy),
            gate=GateConfig(
                switch_gate=int(trainer_cfg.switch_gate),
                switch_gate_off=None if trainer_cfg.switch_gate_off is None else int(trainer_cfg.switch_gate_off),
                soft_type=int(trainer_cfg.soft_type),
                soft_table=None if soft_table is None else [list(map(float, row)) for row in soft_table],
            ),
            sft_warmup_steps=int(trainer_cfg.sft_warmup_steps),
            success_threshold=float(trainer_cfg.success_threshold),
            demo_reward=float(trainer_cfg.demo_reward),
            schedule=ScheduleSettings(name=str(name), params=ScheduleParams(**schedule_cfg)),
        )
        build_gate(settings.unify_strategy)
        build_gate(settings.gate_name_at_step(1))  # a negative warm-up fails here, before any compute
        build_schedule(settings.schedule.name)
        return settings

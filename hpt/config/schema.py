"""Typed HPT settings, validated once at start-up so bad values fail before any compute."""

from __future__ import annotations

from dataclasses import dataclass

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
from omegaconf import OmegaConf
from verl.workers.config import FSDPActorConfig

from hpt.core.gates import GateConfig, build_gate, gate_name_at_step, in_sft_warmup
from hpt.core.loss import check_normalization
from hpt.core.methods import ChordSchedule
from hpt.core.offpolicy import ADVANTAGE_LOSSES, OffPolicyParams, build_off_policy_loss, parse_reshape
from hpt.core.schedules import ScheduleParams, build_schedule
from hpt.trainer.custom_contract import CUSTOM_LOSS_MODE, GlobalBatchInfo

AGG_MODES = ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-sum-norm", "seq-mean-token-mean")
ORIGINAL_AGG_MODES = ("seq-mean-token-sum-norm", "token-mean")  # loss_remove_token_mean=True / False


@dataclass
class HPTActorConfig(FSDPActorConfig):
    """verl's FSDP actor config plus the hybrid loss's keys.

    The actor section is instantiated from ``_target_`` and rejects unknown keys, so hpt's own
    keys need this subclass (``actor_rollout_ref.actor._target_`` points here).
    """

    sft_loss_coef: float = 1.0  # weight of the SFT term on demonstration tokens
    off_loss_coef: float = 1.0  # weight of the off-policy RL term on demonstration tokens
    loss_normalization: str = "global"  # global | original (hpt.core.loss)
    offline_loss_type: str = "nll"  # per-token loss of the SFT term (hpt.core.offpolicy registry)
    off_policy_loss_type: str = "shaped"  # per-token loss of the off-policy RL term
    off_policy_reshape: str = "p_div_p_0.1"  # g of the shaped loss -A*g(p): p_div_p_<gamma> | no_reshape | logp | ...
    off_policy_reshape_weight: float = 0.1  # w of the logp / p_logp reshapes
    off_policy_reshape_pow_exp: float = 0.5  # k of the pow reshape
    off_policy_max_clip: float | None = None  # clamp g(p) to <= this (null = off; the original's -1)
    off_policy_min_clip: float | None = None  # clamp g(p) to >= this (null = off; the original's -1)
    off_policy_is_clip: float = 2.0  # upper clip of pi / pi_old of the clipped_old_ratio loss
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
        check_normalization(self.loss_normalization)
        build_off_policy_loss(self.offline_loss_type)
        build_off_policy_loss(self.off_policy_loss_type)
        if self.offline_loss_type in ADVANTAGE_LOSSES:
            raise ValueError(
                f"{prefix}.offline_loss_type={self.offline_loss_type} is advantage-based, but the SFT term's "
                "demonstration rows are their own group with advantage 0, so it would train nothing; use nll, "
                "phi_nll or entropy_weighted_nll for the SFT term and put advantage-based losses in "
                f"{prefix}.off_policy_loss_type (trained by luffy, srft, soft and switch_gate_off)"
            )
        self.off_policy_params()
        self._check_original_normalization(prefix)
        if self.offline_loss_agg_mode not in AGG_MODES:
            raise ValueError(
                f"unknown {prefix}.offline_loss_agg_mode={self.offline_loss_agg_mode!r}; valid: {AGG_MODES}"
            )
        needs_entropy = "entropy_weighted_nll" in (self.offline_loss_type, self.off_policy_loss_type)
        if needs_entropy and not (self.calculate_entropy or self.entropy_coeff != 0):
            raise ValueError(f"entropy_weighted_nll weights tokens by entropy: set {prefix}.calculate_entropy=true")
        if self.policy_loss.get("loss_mode", "vanilla") == CUSTOM_LOSS_MODE and not self.custom_loss_path:
            raise ValueError(
                f"policy_loss.loss_mode=custom needs {prefix}.custom_loss_path=/path/to/custom_hybrid_loss.py"
            )

    def _check_original_normalization(self, prefix: str) -> None:
        """``original`` exists for the original code's two aggregations and needs its fixed L."""
        if self.loss_normalization != "original":
            return
        if self.policy_loss.get("loss_mode", "vanilla") == CUSTOM_LOSS_MODE:
            raise ValueError(
                f"{prefix}.loss_normalization=original would be ignored by policy_loss.loss_mode=custom (the custom "
                "loss normalises itself); use loss_normalization=global"
            )
        if self.loss_agg_mode not in ORIGINAL_AGG_MODES:
            raise ValueError(
                f"{prefix}.loss_normalization=original reproduces the original code's aggregations only: "
                f"loss_agg_mode must be one of {ORIGINAL_AGG_MODES} (loss_remove_token_mean=True / False), "
                f"got {self.loss_agg_mode!r}"
            )
        if self.loss_agg_mode == "seq-mean-token-sum-norm" and self.loss_scale_factor is None:
            raise ValueError(
                f"{prefix}.loss_normalization=original with seq-mean-token-sum-norm divides by the original's L, the "
                f"padded response width: set {prefix}.loss_scale_factor=<data.max_response_length>"
            )

    def off_policy_params(self) -> OffPolicyParams:
        """Parameters of the demonstration losses (the original's off_policy_reshape* and *_clip keys)."""
        reshape, gamma = parse_reshape(self.off_policy_reshape)
        return OffPolicyParams(
            gamma=gamma,
            is_clip=self.off_policy_is_clip,
            reshape=reshape,
            reshape_weight=self.off_policy_reshape_weight,
            pow_exp=self.off_policy_reshape_pow_exp,
            max_clip=self.off_policy_max_clip,
            min_clip=self.off_policy_min_clip,
        )


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
    chord: ChordSchedule = ChordSchedule()

    def gate_name_at_step(self, step: int) -> str:
        return gate_name_at_step(step, self.unify_strategy, self.sft_warmup_steps)

    def in_sft_warmup(self, step: int) -> bool:
        return in_sft_warmup(step, self.sft_warmup_steps)

    def check_no_ignored_keys(self) -> None:
        """A key that only one strategy reads, set away from its default under another, is an error."""
        strategy = self.unify_strategy
        ignored = []
        if self.gate.switch_gate_off is not None and strategy != "switch":
            ignored.append("trainer.switch_gate_off (read by switch only)")
        if (self.gate.soft_table is not None or self.gate.soft_type != 0) and strategy != "soft":
            ignored.append("trainer.soft_type / soft_table (read by soft only)")
        if self.chord != ChordSchedule() and strategy != "chord":
            ignored.append("trainer.chord.* (read by chord only)")
        if ignored:
            raise ValueError(
                f"trainer.unify_strategy={strategy} ignores {'; '.join(ignored)}: remove the key(s) or pick the "
                "strategy that reads them"
            )

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
            chord=_chord_schedule(trainer_cfg),
        )
        build_gate(settings.unify_strategy)
        settings.check_no_ignored_keys()
        build_gate(settings.gate_name_at_step(1))  # a negative warm-up fails here, before any compute
        build_schedule(settings.schedule.name)
        return settings


def _chord_schedule(trainer_cfg) -> ChordSchedule:
    """``trainer.chord`` (absent in older configs: CHORD's defaults)."""
    chord_cfg = trainer_cfg.get("chord")
    if chord_cfg is None:
        return ChordSchedule()
    values = OmegaConf.to_container(chord_cfg, resolve=True)
    known = set(ChordSchedule.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown trainer.chord key(s) {unknown}; valid: {sorted(known)}")
    return ChordSchedule(**values)

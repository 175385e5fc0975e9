"""The compared methods as in-process engine configurations (``hpt.toy.engine.MethodConfig``).

Each method is a family of candidate settings tuned the same way: every candidate × every learning
rate of the sweep runs on seed 0, the best on the validation split is chosen and run on the other
seeds, and the test split reports it. SFT→GRPO's candidates are its switch points (a third and two
thirds of the budget). Every hybrid runs under both ``loss_normalization`` values: ``_orig`` is the
original code's loss as the HPT/LUFFY scripts ran it (``loss_remove_token_mean=True``, i.e. verl's
``seq-mean-token-sum-norm`` Σ/L aggregation, with the original's per-micro-batch sums). Under
``token-mean`` the two normalisations coincide for a method without an off-policy term (switch, CHORD),
so the ``_orig`` variants take the scripts' aggregation. CHORD's μ schedule and the gates' settings are
fixed, not tuned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from hpt.core import GateConfig
from hpt.core.methods import ChordSchedule
from hpt.toy.engine import MethodConfig
from hpt.toy.loss import LossSettings

ORIGINAL = LossSettings(loss_normalization="original", loss_agg_mode="seq-mean-token-sum-norm")


@dataclass(frozen=True)
class Family:
    """A method in tables and plots: its label and its candidate settings for a budget of ``steps``."""

    name: str
    label: str
    candidates: Callable[[int], dict[str, MethodConfig]]  # variant name ("" if one) -> configuration


def _one(config: MethodConfig) -> Callable[[int], dict[str, MethodConfig]]:
    return lambda steps: {"": config}


def _switch_points(steps: int) -> dict[str, MethodConfig]:
    points = sorted({max(1, steps // 3), max(1, 2 * steps // 3)})
    return {f"switch{k}": MethodConfig("no", sft_warmup_steps=k) for k in points if k < steps}


def _chord(loss: LossSettings) -> Callable[[int], dict[str, MethodConfig]]:
    """CHORD-phi, mu from 0.5 down to 0.05 along half a cosine over the budget."""
    def candidates(steps: int) -> dict[str, MethodConfig]:
        schedule = ChordSchedule(mu_warmup_steps=0, mu_decay_steps=steps, mu_peak=0.5, mu_valley=0.05,
                                 enable_phi_function=True)
        return {"": MethodConfig("chord", chord=schedule, loss=loss)}
    return candidates


HYBRIDS = {
    "luffy": ("LUFFY", MethodConfig("luffy")),
    "srft": ("SRFT", MethodConfig("srft")),
    "hpt_switch": ("HPT switch (gate 0)", MethodConfig("switch", gate=GateConfig(switch_gate=0))),
    "hpt_soft": ("HPT soft (table 0)", MethodConfig("soft", gate=GateConfig(soft_type=0))),
}


def _families() -> dict[str, Family]:
    families = [
        Family("sft", "SFT", _one(MethodConfig("sft"))),
        Family("grpo", "GRPO", _one(MethodConfig("no"))),
        Family("sft_grpo", "SFT→GRPO", _switch_points),
        Family("chord", "CHORD-φ", _chord(LossSettings())),
        Family("chord_orig", "CHORD-φ (original norm.)", _chord(ORIGINAL)),
    ]
    for name, (label, config) in HYBRIDS.items():
        families.append(Family(name, label, _one(config)))
        families.append(Family(f"{name}_orig", f"{label} (original norm.)", _one(replace(config, loss=ORIGINAL))))
    return {family.name: family for family in families}


FAMILIES: dict[str, Family] = _families()


def resolve(names: list[str]) -> list[Family]:
    """The families named, in the given order; an unknown name lists the valid ones."""
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(FAMILIES)}")
    return [FAMILIES[name] for name in names]

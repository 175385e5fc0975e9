"""The ungated members of the family, as gates: pure GRPO, pure SFT, LUFFY's mixed groups,
GRPO + lambda * SFT (``mix``), CHORD and SRFT."""

from hpt.core.gates.base import RL_ROUTE, GateConfig, GroupOutcome, Mode, Route, register_gate
from hpt.core.gates.switch import SFT_ROUTE

LUFFY_ROUTE = Route(Mode.MIX, rollout_weight=1.0, off_weight=1.0, demo_in_group=True)
MIX_ROUTE = Route(Mode.MIX, rollout_weight=1.0, sft_weight=1.0)
SRFT_ROUTE = Route(Mode.MIX, rollout_weight=1.0, sft_weight=1.0, off_weight=1.0, demo_in_group=True)


@register_gate("no")
def no_gate(outcome: GroupOutcome, config: GateConfig) -> Route:
    """Plain GRPO: every group is trained on its rollouts."""
    return RL_ROUTE


@register_gate("sft")
def sft_gate(outcome: GroupOutcome, config: GateConfig) -> Route:
    """SFT baseline: every group is trained on its demonstration only."""
    return SFT_ROUTE


@register_gate("luffy")
def luffy_gate(outcome: GroupOutcome, config: GateConfig) -> Route:
    """LUFFY: rollouts plus the demonstration in one group; advantage over the mixed group,
    the off-policy (shaped) loss on the demonstration."""
    return LUFFY_ROUTE


@register_gate("mix")
def mix_gate(outcome: GroupOutcome, config: GateConfig) -> Route:
    """GRPO + lambda * SFT (PPO-ptx style): every group trains its rollouts with GRPO *and* its
    demonstration with SFT; the demonstration is not in the group, so the advantages are the rollouts'
    own. ``trainer.lambda_schedule`` scales the SFT term; the GRPO term keeps weight 1."""
    return MIX_ROUTE


@register_gate("chord")
def chord_gate(outcome: GroupOutcome, config: GateConfig) -> Route:
    """CHORD: the rows of ``mix``; the trainer weighs them ``(1 - mu)`` (rollouts) and ``mu`` (experts)
    from ``trainer.chord`` (``hpt.core.methods.ChordSchedule``)."""
    return MIX_ROUTE


@register_gate("srft")
def srft_gate(outcome: GroupOutcome, config: GateConfig) -> Route:
    """SRFT: rollouts and the demonstration in one group; the demonstration trains with both the SFT
    and the off-policy RL term, and the loss applies SRFT's entropy weights (``hpt.core.methods``)."""
    return SRFT_ROUTE

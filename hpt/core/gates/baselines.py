"""The ungated members of the family, as gates: pure GRPO, pure SFT, LUFFY's mixed groups and
schedule-based mixing."""

from hpt.core.gates.base import RL_ROUTE, GateConfig, GroupOutcome, Mode, Route, register_gate
from hpt.core.gates.switch import SFT_ROUTE

LUFFY_ROUTE = Route(Mode.MIX, rollout_weight=1.0, off_weight=1.0, demo_in_group=True)
MIX_ROUTE = Route(Mode.MIX, rollout_weight=1.0, sft_weight=1.0)


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
    """Schedule-based mixing (CHORD/SRFT style): every group trains its rollouts with GRPO *and* its
    demonstration with SFT; the demonstration is not in the group, so the advantages are the rollouts'
    own. The balance over training comes from ``trainer.lambda_schedule``, which scales the SFT term."""
    return MIX_ROUTE

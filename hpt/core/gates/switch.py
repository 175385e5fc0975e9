"""HPT's switch gate: per prompt, SFT on the demonstration when the rollouts (nearly) all fail.

With ``switch_gate_off`` above ``switch_gate`` a middle band trains the demonstration with the
off-policy RL loss instead (the original code meant to do this but lost the flag, hpt_spec §7.2).
"""

from hpt.core.gates.base import RL_ROUTE, GateConfig, GroupOutcome, Mode, Route, register_gate

SFT_ROUTE = Route(Mode.SFT, sft_weight=1.0)
OFF_ROUTE = Route(Mode.OFF, off_weight=1.0)


@register_gate("switch")
def switch_gate(outcome: GroupOutcome, config: GateConfig) -> Route:
    """``k <= switch_gate`` -> SFT; ``switch_gate < k <= switch_gate_off`` -> off-policy RL; else RL."""
    if outcome.successes <= config.switch_gate:
        return SFT_ROUTE
    if outcome.successes <= config.off_gate:
        return OFF_ROUTE
    return RL_ROUTE

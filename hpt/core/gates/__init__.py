"""Gates decide per prompt group what it teaches; ``GATES`` is the registry (``trainer.unify_strategy``).

Importing this package registers the built-in gates: ``switch``, ``soft``, ``no``, ``sft``, ``luffy``,
``mix``, ``chord``, ``srft``.
"""

from hpt.core.gates import baselines, soft, switch
from hpt.core.gates.base import (
    GATES,
    RL_ROUTE,
    Gate,
    GateConfig,
    GroupOutcome,
    Mode,
    Route,
    build_gate,
    gate_name_at_step,
    in_sft_warmup,
    register_gate,
)

__all__ = [
    "GATES",
    "RL_ROUTE",
    "Gate",
    "GateConfig",
    "GroupOutcome",
    "Mode",
    "Route",
    "baselines",
    "build_gate",
    "gate_name_at_step",
    "in_sft_warmup",
    "register_gate",
    "soft",
    "switch",
]

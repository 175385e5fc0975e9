"""The HPT algorithm in pure torch: no verl, Ray or transformers imports.

Engines (the verl trainer, the minimal reference loop) adapt their data to these functions.
"""

from hpt.core.gates import (
    GATES,
    GateConfig,
    GroupOutcome,
    Mode,
    Route,
    build_gate,
    gate_name_at_step,
    register_gate,
)
from hpt.core.groups import GroupStats, count_successes
from hpt.core.loss import (
    COUNT_NAMES,
    HybridLossParts,
    TermMasks,
    global_token_mean,
    term_counts,
    term_masks,
    weighted_token_mean,
)
from hpt.core.plan import DemoRow, RebuildPlan, padding_needed, plan_rebuild

__all__ = [
    "COUNT_NAMES",
    "GATES",
    "DemoRow",
    "GateConfig",
    "GroupOutcome",
    "GroupStats",
    "HybridLossParts",
    "Mode",
    "RebuildPlan",
    "Route",
    "TermMasks",
    "build_gate",
    "gate_name_at_step",
    "count_successes",
    "global_token_mean",
    "padding_needed",
    "plan_rebuild",
    "register_gate",
    "term_counts",
    "term_masks",
    "weighted_token_mean",
]

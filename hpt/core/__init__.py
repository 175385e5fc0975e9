"""The HPT algorithm in pure torch: no verl, Ray or transformers imports.

Engines (the verl trainer, the minimal reference loop) adapt their data to these functions.
"""

from hpt.core.gates import GATES, GateConfig, Mode, build_gate
from hpt.core.groups import GroupStats, count_successes
from hpt.core.loss import (
    HybridLossParts,
    global_token_mean,
    hybrid_loss,
    nll_term,
    split_token_masks,
    token_counts,
)
from hpt.core.plan import RebuildPlan, padding_needed, plan_rebuild

__all__ = [
    "GATES",
    "GateConfig",
    "GroupStats",
    "HybridLossParts",
    "Mode",
    "RebuildPlan",
    "build_gate",
    "count_successes",
    "global_token_mean",
    "hybrid_loss",
    "nll_term",
    "padding_needed",
    "plan_rebuild",
    "split_token_masks",
    "token_counts",
]

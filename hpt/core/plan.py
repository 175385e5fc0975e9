"""The rebuild plan: which rollout rows stay, which demonstration rows are added, with which weights.

The plan is pure bookkeeping over row indices and per-row weights; the engine adapter turns it into
tensors. Keeping it separate makes the invariants (no row lost, no loss-carrying row duplicated,
divisible batch, weights consistent with the gate) testable without any engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hpt.core.gates import RL_ROUTE, Gate, GateConfig, GroupOutcome, Mode, Route
from hpt.core.groups import GroupStats


@dataclass(frozen=True)
class DemoRow:
    """A demonstration row to append: the rollout row whose prompt it reuses, and its weights."""

    source_row: int
    sft_weight: float
    off_weight: float
    in_group: bool  # shares the source group's uid, so its advantage is computed with the rollouts


@dataclass(frozen=True)
class RebuildPlan:
    """Result of gating one batch.

    ``keep_rows`` are original rollout rows that stay, each with its RL weight in ``keep_weights``
    (0 for rollouts kept only as the advantage baseline of an in-group demonstration); ``demos``
    are appended after them; ``num_pad`` zero-loss rows make the batch divisible.
    """

    keep_rows: tuple[int, ...]
    keep_weights: tuple[float, ...]
    demos: tuple[DemoRow, ...]
    num_pad: int
    mode_counts: dict[Mode, int]
    missing_demo_groups: int
    stream_rows: int = 0  # rows of a separate SFT stream, appended after the demonstrations
    group_modes: tuple[Mode, ...] = ()  # the route's mode of every group, in group order
    routed_prompts: int = 0  # prompts routed to their demonstration before generation (no group)

    @property
    def num_rows(self) -> int:
        return len(self.keep_rows) + len(self.demos) + self.stream_rows + self.num_pad

    @property
    def demo_source_rows(self) -> tuple[int, ...]:
        return tuple(d.source_row for d in self.demos)

    def fraction(self, mode: Mode) -> float:
        """Share of prompt groups routed to ``mode``."""
        total = sum(self.mode_counts.values())
        return self.mode_counts.get(mode, 0) / total if total else 0.0


def padding_needed(num_rows: int, multiple: int) -> int:
    """Rows to add so that ``num_rows`` becomes a multiple of ``multiple``."""
    if multiple < 1:
        raise ValueError(f"padding multiple must be >= 1, got {multiple}")
    return (-num_rows) % multiple


def route_group(stats: GroupStats, demo_available: bool, gate: Gate, config: GateConfig) -> tuple[Route, bool]:
    """The gate's route for one group, and whether it fell back to RL for lack of a demonstration.

    A group the gate wants to teach by demonstration but that has none is trained as RL instead
    (its rollouts are the only signal there is); the caller counts it.
    """
    route = gate(GroupOutcome(stats.successes, stats.size), config)
    if route.uses_demo and not demo_available:
        return RL_ROUTE, True
    return route, False


def plan_rebuild(
    groups: Sequence[GroupStats],
    has_demo: Sequence[bool],
    gate: Gate,
    config: GateConfig,
    multiple: int,
    stream_rows: int = 0,
    routed_rows: Sequence[int] = (),
    routed_route: Route | None = None,
) -> RebuildPlan:
    """Gate every group and lay out the rebuilt batch.

    Rollouts stay when they carry RL weight, or when they are the baseline of an in-group
    demonstration trained with the off-policy RL loss (their RL weight is then 0). ``stream_rows``
    rows of a separate SFT stream are counted in the padding. ``routed_rows`` are rows holding the
    templated prompts of prompts routed to their demonstration before generation: each gets a demonstration
    row weighted by ``routed_route`` (the gate's route of an all-fail group, which must use the
    demonstration without rollouts), after the groups' demonstrations, and counts as one group.
    """
    if len(groups) != len(has_demo):
        raise ValueError(f"{len(groups)} groups but {len(has_demo)} demonstration flags")
    keep: list[int] = []
    weights: list[float] = []
    demos: list[DemoRow] = []
    modes: Counter[Mode] = Counter()
    group_modes: list[Mode] = []
    missing = 0
    for stats, demo_available in zip(groups, has_demo, strict=True):
        route, fell_back = route_group(stats, demo_available, gate, config)
        missing += fell_back
        modes[route.mode] += 1
        group_modes.append(route.mode)
        keeps_rollouts = route.rollout_weight > 0 or (route.demo_in_group and route.off_weight > 0)
        if keeps_rollouts:
            keep.extend(stats.rows)
            weights.extend([route.rollout_weight] * stats.size)
        if route.uses_demo:
            in_group = route.demo_in_group and keeps_rollouts
            demos.append(DemoRow(stats.rows[0], route.sft_weight, route.off_weight, in_group))
    if routed_rows:
        if routed_route is None or not demo_only(routed_route):
            raise ValueError(f"routed prompts need a route that trains the demonstration only, got {routed_route}")
        demos.extend(DemoRow(row, routed_route.sft_weight, routed_route.off_weight, False) for row in routed_rows)
        modes[routed_route.mode] += len(routed_rows)
    return RebuildPlan(
        keep_rows=tuple(keep),
        keep_weights=tuple(weights),
        demos=tuple(demos),
        num_pad=padding_needed(len(keep) + len(demos) + stream_rows, multiple),
        mode_counts=dict(modes),
        missing_demo_groups=missing,
        stream_rows=stream_rows,
        group_modes=tuple(group_modes),
        routed_prompts=len(routed_rows),
    )


def demo_only(route: Route) -> bool:
    """The route trains the demonstration and needs no rollout (nor a rollout baseline)."""
    return route.uses_demo and route.rollout_weight == 0 and not (route.demo_in_group and route.off_weight > 0)


def rollouts_with_gradient(scores_B: torch.Tensor, groups: Sequence[GroupStats], plan: RebuildPlan) -> torch.Tensor:
    """Which generated rollouts get a policy gradient (``B`` booleans).

    A rollout trains when the plan keeps it with an RL weight > 0 and its reward differs from its
    group's mean (GRPO's baseline: an all-pass or all-fail group has zero advantage everywhere).
    Everything else was generated for nothing: the measure rollout selection tries to lower.
    """
    trained = torch.zeros(len(scores_B), dtype=torch.bool)
    weight = dict(zip(plan.keep_rows, plan.keep_weights, strict=True))
    for stats in groups:
        rows = list(stats.rows)
        mean = scores_B[rows].mean()
        for row in rows:
            trained[row] = weight.get(row, 0.0) > 0 and not torch.isclose(scores_B[row], mean)
    return trained

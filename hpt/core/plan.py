"""The rebuild plan: which rollout rows stay, which groups get a demonstration row, how much padding.

The plan is pure bookkeeping over row indices; the engine adapter turns it into tensors. Keeping it
separate makes the invariants (no row lost, no loss-carrying row duplicated, divisible batch)
testable without any engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hpt.core.gates import Gate, GateConfig, Mode
from hpt.core.groups import GroupStats


@dataclass(frozen=True)
class RebuildPlan:
    """Result of gating one batch.

    ``keep_rows`` are original rollout rows trained with RL; ``demo_source_rows`` holds, per
    demonstration row to append, the original row whose prompt it reuses; ``num_pad`` zero-loss
    rows make the batch divisible by the engine's required multiple.
    """

    keep_rows: tuple[int, ...]
    demo_source_rows: tuple[int, ...]
    num_pad: int
    sft_groups: int
    rl_groups: int
    missing_demo_groups: int

    @property
    def num_rows(self) -> int:
        return len(self.keep_rows) + len(self.demo_source_rows) + self.num_pad


def padding_needed(num_rows: int, multiple: int) -> int:
    """Rows to add so that ``num_rows`` becomes a multiple of ``multiple``."""
    if multiple < 1:
        raise ValueError(f"padding multiple must be >= 1, got {multiple}")
    return (-num_rows) % multiple


def plan_rebuild(
    groups: Sequence[GroupStats],
    has_demo: Sequence[bool],
    gate: Gate,
    config: GateConfig,
    multiple: int,
) -> RebuildPlan:
    """Gate every group and lay out the rebuilt batch.

    A group the gate sends to SFT but that has no demonstration is trained as RL instead (its
    rollouts are the only signal there is) and counted in ``missing_demo_groups``.
    """
    if len(groups) != len(has_demo):
        raise ValueError(f"{len(groups)} groups but {len(has_demo)} demonstration flags")
    keep: list[int] = []
    demos: list[int] = []
    sft = rl = missing = 0
    for stats, demo_available in zip(groups, has_demo, strict=True):
        mode = gate(stats.successes, stats.size, config)
        if mode is Mode.SFT and not demo_available:
            missing += 1
            mode = Mode.RL
        if mode is Mode.SFT:
            demos.append(stats.rows[0])
            sft += 1
        else:
            keep.extend(stats.rows)
            rl += 1
    return RebuildPlan(
        keep_rows=tuple(keep),
        demo_source_rows=tuple(demos),
        num_pad=padding_needed(len(keep) + len(demos), multiple),
        sft_groups=sft,
        rl_groups=rl,
        missing_demo_groups=missing,
    )

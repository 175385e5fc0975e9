"""Success counting per prompt group (all rollouts of one prompt share a group index)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GroupStats:
    """One prompt group: which batch rows belong to it and how many of them succeeded."""

    group: int
    rows: tuple[int, ...]
    successes: int

    @property
    def size(self) -> int:
        return len(self.rows)

    @property
    def pass_rate(self) -> float:
        return self.successes / self.size


def count_successes(
    scores_B: torch.Tensor, group_index_B: torch.Tensor, threshold: float = 0.5
) -> list[GroupStats]:
    """Count rows with ``score > threshold`` per group, groups in order of first appearance.

    A threshold rather than float equality with 1.0: verifiers may give partial or negative
    rewards, and exact equality silently miscounts them.
    """
    if scores_B.ndim != 1 or group_index_B.ndim != 1 or scores_B.shape != group_index_B.shape:
        raise ValueError(
            f"scores and group indices must be 1-D of equal length, got {tuple(scores_B.shape)} "
            f"and {tuple(group_index_B.shape)}"
        )
    rows_by_group: dict[int, list[int]] = {}
    for row, group in enumerate(group_index_B.tolist()):
        rows_by_group.setdefault(int(group), []).append(row)
    success_B = (scores_B > threshold).tolist()
    return [
        GroupStats(group=g, rows=tuple(rows), successes=sum(success_B[r] for r in rows))
        for g, rows in rows_by_group.items()
    ]

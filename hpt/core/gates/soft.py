"""HPT's soft gate: coefficient tables that blend on-policy RL, off-policy RL and SFT per group.

The original code computed these tables and never applied them (hpt_spec §7.1); here they are the
route weights. Its tables are indexed by the successes ``k`` of a mixed group of 8 = 7 rollouts + the
demonstration, with the demonstration counted as a success, so ``k = 1..8`` means 0..7 successful
rollouts out of 7. hpt indexes by the *rollout pass rate* instead, which is defined for every ``n``:
the built-in rows sit at pass rates ``0/7 .. 7/7`` and a group with ``s`` of ``n`` successes gets the
linear interpolation at ``s / n`` (exactly the original rows when ``n = 7``; no KeyError for n > 8).
A user table (``trainer.soft_table``) gives one row per success count ``0..n`` and is used as is.
"""

from __future__ import annotations

from collections.abc import Sequence

from hpt.core.gates.base import GateConfig, GroupOutcome, Mode, Route, register_gate

# (rollout RL weight, demonstration off-policy RL weight, demonstration SFT weight) at pass rate j/7.
SOFT_TABLES: dict[int, tuple[tuple[float, float, float], ...]] = {
    0: (
        (0, 0, 1), (0.125, 0.5, 0.5), (0.25, 1, 0.25), (0.5, 0.5, 0.125), (1, 0.25, 0), (1, 0.125, 0), (1, 0, 0),
        (1, 0, 0),
    ),
    1: ((0, 1, 1), (0.125, 1, 0.5), (0.25, 1, 0.25), (0.5, 1, 0.125), (1, 1, 0), (1, 1, 0), (1, 1, 0), (1, 1, 0)),
    2: ((0, 0, 1), (0.125, 0, 0.5), (0.25, 0, 0.25), (0.5, 0, 0.125), (1, 0, 0), (1, 0, 0), (1, 0, 0), (1, 0, 0)),
}


def interpolate_row(table: Sequence[Sequence[float]], pass_rate: float) -> tuple[float, float, float]:
    """Linear interpolation of a table whose rows sit at evenly spaced pass rates ``0 .. 1``."""
    position = pass_rate * (len(table) - 1)
    low = min(int(position), len(table) - 2)
    frac = position - low
    return tuple(a + (b - a) * frac for a, b in zip(table[low], table[low + 1], strict=True))  # type: ignore[return-value]


def validate_soft_table(table: Sequence[Sequence[float]], group_size: int) -> None:
    """A user table needs one ``(rollout, off, sft)`` row per success count ``0..group_size``."""
    if len(table) != group_size + 1:
        raise ValueError(
            f"trainer.soft_table has {len(table)} rows, but with {group_size} rollouts per prompt the success "
            f"count runs 0..{group_size}: give {group_size + 1} rows of [rollout_weight, off_weight, sft_weight]"
        )
    for k, row in enumerate(table):
        if len(row) != 3 or not all(w >= 0 for w in row):  # also rejects NaN
            raise ValueError(f"trainer.soft_table row {k} must be three weights >= 0, got {list(row)}")


def soft_weights(outcome: GroupOutcome, config: GateConfig) -> tuple[float, float, float]:
    """The ``(rollout, off, sft)`` weights of a group under ``config``'s table."""
    if config.soft_table is not None:
        validate_soft_table(config.soft_table, outcome.size)
        return tuple(float(w) for w in config.soft_table[outcome.successes])  # type: ignore[return-value]
    if config.soft_type not in SOFT_TABLES:
        raise ValueError(f"unknown trainer.soft_type={config.soft_type}; valid: {sorted(SOFT_TABLES)}")
    return interpolate_row(SOFT_TABLES[config.soft_type], outcome.pass_rate)


@register_gate("soft")
def soft_gate(outcome: GroupOutcome, config: GateConfig) -> Route:
    """Rollouts and demonstration in one mixed group, each loss weighted by the table row."""
    rollout, off, sft = soft_weights(outcome, config)
    if rollout == 0:
        mode = Mode.SFT if off == 0 else Mode.OFF
    else:
        mode = Mode.RL if off == 0 and sft == 0 else Mode.MIX
    return Route(mode, rollout_weight=rollout, sft_weight=sft, off_weight=off, demo_in_group=True)

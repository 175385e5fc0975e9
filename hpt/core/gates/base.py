"""What a gate decides for one prompt group, the gate interface, and the gate registry.

A gate sees a group's outcome (how many of its rollouts succeeded, whether it has a demonstration)
and returns a ``Route``: per-row weights for the three loss components. Every method of the hybrid
family (SFT only, GRPO only, HPT switch, soft tables, LUFFY) is a different choice of weights, never
a different code path in the trainer or the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum


class Mode(str, Enum):
    """How a prompt group teaches this step (the telemetry label of a route)."""

    SFT = "sft"  # rollouts dropped, the demonstration trained with the SFT (offline) loss
    RL = "rl"  # rollouts trained with the policy-gradient loss, no demonstration
    OFF = "off"  # rollouts dropped, the demonstration trained with the off-policy RL loss
    MIX = "mix"  # rollouts and the demonstration trained together (LUFFY, soft)


@dataclass(frozen=True)
class Route:
    """Per-row loss weights for one group; a weight of 0 removes those rows from that term.

    ``rollout_weight`` scales the group's rollouts in the RL term (0 drops the rollouts from the
    batch); ``sft_weight`` and ``off_weight`` scale the demonstration row in the SFT and off-policy
    RL terms. ``demo_in_group`` makes the demonstration part of the group's advantage baseline
    (LUFFY's mixed group); otherwise it is its own group and its advantage is its own reward.
    """

    mode: Mode
    rollout_weight: float = 0.0
    sft_weight: float = 0.0
    off_weight: float = 0.0
    demo_in_group: bool = False

    def __post_init__(self) -> None:
        weights = (self.rollout_weight, self.sft_weight, self.off_weight)
        if not all(w >= 0 for w in weights):  # also rejects NaN
            raise ValueError(f"route weights must be >= 0, got {weights}")

    @property
    def uses_demo(self) -> bool:
        return self.sft_weight > 0 or self.off_weight > 0


RL_ROUTE = Route(Mode.RL, rollout_weight=1.0)


@dataclass(frozen=True)
class GroupOutcome:
    """What a gate may look at: successes among the group's ``size`` rollouts."""

    successes: int
    size: int

    def __post_init__(self) -> None:
        if not 0 <= self.successes <= self.size or self.size < 1:
            raise ValueError(f"need 0 <= successes <= size and size >= 1, got {self.successes}/{self.size}")

    @property
    def pass_rate(self) -> float:
        return self.successes / self.size


@dataclass(frozen=True)
class GateConfig:
    """Gate parameters, mirroring ``trainer.switch_gate``, ``trainer.switch_gate_off``, ``trainer.soft_*``.

    ``switch_gate_off`` (default: equal to ``switch_gate``, i.e. no band) opens a middle band of
    groups whose demonstration is trained with the off-policy RL loss instead of SFT.
    ``soft_table`` overrides the built-in soft table ``soft_type``: one ``(rollout, off, sft)``
    triple per possible success count ``0..n``.
    """

    switch_gate: int = 0
    switch_gate_off: int | None = None
    soft_type: int = 0
    soft_table: Sequence[Sequence[float]] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.switch_gate < -1:
            raise ValueError(
                f"trainer.switch_gate must be >= -1 (-1 sends every prompt to RL), got {self.switch_gate}"
            )
        if self.switch_gate_off is not None and self.switch_gate_off < self.switch_gate:
            raise ValueError(
                f"trainer.switch_gate_off={self.switch_gate_off} is below trainer.switch_gate={self.switch_gate}; "
                "the off-policy band is (switch_gate, switch_gate_off], so switch_gate_off must be >= switch_gate"
            )

    @property
    def off_gate(self) -> int:
        return self.switch_gate if self.switch_gate_off is None else self.switch_gate_off


Gate = Callable[[GroupOutcome, GateConfig], Route]

GATES: dict[str, Gate] = {}


def register_gate(name: str) -> Callable[[Gate], Gate]:
    """Add a gate under its ``trainer.unify_strategy`` name; user code may register its own."""

    def add(gate: Gate) -> Gate:
        if name in GATES:
            raise ValueError(f"a gate named {name!r} is already registered")
        GATES[name] = gate
        return gate

    return add


def build_gate(name: str) -> Gate:
    """Look a gate up by its ``trainer.unify_strategy`` name, failing with the valid names."""
    try:
        return GATES[name]
    except KeyError:
        raise ValueError(
            f"unknown trainer.unify_strategy={name!r}; valid strategies: {', '.join(sorted(GATES))}"
        ) from None


def in_sft_warmup(step: int, sft_warmup_steps: int) -> bool:
    """Whether training step ``step`` (1-based) is one of the ``sft_warmup_steps`` SFT-only steps."""
    if sft_warmup_steps < 0:
        raise ValueError(f"trainer.sft_warmup_steps must be >= 0 (0 = no SFT warm-up), got {sft_warmup_steps}")
    return step <= sft_warmup_steps


def gate_name_at_step(step: int, strategy: str, sft_warmup_steps: int) -> str:
    """The gate that routes training step ``step`` (1-based): ``sft`` during an SFT warm-up, then ``strategy``.

    ``sft_warmup_steps=K`` with ``strategy="no"`` is SFT→GRPO in one run: steps ``1..K`` train every
    prompt on its demonstration, later steps on the rollouts (the optimiser state carries over).
    """
    return "sft" if in_sft_warmup(step, sft_warmup_steps) else strategy

"""Rollout selection: decide, before generating, what each prompt of the next batch gets.

From the prompt's pass-rate memory (``hpt.core.pass_memory``), with ``n`` rollouts per prompt:
- predicted all-fail (``P(all n fail) >= threshold``) and a demonstration exists -> ``ROUTE``: it is
  trained on its demonstration without rollouts (what a switch gate does to an all-fail group);
- predicted all-pass (``P(all n pass) >= threshold``) -> ``DEFER``: skipped this epoch (GRPO would
  give it zero advantage);
- anything else, or an unseen prompt -> ``GENERATE``.
A prompt predicted to be skipped is still generated (``PROBE``) with probability
``min(1, explore / (1 + evidence))``, where evidence is the decayed number of rollouts seen: strong
evidence is rarely re-checked, yet never less often than ``explore / (1 + n / (1 - decay))``, so a
prompt learnt through SFT comes back to RL. The draws come from a seeded ``torch.Generator`` whose
state is part of ``state_dict``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import torch

from hpt.core.pass_memory import MemoryConfig, PassRateMemory


class Decision(enum.Enum):
    GENERATE = "generate"
    PROBE = "probe"  # generated although the memory predicted ROUTE or DEFER
    ROUTE = "route"  # demonstration only, no rollouts
    DEFER = "defer"  # not trained this epoch


@dataclass(frozen=True)
class SelectionConfig:
    """``trainer.rollout_selection.*`` (the memory's prior and decay included)."""

    enable: bool = False
    threshold: float = 0.5
    explore: float = 1.0
    route_fail: bool = True
    defer_pass: bool = True
    seed: int = 1
    resume_without_memory: bool = False  # resume a checkpoint written without selection, memory empty
    memory: MemoryConfig = MemoryConfig()

    def __post_init__(self) -> None:
        if not (isinstance(self.threshold, int | float) and 0 < self.threshold <= 1):
            raise ValueError(f"trainer.rollout_selection.threshold must be in (0, 1], got {self.threshold!r}")
        if not (isinstance(self.explore, int | float) and math.isfinite(self.explore) and self.explore >= 0):
            raise ValueError(f"trainer.rollout_selection.explore must be a finite number >= 0, got {self.explore!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"trainer.rollout_selection.seed must be an integer, got {self.seed!r}")


@dataclass(frozen=True)
class Choice:
    """One prompt's decision and what the memory predicted (ROUTE/DEFER, or GENERATE when unsure)."""

    decision: Decision
    predicted: Decision


class RolloutSelector:
    """The memory plus the seeded exploration draws; one instance per run."""

    def __init__(self, config: SelectionConfig, n: int):
        if n < 1:
            raise ValueError(f"rollouts per prompt must be >= 1, got {n}")
        self.config, self.n = config, n
        self.memory = PassRateMemory(config.memory)
        self.generator = torch.Generator().manual_seed(config.seed)

    def probe_probability(self, key: Hashable) -> float:
        """``min(1, explore / (1 + evidence))``: falls as the prompt's evidence grows."""
        return min(1.0, self.config.explore / (1.0 + self.memory.evidence(key)))

    def prediction(self, key: Hashable, has_demo: bool) -> Decision:
        """ROUTE or DEFER when the memory is confident enough, GENERATE otherwise."""
        if key not in self.memory:
            return Decision.GENERATE
        if self.config.route_fail and has_demo and self.memory.prob_all_fail(key, self.n) >= self.config.threshold:
            return Decision.ROUTE
        if self.config.defer_pass and self.memory.prob_all_pass(key, self.n) >= self.config.threshold:
            return Decision.DEFER
        return Decision.GENERATE

    def choose(self, key: Hashable, has_demo: bool) -> Choice:
        """The prompt's decision; a predicted skip is probed with ``probe_probability``."""
        predicted = self.prediction(key, has_demo)
        if predicted is Decision.GENERATE:
            return Choice(Decision.GENERATE, predicted)
        draw = float(torch.rand((), generator=self.generator))
        return Choice(Decision.PROBE if draw < self.probe_probability(key) else predicted, predicted)

    def observe(self, key: Hashable, successes: int) -> None:
        """Record a generated group's successes out of ``n``."""
        self.memory.update(key, successes, self.n)

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])
        self.generator.set_state(state["generator"])


def mispredicted(predicted: Decision, successes: int, n: int) -> bool:
    """A probed prompt whose outcome contradicts the prediction (any success when all-fail was predicted...)."""
    if predicted is Decision.ROUTE:
        return successes > 0
    if predicted is Decision.DEFER:
        return successes < n
    return False

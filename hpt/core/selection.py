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
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch

from hpt.core.gates import Gate, GateConfig, GroupOutcome
from hpt.core.pass_memory import MemoryConfig, PassRateMemory
from hpt.core.plan import demo_only

Prompt = TypeVar("Prompt")


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


@dataclass
class StepPick(Generic[Prompt]):
    """One step's prompts as the selector sorted them, each list in draw order."""

    generate: list[Prompt] = field(default_factory=list)  # GENERATE and PROBE prompts
    route: list[Prompt] = field(default_factory=list)  # trained on their demonstration, not generated
    probes: dict[Hashable, Decision] = field(default_factory=dict)  # probed prompt key -> what was predicted
    deferred: int = 0
    forced: int = 0  # routed prompts moved to ``generate`` to reach a multiple of the rollout workers
    complete: bool = True  # False: the prompts ran out before the step was full


def pick_step(
    draw: Callable[[], Prompt | None],
    selector: RolloutSelector,
    batch_size: int,
    key: Callable[[Prompt], Hashable],
    has_demo: Callable[[Prompt], bool],
    multiple: int = 1,
) -> StepPick[Prompt]:
    """Draw prompts and ask the selector about each until ``batch_size`` are generated or routed.

    Routed prompts count towards the step (they are trained), deferred ones do not. ``draw`` returns
    None when no prompt is left (the step is then incomplete and left to the caller). The number of
    generated prompts is made a multiple of ``multiple`` (at least one multiple) by generating the
    last routed prompts after all.
    """
    pick: StepPick[Prompt] = StepPick()
    while len(pick.generate) + len(pick.route) < batch_size:
        prompt = draw()
        if prompt is None:
            pick.complete = False
            return pick
        prompt_key = key(prompt)
        choice = selector.choose(prompt_key, has_demo(prompt))
        if choice.decision is Decision.ROUTE:
            pick.route.append(prompt)
        elif choice.decision is Decision.DEFER:
            pick.deferred += 1
        else:
            pick.generate.append(prompt)
            if choice.decision is Decision.PROBE:
                pick.probes[prompt_key] = choice.predicted
    short = (-len(pick.generate)) % multiple or (multiple if not pick.generate else 0)
    pick.forced = min(short, len(pick.route))
    kept = len(pick.route) - pick.forced
    pick.generate, pick.route = pick.generate + pick.route[kept:], pick.route[:kept]
    return pick


def check_routable(gates: dict[str, Gate], gate_config: GateConfig, n: int) -> None:
    """Routing needs every gate of the run to train an all-fail group on its demonstration only."""
    for name, gate in gates.items():
        route = gate(GroupOutcome(0, n), gate_config)
        if not demo_only(route):
            raise ValueError(
                f"trainer.rollout_selection.route_fail trains prompts predicted to fail on their demonstration "
                f"without rollouts, but the gate {name!r} trains an all-fail group with its rollouts ({route}); "
                "set trainer.rollout_selection.route_fail=false (defer solved prompts only) or use a gate that "
                "sends all-fail groups to SFT (switch)"
            )

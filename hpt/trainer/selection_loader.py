"""Rollout selection at verl's dataloader: the batch verl sends to generation holds only the
prompts worth generating.

``SelectingLoader`` wraps verl's train dataloader (``self.train_dataloader``, the object verl's
``fit`` iterates, checkpoints and sizes the run with). Each step it takes prompts from the wrapped
loader and asks ``hpt.core.selection.RolloutSelector`` about each one: GENERATE and PROBE prompts
form the batch verl generates for; ROUTE prompts are held for the trainer's rebuild, which turns
them into demonstration rows like an all-fail group under the gate; DEFER prompts are dropped for
this epoch. It keeps drawing until ``train_batch_size`` prompts are generated or routed, so the
step trains as many prompts as configured. Prompts drawn beyond that wait in a buffer for the next
step; at the end of an epoch the unfinished step's prompts carry over to the next one. The buffer
is part of ``state_dict`` (verl's ``data.pt``). Nothing here is rollout-specific: the ``hf`` and
vLLM rollouts both receive an ordinary, smaller batch.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf
from verl import DataProto

from hpt.core.pass_memory import MemoryConfig
from hpt.core.selection import Decision, RolloutSelector, SelectionConfig, pick_step
from hpt.trainer.multiturn import has_demonstration


@dataclass
class StepSelection:
    """What the selection did for the step being trained (read by the trainer's rebuild)."""

    routed: DataProto | None = None  # prompts to train on their demonstration, without rollouts
    probes: dict[Any, Decision] = field(default_factory=dict)  # probed prompt key -> what was predicted
    deferred: int = 0
    forced: int = 0  # routed prompts generated anyway so the generated count divides the rollout workers


def prompt_key(extra_info) -> Any:
    """The memory's key of a prompt: its ``extra_info.index``."""
    return extra_info.get("index") if isinstance(extra_info, dict) else None


class SelectingLoader:
    """verl's train dataloader with pre-generation selection; same ``len``, ``state_dict``, iteration."""

    def __init__(self, loader, selector: RolloutSelector, batch_size: int, generated_multiple: int = 1):
        if batch_size % generated_multiple:
            raise ValueError(
                f"rollout selection: data.train_batch_size={batch_size} is not a multiple of {generated_multiple} "
                "(rollout workers / gcd(workers, rollout.n)); the generated prompts must split evenly across "
                "actor_rollout_ref.rollout.agent.num_workers. Change one of them"
            )
        self.loader, self.selector = loader, selector
        self.batch_size, self.multiple = batch_size, generated_multiple
        self._buffer: DataProto | None = None
        self.step = StepSelection()

    def __len__(self) -> int:
        return len(self.loader)

    def state_dict(self) -> dict[str, Any]:
        return {"loader": self.loader.state_dict(), "buffer": self._buffer}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "loader" not in state:  # a data.pt written without selection
            if not self.selector.config.resume_without_memory:
                raise ValueError(
                    "this checkpoint's data.pt was written without trainer.rollout_selection; resume with "
                    "trainer.rollout_selection.enable=false, or set trainer.rollout_selection.resume_without_memory="
                    "true to start the selection with an empty memory"
                )
            self.loader.load_state_dict(state)
            self._buffer = None
            return
        self.loader.load_state_dict(state["loader"])
        self._buffer = state["buffer"]

    def __iter__(self) -> Iterator[dict]:
        """One epoch of steps; an epoch too short for a whole step carries on into the next one."""
        rows, yielded = iter(self.loader), False
        while True:
            generate, _ = self._select_step(rows)
            if generate is not None:
                yielded = True
                yield {**generate.batch.to_dict(), **generate.non_tensor_batch}
                continue
            if yielded:
                return
            if self._buffer is None or not len(self._buffer):
                raise RuntimeError(
                    "rollout selection deferred every prompt of a whole epoch (all predicted solved and none "
                    "probed); raise trainer.rollout_selection.explore or set trainer.rollout_selection.defer_pass=false"
                )
            rows = iter(self.loader)

    def _take(self, rows: Iterator) -> DataProto | None:
        """One prompt (a 1-row DataProto) from the buffer, else from the wrapped loader."""
        if self._buffer is None or not len(self._buffer):
            batch_dict = next(rows, None)
            if batch_dict is None:
                return None
            self._buffer = DataProto.from_single_dict(batch_dict)
        row, self._buffer = self._buffer[[0]], self._buffer[1:]
        return row

    def _select_step(self, rows: Iterator) -> tuple[DataProto | None, DataProto | None]:
        """The step's generated prompts and routed prompts, or ``(None, None)`` when the epoch ends."""
        pick = pick_step(
            lambda: self._take(rows), self.selector, self.batch_size, _row_key, _row_has_demo, self.multiple
        )
        if not pick.complete:  # epoch over: this step's prompts open the next epoch
            kept = pick.generate + pick.route
            if kept:
                self._buffer = DataProto.concat(kept)
            return None, None
        routed = DataProto.concat(pick.route) if pick.route else None
        self.step = StepSelection(routed, pick.probes, pick.deferred, pick.forced)
        return DataProto.concat(pick.generate), routed


def _row_key(row: DataProto) -> Any:
    return prompt_key(row.non_tensor_batch["extra_info"][0])


def _row_has_demo(row: DataProto) -> bool:
    names = row.non_tensor_batch.get("agent_name")
    return has_demonstration(row.non_tensor_batch["extra_info"][0], None if names is None else names[0])


SELECTION_KEYS = {"enable", "threshold", "explore", "route_fail", "defer_pass", "seed", "resume_without_memory"}
MEMORY_KEYS = {"prior_alpha", "prior_beta", "decay"}


def selection_config(trainer_cfg) -> SelectionConfig:
    """``trainer.rollout_selection`` as a checked ``SelectionConfig`` (off when the group is absent)."""
    group = trainer_cfg.get("rollout_selection")
    if group is None:
        return SelectionConfig()
    values = OmegaConf.to_container(group, resolve=True)
    unknown = set(values) - SELECTION_KEYS - MEMORY_KEYS
    if unknown:
        raise ValueError(
            f"unknown key(s) {sorted(unknown)} under trainer.rollout_selection; "
            f"valid: {', '.join(sorted(SELECTION_KEYS | MEMORY_KEYS))}"
        )
    memory = MemoryConfig(**{key: values.pop(key) for key in MEMORY_KEYS & set(values)})
    return SelectionConfig(memory=memory, **values)


def generated_multiple(rollout_workers: int, n: int) -> int:
    """Generated prompts must be a multiple of this for verl to split ``prompts x n`` over the workers."""
    return rollout_workers // math.gcd(rollout_workers, n)

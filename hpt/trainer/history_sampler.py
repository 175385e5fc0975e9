"""The train sampler hpt hands verl: resumable epochs that skip the prompts ``hpt.core.history`` excludes.

It wraps verl's sampler (seeded ``RandomSampler`` or ``SequentialSampler``) and owns each epoch's
order:
- the order is drawn when the epoch's first prompt is asked for, then the prompts the history
  excludes at that moment (removed SFT prompts, solved prompts) are dropped, as the original
  ``remove_sfted_data`` did at each epoch start; a prompt excluded during an epoch is skipped from
  the next one on. Prompts are identified by ``extra_info.index``, which must then be unique;
- its iterator is ``Stateful`` for torchdata's ``StatefulDataLoader``: verl's ``data.pt`` then holds
  the epoch's order, the position in it and the generator state after drawing it, so a resumed run
  continues mid-epoch and draws the same next epoch (verl's own resume re-seeds the generator at an
  epoch boundary, which repeats the first epoch's order); a state saved as an epoch ended starts
  the next epoch, so no loop pass is spent on an empty one;
- ``len`` is the full data set's: verl sizes the run from it (``total_epochs`` x batches per full
  epoch). History-based skipping makes epochs shorter, so the trainer lets verl's loop run more of
  them until that many steps are done (see ``HPTRayTrainer``);
- when fewer prompts than one batch would remain, the epoch samples every prompt instead, with a
  warning: an epoch without a batch would end the run before its last step.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import logging
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

from hpt.core.history import PromptHistory

logger = logging.getLogger(__name__)


def prompt_keys(extra_infos: Sequence) -> list[Hashable]:
    """``extra_info.index`` of every dataset row; unique, or the history could not tell prompts apart."""
    keys = [info.get("index") if isinstance(info, dict) else None for info in extra_infos]
    if any(key is None for key in keys) or len(set(keys)) != len(keys):
        raise ValueError(
            "trainer.remove_sfted_data / trainer.skip_solved_prompts identify prompts by extra_info.index, "
            "which must be present and unique in data.train_files; add a unique index or turn both options off"
        )
    return keys


class HistoryFilteredSampler(Sampler[int]):
    """Yields the wrapped sampler's order for each epoch, less the prompts the history excludes.

    ``keys`` and ``history`` are None when no history option is on: then every prompt is kept and
    the sampler only adds exact resumption.
    """

    def __init__(
        self,
        base: Sampler[int],
        keys: Sequence[Hashable] | None = None,
        history: PromptHistory | None = None,
        batch_size: int = 1,
    ):
        self.base, self.history, self.batch_size = base, history, batch_size
        self.keys = None if keys is None else list(keys)

    def __iter__(self) -> Iterator[int]:
        return _EpochIterator(self)

    def __len__(self) -> int:
        return len(self.base)

    def generator_state(self) -> torch.Tensor | None:
        generator = getattr(self.base, "generator", None)
        return None if generator is None else generator.get_state()

    def set_generator_state(self, state: torch.Tensor | None) -> None:
        generator = getattr(self.base, "generator", None)
        if generator is not None and state is not None:
            generator.set_state(state)

    def draw_epoch(self) -> list[int]:
        """The next epoch's order (advances the base sampler's generator) without excluded prompts."""
        order = [int(i) for i in self.base]
        excluded = self.history.excluded() if self.history is not None and self.keys is not None else set()
        if not excluded:
            return order
        kept = [i for i in order if self.keys[i] not in excluded]
        if len(kept) < self.batch_size:
            logger.warning(
                "prompt history: %d of %d prompts are excluded, leaving fewer than one batch of %d; "
                "this epoch samples every prompt so the run reaches its last step",
                len(order) - len(kept), len(order), self.batch_size,
            )
            return order
        logger.info("prompt history: skipping %d of %d prompts this epoch", len(order) - len(kept), len(order))
        return kept


class _EpochIterator(Iterator[int]):
    """One epoch of ``HistoryFilteredSampler``; its state is the order, the position and the RNG state."""

    def __init__(self, sampler: HistoryFilteredSampler):
        self._sampler = sampler
        self._order: list[int] | None = None  # drawn lazily: a restored iterator must not draw
        self._position = 0
        self._generator_state = None

    def __next__(self) -> int:
        if self._order is None:
            self._order = self._sampler.draw_epoch()
            self._generator_state = self._sampler.generator_state()
        if self._position >= len(self._order):
            raise StopIteration
        self._position += 1
        return self._order[self._position - 1]

    def state_dict(self) -> dict[str, Any]:
        generator = self._generator_state if self._order is not None else self._sampler.generator_state()
        return {"order": self._order, "position": self._position, "generator": generator}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        order = state["order"]
        size = len(self._sampler.base)
        if order is not None and any(not 0 <= i < size for i in order):
            raise ValueError(
                f"the saved sampler order indexes rows beyond the {size} rows of data.train_files; "
                "the training data changed since the checkpoint was written"
            )
        self._order = None if order is None else [int(i) for i in order]
        self._position = int(state["position"])
        if self._order is not None and self._position >= len(self._order):
            self._order, self._position = None, 0  # saved as the epoch ended: the next one starts here
        self._generator_state = state["generator"]
        self._sampler.set_generator_state(state["generator"])

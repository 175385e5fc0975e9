"""A sampler that skips the prompts ``hpt.core.history`` excludes (removed SFT prompts, solved prompts).

It wraps verl's train sampler; the exclusions are read once at the start of every epoch, so a prompt
excluded during an epoch is skipped from the next one on (as in the original ``remove_sfted_data``).
Prompts are identified by ``extra_info.index``, which must be unique. The history is not part of
verl's checkpoint: after a resume it starts empty.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import logging
from collections.abc import Hashable, Iterator, Sequence

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
    """Yields the wrapped sampler's indices whose prompt the history does not exclude."""

    def __init__(self, base: Sampler[int], keys: Sequence[Hashable], history: PromptHistory):
        self.base, self.keys, self.history = base, list(keys), history

    def _excluded_now(self) -> set[Hashable]:
        return self.history.excluded()

    def __iter__(self) -> Iterator[int]:
        excluded = self._excluded_now()
        if excluded:
            logger.info("prompt history: skipping %d of %d prompts this epoch", len(excluded), len(self.keys))
        return (index for index in self.base if self.keys[index] not in excluded)

    def __len__(self) -> int:
        excluded = self._excluded_now()
        return sum(1 for key in self.keys if key not in excluded)

    def state_dict(self) -> dict:
        return self.base.state_dict() if hasattr(self.base, "state_dict") else {}

    def load_state_dict(self, state: dict) -> None:
        if hasattr(self.base, "load_state_dict"):
            self.base.load_state_dict(state)

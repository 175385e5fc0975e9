"""Per-prompt memory across epochs: which prompts to stop sampling.

Two options from the original HPT code and its follow-ups, both off by default:
- ``remove_sfted``: a prompt that was trained on its demonstration (SFT mode) is dropped from the
  following epochs (HPT's ``remove_sfted_data``);
- ``skip_solved``: a prompt whose rollouts last time all succeeded is not sampled again, since a
  group that is solved every time gives GRPO no signal and costs a full rollout.
Prompts are identified by a hashable key (the dataset's ``extra_info.index``). Pure Python: the
sampler that applies the exclusions lives in the trainer adapter. ``state_dict``/``load_state_dict``
turn the memory into plain lists for the checkpoint, so a resumed run skips what the first run would.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HistoryConfig:
    """``trainer.remove_sfted_data`` and ``trainer.skip_solved_prompts``."""

    remove_sfted: bool = False
    skip_solved: bool = False

    @property
    def enabled(self) -> bool:
        return self.remove_sfted or self.skip_solved


@dataclass
class PromptHistory:
    """Outcome of each prompt's most recent visit, and the prompts excluded from now on."""

    config: HistoryConfig
    last_pass_rate: dict[Hashable, float] = field(default_factory=dict)
    sfted: set[Hashable] = field(default_factory=set)

    def record(self, key: Hashable, pass_rate: float, trained_on_demo: bool) -> None:
        """Remember one prompt group's visit (pass rate over its rollouts; whether it was SFT-trained)."""
        if not 0.0 <= pass_rate <= 1.0:
            raise ValueError(f"pass rate must be in [0, 1], got {pass_rate}")
        self.last_pass_rate[key] = pass_rate
        if trained_on_demo:
            self.sfted.add(key)

    def excluded(self) -> set[Hashable]:
        """Prompts the sampler should skip from the next epoch on."""
        keys: set[Hashable] = set()
        if self.config.remove_sfted:
            keys |= self.sfted
        if self.config.skip_solved:
            keys |= {key for key, rate in self.last_pass_rate.items() if rate >= 1.0}
        return keys

    def state_dict(self) -> dict[str, Any]:
        """Plain lists (keys as Python scalars) that ``torch.load(weights_only=True)`` can read back."""
        return {
            "last_pass_rate": [[_plain(key), float(rate)] for key, rate in self.last_pass_rate.items()],
            "sfted": [_plain(key) for key in self.sfted],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the memory with a saved one (``state_dict``'s output)."""
        self.last_pass_rate = {key: float(rate) for key, rate in state["last_pass_rate"]}
        self.sfted = set(state["sfted"])


def _plain(key: Hashable) -> Hashable:
    """A numpy or torch scalar key as the Python scalar it equals (hashes and compares the same)."""
    item = getattr(key, "item", None)
    return item() if callable(item) else key

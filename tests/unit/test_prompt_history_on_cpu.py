"""Prompt history across epochs: which prompts are excluded, and the sampler that skips them."""

import pytest
import torch
from torch.utils.data import SequentialSampler
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import RandomSampler

from hpt.core.history import HistoryConfig, PromptHistory
from hpt.trainer.history_sampler import HistoryFilteredSampler, prompt_keys


def test_remove_sfted_excludes_prompts_trained_on_their_demonstration():
    history = PromptHistory(HistoryConfig(remove_sfted=True))
    history.record("a", 0.0, trained_on_demo=True)
    history.record("b", 1.0, trained_on_demo=False)
    assert history.excluded() == {"a"}


def test_skip_solved_excludes_prompts_whose_last_visit_was_all_successes():
    history = PromptHistory(HistoryConfig(skip_solved=True))
    history.record("a", 1.0, trained_on_demo=False)
    history.record("b", 0.75, trained_on_demo=False)
    history.record("c", 1.0, trained_on_demo=False)
    history.record("c", 0.5, trained_on_demo=False)  # solved once, failed later: sampled again
    assert history.excluded() == {"a"}


def test_disabled_history_excludes_nothing_and_rejects_bad_rates():
    history = PromptHistory(HistoryConfig())
    history.record("a", 1.0, trained_on_demo=True)
    assert history.excluded() == set() and not history.config.enabled
    with pytest.raises(ValueError, match="pass rate"):
        history.record("a", 1.5, trained_on_demo=False)


def test_prompt_keys_need_unique_indices():
    assert prompt_keys([{"index": 3}, {"index": 1}]) == [3, 1]
    with pytest.raises(ValueError, match="extra_info.index"):
        prompt_keys([{"index": 1}, {"index": 1}])
    with pytest.raises(ValueError, match="unique"):
        prompt_keys([{"index": 1}, {}])


def test_sampler_skips_excluded_prompts_from_the_next_epoch():
    data = list(range(6))
    keys = [f"p{i}" for i in range(6)]
    history = PromptHistory(HistoryConfig(remove_sfted=True))
    sampler = HistoryFilteredSampler(SequentialSampler(data), keys, history)
    assert list(sampler) == [0, 1, 2, 3, 4, 5] and len(sampler) == 6
    history.record("p1", 0.0, trained_on_demo=True)
    history.record("p4", 0.0, trained_on_demo=True)
    assert list(sampler) == [0, 2, 3, 5] and len(sampler) == 4


def test_stateful_dataloader_with_the_filtered_sampler_saves_state():
    data = list(range(8))
    history = PromptHistory(HistoryConfig(skip_solved=True))
    history.record(2, 1.0, trained_on_demo=False)
    base = RandomSampler(data, generator=torch.Generator().manual_seed(0))
    loader = StatefulDataLoader(data, batch_size=2, sampler=HistoryFilteredSampler(base, data, history), drop_last=True)
    seen = [int(x) for batch in loader for x in batch]
    assert set(seen) <= {0, 1, 3, 4, 5, 6, 7} and len(set(seen)) == 6  # 7 left; drop_last keeps 3 batches of 2
    assert isinstance(loader.state_dict(), dict)

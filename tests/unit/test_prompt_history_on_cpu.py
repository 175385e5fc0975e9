"""Prompt history across epochs: which prompts are excluded, and the sampler that skips them."""

import io

import numpy as np
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


def test_sampler_skips_excluded_prompts_from_the_next_epoch_and_keeps_the_full_length():
    data = list(range(6))
    keys = [f"p{i}" for i in range(6)]
    history = PromptHistory(HistoryConfig(remove_sfted=True))
    sampler = HistoryFilteredSampler(SequentialSampler(data), keys, history)
    assert list(sampler) == [0, 1, 2, 3, 4, 5] and len(sampler) == 6
    history.record("p1", 0.0, trained_on_demo=True)
    history.record("p4", 0.0, trained_on_demo=True)
    assert list(sampler) == [0, 2, 3, 5] and len(sampler) == 6  # verl sizes the run from the full data


def test_sampler_samples_every_prompt_when_less_than_a_batch_would_remain(caplog):
    keys = list(range(6))
    history = PromptHistory(HistoryConfig(remove_sfted=True))
    for key in range(5):
        history.record(key, 0.0, trained_on_demo=True)
    assert list(HistoryFilteredSampler(SequentialSampler(keys), keys, history, batch_size=1)) == [5]
    assert list(HistoryFilteredSampler(SequentialSampler(keys), keys, history, batch_size=2)) == keys
    assert "fewer than one batch" in caplog.text


def test_history_state_round_trips_through_a_weights_only_checkpoint():
    history = PromptHistory(HistoryConfig(remove_sfted=True, skip_solved=True))
    history.record(np.int64(3), 1.0, trained_on_demo=False)
    history.record("b", 0.0, trained_on_demo=True)
    buffer = io.BytesIO()
    torch.save(history.state_dict(), buffer)
    buffer.seek(0)
    restored = PromptHistory(history.config)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.last_pass_rate == {3: 1.0, "b": 0.0} and restored.sfted == {"b"}
    assert restored.excluded() == history.excluded() == {3, "b"}


def _run(loader, history, batches: int) -> list[list[int]]:
    """Draw ``batches`` batches across epochs; prompts 0, 3 and 6 are 'solved' when drawn."""
    drawn: list[list[int]] = []
    while len(drawn) < batches:
        for batch in loader:
            drawn.append([int(x) for x in batch])
            for key in drawn[-1]:
                history.record(key, 1.0 if key % 3 == 0 else 0.5, trained_on_demo=False)
            if len(drawn) == batches:
                return drawn
    return drawn


def _loader(size: int) -> tuple[StatefulDataLoader, PromptHistory]:
    data = list(range(size))
    history = PromptHistory(HistoryConfig(skip_solved=True))
    base = RandomSampler(data, generator=torch.Generator().manual_seed(0))
    sampler = HistoryFilteredSampler(base, data, history, batch_size=2)
    return StatefulDataLoader(data, batch_size=2, sampler=sampler, drop_last=True), history


@pytest.mark.parametrize("stop_after", [3, 4, 6])  # mid-epoch, at the end of the first epoch, later
def test_a_restored_loader_draws_what_the_uninterrupted_one_draws(stop_after):
    uninterrupted, history = _loader(8)
    expected = _run(uninterrupted, history, 12)

    first, first_history = _loader(8)
    before = _run(first, first_history, stop_after)
    saved = {"data": first.state_dict(), "history": first_history.state_dict()}
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed, resumed_history = _loader(8)  # a fresh process: generator re-seeded
    resumed_history.load_state_dict(saved["history"])
    resumed.load_state_dict(saved["data"])
    after = _run(resumed, resumed_history, 12 - stop_after)
    assert before + after == expected
    assert not {0, 3, 6} & {key for batch in expected[4:] for key in batch}  # solved: skipped from epoch 2
    assert expected[4:6] != expected[6:8]  # epochs of 2 batches now, each reshuffled


def test_a_saved_order_beyond_the_data_is_refused():
    sampler = HistoryFilteredSampler(SequentialSampler(range(4)))
    iterator = iter(sampler)
    with pytest.raises(ValueError, match="training data changed"):
        iterator.load_state_dict({"order": [0, 7], "position": 0, "generator": None})

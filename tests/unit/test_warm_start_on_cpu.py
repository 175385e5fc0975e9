"""The SFT warm start: label masking, the loss it minimises, and its build-once behaviour."""

import json
import math

import pytest
import torch

from hpt.toy.build_tiny import StaleAssetError
from hpt.toy.build_tiny import main as build_tiny
from hpt.toy.warm_start import IGNORE_INDEX, REPORT_FILE, collate, response_token_loss, warm_start


def test_collate_pads_right_and_ignores_padding():
    batch = collate([([5, 6, 7], [IGNORE_INDEX, 6, 7]), ([8], [8])], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]


def test_response_token_loss_is_mean_nll_of_labelled_next_tokens():
    # Vocabulary of 2, one row of 3 positions; only labels 1 and 2 count, predicted by positions 0 and 1.
    logits = torch.tensor([[[0.0, math.log(3.0)], [math.log(4.0), 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[IGNORE_INDEX, 1, 0]])
    # p(token 1 | pos 0) = 3/4; p(token 0 | pos 1) = 4/5.
    expected = -(math.log(3 / 4) + math.log(4 / 5)) / 2
    assert response_token_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_warm_start_learns_reports_and_builds_once(tmp_path):
    build_tiny(["--out", str(tmp_path), "--train-size", "128", "--test-size", "8"])
    args = (tmp_path / "model", tmp_path / "data" / "train.parquet", tmp_path / "warm")
    report = warm_start(*args, steps=20, batch_size=16, seed=1)
    assert not report.skipped
    assert report.final_loss < report.initial_loss
    assert report.mixed_share + report.zero_share + report.all_share == pytest.approx(1.0)
    assert json.loads((tmp_path / "warm" / REPORT_FILE).read_text())["final_loss"] == report.final_loss
    assert (tmp_path / "warm" / "model.safetensors").is_file()
    assert (tmp_path / "warm" / "tokenizer_config.json").is_file()

    again = warm_start(*args, steps=20, batch_size=16, seed=1)
    assert again.skipped and again.final_loss == report.final_loss
    with pytest.raises(StaleAssetError, match="--force"):
        warm_start(*args, steps=21, batch_size=16, seed=1)


def test_warm_start_rejects_nonsense_settings(tmp_path):
    with pytest.raises(ValueError, match="steps"):
        warm_start(tmp_path, tmp_path / "train.parquet", tmp_path / "warm", steps=0)

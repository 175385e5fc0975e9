"""The separate SFT stream: unpaired demonstrations drawn each step, shaped like the rollout batch."""

import io
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_module
from transformers import AutoTokenizer
from verl import DataProto

from hpt.config import resolvers
from hpt.core.gates import GateConfig, build_gate
from hpt.core.groups import count_successes
from hpt.core.plan import plan_rebuild
from hpt.toy import build_tiny
from hpt.main import CPU_OVERLAY, ConfigError, _check_hpt_keys
from hpt.trainer.batch import DemoOptions, apply_plan, group_index
from hpt.trainer.engine import WEIGHT_KEYS
from hpt.trainer.sft_stream import SFTStream, SFTStreamConfig

STREAM_ROWS, BATCH_ROWS, N = 40, 8, 4


def _config(*overrides: str):
    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        return compose(CPU_OVERLAY, overrides=list(overrides))


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    build_tiny.main(["--out", str(out), "--train-size", "64", "--test-size", "8",
                     "--sft-stream-size", str(STREAM_ROWS)])
    return out


@pytest.fixture(scope="module")
def stream_file(assets):
    return str(assets / "sft_stream" / "sft_stream.parquet")


@pytest.fixture(scope="module")
def tokenizer(assets):
    return AutoTokenizer.from_pretrained(assets / "model")


@pytest.fixture(scope="module")
def data_config():
    return _config().data


def _stream(files, data_config, tokenizer, **settings) -> SFTStream:
    config = SFTStreamConfig(train_files=tuple(files), **{"batch_size": 8, **settings})
    return SFTStream(config, data_config, tokenizer, hf_model_type="qwen3")


def _rollout_batch(prompt_width: int = 24, response_width: int = 32) -> DataProto:
    """The keys a rollout batch has when the trainer rebuilds it (agent loop + reward + dataset fields)."""
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(3, 20, (BATCH_ROWS, prompt_width), generator=g)
    prompt_mask = (torch.arange(prompt_width)[None] >= 4).long().expand(BATCH_ROWS, -1)
    response_mask = (torch.arange(response_width)[None] < 6).long().expand(BATCH_ROWS, -1)
    attention = torch.cat([prompt_mask, response_mask], 1)
    batch = DataProto.from_single_dict({
        "prompts": prompts * prompt_mask, "responses": torch.randint(3, 20, (BATCH_ROWS, response_width), generator=g),
        "response_mask": response_mask, "input_ids": torch.zeros(BATCH_ROWS, prompt_width + response_width).long(),
        "attention_mask": attention, "position_ids": (attention.cumsum(1) - 1).clamp(min=0),
        "rm_scores": torch.zeros(BATCH_ROWS, response_width),
        "dummy_tensor": torch.zeros(BATCH_ROWS, 1, dtype=torch.uint8),
    })
    rl = {"data_source": "hpt/arithmetic", "reward_model": {"style": "rule", "ground_truth": "1"},
          "extra_info": {"index": 7, "split": "train", "target": "0+1=1#1"}, "tools_kwargs": {},
          "raw_prompt": [{"role": "user", "content": "Q0+1=?"}], "index": 7, "interaction_kwargs": {},
          "multi_modal_inputs": {}}
    for key, value in rl.items():  # 1-d object arrays, as verl's collate_fn builds them
        batch.non_tensor_batch[key] = np.fromiter([value] * BATCH_ROWS, dtype=object, count=BATCH_ROWS)
    batch.non_tensor_batch["uid"] = np.array([f"q{i // N}" for i in range(BATCH_ROWS)], dtype=object)
    batch.non_tensor_batch["__num_turns__"] = np.full(BATCH_ROWS, 2, dtype=np.int32)
    batch.non_tensor_batch["acc"] = np.array([1.0, 0.0] * (BATCH_ROWS // 2))
    return batch


def _indices(rows: DataProto) -> list[int]:
    return [info["index"] for info in rows.non_tensor_batch["extra_info"]]


def test_stream_rows_are_demonstrations_shaped_like_the_batch(stream_file, data_config, tokenizer):
    batch = _rollout_batch()
    stream = _stream([stream_file], data_config, tokenizer, coef=2.0)
    rows, truncated = stream.rows(batch, tokenizer, scale=0.25)

    assert len(rows) == 8 and truncated == 0
    assert set(rows.batch.keys()) == set(batch.batch.keys()) | {"prefix_mask", *WEIGHT_KEYS}
    assert set(rows.non_tensor_batch) == set(batch.non_tensor_batch)
    for key, value in batch.batch.items():
        assert rows.batch[key].dtype == value.dtype and rows.batch[key].shape[1:] == value.shape[1:]
    assert torch.equal(rows.batch["prefix_mask"], rows.batch["response_mask"].bool())
    for key, expected in zip(WEIGHT_KEYS, (0.0, 0.5, 0.0), strict=True):
        assert rows.batch[key].tolist() == [expected] * 8
    assert rows.batch["rm_scores"].sum() == 0
    uids = list(rows.non_tensor_batch["uid"])
    assert len(set(uids)) == 8 and not set(uids) & set(batch.non_tensor_batch["uid"])
    for i in range(8):
        question = rows.non_tensor_batch["raw_prompt"][i][0]["content"]
        info = rows.non_tensor_batch["extra_info"][i]
        prompt = rows.batch["prompts"][i][rows.batch["attention_mask"][i, :24].bool()]
        response = rows.batch["responses"][i][rows.batch["response_mask"][i].bool()]
        assert tokenizer.decode(prompt) == f"<bos>{question}:"  # left-padded, chat-templated like RL prompts
        assert rows.batch["attention_mask"][i, :24].tolist() == [0] * (24 - len(prompt)) + [1] * len(prompt)
        assert tokenizer.decode(response) == info["target"] + "<eos>"
        assert info["split"] == "sft_stream"
    assert rows.non_tensor_batch["__num_turns__"].dtype == np.int32  # rollout-side keys keep row 0's values
    assert rows.non_tensor_batch["acc"].tolist() == [1.0] * 8


def test_stream_rows_join_the_rebuilt_batch_after_the_rollouts(stream_file, data_config, tokenizer):
    batch = _rollout_batch()
    stream, _ = _stream([stream_file], data_config, tokenizer).rows(batch, tokenizer, scale=1.0)
    groups = count_successes(batch.batch["rm_scores"].sum(-1), group_index(batch.non_tensor_batch["uid"]))
    plan = plan_rebuild(groups, [False, False], build_gate("no"), GateConfig(), 16, stream_rows=len(stream))
    rebuilt = apply_plan(batch, plan, [], DemoOptions(tokenizer.pad_token_id), stream)

    assert len(rebuilt) == 16 and plan.num_pad == 0
    assert torch.equal(rebuilt.batch["responses"][8:], stream.batch["responses"])
    assert rebuilt.batch["hpt_sft_weight"].tolist() == [0.0] * 8 + [1.0] * 8
    assert not rebuilt.batch["prefix_mask"][:8].any() and rebuilt.batch["prefix_mask"][8:].any()


def test_order_is_seeded_reshuffled_each_epoch_and_cycles(stream_file, data_config, tokenizer):
    batch = _rollout_batch()
    first, again, other = (_stream([stream_file], data_config, tokenizer, seed=s) for s in (1, 1, 2))
    steps = [_indices(first.rows(batch, tokenizer, 1.0)[0]) for _ in range(10)]  # 80 rows = 2 epochs of 40
    assert steps == [_indices(again.rows(batch, tokenizer, 1.0)[0]) for _ in range(10)]
    assert steps != [_indices(other.rows(batch, tokenizer, 1.0)[0]) for _ in range(10)]
    epoch_1, epoch_2 = sum(steps[:5], []), sum(steps[5:], [])
    assert sorted(epoch_1) == sorted(epoch_2) == list(range(STREAM_ROWS)) and epoch_1 != epoch_2
    assert first.epoch == 2


def test_a_restored_stream_continues_where_the_saved_one_was(stream_file, data_config, tokenizer):
    original = _stream([stream_file], data_config, tokenizer, batch_size=8, seed=3)
    for _ in range(7):  # 56 of 40 rows: into the second epoch
        original.draw(8)
    state = torch.load(_saved(original.state_dict()), weights_only=True)
    restored = _stream([stream_file], data_config, tokenizer, batch_size=8, seed=3)
    restored.load_state_dict(state)
    assert [restored.draw(8) for _ in range(8)] == [original.draw(8) for _ in range(8)]  # across a reshuffle
    assert restored.epoch == original.epoch == 3


def test_a_saved_position_that_does_not_fit_the_files_is_refused(stream_file, data_config, tokenizer):
    stream = _stream([stream_file], data_config, tokenizer)
    state = {**stream.state_dict(), "order": [0, 1, 999], "position": 1}
    with pytest.raises(ValueError, match="files changed"):
        stream.load_state_dict(state)


def _saved(state) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def test_unshuffled_stream_runs_in_file_order_across_the_epoch_boundary(stream_file, data_config, tokenizer):
    stream = _stream([stream_file], data_config, tokenizer, batch_size=30, shuffle=False)
    assert stream.draw(30) == list(range(30))
    assert stream.draw(30) == list(range(30, 40)) + list(range(20))


def test_zero_weight_step_draws_nothing(stream_file, data_config, tokenizer):
    stream = _stream([stream_file], data_config, tokenizer, shuffle=False)
    assert stream.rows(_rollout_batch(), tokenizer, scale=0.0) == (None, 0)
    assert stream.draw(1) == [0]


def test_long_demonstrations_are_truncated_and_counted(stream_file, data_config, tokenizer):
    stream = _stream([stream_file], data_config, tokenizer, batch_size=STREAM_ROWS, shuffle=False)
    rows, truncated = stream.rows(_rollout_batch(response_width=10), tokenizer, 1.0)
    targets = pd.read_parquet(stream_file)["extra_info"].map(lambda info: info["target"])
    assert truncated == int((targets.str.len() + 1 > 10).sum()) > 0
    assert rows.batch["response_mask"].sum(-1).max() == 10


def test_prompt_wider_than_the_batch_is_a_clear_error(stream_file, data_config, tokenizer):
    stream = _stream([stream_file], data_config, tokenizer)
    with pytest.raises(ValueError, match="prompt width 4.*filter_overlong_prompts"):
        stream.rows(_rollout_batch(prompt_width=4), tokenizer, 1.0)


def _write(tmp_path, name: str, targets: list) -> str:
    rows = [{"data_source": "hpt/arithmetic", "prompt": [{"role": "user", "content": f"Q{i}+1=?"}],
             "ability": "math", "reward_model": {"style": "rule", "ground_truth": str(i + 1)},
             "extra_info": {"index": i, "split": "sft_stream", "target": target}} for i, target in enumerate(targets)]
    path = tmp_path / name
    pd.DataFrame(rows, columns=["data_source", "prompt", "ability", "reward_model", "extra_info"]).to_parquet(path)
    return str(path)


def test_rows_without_a_demonstration_are_skipped_and_counted_once(tmp_path, data_config, tokenizer, caplog):
    path = _write(tmp_path, "partial.parquet", ["0+1=1#1", None, "2+1=3#3", "  "])
    with caplog.at_level(logging.WARNING, logger="hpt.trainer.sft_stream"):
        stream = _stream([path], data_config, tokenizer, batch_size=6, shuffle=False)
    assert len(stream) == 2 and "skipping 2 of 4 rows" in caplog.text
    assert _indices(stream.rows(_rollout_batch(), tokenizer, 1.0)[0]) == [0, 2, 0, 2, 0, 2]


def test_stream_without_any_demonstration_names_the_file_and_column(tmp_path, data_config, tokenizer):
    path = _write(tmp_path, "no_targets.parquet", [None, ""])
    with pytest.raises(ValueError, match=r"no_targets\.parquet.*extra_info\.target"):
        _stream([path], data_config, tokenizer)


def test_empty_stream_fails_before_loading(tmp_path, data_config, tokenizer):
    path = _write(tmp_path, "empty.parquet", [])
    with pytest.raises(ValueError, match=r"empty\.parquet has no rows"):
        _stream([path], data_config, tokenizer)
    with pytest.raises(ConfigError, match=r"data\.sft_stream\.train_files: .*empty\.parquet has no rows"):
        _check_hpt_keys(_config(f"data.sft_stream.train_files=[{path}]"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.sft_stream.train_files=[/nonexistent/stream.parquet]", r"train_files: /nonexistent/stream\.parquet"),
        ("data.sft_stream.train_files=[]", r"data\.sft_stream\.train_files is an empty list"),
        ("data.sft_stream.batch_size=0", r"data\.sft_stream\.batch_size must be an integer >= 1"),
        ("data.sft_stream.coef=-0.5", r"data\.sft_stream\.coef must be >= 0"),
    ],
)
def test_bad_stream_settings_stop_at_start_up(stream_file, override, message):
    overrides = [override] if "train_files" in override else [f"data.sft_stream.train_files=[{stream_file}]", override]
    with pytest.raises(ConfigError, match=message):
        _check_hpt_keys(_config(*overrides))


def test_valid_or_disabled_stream_passes_start_up(stream_file, data_config):
    assert SFTStreamConfig.from_data_config(data_config) is None  # the default: no stream
    config = _config(f"data.sft_stream.train_files={stream_file}", "data.sft_stream.coef=0")
    _check_hpt_keys(config)
    parsed = SFTStreamConfig.from_data_config(config.data)
    assert parsed == SFTStreamConfig(train_files=(stream_file,), batch_size=16, coef=0.0, shuffle=True, seed=1)


def test_tiny_stream_is_disjoint_from_train_and_test_and_leaves_data_untouched(assets, stream_file, capsys):
    def questions(path) -> set[str]:
        return {prompt[0]["content"] for prompt in pd.read_parquet(path)["prompt"]}

    stream = questions(stream_file)
    assert len(pd.read_parquet(stream_file)) == STREAM_ROWS
    assert not stream & (questions(assets / "data" / "train.parquet") | questions(assets / "data" / "test.parquet"))
    build_tiny.main(["--out", str(assets), "--train-size", "64", "--test-size", "8"])  # without the stream flag
    assert "skipped data (present)" in capsys.readouterr().out

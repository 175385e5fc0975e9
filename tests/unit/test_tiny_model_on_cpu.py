"""The tiny model directory: reloadable with Auto classes, exact character tokenization, idempotent build."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hpt.toy import build_tiny
from hpt.toy.arithmetic import make_rows, question_of
from hpt.toy.tiny_model import CHARACTERS, build_model, build_tokenizer

BUILD_ARGS = ["--train-size", "64", "--test-size", "16", "--seed", "0"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    build_tiny.main(["--out", str(out), *BUILD_ARGS])
    return out


@pytest.fixture(scope="module")
def tokenizer(built: Path):
    return AutoTokenizer.from_pretrained(built / "model")


def test_vocabulary_is_specials_then_characters(tokenizer) -> None:
    assert len(tokenizer) == 22
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert tokenizer.convert_ids_to_tokens(list(range(3, 21))) == list(CHARACTERS)


def test_chat_template_renders_bos_question_and_generation_prompt(tokenizer) -> None:
    messages = [{"role": "user", "content": "Q1+2=?"}]
    kwargs = {"add_generation_prompt": True, "tokenize": False, "enable_thinking": False}
    text = tokenizer.apply_chat_template(messages, **kwargs)
    assert text == "<bos>Q1+2=?:"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == [1] + [3 + CHARACTERS.index(c) for c in "Q1+2=?:"]
    assert tokenizer(text)["input_ids"] == ids, "no extra special tokens are added on top of the template"
    assert tokenizer.apply_chat_template(messages, tokenize=False) == "<bos>Q1+2=?"


def test_chat_template_renders_assistant_turn_after_colon_with_eos(tokenizer) -> None:
    messages = [{"role": "user", "content": "Q1+2=?"}, {"role": "assistant", "content": "1+2=3#3"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == "<bos>Q1+2=?:1+2=3#3<eos>"


def test_decode_skipping_specials_returns_the_characters_without_spaces(tokenizer) -> None:
    ids = tokenizer("1+2=3#3", add_special_tokens=False)["input_ids"]
    assert len(ids) == 7
    assert tokenizer.decode([1, *ids, 2, 0, 0], skip_special_tokens=True) == "1+2=3#3"
    assert tokenizer.decode([*ids, 2]) == "1+2=3#3<eos>"


def test_every_task_character_is_in_the_vocabulary(tokenizer) -> None:
    rows = make_rows(300, seed=0, split="train", max_operand=99, max_ops=3)
    for row in rows:
        for text in (question_of(row), row["extra_info"]["target"]):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            assert tokenizer.decode(ids) == text


def test_model_reloads_as_float32_qwen3_of_about_108k_parameters(built: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(built / "model")
    assert type(model).__name__ == "Qwen3ForCausalLM"
    assert model.dtype == torch.float32
    assert 90_000 <= sum(p.numel() for p in model.parameters()) <= 130_000
    assert model.config.tie_word_embeddings
    generation = model.generation_config
    assert (generation.pad_token_id, generation.bos_token_id, generation.eos_token_id) == (0, 1, 2)


def test_forward_pass_gives_vocab_logits_and_a_finite_loss(built: Path, tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(built / "model")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Q1+2=?"}], tokenize=False)
    text = prompt + ":1+2=3#3<eos>"
    input_ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    output = model(input_ids=input_ids, labels=input_ids)
    assert output.logits.shape == (1, input_ids.shape[1], 22)
    assert torch.isfinite(output.loss)


def test_model_init_is_seeded_and_leaves_the_global_rng_alone() -> None:
    tokenizer = build_tokenizer()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first, second, other = build_model(tokenizer, 0), build_model(tokenizer, 0), build_model(tokenizer, 1)
    assert torch.equal(torch.get_rng_state(), before)
    weights = first.model.layers[0].mlp.up_proj.weight
    assert torch.equal(weights, second.model.layers[0].mlp.up_proj.weight)
    assert not torch.equal(weights, other.model.layers[0].mlp.up_proj.weight)


def test_data_is_written_with_disjoint_splits(built: Path) -> None:
    train = pd.read_parquet(built / "data" / "train.parquet")
    test = pd.read_parquet(built / "data" / "test.parquet")
    assert (len(train), len(test)) == (64, 16)
    assert not {p[0]["content"] for p in train["prompt"]} & {p[0]["content"] for p in test["prompt"]}


def test_rebuild_is_skipped_when_present(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = built / "model" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    build_tiny.main(["--out", str(built), *BUILD_ARGS])
    assert "skipped data (present); skipped model (present)" in capsys.readouterr().out
    assert weights.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in built.iterdir()) == ["data", "model"], "no temp dirs left behind"


def test_changed_settings_fail_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    build_tiny.main(["--out", str(tmp_path), "--train-size", "8", "--test-size", "4"])
    capsys.readouterr()
    with pytest.raises(SystemExit, match="pass --force to rebuild"):
        build_tiny.main(["--out", str(tmp_path), "--train-size", "9", "--test-size", "4"])
    build_tiny.main(["--out", str(tmp_path), "--train-size", "9", "--test-size", "4", "--force"])
    assert "built data (train 9, test 4" in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "data" / "train.parquet")) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "model"]


@pytest.mark.parametrize(
    ("flag", "value"), [("--train-size", "0"), ("--test-size", "-1"), ("--max-ops", "0"), ("--seed", "x")]
)
def test_invalid_arguments_exit_with_an_error(flag: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as excinfo:
        build_tiny.parse_args(["--out", str(tmp_path), flag, value])
    assert excinfo.value.code == 2


def test_sequences_longer_than_the_model_positions_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="over the model's 128 positions"):
        build_tiny.main(["--out", str(tmp_path), "--max-operand", "99999", "--max-ops", "6"])
    assert not (tmp_path / "data").exists()

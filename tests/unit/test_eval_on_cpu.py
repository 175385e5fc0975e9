"""Offline evaluation: pass@k by hand, checkpoint resolution, protocol checks, and `hpt eval` on the tiny model."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hpt.toy.build_tiny import main as build_tiny
from hpt.eval.evaluate import EvalProtocol, resolve_model_dir, summarise
from hpt.eval.passk import pass_at_k


def test_pass_at_k_matches_hand_computed_values():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 4, 1) == 1.0
    assert pass_at_k(5, 2, 4) == 1.0  # any 4 of 5 contain a correct one
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_summarise_names_metrics_like_verl_validation():
    rows = [{"data_source": "openai/gsm8k", "reward_model": {"ground_truth": "1"}, "extra_info": None}] * 2
    responses = [["1", "0"], ["0", "0"]]
    metrics = summarise(rows, responses, lambda source, text, truth, extra: {"acc": text == truth}, k=2)
    assert metrics["val-core/openai/gsm8k/acc/mean@2"] == pytest.approx(0.25)
    assert metrics["val-core/openai/gsm8k/acc/pass@2"] == pytest.approx(0.5)
    assert metrics["val-core/openai/gsm8k/acc/pass@1"] == pytest.approx(0.25)
    assert metrics["val-core/openai/gsm8k/prompts"] == 2


def test_protocol_rejects_greedy_with_several_samples():
    with pytest.raises(ValueError, match="temperature"):
        EvalProtocol(k=4, temperature=0.0)


def test_checkpoint_directory_resolves_to_its_hf_weights(tmp_path):
    hf = tmp_path / "global_step_3" / "actor" / "huggingface"
    hf.mkdir(parents=True)
    (hf / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no weights .* python -m verl.model_merger merge --backend fsdp"):
        resolve_model_dir(tmp_path / "global_step_3")  # verl writes the config even without hf_model
    (hf / "model.safetensors").write_bytes(b"")
    assert resolve_model_dir(tmp_path / "global_step_3") == hf
    with pytest.raises(FileNotFoundError, match="hf_model"):
        resolve_model_dir(tmp_path)


class _DeviceModel:
    """Stands in for a model on an accelerator: records the device of what ``generate`` receives."""

    device = torch.device("meta")
    training = False

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
        self.seen = {input_ids.device, attention_mask.device}
        return torch.cat([torch.zeros(input_ids.shape, dtype=torch.long),
                          torch.full((input_ids.shape[0], max_new_tokens), 7)], dim=1)


def test_generation_moves_inputs_to_the_model_device():
    from types import SimpleNamespace

    from hpt.generation import generate_response_ids

    model = _DeviceModel()
    tokenizer = SimpleNamespace(pad_token_id=0, eos_token_id=7)
    assert generate_response_ids(model, tokenizer, [[1, 2], [3]], 2, None) == [[7], [7]]
    assert model.seen == {torch.device("meta")}


def test_hpt_eval_cli_writes_metrics_and_protocol(tmp_path):
    build_tiny(["--out", str(tmp_path / "tiny"), "--train-size", "32", "--test-size", "6"])
    out = tmp_path / "result.json"
    reward = Path(__file__).resolve().parents[2] / "hpt" / "rewards" / "arithmetic.py"
    subprocess.run(
        [sys.executable, "-m", "hpt.cli", "eval", str(tmp_path / "tiny" / "model"),
         str(tmp_path / "tiny" / "data" / "test.parquet"), "--out", str(out), "--k", "2", "--temperature", "1.0",
         "--max-new-tokens", "16", "--reward-path", str(reward)],
        check=True, capture_output=True, text=True,
    )
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    assert metrics["val-core/hpt/arithmetic/prompts"] == 6
    for name in ("mean@2", "pass@2", "pass@1"):
        assert 0.0 <= metrics[f"val-core/hpt/arithmetic/acc/{name}"] <= 1.0
    assert metrics["val-core/hpt/arithmetic/acc/pass@2"] >= metrics["val-core/hpt/arithmetic/acc/mean@2"]
    protocol = result["protocol"]
    assert protocol["k"] == 2 and protocol["temperature"] == 1.0 and protocol["reward"] == str(reward)
    assert "torch" in protocol["versions"]

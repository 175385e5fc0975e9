"""The reference loop ``examples/minimal_hpt.py``: every gate, loss and schedule runs and trains the model."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hpt.toy import engine
from hpt.toy.build_tiny import main as build_tiny

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "minimal_hpt.py"
FRACTIONS = ("hpt/gate/sft_frac", "hpt/gate/rl_frac", "hpt/gate/off_frac", "hpt/gate/mix_frac")


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("minimal_hpt", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


minimal_hpt = _load_example()


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny data and a partially trained model (60 SFT steps: some prompts solved, some not)."""
    out = tmp_path_factory.mktemp("tiny")
    build_tiny(["--out", str(out), "--train-size", "128", "--test-size", "16", "--warm-start-steps", "60"])
    return out


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train_case(assets: Path, **overrides: Any) -> tuple[list[dict[str, float]], bool]:
    """Three small steps on a fresh copy of the warm model; returns the metrics and whether weights moved."""
    settings = minimal_hpt.Settings(
        model=assets / "model_warm", data=assets / "data", steps=3, prompts_per_step=4, n=4, lr=1e-3, eval_every=0,
        **overrides,
    )
    tokenizer = AutoTokenizer.from_pretrained(settings.model)
    model = AutoModelForCausalLM.from_pretrained(settings.model, dtype=torch.float32)
    before = [p.detach().clone() for p in model.parameters()]
    history = minimal_hpt.train(model, tokenizer, settings)
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert len(history) == 3
    for metrics in history:
        assert all(math.isfinite(value) for value in metrics.values()), metrics
        assert sum(metrics[key] for key in FRACTIONS) == pytest.approx(1.0)
    return history, changed


def test_switch_gate_splits_prompts_between_sft_and_rl(assets: Path) -> None:
    history, changed = train_case(assets, gate="switch")
    assert changed
    assert all(m["hpt/gate/sft_frac"] + m["hpt/gate/rl_frac"] == pytest.approx(1.0) for m in history)
    assert any(m["hpt/gate/sft_frac"] > 0 for m in history) and any(m["hpt/gate/rl_frac"] > 0 for m in history)
    assert all(m["hpt/loss/off"] == 0 for m in history)


def test_switch_gate_off_band_trains_demonstrations_with_off_policy_loss(assets: Path) -> None:
    history, changed = train_case(
        assets, gate="switch", switch_gate=-1, switch_gate_off=4, off_loss="clipped_old_ratio"
    )
    assert changed
    assert all(m["hpt/gate/off_frac"] == 1 and m["hpt/loss/rl"] == 0 and m["hpt/loss/off"] != 0 for m in history)


def test_luffy_gate_mixes_every_group(assets: Path) -> None:
    history, changed = train_case(assets, gate="luffy")
    assert changed
    assert all(m["hpt/gate/mix_frac"] == 1 for m in history)


def test_soft_gate_runs(assets: Path) -> None:
    _, changed = train_case(assets, gate="soft", soft_type=0)
    assert changed


def test_sft_gate_trains_demonstrations_only(assets: Path) -> None:
    history, changed = train_case(assets, gate="sft")
    assert changed
    assert all(m["hpt/gate/sft_frac"] == 1 and m["hpt/loss/rl"] == 0 and m["hpt/loss/sft"] > 0 for m in history)


def test_no_gate_trains_rollouts_only(assets: Path) -> None:
    history, changed = train_case(assets, gate="no")
    assert changed
    assert all(m["hpt/gate/rl_frac"] == 1 and m["hpt/loss/sft"] == 0 and m["hpt/loss/off"] == 0 for m in history)


def test_phi_nll_offline_loss_trains(assets: Path) -> None:
    history, changed = train_case(assets, gate="sft", offline_loss="phi_nll")
    assert changed
    assert all(m["hpt/loss/sft"] > 0 for m in history)


def test_linear_schedule_starts_at_start_and_ends_at_end(assets: Path) -> None:
    history, _ = train_case(assets, gate="sft", schedule="linear", lambda_start=0.5, lambda_end=0.1)
    assert [m["hpt/gate/lambda"] for m in history] == pytest.approx([0.5, 0.3, 0.1])


def test_grpo_advantages_standardise_groups_and_keep_a_lone_rows_reward() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0])
    groups = torch.tensor([0, 0, 0, 0, -1])  # a group of four rollouts and a demonstration on its own
    std = torch.tensor([1.0, 0.0, 0.0, 0.0]).std().item()  # unbiased, as verl's GRPO
    expected = [0.75 / (std + 1e-6), -0.25 / (std + 1e-6), -0.25 / (std + 1e-6), -0.25 / (std + 1e-6), 1.0]
    assert engine.grpo_advantages(rewards, groups).tolist() == pytest.approx(expected)


def test_cli_writes_metrics_and_never_imports_verl(assets: Path, tmp_path: Path) -> None:
    out = tmp_path / "metrics.jsonl"
    argv = ["--model", str(assets / "model_warm"), "--data", str(assets / "data"), "--steps", "1",
            "--prompts-per-step", "2", "--eval-every", "1", "--eval-size", "4", "--metrics-out", str(out)]
    script = (
        f"import runpy, sys; sys.argv = [{str(EXAMPLE)!r}, *sys.argv[1:]]; "
        f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__'); "
        "assert 'verl' not in sys.modules, 'the reference loop must not import verl'"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script, *argv], check=True, timeout=120, env=env)
    before, metrics = [json.loads(line) for line in out.read_text().splitlines()]
    assert before["step"] == 0 and "val/acc" in before  # the evaluation before training
    assert {"hpt/gate/sft_frac", "hpt/reward/mean", "hpt/loss/rl", "hpt/gate/lambda", "val/acc"} <= metrics.keys()


def test_example_stays_under_300_lines() -> None:
    assert len(EXAMPLE.read_text().splitlines()) < 300


def test_chord_weighs_rollouts_and_demonstrations_by_mu(assets: Path) -> None:
    history, changed = train_case(assets, gate="chord")
    assert changed
    assert all(m["hpt/gate/lambda"] == pytest.approx(0.5) and m["hpt/loss/sft"] > 0 for m in history)  # mu peak


def test_srft_trains_demonstrations_with_both_terms(assets: Path) -> None:
    history, changed = train_case(assets, gate="srft")
    assert changed
    assert all(m["hpt/loss/sft"] > 0 and m["hpt/loss/off"] != 0 for m in history)

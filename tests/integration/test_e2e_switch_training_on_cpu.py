"""End to end: the real ``python -m hpt.main`` with the CPU overlay.

HPT switch mode for 3 steps from a warm-started tiny model (partial competence), so both kinds of
prompt groups occur: groups whose rollouts all fail (trained on their demonstration) and groups with
a success (GRPO). Then LUFFY with a separate SFT stream and the prompt history for 2 steps: mixed groups, the shaped
off-policy loss and stream rows all reach the real update.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.integration.trainer_run import run_trainer
from hpt import metrics as M

STEPS = 3


def _train(tiny: Path, out: Path, steps: int, *overrides: str) -> Path:
    run_trainer(tiny, out, f"trainer.total_training_steps={steps}", "trainer.val_before_train=false", *overrides)
    return out


@pytest.fixture(scope="module")
def run_dir(warm_tiny_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("e2e")
    return _train(
        warm_tiny_dir, out, STEPS, f"trainer.test_freq={STEPS}", f"trainer.save_freq={STEPS}",
        f"trainer.default_local_dir={out / 'ckpt'}",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,hf_model]",
    )


def _steps(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["data"] for line in lines if line.strip()]


def test_switch_mode_trains_both_sft_and_rl_groups(run_dir):
    steps = _steps(run_dir)
    assert len(steps) == STEPS
    assert sum(s[M.BATCH_DEMO_ROWS] for s in steps) > 0, "no prompt group was trained on its demonstration"
    assert sum(s[M.GATE_RL_FRAC] for s in steps) > 0, "no prompt group was trained with GRPO"
    for s in steps:
        assert s[M.GATE_SFT_FRAC] + s[M.GATE_RL_FRAC] == pytest.approx(1.0)
        assert s[M.BATCH_ROWS] % 64 == 0  # whole PPO mini-batches (16 prompts x 4 samples)
        assert torch.isfinite(torch.tensor([s[M.LOSS_SFT], s[M.LOSS_RL]])).all()
    assert "val-core/hpt/arithmetic/acc/mean@1" in steps[-1]


def test_weights_changed(run_dir, warm_tiny_dir):
    before = load_file(str(warm_tiny_dir / "model_warm" / "model.safetensors"))
    hf_dirs = list((run_dir / "ckpt").glob(f"global_step_{STEPS}/actor/huggingface"))
    assert hf_dirs, "no Hugging Face checkpoint was saved"
    after = load_file(str(hf_dirs[0] / "model.safetensors"))
    changed = [name for name, tensor in before.items() if not torch.equal(tensor, after[name])]
    assert changed, "training left every weight unchanged"


@pytest.mark.slow  # a second trainer run; the switch run above is the default tier's end-to-end run
def test_luffy_with_sft_stream_trains_mixed_groups_and_stream_rows(warm_tiny_dir, tmp_path):
    stream = warm_tiny_dir / "sft_stream" / "sft_stream.parquet"
    run = _train(
        warm_tiny_dir, tmp_path, 2, "trainer.unify_strategy=luffy", "trainer.test_freq=-1", "trainer.save_freq=-1",
        f"data.sft_stream.train_files=[{stream}]", "data.sft_stream.batch_size=8",
        "trainer.remove_sfted_data=true", "trainer.skip_solved_prompts=true",
    )
    steps = _steps(run)
    assert len(steps) == 2
    for s in steps:
        assert s[M.GATE_MIX_FRAC] == 1.0
        assert s[M.BATCH_SFT_STREAM_ROWS] == 8
        assert s[M.BATCH_DEMO_ROWS] == 16  # one demonstration per prompt group
        assert s[M.BATCH_ROWS] % 16 == 0
        assert torch.isfinite(torch.tensor([s[M.LOSS_SFT], s[M.LOSS_RL], s[M.LOSS_OFF]])).all()
        assert s[M.LOSS_SFT] > 0  # the stream's NLL
        assert s[M.LOSS_OFF] != 0  # the shaped loss on in-group demonstrations
        assert s[M.HISTORY_EXCLUDED] >= 0  # the prompt history is recording


@pytest.mark.slow
def test_srft_under_the_original_normalization_trains_rollouts_sft_and_off_policy_terms(warm_tiny_dir, tmp_path):
    run = _train(
        warm_tiny_dir, tmp_path, 2, "trainer.unify_strategy=srft", "trainer.test_freq=-1", "trainer.save_freq=-1",
        "actor_rollout_ref.actor.calculate_entropy=true", "actor_rollout_ref.actor.loss_normalization=original",
    )
    for s in _steps(run):
        assert s[M.DEMO_PROMPT_FRAC] == 1.0 and s[M.DEMO_SFT_PROMPT_FRAC] == 1.0 and s[M.DEMO_OFF_PROMPT_FRAC] == 1.0
        assert torch.isfinite(torch.tensor([s[M.LOSS_SFT], s[M.LOSS_RL], s[M.LOSS_OFF]])).all()
        assert s[M.LOSS_SFT] > 0 and s[M.LOSS_RL] != 0


@pytest.mark.slow
def test_chord_phi_takes_its_experts_from_the_sft_stream_with_the_mu_schedule(warm_tiny_dir, tmp_path):
    stream = warm_tiny_dir / "sft_stream" / "sft_stream.parquet"
    run = _train(
        warm_tiny_dir, tmp_path, 2, "trainer.unify_strategy=chord", "trainer.test_freq=-1", "trainer.save_freq=-1",
        f"data.sft_stream.train_files=[{stream}]", "data.sft_stream.batch_size=8",
        "trainer.chord.mu_warmup_steps=1", "trainer.chord.mu_decay_steps=1", "trainer.chord.mu_peak=0.8",
        "trainer.chord.mu_valley=0.1", "trainer.chord.enable_phi_function=true",
    )
    steps = _steps(run)
    assert [s[M.CHORD_MU] for s in steps] == [0.0, pytest.approx(0.8)]  # step 1 = warm-up start, step 2 = peak
    assert steps[1][M.LOSS_SFT] > 0  # the stream's phi-weighted NLL once mu > 0
    # experts from the stream only, and none while mu = 0 (rows of weight 0 are not added)
    assert [s[M.BATCH_SFT_STREAM_ROWS] for s in steps] == [0, 8]
    for s in steps:
        assert s[M.BATCH_DEMO_ROWS] == 0 and s[M.DEMO_PROMPT_FRAC] == 0.0  # no prompt trains its own demonstration

"""End to end with a vision-language policy: the real ``python -m hpt.main`` on the tiny Qwen2.5-VL.

HPT ``switch`` from the random tiny VLM (every group fails, so every prompt trains on its image
demonstration row, with pad rows) and ``luffy`` (rollouts plus the demonstration in every group),
each for a couple of steps on the visual task, images in both the RL and the SFT rows. Learning is
not asserted (random weights, two steps); the update reaching every weight, vision tower included, is.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hpt import metrics as M
from tests.integration.trainer_run import run_trainer

pytestmark = pytest.mark.slow

STEPS = 2
VLM_OVERRIDES = (
    "data.custom_cls.path=pkg://hpt.cpu.vision_dataset",
    "data.custom_cls.name=PillowVisionDataset",
    "data.max_prompt_length=16",
    "data.max_response_length=16",
    "data.train_batch_size=4",
    "actor_rollout_ref.rollout.n=2",
    "actor_rollout_ref.actor.ppo_mini_batch_size=4",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
    f"trainer.total_training_steps={STEPS}",
    "trainer.val_before_train=false",
    f"trainer.test_freq={STEPS}",
)


@pytest.fixture(scope="module")
def vlm_tiny(vlm_dir: Path, tmp_path_factory) -> Path:
    """``run_trainer``'s layout (``model_warm``, ``data``) pointing at the random tiny VLM."""
    root = tmp_path_factory.mktemp("vlm_layout")
    (root / "model_warm").symlink_to(vlm_dir / "model")
    (root / "data").symlink_to(vlm_dir / "data")
    return root


def _steps(out: Path) -> list[dict]:
    return [json.loads(line)["data"] for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_switch_trains_image_demonstration_rows_and_updates_the_vision_tower(vlm_tiny, tmp_path):
    run_trainer(
        vlm_tiny, tmp_path, *VLM_OVERRIDES, f"trainer.save_freq={STEPS}",
        f"trainer.default_local_dir={tmp_path / 'ckpt'}",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,hf_model]",
    )
    steps = _steps(tmp_path)
    assert len(steps) == STEPS
    assert sum(s[M.BATCH_DEMO_ROWS] for s in steps) > 0, "no image demonstration row was trained"
    for s in steps:
        assert torch.isfinite(torch.tensor([s[M.LOSS_SFT], s[M.LOSS_RL]])).all()
    assert "val-core/hpt/visual/acc/mean@1" in steps[-1]
    before = load_file(str(vlm_tiny / "model_warm" / "model.safetensors"))
    after_dir = next((tmp_path / "ckpt").glob(f"global_step_{STEPS}/actor/huggingface"))
    after = load_file(str(after_dir / "model.safetensors"))
    vision = [name for name in before if "visual" in name]
    assert vision, "no vision-tower weights in the checkpoint"
    assert any(not torch.equal(before[name], after[name]) for name in vision), "the vision tower did not train"


def test_luffy_mixes_image_rollouts_and_demonstrations(vlm_tiny, tmp_path):
    run_trainer(vlm_tiny, tmp_path, *VLM_OVERRIDES, "trainer.unify_strategy=luffy", "trainer.save_freq=-1")
    steps = _steps(tmp_path)
    assert len(steps) == STEPS
    for s in steps:
        assert s[M.GATE_MIX_FRAC] == 1.0
        assert s[M.BATCH_DEMO_ROWS] == 4  # one demonstration per prompt group
        assert torch.isfinite(torch.tensor([s[M.LOSS_SFT], s[M.LOSS_RL], s[M.LOSS_OFF]])).all()

"""End to end: the visual-RAG toy (``python -m hpt.toy.build_vrag``) through the real ``python -m hpt.main``.

The random tiny tool VLM rolls out with verl's tool agent loop (page-search and crop tools, the hf rollout
fed the trajectory's images) and trains, in the same steps, GRPO on its rollouts and SFT on demonstrations
that search, read the retrieved page image, crop it and answer (``mix``: a random policy never succeeds, so
HPT's switch would send every group to SFT and no rollout would be trained). Micro-batches of 4 rows put
the rollouts, which call no tool and so carry no image, in micro-batches of their own: verl's image-free
forward path (``hpt.trainer.vl_forward``). Learning is not asserted.
"""

import json
import math
import os
from pathlib import Path

import pytest

from hpt import metrics as M
from hpt.toy.build_vrag import main as build_vrag
from tests.integration.trainer_run import run_trainer

pytestmark = pytest.mark.slow

STEPS = 2


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    toy = tmp_path_factory.mktemp("vrag")
    build_vrag(["--out", str(toy), "--entities", "24", "--train-size", "8", "--val-size", "4", "--test-size", "4"])
    (toy / "model_warm").symlink_to(toy / "model")  # run_trainer's layout
    out = tmp_path_factory.mktemp("vrag_e2e")
    saved = os.environ.get("PYTHONPATH")  # Ray workers import the tool classes (hpt.tools.*) from this tree
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parents[2]), saved]))
    try:
        run_trainer(
            toy, out, f"trainer.total_training_steps={STEPS}", "trainer.val_before_train=false",
            f"trainer.test_freq={STEPS}", "trainer.unify_strategy=mix", "trainer.save_freq=-1",
            "data.custom_cls.path=pkg://hpt.cpu.vision_dataset", "data.custom_cls.name=PillowVisionDataset",
            "data.max_prompt_length=128", "data.max_response_length=256", "data.train_batch_size=4",
            "actor_rollout_ref.actor.ppo_mini_batch_size=4", "actor_rollout_ref.rollout.n=2",
            f"actor_rollout_ref.rollout.multi_turn.tool_config_path={toy / 'tools' / 'vrag.yaml'}",
            "actor_rollout_ref.rollout.multi_turn.max_assistant_turns=3",
            "actor_rollout_ref.rollout.multi_turn.format=hermes",
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
            "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4",
            timeout=900,
        )
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    return out


def test_mix_trains_rollouts_and_demonstrations_with_observation_images(run_dir):
    steps = [json.loads(line)["data"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    steps = [s for s in steps if M.GATE_MIX_FRAC in s]
    assert len(steps) == STEPS
    for s in steps:
        assert s[M.GATE_MIX_FRAC] == 1.0 and s[M.BATCH_DEMO_ROWS] == 4  # rollouts (RL) and a demonstration per group
        assert s[M.AGENT_DEMO_TOOL_ROWS] == 4 and s[M.AGENT_DEMO_IMAGES] == 8  # page + crop in every demonstration
        assert s[M.BATCH_ROWS] >= 4 * 2 + 4  # the 8 rollouts are trained too
        assert math.isfinite(s[M.LOSS_SFT]) and math.isfinite(s[M.LOSS_RL])
    assert "val-core/hpt/vrag/acc/mean@1" in steps[-1]

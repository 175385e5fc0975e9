"""The Qwen2.5-VL-7B SlideVQA recipe composes with the current config and carries its memory knobs.

Runs the script under the recipe tests' stand-in ``python`` (nothing trains, nothing downloads) with
data from the SlideVQA preparer, then hpt's and verl's start-up checks on the composed config.
"""

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from hpt.data.prepare.slidevqa import prepare_slidevqa
from tests.unit import test_recipes_compose_on_cpu as recipes

shim_bin, run_script = recipes.shim_bin, recipes.run_script  # the recipe tests' stand-ins, as fixtures here

RECIPE = "qwen2.5_vl_7b_slidevqa.sh"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("slidevqa")
    deck = out / "images" / "deck"
    deck.mkdir(parents=True)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (255, 255, 255)).save(buffer, format="JPEG")
    (deck / "deck-1-1024.jpg").write_bytes(buffer.getvalue())
    qa = out / "qa.jsonl"
    qa.write_text(json.dumps({"deck_name": "deck", "question": "Q?", "answer": "A", "evidence_pages": [1]}) + "\n")
    for split in ("train", "dev"):
        prepare_slidevqa(qa, out / "images", out / f"slidevqa_{split}.parquet")
    return out


def test_vlm_recipe_composes_with_the_memory_knobs(run_script, data_dir):
    argv, _ = run_script(RECIPE).only_hpt_main()
    cfg = recipes.compose_argv(argv)
    recipes.assert_starts(cfg)
    recipes.assert_values(cfg, {
        "actor_rollout_ref.model.path": "Qwen/Qwen2.5-VL-7B-Instruct",
        "data.train_files": [str(data_dir / "slidevqa_train.parquet")],
        "data.image_key": "images",
        "actor_rollout_ref.actor.fsdp_config.param_offload": True,
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload": True,
        "actor_rollout_ref.model.enable_gradient_checkpointing": True,
        "actor_rollout_ref.actor.use_dynamic_bsz": True,
        "actor_rollout_ref.rollout.gpu_memory_utilization": 0.4,
        "actor_rollout_ref.rollout.name": "vllm",
        "trainer.unify_strategy": "switch",
        "trainer.n_gpus_per_node": 8,
    })

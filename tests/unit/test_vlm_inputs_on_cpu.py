"""The VLM path's inputs on the CPU: processor without torchvision, rollout images, Pillow dataset, image checks.

Uses the tiny Qwen2.5-VL and visual task built by ``hpt.toy.build_vlm`` (session fixture ``vlm_dir``).
"""

import asyncio
import importlib.util
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from transformers import AutoConfig
from verl.utils.tokenizer.tokenizer import hf_processor

from hpt.cpu.hf_generation import HFGenerationEngine
from hpt.cpu.hf_vision import batch_vision_inputs, load_policy, vision_settings
from hpt.cpu.vision_dataset import PillowVisionDataset, image_parts
from hpt.data.images import ImageBounds, image_problems, image_tokens
from hpt.data.vision_startup import check_vision
from hpt.toy import tiny_vlm
from hpt.toy.build_vlm import main as build_vlm
from hpt.toy.visual import make_rows


@pytest.fixture(scope="module")
def model_dir(vlm_dir):
    return vlm_dir / "model"


@pytest.fixture(scope="module")
def processor(model_dir):
    return hf_processor(str(model_dir))


def _png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_processor_loads_through_verl_without_torchvision(processor):
    assert importlib.util.find_spec("torchvision") is None  # the decision this path is built on
    assert type(processor).__name__ == "Qwen2_5_VLProcessor" and hasattr(processor, "get_rope_index")
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    with pytest.raises(NotImplementedError, match="images only"):
        processor.video_processor.preprocess([])


def test_a_fresh_verl_process_loads_the_processor(model_dir):
    """As the rollout's Ray worker does: it imports hpt.cpu.hf_rollout first (to unpickle the server class)."""
    code = (
        "import sys, hpt.cpu.hf_rollout\n"
        "from verl.utils.tokenizer.tokenizer import hf_processor\n"
        "print(type(hf_processor(sys.argv[1])).__name__)\n"
    )
    env = dict(os.environ, VERL_PLATFORM="cpu", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    result = subprocess.run([sys.executable, "-c", code, str(model_dir)], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "Qwen2_5_VLProcessor", result.stderr[-2000:]


def test_a_56px_image_is_four_tokens_in_the_rendered_prompt(processor):
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "D+3?"}]}],
        add_generation_prompt=True, tokenize=False,
    )
    assert text == "<bos><|vision_start|><|image_pad|><|vision_end|>D+3?:"
    out = processor(text=[text], images=[Image.open(io.BytesIO(_png(56)))], return_tensors="pt")
    assert int((out["input_ids"] == processor.image_token_id).sum()) == 4
    assert out["image_grid_thw"].tolist() == [[1, 4, 4]] and tuple(out["pixel_values"].shape) == (16, 1176)


def test_visual_rows_answer_with_the_arithmetic_reward():
    from hpt.rewards.registry import compute_score

    row = make_rows(3, seed=0, split="train")[1]
    digit = int(row["extra_info"]["target"].split("+")[0])
    addend = int(row["prompt"][0]["content"].split("+")[1].rstrip("?"))
    assert row["reward_model"]["ground_truth"] == str(digit + addend)
    assert Image.open(io.BytesIO(row["images"][0]["bytes"])).size == (56, 56)
    score = compute_score(row["data_source"], row["extra_info"]["target"], row["reward_model"]["ground_truth"])
    assert score["score"] == 1.0


def test_builder_is_idempotent_and_refuses_other_settings(vlm_dir, capsys):
    build_vlm(["--out", str(vlm_dir), "--train-size", "16", "--test-size", "8"])
    assert "skipped data (present); skipped model (present)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--force"):
        build_vlm(["--out", str(vlm_dir), "--train-size", "17", "--test-size", "8"])


def _engine(model_dir, processor) -> HFGenerationEngine:
    hf_config = AutoConfig.from_pretrained(model_dir)
    model = load_policy(str(model_dir), hf_config, trust_remote_code=False)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    settings = vision_settings(hf_config, processor, str(model_dir))
    tok = processor.tokenizer
    return HFGenerationEngine(model, eos_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id,
                              prompt_length=16, response_length=12, vision=settings)


def test_rollout_generates_from_images_and_never_samples_vision_tokens(model_dir, processor):
    engine = _engine(model_dir, processor)
    images = [Image.open(io.BytesIO(_png(56))), Image.open(io.BytesIO(_png(84)))]
    prompts = []
    for image in images:
        text = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "D+1?"}]}],
            add_generation_prompt=True, tokenize=False,
        )
        prompts.append(processor(text=[text], images=[image])["input_ids"][0])
    params = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "max_tokens": 12, "logprobs": True}

    async def run():
        return await asyncio.gather(*[
            engine.generate(p, params, seed=s, images=[im])
            for s in range(4) for p, im in zip(prompts, images, strict=True)
        ])

    results = asyncio.run(run())
    vision_ids = {processor.tokenizer.convert_tokens_to_ids(t) for t in tiny_vlm.VISION_TOKENS}
    assert all(r.token_ids for r in results)
    assert not any(set(r.token_ids) & vision_ids for r in results)  # suppressed: the random model would sample them
    assert all(len(r.log_probs) == len(r.token_ids) for r in results)


def test_rollout_reports_image_tokens_without_matching_features(processor):
    settings = vision_settings(
        type("C", (), {"vision_config": {}, "image_token_id": processor.image_token_id})(), processor, "m"
    )
    ids = torch.tensor([[1, processor.image_token_id, processor.image_token_id, 5]])
    with pytest.raises(ValueError, match="request 0 has 2 image tokens but its 1 image"):
        batch_vision_inputs(settings, [[Image.new("RGB", (56, 56))]], ids)


def test_rollout_without_a_processor_says_how_to_fix_it():
    vlm_config = type("C", (), {"vision_config": {}, "image_token_id": 25})()
    with pytest.raises(RuntimeError, match="hpt.toy.build_vlm"):
        vision_settings(vlm_config, None, "some/vlm")
    assert vision_settings(type("C", (), {})(), None, "text") is None


def test_pillow_dataset_resizes_like_qwen_vl_utils():
    part = {"type": "image", "image": Image.open(io.BytesIO(_png(100)))}
    images, videos, _ = PillowVisionDataset._process_multi_modal_info(
        [{"role": "user", "content": [part, {"type": "text", "text": "D?"}]}], 14, None
    )
    # 100x100: nearest multiple of 28 is 112 (within 4..16384 tokens) -> 112x112, RGB
    assert videos is None and [im.size for im in images] == [(112, 112)] and images[0].mode == "RGB"
    small = {"type": "image", "image": Image.new("L", (20, 30)), "min_pixels": 56 * 56}
    assert PillowVisionDataset._process_multi_modal_info([{"role": "user", "content": [small]}], 14, None)[0][0].size \
        == (56, 84)
    with pytest.raises(NotImplementedError, match="images only"):
        image_parts([{"role": "user", "content": [{"type": "video", "video": "x.mp4"}]}])


def test_image_checks_report_missing_unreadable_and_oversized_rows(tmp_path):
    (tmp_path / "ok.png").write_bytes(_png(56))
    rows = [
        [{"bytes": _png(56)}],
        [{"path": "ok.png"}],
        [{"path": "missing.png"}],
        [{"bytes": b"not an image"}],
        [{"bytes": _png(560)}],
    ]
    bounds = ImageBounds(max_prompt_tokens=64)
    problems = dict(image_problems(rows, bounds, base_dir=str(tmp_path)))
    assert sorted(problems) == [2, 3, 4]
    assert "FileNotFoundError" in problems[2] and "UnidentifiedImageError" in problems[3]
    assert "400 tokens, over the 64-token prompt budget" in problems[4]  # 560/28 = 20 -> 20x20 tokens
    assert image_tokens(56, 56, ImageBounds()) == 4


def _config(model_path, train, **data):
    return OmegaConf.create({
        "data": {"train_files": [str(train)], "val_files": None, "image_key": "images", "max_prompt_length": 16,
                 "custom_cls": {"path": "pkg://hpt.cpu.vision_dataset", "name": "PillowVisionDataset"}, **data},
        "actor_rollout_ref": {"model": {"path": str(model_path), "trust_remote_code": False}},
    })


def test_startup_accepts_the_visual_toy(vlm_dir):
    check_vision(_config(vlm_dir / "model", vlm_dir / "data" / "train.parquet"))


def test_startup_refuses_images_for_a_text_model(vlm_dir, tmp_path):
    from hpt.toy.tiny_model import save_tiny_model

    save_tiny_model(tmp_path / "text", seed=0)
    with pytest.raises(ValueError, match="AutoModelForImageTextToText"):
        check_vision(_config(tmp_path / "text", vlm_dir / "data" / "train.parquet"))


def test_startup_refuses_a_vlm_without_processor(vlm_dir, tmp_path):
    broken = tmp_path / "no_processor"
    shutil.copytree(vlm_dir / "model", broken)
    (broken / "processor_config.json").unlink()
    with pytest.raises(ValueError, match="processor does not load"):
        check_vision(_config(broken, vlm_dir / "data" / "train.parquet"))


def test_startup_refuses_vlm_with_sft_stream_and_bad_images(vlm_dir, tmp_path):
    train = vlm_dir / "data" / "train.parquet"
    with pytest.raises(ValueError, match="sft_stream supports text-only"):
        check_vision(_config(vlm_dir / "model", train, sft_stream={"train_files": [str(train)]}))
    frame = pd.read_parquet(train)
    frame.at[3, "images"] = [{"bytes": b"broken", "path": None}]
    bad = tmp_path / "bad.parquet"
    frame.to_parquet(bad)
    with pytest.raises(ValueError, match="row 3: image 0: UnidentifiedImageError"):
        check_vision(_config(vlm_dir / "model", bad))

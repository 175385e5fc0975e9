"""Visual-RAG demonstrations: the replay of search -> page -> crop -> answer (loss mask by hand, image tokens
never trained), equality with verl's ToolAgentLoop running the real tools and the hf rollout engine on the
observation images, and rebuilt rows whose image tokens, ``image_grid_thw`` and ``pixel_values`` agree.
"""

import verl  # noqa: F401
import dataclasses
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoConfig
from verl import DataProto
from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap
from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
from verl.utils import hf_processor
from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder
from verl.workers.rollout.replica import TokenOutput

from hpt.core.gates import GateConfig, build_gate
from hpt.core.groups import count_successes
from hpt.core.plan import plan_rebuild
from hpt.cpu.hf_generation import HFGenerationEngine
from hpt.cpu.hf_vision import load_policy, vision_settings
from hpt.cpu.vision_dataset import PillowVisionDataset
from hpt.toy.build_vrag import TOOL_CONFIG
from hpt.toy.build_vrag import main as build_vrag
from hpt.toy.tiny_vlm import IMAGE_PAD, VISION_END, VISION_START
from hpt.trainer.batch import DemoOptions, apply_plan, group_index
from hpt.trainer.multiturn import TurnLimits, TurnReplayer, load_tools, parse_turns

PROMPT_LEN, RESPONSE_LEN = 128, 256
PAGE_TOKENS, CROP_TOKENS = 16, 8  # 112x112 page: 4x4 merged patches; 224x40 crop -> 224x28: 8x1


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp("vrag")
    build_vrag(["--out", str(out), "--entities", "12", "--train-size", "4", "--val-size", "2", "--test-size", "2"])
    return out


@pytest.fixture(scope="module")
def processor(toy):
    return hf_processor(str(toy / "model"))


@pytest.fixture(scope="module")
def multi_turn(toy):
    return OmegaConf.create({"tool_config_path": str(toy / "tools" / TOOL_CONFIG), "function_tool_path": None,
                             "format": "hermes"})


@pytest.fixture(scope="module")
def replayer(processor, multi_turn):
    builder = create_continuous_token_builder(processor.tokenizer, hf_model_type="qwen2_5_vl", processor=processor)
    return TurnReplayer(builder, processor.tokenizer, load_tools(multi_turn), "hermes", TurnLimits())


@pytest.fixture(scope="module")
def row(toy):
    import pandas as pd

    return pd.read_parquet(toy / "data" / "train.parquet").to_dict("records")[0]


def _turns(row):
    return parse_turns(row["extra_info"]["target_turns"], "train row 0")


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_builder_is_idempotent(toy, capsys):
    build_vrag(["--out", str(toy), "--entities", "12", "--train-size", "4", "--val-size", "2", "--test-size", "2"])
    assert "skipped model (present); skipped pages (present); skipped index (present); skipped tools (present); " \
           "skipped data (present)" in capsys.readouterr().out


def test_demonstration_trains_the_calls_and_answer_never_the_observation_images(processor, replayer, row):
    tok, turns, prompt = processor.tokenizer, _turns(row), list(row["prompt"])
    prompt_ids = replayer.builder.build_initial_tokens(prompt, tools=replayer.schemas)
    demo = replayer.replay(prompt_ids, prompt, turns, budget=RESPONSE_LEN)

    def observation(pads: int) -> list[int]:
        return _ids(tok, "\n<|im_start|>user\n<tool_response>" + VISION_START + IMAGE_PAD * pads + VISION_END
                    + "</tool_response><|im_end|>\n<|im_start|>assistant\n")

    search = _ids(tok, turns[0]["content"] + "<|im_end|>")
    crop = _ids(tok, turns[2]["content"] + "<|im_end|>")
    answer = _ids(tok, turns[4]["content"] + "<|im_end|>")
    parts = [(search, 1), (observation(PAGE_TOKENS), 0), (crop, 1), (observation(CROP_TOKENS), 0), (answer, 1)]
    assert list(demo.token_ids) == [t for ids, _ in parts for t in ids]
    assert list(demo.loss_mask) == [m for ids, m in parts for _ in ids]
    image_id = processor.image_token_id
    assert sum(t == image_id for t in demo.token_ids) == PAGE_TOKENS + CROP_TOKENS
    assert all(m == 0 for t, m in zip(demo.token_ids, demo.loss_mask, strict=True) if t == image_id)
    assert [image.size for image in demo.images] == [(112, 112), (224, 40)]
    assert (demo.truncated, demo.tool_calls, demo.dropped_turns) == (False, 2, 0)


class ScriptedServer:
    """Replies with the demonstration's assistant texts; each call also runs the real hf rollout engine on the
    request's prompt and images (the multi-turn prompt with its observation images)."""

    def __init__(self, tokenizer, replies: list[str], engine: HFGenerationEngine):
        self.tokenizer, self.replies, self.engine = tokenizer, list(replies), engine
        self.seen: list[tuple[int, int]] = []  # (image tokens in the prompt, images) per call

    async def generate(self, request_id, prompt_ids, sampling_params, image_data=None, **kwargs) -> TokenOutput:
        images = list(image_data or [])
        params = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "max_tokens": 4, "logprobs": True}
        result = await self.engine.generate(prompt_ids, params, seed=0, images=images)
        assert 1 <= len(result.token_ids) <= 4
        self.seen.append((sum(t == self.engine.vision.image_token_id for t in prompt_ids), len(images)))
        ids = _ids(self.tokenizer, self.replies.pop(0)) + [self.tokenizer.eos_token_id]
        return TokenOutput(token_ids=ids, log_probs=[0.0] * len(ids), stop_reason="completed")


def _engine(toy, processor) -> HFGenerationEngine:
    hf_config = AutoConfig.from_pretrained(toy / "model")
    model = load_policy(str(toy / "model"), hf_config, trust_remote_code=False)
    tok = processor.tokenizer
    return HFGenerationEngine(model, eos_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id,
                              prompt_length=PROMPT_LEN, response_length=RESPONSE_LEN,
                              vision=vision_settings(hf_config, processor, str(toy / "model")))


@pytest.fixture(scope="module")
def rollout(toy, processor, multi_turn, row):
    """verl's ToolAgentLoop on the row, the real page-search and crop tools, the hf engine fed each turn."""
    config = OmegaConf.create({
        "actor_rollout_ref": {"rollout": {
            "prompt_length": PROMPT_LEN, "response_length": RESPONSE_LEN, "full_determinism": False,
            "multi_turn": {"max_user_turns": None, "max_assistant_turns": None, "max_parallel_calls": 1,
                           "max_tool_response_length": 256, "tool_response_truncate_side": "middle",
                           "format": "hermes"},
        }},
        "data": {},
    })
    server = ScriptedServer(processor.tokenizer, [t["content"] for t in _turns(row) if t["role"] == "assistant"],
                            _engine(toy, processor))
    loop = ToolAgentLoop(
        trainer_config=DictConfigWrap(config), server_manager=server, tokenizer=processor.tokenizer,
        processor=processor, dataset_cls=PillowVisionDataset, data_config=DictConfigWrap(config.data),
        hf_model_type="qwen2_5_vl",
        tools=ToolListWrap(load_tools(multi_turn)),
    )
    out = loop.loop.run_until_complete(loop.run(sampling_params={}, raw_prompt=list(row["prompt"]), extra_info={}))
    return out, server


def test_replay_equals_the_tool_agent_loop_with_image_observations(replayer, rollout, row):
    out, server = rollout
    demo = replayer.replay(out.prompt_ids, list(row["prompt"]), _turns(row), budget=RESPONSE_LEN)
    assert list(demo.token_ids) == out.response_ids and list(demo.loss_mask) == out.response_mask
    images = out.multi_modal_data["images"]
    assert [i.tobytes() for i in images] == [i.tobytes() for i in demo.images]  # the tools' page and crop
    # the hf engine saw no image, then the page, then page + crop (prompt ids expanded to match)
    assert server.seen == [(0, 0), (PAGE_TOKENS, 1), (PAGE_TOKENS + CROP_TOKENS, 2)]


def _positions(processor, ids, mask, grid) -> torch.Tensor:
    """verl's agent-loop positions of one row (text row + get_rope_index rows), (4, L)."""
    vision, _ = processor.get_rope_index(input_ids=ids[None], attention_mask=mask[None], image_grid_thw=grid,
                                         mm_token_type_ids=(ids == processor.image_token_id).long()[None])
    text = torch.ones_like(ids)
    text[mask.bool()] = torch.arange(int(mask.sum()))
    return torch.cat([text[None], vision[:, 0]], dim=0)


def _rollout_batch(processor, out, row, n: int = 2) -> DataProto:
    """The failed rollout ``n`` times as verl's agent loop lays it out (left-padded prompt, mrope positions)."""
    pad = processor.tokenizer.pad_token_id
    prompt = torch.full((PROMPT_LEN,), pad)
    prompt[PROMPT_LEN - len(out.prompt_ids):] = torch.tensor(out.prompt_ids)
    response = torch.full((RESPONSE_LEN,), pad)
    response[: len(out.response_ids)] = torch.tensor(out.response_ids)
    mask = torch.cat([torch.arange(PROMPT_LEN) >= PROMPT_LEN - len(out.prompt_ids),
                      torch.arange(RESPONSE_LEN) < len(out.response_ids)]).long()
    response_mask = torch.zeros(RESPONSE_LEN, dtype=torch.long)
    response_mask[: len(out.response_mask)] = torch.tensor(out.response_mask)
    pixels = processor.image_processor(images=out.multi_modal_data["images"], return_tensors="pt")
    ids = torch.cat([prompt, response])
    batch = DataProto.from_single_dict({
        "prompts": prompt.repeat(n, 1), "responses": response.repeat(n, 1), "input_ids": ids.repeat(n, 1),
        "attention_mask": mask.repeat(n, 1), "response_mask": response_mask.repeat(n, 1),
        "position_ids": _positions(processor, ids, mask, pixels["image_grid_thw"]).repeat(n, 1, 1),
        "rm_scores": torch.zeros(n, RESPONSE_LEN),
    })
    inputs = {"pixel_values": pixels["pixel_values"], "image_grid_thw": pixels["image_grid_thw"]}
    raw_prompts = np.empty(n, dtype=object)
    raw_prompts[:] = [list(row["prompt"]) for _ in range(n)]
    batch.non_tensor_batch.update({
        "uid": np.array(["q"] * n, dtype=object), "agent_name": np.array(["tool_agent"] * n, dtype=object),
        "extra_info": np.array([row["extra_info"]] * n, dtype=object),
        "raw_prompt": raw_prompts,
        "multi_modal_inputs": np.array([dict(inputs) for _ in range(n)], dtype=object),
    })
    return batch


@pytest.fixture(scope="module")
def rebuilt(processor, replayer, rollout, row):
    """Switch gate at 0 with the group's rollouts failing: its demonstration row, then pad rows to 8 (one
    kept rollout first, so that pad rows copy a row with observation images in its response)."""
    out, _ = rollout
    batch = _rollout_batch(processor, out, row)
    groups = count_successes(batch.batch["rm_scores"].sum(-1), group_index(batch.non_tensor_batch["uid"]))
    plan = plan_rebuild(groups, [True], build_gate("switch"), GateConfig(0), 8)
    plan = dataclasses.replace(plan, keep_rows=(0,), keep_weights=(0.0,), num_pad=plan.num_pad - 1)
    demo = replayer.replay(out.prompt_ids, list(row["prompt"]), _turns(row), budget=RESPONSE_LEN)
    options = DemoOptions(processor.tokenizer.pad_token_id, processor=processor)
    return apply_plan(batch, plan, [demo], options), demo


def test_every_rebuilt_row_has_as_many_image_tokens_as_image_features(processor, rebuilt):
    out, _ = rebuilt
    assert len(out) == 8
    for i in range(len(out)):
        inputs = out.non_tensor_batch["multi_modal_inputs"][i]
        tokens = int((out.batch["input_ids"][i] == processor.image_token_id).sum())
        grid = inputs.get("image_grid_thw")
        features = 0 if grid is None else int(grid.prod(dim=-1).sum()) // 4
        assert tokens == features, f"row {i}"
        if grid is not None:
            assert inputs["pixel_values"].shape[0] == int(grid.prod(dim=-1).sum())
    demo_inputs = out.non_tensor_batch["multi_modal_inputs"][1]
    assert demo_inputs["image_grid_thw"].tolist() == [[1, 8, 8], [1, 2, 16]]  # page 112x112, crop 224x28
    assert demo_inputs["pixel_values"].shape[0] == 64 + 32
    assert demo_inputs["images_seqlens"].tolist() == [64, 32]
    for i in range(2, 8):  # pad rows: no image at all
        assert out.non_tensor_batch["multi_modal_inputs"][i] == {}


def test_demo_row_trains_no_image_or_observation_token(processor, rebuilt):
    out, demo = rebuilt
    responses, trained = out.batch["responses"][1], out.batch["response_mask"][1].bool()
    assert int(trained.sum()) == sum(demo.loss_mask) and torch.equal(out.batch["prefix_mask"][1], trained)
    vision = [processor.tokenizer.convert_tokens_to_ids(t) for t in (VISION_START, IMAGE_PAD, VISION_END)]
    assert not torch.isin(responses[trained], torch.tensor(vision)).any()
    assert "<tool_response>" not in processor.tokenizer.decode(responses[trained])
    assert int(out.batch["attention_mask"][1, PROMPT_LEN:].sum()) == len(demo.token_ids)


def test_demo_row_positions_follow_the_mrope_rule_by_hand(processor, rebuilt):
    """Text positions +1 per token; a 4x4 merged image at start s: t = s, h = s + row, w = s + column;
    the token after it continues at s + 4 (the image's largest side)."""
    out, _ = rebuilt
    ids, positions = out.batch["input_ids"][1], out.batch["position_ids"][1]
    image = (ids == processor.image_token_id).nonzero().flatten().tolist()
    page, crop = image[:PAGE_TOKENS], image[PAGE_TOKENS:]
    s = int(positions[1, page[0]])
    assert s == int(positions[1, page[0] - 1]) + 1  # vision_start is text
    for k, index in enumerate(page):
        assert positions[1:, index].tolist() == [s, s + k // 4, s + k % 4]
    assert positions[1:, page[-1] + 1].tolist() == [s + 4] * 3
    c = int(positions[1, crop[0]])
    for k, index in enumerate(crop):  # 1 x 8 merged
        assert positions[1:, index].tolist() == [c, c, c + k]
    assert positions[1:, crop[-1] + 1].tolist() == [c + 8] * 3
    attended = out.batch["attention_mask"][1].bool()
    assert positions[0, attended].tolist() == list(range(int(attended.sum())))


def test_an_unreadable_demonstration_image_is_refused_at_start_up(toy, row, tmp_path):
    from hpt.config.agent_checks import _check_images

    turns = json.loads(row["extra_info"]["target_turns"])
    turns[3]["images"] = [str(tmp_path / "gone.png")]
    with pytest.raises(ValueError, match=r"train row 5: message 3 of extra_info.target_turns: image 0: .*gone.png"):
        _check_images(turns, "train row 5")

"""VLM demonstration and pad rows stay aligned with what the processor and verl's agent loop give.

The rollout batch is built the way verl's agent loop builds it for the tiny Qwen2.5-VL (processor
expansion of ``<image>``, per-row ``multi_modal_inputs``, (B, 4, L) positions from ``get_rope_index``
over prompt + response), then rebuilt by hpt's switch gate into demonstration and pad rows.
"""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from verl import DataProto
from verl.utils.tokenizer.tokenizer import hf_processor

from hpt.core.gates import GateConfig, build_gate
from hpt.core.groups import count_successes
from hpt.core.plan import plan_rebuild
from hpt.toy import tiny_vlm
from hpt.trainer.batch import DemoOptions, apply_plan, demonstration_target, group_index, tokenize_demonstration

PROMPT_LEN, RESPONSE_LEN, N = 20, 12, 2
SIDES = (56, 84)  # 4 and 9 image tokens: rows of one batch differ in image size


@pytest.fixture(scope="module")
def processor(vlm_dir):
    return hf_processor(str(vlm_dir / "model"))


def _positions(processor, ids: torch.Tensor, mask: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """verl's agent-loop positions for one row: text row + mrope rows from get_rope_index, (4, L)."""
    mm_types = (ids == processor.image_token_id).long()[None]
    vision, _ = processor.get_rope_index(
        input_ids=ids[None], attention_mask=mask[None], image_grid_thw=grid, mm_token_type_ids=mm_types
    )
    text = torch.ones(ids.shape[0], dtype=torch.long)
    text[mask.bool()] = torch.arange(int(mask.sum()))
    return torch.cat([text[None], vision[:, 0]], dim=0)


def _image(side: int) -> Image.Image:
    return Image.new("RGB", (side, side), (side, 0, 0))


def _rollout_batch(processor, responses: list[list[int]]) -> DataProto:
    """One prompt per image size, N rollouts each; every response fails (reward 0)."""
    rows = {"prompts": [], "responses": [], "attention_mask": [], "position_ids": [], "mm": [], "info": []}
    pad = processor.tokenizer.pad_token_id
    for p, side in enumerate(SIDES):
        text = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"D+{p}?"}]}],
            add_generation_prompt=True, tokenize=False,
        )
        out = processor(text=[text], images=[_image(side)], return_tensors="pt")
        ids = out["input_ids"][0]
        prompt = torch.full((PROMPT_LEN,), pad)
        prompt[PROMPT_LEN - len(ids):] = ids
        prompt_mask = (torch.arange(PROMPT_LEN) >= PROMPT_LEN - len(ids)).long()
        for j in range(N):
            response = torch.full((RESPONSE_LEN,), pad)
            response[: len(responses[j])] = torch.tensor(responses[j])
            response_mask = (torch.arange(RESPONSE_LEN) < len(responses[j])).long()
            full, mask = torch.cat([prompt, response]), torch.cat([prompt_mask, response_mask])
            rows["prompts"].append(prompt)
            rows["responses"].append(response)
            rows["attention_mask"].append(mask)
            rows["position_ids"].append(_positions(processor, full, mask, out["image_grid_thw"]))
            rows["mm"].append({"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]})
            rows["info"].append({"index": p, "target": f"{p}+{p}={2 * p}#{2 * p}"})
    prompts, responses_t = torch.stack(rows["prompts"]), torch.stack(rows["responses"])
    attention = torch.stack(rows["attention_mask"])
    batch = DataProto.from_single_dict({
        "prompts": prompts, "responses": responses_t, "input_ids": torch.cat([prompts, responses_t], 1),
        "attention_mask": attention, "position_ids": torch.stack(rows["position_ids"]),
        "response_mask": attention[:, PROMPT_LEN:], "rm_scores": torch.zeros(len(prompts), RESPONSE_LEN),
    })
    batch.non_tensor_batch["uid"] = np.array([f"q{p}" for p in range(len(SIDES)) for _ in range(N)], dtype=object)
    batch.non_tensor_batch["extra_info"] = np.array(rows["info"], dtype=object)
    batch.non_tensor_batch["multi_modal_inputs"] = np.array(rows["mm"], dtype=object)
    return batch


@pytest.fixture(scope="module", params=[False, True], ids=["group-inputs", "rebuilt-by-processor"])
def rebuilt(processor, request):
    """Switch gate at 0: both groups fail -> two demonstration rows, padded to a multiple of 8 rows; the demo
    rows' image inputs copied from the group row (no processor) or rebuilt by the processor (the trainer's)."""
    batch = _rollout_batch(processor, [[5, 6, 7], [8]])
    groups = count_successes(batch.batch["rm_scores"].sum(-1), group_index(batch.non_tensor_batch["uid"]))
    infos = batch.non_tensor_batch["extra_info"]
    plan = plan_rebuild(groups, [True, True], build_gate("switch"), GateConfig(0), 8)
    demos = [tokenize_demonstration(processor.tokenizer, demonstration_target(infos[r]), RESPONSE_LEN)
             for r in plan.demo_source_rows]
    options = DemoOptions(processor.tokenizer.pad_token_id, processor=processor if request.param else None)
    out = apply_plan(batch, plan, demos, options)
    return plan, out


def test_demo_rows_keep_their_groups_image_features(rebuilt, processor):
    plan, out = rebuilt
    demo_rows = range(len(plan.keep_rows), len(plan.keep_rows) + len(plan.demos))
    assert len(demo_rows) == 2
    merge = processor.image_processor.merge_size
    for row in demo_rows:
        mm = out.non_tensor_batch["multi_modal_inputs"][row]
        image_tokens = int((out.batch["input_ids"][row] == processor.image_token_id).sum())
        grid = mm["image_grid_thw"]
        assert image_tokens == int(grid.prod()) // merge**2  # tokens == features, 4 for 56px, 9 for 84px
        assert mm["pixel_values"].shape[0] == int(grid.prod())
    sides = [int(out.non_tensor_batch["multi_modal_inputs"][r]["image_grid_thw"][0, 1]) * 14 for r in demo_rows]
    assert sides == list(SIDES)


def test_demo_row_positions_equal_get_rope_index_on_prompt_plus_demo(rebuilt, processor):
    plan, out = rebuilt
    for row in range(len(plan.keep_rows), len(plan.keep_rows) + len(plan.demos)):
        ids, mask = out.batch["input_ids"][row], out.batch["attention_mask"][row]
        grid = out.non_tensor_batch["multi_modal_inputs"][row]["image_grid_thw"]
        expected = _positions(processor, ids, mask, grid)
        got = out.batch["position_ids"][row]
        assert got.shape == (4, PROMPT_LEN + RESPONSE_LEN)
        attended = mask.bool()
        assert torch.equal(got[:, attended], expected[:, attended])


def test_loss_masks_cover_demo_text_only(rebuilt, processor):
    plan, out = rebuilt
    vision_ids = torch.tensor([processor.tokenizer.convert_tokens_to_ids(t) for t in tiny_vlm.VISION_TOKENS])
    responses = out.batch["responses"]
    for key in ("response_mask", "prefix_mask"):
        trained = out.batch[key].bool()
        assert not torch.isin(responses[trained], vision_ids).any()
    first_demo = len(plan.keep_rows)
    assert out.batch["prefix_mask"][first_demo].sum() == len("0+0=0#0") + 1  # demonstration + <eos>


def test_pad_rows_have_no_image_and_zero_mrope_positions(rebuilt, processor):
    plan, out = rebuilt
    assert plan.num_pad == 6 and len(out) == 8
    for row in range(len(out) - plan.num_pad, len(out)):
        assert out.non_tensor_batch["multi_modal_inputs"][row] == {}
        assert not (out.batch["input_ids"][row] == processor.image_token_id).any()
        assert torch.equal(out.batch["position_ids"][row], torch.zeros(4, PROMPT_LEN + RESPONSE_LEN, dtype=torch.long))
        assert out.batch["attention_mask"][row].sum() == 1 and out.batch["response_mask"][row].sum() == 0
    rows_with_images = [mm for mm in out.non_tensor_batch["multi_modal_inputs"] if mm]
    features = sum(int(mm["image_grid_thw"].prod()) // 4 for mm in rows_with_images)
    assert features == int((out.batch["input_ids"] == processor.image_token_id).sum())  # whole batch aligned


def test_rebuilt_image_token_counts_match_a_fresh_processor_call(rebuilt, processor):
    """The processor's own count for the same image, independently of the copied dicts."""
    plan, out = rebuilt
    buffer = io.BytesIO()
    _image(SIDES[1]).save(buffer, format="PNG")
    fresh = processor.image_processor(images=[Image.open(buffer)], return_tensors="pt")
    row = len(plan.keep_rows) + 1
    assert torch.equal(out.non_tensor_batch["multi_modal_inputs"][row]["image_grid_thw"], fresh["image_grid_thw"])
    assert out.non_tensor_batch["multi_modal_inputs"][row]["pixel_values"].shape == fresh["pixel_values"].shape

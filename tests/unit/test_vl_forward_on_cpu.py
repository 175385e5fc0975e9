"""verl's Qwen2.5-VL input embeddings on a micro-batch without any image (hpt.trainer.vl_forward): the
dummy-image path runs, leaves the embeddings unchanged and still gives the vision tower a gradient."""

import verl  # noqa: F401
import torch
from verl.models.transformers import qwen2_vl

from hpt.toy import tiny_vlm
from hpt.trainer.vl_forward import visual_returns_embeddings


def test_image_free_micro_batch_gets_text_embeddings_and_vision_gradients():
    tokenizer = tiny_vlm.build_tokenizer()
    model = tiny_vlm.build_model(tokenizer, seed=0).model
    ids = torch.tensor([[1, 5, 6, 7, 2]])
    embeds, mask = qwen2_vl._get_input_embeds(model, ids, torch.ones_like(ids), None, None, None, None)
    assert torch.equal(embeds, model.get_input_embeddings()(ids))  # + 0.0 x the dummy image's mean
    embeds.sum().backward()
    grads = [p.grad for p in model.visual.parameters()]
    assert all(g is not None for g in grads) and all(torch.count_nonzero(g) == 0 for g in grads)
    assert "forward" not in model.visual.__dict__  # the tower's own forward is back


def test_the_vision_tower_answers_embeddings_only_inside_the_block():
    model = tiny_vlm.build_model(tiny_vlm.build_tokenizer(), seed=0).model
    pixels, grid = torch.zeros(16, 3 * 2 * 14 * 14), torch.tensor([[1, 4, 4]])
    with visual_returns_embeddings(model.visual):
        inside = model.visual(pixels, grid_thw=grid)
    outside = model.visual(pixels, grid_thw=grid)
    assert isinstance(inside, torch.Tensor) and inside.shape == (4, 64)  # 16 patches merged 2x2, text width
    assert not isinstance(outside, torch.Tensor) and torch.equal(outside.pooler_output, inside)

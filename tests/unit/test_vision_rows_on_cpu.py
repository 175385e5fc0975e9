"""The prompt's share of a rollout row's image inputs (``hpt.trainer.vision_rows.prompt_share``), by hand."""

import verl  # noqa: F401
import pytest
import torch

from hpt.trainer.vision_rows import prompt_share, tokens_per_image, with_images_seqlens

# a prompt image of 4x4 patches (4 tokens), then a retrieved page of 8x8 (16 tokens) and a crop of 2x16 (8)
GRID = torch.tensor([[1, 4, 4], [1, 8, 8], [1, 2, 16]])
PIXELS = torch.arange(16 + 64 + 32, dtype=torch.float32)[:, None].repeat(1, 3)


def test_tokens_per_image_is_patches_over_merge_squared():
    assert tokens_per_image(GRID, 2) == [4, 16, 8]


def test_prompt_share_keeps_the_first_images_and_their_pixel_rows():
    share = prompt_share({"pixel_values": PIXELS, "image_grid_thw": GRID}, prompt_image_tokens=4, merge_size=2)
    assert share["image_grid_thw"].tolist() == [[1, 4, 4]]
    assert torch.equal(share["pixel_values"], PIXELS[:16])
    two = prompt_share({"pixel_values": PIXELS, "image_grid_thw": GRID}, prompt_image_tokens=20, merge_size=2)
    assert two["image_grid_thw"].shape[0] == 2 and two["pixel_values"].shape[0] == 16 + 64
    assert prompt_share({"pixel_values": PIXELS, "image_grid_thw": GRID}, 0, 2) == {}
    assert prompt_share({}, 0, 2) == {}
    assert with_images_seqlens(dict(two))["images_seqlens"].tolist() == [16, 64]


@pytest.mark.parametrize("tokens, inputs", [(6, {"image_grid_thw": GRID, "pixel_values": PIXELS}), (4, {})])
def test_a_prompt_whose_image_tokens_match_no_images_is_refused(tokens, inputs):
    with pytest.raises(ValueError, match="image tokens"):
        prompt_share(inputs, tokens, 2)

"""Tiny VLM against the tiny text model on the CPU: forward + backward time at equal tokens per row.

Both models are hpt's toys, random-initialised in memory: the 108k-parameter Qwen3
(``hpt.toy.tiny_model``) and the 182k-parameter Qwen2.5-VL (``hpt.toy.tiny_vlm``, whose text side
has the same 2 x 64 shape plus a 1-block vision tower). The batch is shaped like a visual-task
training micro-batch: ``rows`` sequences of ``length`` tokens; in the VLM's, 4 tokens per row are
the image of a 56x56 picture (16 patches through the vision tower) and positions are mrope
``(3, rows, length)``. The ratio is the VLM's extra cost per step at equal tokens on this machine.
Usage: ``python -m benchmarks.speed.vlm_step [--rows 32 --length 26 --repeats 20]``.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import time

import torch
from PIL import Image

from benchmarks.speed.common import emit, part_parser, summary
from hpt.toy import tiny_model, tiny_vlm

IMAGE_TOKENS = 4


def _time(step, repeats: int) -> list[float]:
    step()  # warm-up: allocator and kernel selection
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return samples


def text_step(rows: int, length: int):
    """Forward + backward of the tiny text model on ``rows`` x ``length`` tokens."""
    model = tiny_model.build_model(tiny_model.build_tokenizer(), seed=0).train()
    ids = torch.randint(3, 20, (rows, length), generator=torch.Generator().manual_seed(0))

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()

    return step


def vlm_step(rows: int, length: int):
    """Forward + backward of the tiny VLM on the same token count, one 56x56 image per row."""
    tokenizer = tiny_vlm.build_tokenizer()
    processor = tiny_vlm.build_processor(tokenizer)
    model = tiny_vlm.build_model(tokenizer, seed=0).train()
    ids = torch.randint(3, 20, (rows, length), generator=torch.Generator().manual_seed(0))
    ids[:, 1 : 1 + IMAGE_TOKENS] = model.config.image_token_id
    pixels = processor.image_processor(images=[Image.new("RGB", (56, 56), (9, 9, 9))] * rows, return_tensors="pt")
    mm_types = (ids == model.config.image_token_id).long()
    positions, _ = model.model.get_rope_index(
        input_ids=ids, mm_token_type_ids=mm_types, image_grid_thw=pixels["image_grid_thw"]
    )
    labels = ids.masked_fill(mm_types.bool(), -100)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=labels, position_ids=positions, pixel_values=pixels["pixel_values"],
              image_grid_thw=pixels["image_grid_thw"], mm_token_type_ids=mm_types).loss.backward()

    return step


def measure(rows: int, length: int, repeats: int) -> dict:
    """Median fwd+bwd seconds of each model and their ratio (VLM / text), one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        text = summary(_time(text_step(rows, length), repeats))
        vlm = summary(_time(vlm_step(rows, length), repeats))
    finally:
        torch.set_num_threads(threads)
    return {"rows": rows, "length": length, "text_s": text, "vlm_s": vlm, "ratio": vlm["median"] / text["median"]}


def main(argv: list[str] | None = None) -> dict:
    args = part_parser(__doc__, with_tiny_dir=False, rows=32, length=26, repeats=20).parse_args(argv)
    return emit("vlm_step", measure(args.rows, args.length, args.repeats), args.out)


if __name__ == "__main__":
    main()

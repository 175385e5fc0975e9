"""Build the CPU visual-RAG toy: a tool-capable tiny VLM, page images of a fact corpus, their BM25 index, the
``search``/``crop`` tool config, and questions whose demonstrations search, crop and answer.

    python -m hpt.toy.build_vrag --out DIR [--entities 60 --train-size 256 --val-size 32 --test-size 32
                                            --seed 0 --force]

Layout of DIR (each a separate asset: built in a temp dir and renamed into place, its settings in
``hpt_build.json``, skipped when present with the same settings, an error with others unless ``--force``):

- ``model/``: processor (tool tokenizer + vision tokens, template) + random tiny Qwen2.5-VL (``hpt.toy.vrag_model``)
- ``pages/``: ``corpus.jsonl`` (each page's text and its image) and ``pages/<entity>.png``
- ``index/``: the BM25 index of the pages' text (``hpt.tools.index``)
- ``tools/vrag.yaml``: the tool config for ``actor_rollout_ref.rollout.multi_turn.tool_config_path``
  (``hpt.tools.pages.PageSearchTool`` + ``hpt.tools.crop.CropTool``; absolute paths: rebuild after moving DIR)
- ``data/``: ``{train,val,test}.parquet`` and ``crops/``: every demonstration is replayed as the trainer
  replays it, its search answer checked to be its page, its crop to be the crop tool's output, its lengths
  to fit ``RECOMMENDED``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from hpt.toy.build_tiny import StaleAssetError, _non_negative_int, _positive_int, ensure_asset

# Hydra overrides that fit these assets: prompts (tool list + question) are under 96 tokens, a
# demonstration (two calls, a page of 16 image tokens, a crop of 8, the answer) under 256.
RECOMMENDED = {
    "data.max_prompt_length": 128,
    "data.max_response_length": 256,
    "actor_rollout_ref.rollout.multi_turn.max_assistant_turns": 3,
    "actor_rollout_ref.rollout.multi_turn.format": "hermes",
}
TOOL_CONFIG = "vrag.yaml"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and range-check the command line."""
    parser = argparse.ArgumentParser(prog="python -m hpt.toy.build_vrag", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    parser.add_argument("--entities", type=_positive_int, default=60, help="invented entities (one page each)")
    parser.add_argument("--train-size", type=_positive_int, default=256, help="training questions")
    parser.add_argument("--val-size", type=_positive_int, default=32, help="validation questions (unseen entities)")
    parser.add_argument("--test-size", type=_positive_int, default=32, help="test questions (unseen entities)")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed for the world, data and model")
    parser.add_argument("--force", action="store_true", help="rebuild assets even when present")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a directory")
    return args


def _world(params: dict[str, Any]):
    from hpt.toy.facts import make_world

    return make_world(params["entities"], params["seed"])


def _write_model(tmp: Path, seed: int) -> str:
    from transformers.utils import logging as hf_logging

    from hpt.toy.vrag_model import save_vrag_model

    hf_logging.disable_progress_bar()
    return f"{save_vrag_model(tmp, seed):,} parameters"


def _write_pages(tmp: Path, params: dict[str, Any]) -> str:
    from hpt.toy.vrag import write_pages

    world = _world(params)
    write_pages(world, tmp)
    return f"{len(world.entities['train']) + len(world.entities['val']) + len(world.entities['test'])} pages"


def _write_index(tmp: Path, corpus: Path) -> str:
    from hpt.tools.index import write_index

    return f"{write_index(corpus, tmp)} pages indexed"


def _write_tool_config(tmp: Path, index_dir: Path) -> str:
    from hpt.tools.schemas import CROP_SCHEMA, PAGE_SEARCH_SCHEMA
    from hpt.toy.vrag import ZOOM

    config = {
        "tools": [
            {
                "class_name": "hpt.tools.pages.PageSearchTool",
                "config": {"type": "native", "index_dir": str(index_dir), "top_k": 1},
                "tool_schema": PAGE_SEARCH_SCHEMA,
            },
            {
                "class_name": "hpt.tools.crop.CropTool",
                "config": {"type": "native", "zoom": ZOOM},
                "tool_schema": CROP_SCHEMA,
            },
        ]
    }
    (tmp / TOOL_CONFIG).write_text(json.dumps(config, indent=1) + "\n")  # JSON is YAML
    return f"{TOOL_CONFIG} -> {index_dir}"


def _write_crops(tmp: Path, rows: list[dict], pages: Path) -> int:
    """The crop of every asked fact's line, made by the crop tool's own maths."""
    from hpt.tools.crop import crop_zoom
    from hpt.tools.pages import open_page
    from hpt.toy.vrag import ZOOM, crop_name, facts_asked, line_region

    (tmp / "crops").mkdir()
    asked = sorted(facts_asked(rows))
    for entity, attribute in asked:
        crop = crop_zoom(open_page(pages / f"{entity}.png"), line_region(attribute), ZOOM)
        crop.save(tmp / "crops" / crop_name(entity, attribute))
    return len(asked)


def _write_data(tmp: Path, params: dict[str, Any], out: Path) -> str:
    from hpt.toy.facts import write_parquet
    from hpt.toy.vrag import make_rows

    world, pages = _world(params), out / "pages" / "pages"
    sizes = {"train": params["train_size"], "val": params["val_size"], "test": params["test_size"]}
    staged = {s: make_rows(world, n, params["seed"], s, pages, tmp / "crops") for s, n in sizes.items()}
    crops = _write_crops(tmp, [row for rows in staged.values() for row in rows], pages)
    prompt, response = _check_demonstrations(staged, out)
    for split, n in sizes.items():  # the same rows, pointing at where the crops will live
        write_parquet(
            make_rows(world, n, params["seed"], split, pages, out / "data" / "crops"), tmp / f"{split}.parquet"
        )
    split_sizes = ", ".join(f"{split} {n}" for split, n in sizes.items())
    return f"{split_sizes}, {crops} crops, longest prompt {prompt} / demonstration {response} tokens"


def _check_demonstrations(splits: dict[str, list[dict]], out: Path) -> tuple[int, int]:
    """Replay every demonstration as the trainer does; its observations must be what the tools answer."""
    from verl.tools.tool_registry import load_all_tools
    from verl.utils import hf_processor, hf_tokenizer
    from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

    from hpt.tools.crop import crop_observation
    from hpt.trainer.multiturn import TurnLimits, TurnReplayer, open_image, parse_turns

    model = str(out / "model")
    tokenizer, processor = hf_tokenizer(model), hf_processor(model)
    builder = create_continuous_token_builder(tokenizer, hf_model_type="qwen2_5_vl", processor=processor)
    tools = load_all_tools(tool_config_path=str(out / "tools" / TOOL_CONFIG), function_tool_path=None)
    replayer = TurnReplayer(builder, tokenizer, tools, "hermes", TurnLimits())
    search, crop = (next(tool for tool in tools if tool.name == name) for name in ("search", "crop"))
    budget = RECOMMENDED["data.max_response_length"]
    longest_prompt = longest_response = 0
    for split, rows in splits.items():
        for row in rows:
            where = f"{split} row {row['extra_info']['index']}"
            turns = parse_turns(row["extra_info"]["target_turns"], where)
            replayer.check(turns, where)
            call = json.loads(turns[0]["content"].removeprefix("<tool_call>").removesuffix("</tool_call>"))
            page = open_image(turns[1]["images"][0])
            found, _ = search.observe(call["arguments"])
            crop_call = json.loads(turns[2]["content"].removeprefix("<tool_call>").removesuffix("</tool_call>"))
            cropped, _ = crop_observation(crop_call["arguments"], [page], crop.zoom, crop.min_side)
            if not found.image or found.image[0].tobytes() != page.tobytes():
                raise ValueError(f"{where}: search({call['arguments']}) does not answer with the demonstrated page")
            if cropped.image[0].tobytes() != open_image(turns[3]["images"][0]).tobytes():
                raise ValueError(f"{where}: the crop tool does not give the demonstrated crop")
            prompt_ids = builder.build_initial_tokens(row["prompt"], tools=replayer.schemas)
            demo = replayer.replay(prompt_ids, row["prompt"], turns, budget)
            if demo.truncated:
                raise ValueError(f"{where}: the demonstration does not fit {budget} response tokens")
            longest_prompt = max(longest_prompt, len(prompt_ids))
            longest_response = max(longest_response, len(demo.token_ids))
    if longest_prompt > RECOMMENDED["data.max_prompt_length"]:
        raise ValueError(f"the longest prompt is {longest_prompt} tokens, over {RECOMMENDED}")
    return longest_prompt, longest_response


def build(args: argparse.Namespace) -> str:
    """Ensure every asset under ``args.out``; return the summary."""
    out = args.out.resolve()
    world_params = {"entities": args.entities, "seed": args.seed}
    data_params = {
        **world_params,
        "train_size": args.train_size,
        "val_size": args.val_size,
        "test_size": args.test_size,
    }
    corpus = out / "pages" / "corpus.jsonl"
    parts = [
        ensure_asset(
            out / "model", {"model": "tiny_vrag", "seed": args.seed}, partial(_write_model, seed=args.seed), args.force
        ),
        ensure_asset(out / "pages", world_params, partial(_write_pages, params=world_params), args.force),
        ensure_asset(out / "index", world_params, partial(_write_index, corpus=corpus), args.force),
        ensure_asset(
            out / "tools",
            {"index_dir": str(out / "index")},
            partial(_write_tool_config, index_dir=out / "index"),
            args.force,
        ),
        ensure_asset(out / "data", data_params, partial(_write_data, params=data_params, out=out), args.force),
    ]
    overrides = " ".join(f"{key}={value}" for key, value in RECOMMENDED.items())
    return f"{'; '.join(parts)} -> {out}\nrecommended overrides: {overrides}"


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point: build what is missing and print the summary."""
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        summary = build(args)
    except (StaleAssetError, ValueError, FileNotFoundError) as err:
        sys.exit(f"build_vrag: error: {err}")
    print(f"build_vrag: {summary}\nbuild_vrag: done in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()

"""Build the CPU agent toy: a tool-capable tiny model, the fact-lookup task, its corpus and BM25 index, the
search tool's config, and (optionally) a warm start that leaves the model calling the tool sometimes.

    python -m hpt.toy.build_agent --out DIR [--entities 200 --train-size 1000 --val-size 64 --test-size 128
                                             --kind-weights 2,1,1 --seed 0 --warm-start-steps N
                                             --no-tool-share 0.3 --report-prompts 32 --force]

Layout of DIR (each a separate asset: built in a temp dir and renamed into place, its settings in
``hpt_build.json``, skipped when present with the same settings, an error with others unless ``--force``):

- ``model/``: tokenizer + random tiny Qwen3 (``hpt.toy.tool_model``)
- ``data/``: ``train.parquet``, ``val.parquet``, ``test.parquet`` (``hpt.toy.facts`` rows) and ``corpus.jsonl``
- ``index/``: the BM25 index of the corpus (every demonstrated observation checked to be its query's top hit)
- ``tools/search.yaml``: the tool config for ``actor_rollout_ref.rollout.multi_turn.tool_config_path``
  (absolute ``index_dir``: rebuild after moving DIR)
- ``model_warm/``: ``model/`` after the warm start, with ``warm_start_report.json``

Trainer settings these assets are sized for: ``RECOMMENDED`` below (printed in the summary).
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

RECOMMENDED_WARM_START_STEPS = 400
# Share of the warm start's trajectories that answer by guessing, without the tool: with 400 steps the warm
# model calls the tool in ~2 of 3 sampled rollouts and succeeds in a quarter to a half of those (docs/agents.md).
RECOMMENDED_NO_TOOL_SHARE = 0.3
# Hydra overrides that fit these assets: the longest prompt is under 96 tokens and the longest
# demonstration (two searches and the worked answer) under 256; three assistant turns complete it.
RECOMMENDED = {
    "data.max_prompt_length": 128,
    "data.max_response_length": 256,
    "actor_rollout_ref.rollout.multi_turn.max_assistant_turns": 3,
    "actor_rollout_ref.rollout.multi_turn.format": "hermes",
}
TOOL_CONFIG = "search.yaml"


def _kind_weights(text: str) -> tuple[float, ...]:
    try:
        weights = tuple(float(part) for part in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got {text!r}") from err
    if len(weights) != 3 or min(weights) < 0 or sum(weights) <= 0:
        raise argparse.ArgumentTypeError(f"expected three non-negative weights (lookup,sum,difference), got {text!r}")
    return weights


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from err
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and range-check the command line."""
    parser = argparse.ArgumentParser(prog="python -m hpt.toy.build_agent", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    parser.add_argument("--entities", type=_positive_int, default=200, help="invented entities (4 facts each)")
    parser.add_argument("--train-size", type=_positive_int, default=1000, help="training questions")
    parser.add_argument("--val-size", type=_positive_int, default=64, help="validation questions (unseen entities)")
    parser.add_argument("--test-size", type=_positive_int, default=128, help="test questions (unseen entities)")
    parser.add_argument(
        "--kind-weights", type=_kind_weights, default=(2.0, 1.0, 1.0), help="lookup,sum,difference question mix"
    )
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed for the world, data and model")
    parser.add_argument(
        "--warm-start-steps",
        type=_non_negative_int,
        default=RECOMMENDED_WARM_START_STEPS,
        help="SFT steps on the train trajectories for OUT/model_warm (0 = no warm start)",
    )
    parser.add_argument(
        "--no-tool-share",
        type=_share,
        default=RECOMMENDED_NO_TOOL_SHARE,
        help="share of the warm start's trajectories that answer by guessing, without searching (0 = none)",
    )
    parser.add_argument(
        "--report-prompts",
        type=_positive_int,
        default=32,
        help="train and val prompts the warm start's competence report rolls out (greedy, and 4 samples each)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild assets even when present")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a directory")
    return args


def _rows(params: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    from hpt.toy.facts import make_rows, make_world

    world = make_world(params["entities"], params["seed"])
    sizes = {"train": params["train_size"], "val": params["val_size"], "test": params["test_size"]}
    return {s: make_rows(world, n, params["seed"], s, params["kind_weights"]) for s, n in sizes.items()}


def _longest(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Tokens of the longest prompt and of the longest demonstration (response), as the rollout builds them."""
    from hpt.toy.agent_warm_start import encode_row
    from hpt.toy.tool_model import build_tool_tokenizer

    tokenizer = build_tool_tokenizer()
    prompt, response = 0, 0
    for row in rows:
        ids, labels = encode_row(tokenizer, row)
        first_label = next(i for i, label in enumerate(labels) if label != -100)
        prompt, response = max(prompt, first_label), max(response, len(ids) - first_label)
    return prompt, response


def _write_data(tmp: Path, params: dict[str, Any]) -> str:
    from hpt.toy.facts import make_world, write_corpus, write_parquet

    splits = _rows(params)
    prompt, response = _longest([row for rows in splits.values() for row in rows])
    if prompt > RECOMMENDED["data.max_prompt_length"] or response > RECOMMENDED["data.max_response_length"]:
        raise ValueError(f"the longest prompt/demonstration is {prompt}/{response} tokens, over {RECOMMENDED}")
    for split, rows in splits.items():
        write_parquet(rows, tmp / f"{split}.parquet")
    world = make_world(params["entities"], params["seed"])
    write_corpus(world, tmp / "corpus.jsonl")
    sizes = ", ".join(f"{split} {len(rows)}" for split, rows in splits.items())
    return f"{sizes}, {len(world.corpus())} facts, longest prompt {prompt} / demonstration {response} tokens"


def _write_index(tmp: Path, data_dir: Path) -> str:
    """Index the corpus, then check that every demonstrated observation is what the tool will answer."""
    import pandas as pd

    from hpt.toy.facts import target_turns_of
    from hpt.toy.trajectory import parse_tool_call
    from hpt.tools.index import load_index, search_observation, write_index

    count = write_index(data_dir / "corpus.jsonl", tmp)
    index = load_index(tmp)
    for split in ("train", "val", "test"):
        for row in pd.read_parquet(data_dir / f"{split}.parquet").to_dict("records"):
            turns = target_turns_of(row)
            for call, observation in zip(turns[0:-1:2], turns[1::2], strict=True):
                answer, _ = search_observation(parse_tool_call(call["content"]).arguments, index.search)
                if answer != observation["content"]:
                    raise ValueError(
                        f"{split} row {row['extra_info']['index']}: the tool answers {answer!r}, the demonstration "
                        f"shows {observation['content']!r}"
                    )
    return f"{count} documents, every demonstrated observation checked"


def _write_tool_config(tmp: Path, index_dir: Path) -> str:
    from hpt.tools.schemas import SEARCH_SCHEMA

    config = {
        "tools": [
            {
                "class_name": "hpt.tools.search.SearchTool",
                "config": {"type": "native", "index_dir": str(index_dir), "top_k": 1},
                "tool_schema": SEARCH_SCHEMA,
            }
        ]
    }
    (tmp / TOOL_CONFIG).write_text(json.dumps(config, indent=1) + "\n")  # JSON is YAML
    return f"{TOOL_CONFIG} -> {index_dir}"


def _write_model(tmp: Path, seed: int) -> str:
    from transformers.utils import logging as hf_logging

    from hpt.toy.tool_model import save_tool_model

    hf_logging.disable_progress_bar()
    return f"{save_tool_model(tmp, seed):,} parameters"


def build(args: argparse.Namespace) -> str:
    """Ensure every asset under ``args.out``; return the one-line summary."""
    out = args.out.resolve()
    data_params = {
        "entities": args.entities,
        "train_size": args.train_size,
        "val_size": args.val_size,
        "test_size": args.test_size,
        "kind_weights": list(args.kind_weights),
        "seed": args.seed,
    }
    parts = [
        ensure_asset(out / "model", {"seed": args.seed}, partial(_write_model, seed=args.seed), args.force),
        ensure_asset(out / "data", data_params, partial(_write_data, params=data_params), args.force),
        ensure_asset(out / "index", data_params, partial(_write_index, data_dir=out / "data"), args.force),
    ]
    tool_params = {"index_dir": str(out / "index")}
    parts.append(
        ensure_asset(out / "tools", tool_params, partial(_write_tool_config, index_dir=out / "index"), args.force)
    )
    if args.warm_start_steps:
        from hpt.toy.agent_warm_start import AgentWarmStartSettings, agent_warm_start

        settings = AgentWarmStartSettings(
            steps=args.warm_start_steps,
            seed=args.seed,
            no_tool_share=args.no_tool_share,
            eval_prompts=args.report_prompts,
        )
        report = agent_warm_start(out / "model", out / "data", out / "index", out / "model_warm", settings, args.force)
        parts.append(f"{'skipped' if report.skipped else 'built'} model_warm ({report.summary()})")
    overrides = " ".join(f"{key}={value}" for key, value in RECOMMENDED.items())
    return f"{'; '.join(parts)} -> {out}\nrecommended overrides: {overrides}"


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point: build what is missing and print the summary."""
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        summary = build(args)
    except (StaleAssetError, ValueError, FileNotFoundError) as err:
        sys.exit(f"build_agent: error: {err}")
    print(f"build_agent: {summary}\nbuild_agent: done in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()

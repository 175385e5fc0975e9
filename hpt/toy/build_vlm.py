"""Build the CPU visual toy assets: ``OUT/model`` (tiny Qwen2.5-VL + processor) and ``OUT/data/{train,test}.parquet``.

Like ``hpt.toy.build_tiny`` (and through its ``ensure_asset``): idempotent, each asset built in a
temp dir and renamed into place, skipped when present with the same settings, an error when present
with other settings unless ``--force``. Every written image is checked as ``hpt.main`` will check it.

    python -m hpt.toy.build_vlm --out DIR [--train-size 256 --test-size 32 --seed 0 --force]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from hpt.toy.build_tiny import StaleAssetError, _non_negative_int, _positive_int, ensure_asset


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and range-check the command line."""
    parser = argparse.ArgumentParser(prog="python -m hpt.toy.build_vlm", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    parser.add_argument("--train-size", type=_positive_int, default=256, help="training rows")
    parser.add_argument("--test-size", type=_positive_int, default=32, help="held-out rows")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed for model init and data")
    parser.add_argument("--force", action="store_true", help="rebuild assets even when present")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a directory")
    return args


def _write_model(tmp: Path, seed: int) -> str:
    from transformers.utils import logging as hf_logging

    from hpt.toy.tiny_vlm import save_tiny_vlm

    hf_logging.disable_progress_bar()
    return f"{save_tiny_vlm(tmp, seed):,} parameters"


def _write_data(tmp: Path, params: dict[str, Any]) -> str:
    from hpt.data.images import ImageBounds, describe, image_problems
    from hpt.toy.arithmetic import write_parquet
    from hpt.toy.tiny_vlm import MAX_PIXELS, MIN_PIXELS
    from hpt.toy.visual import make_rows

    bounds = ImageBounds(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    for split, size in (("train", params["train_size"]), ("test", params["test_size"])):
        rows = make_rows(size, params["seed"], split)
        problems = image_problems([row["images"] for row in rows], bounds)
        if problems:
            raise ValueError(describe(problems, f"generated {split} split"))
        write_parquet(rows, tmp / f"{split}.parquet")
    return f"train {params['train_size']}, test {params['test_size']}, one 56x56 image each"


def build(args: argparse.Namespace) -> str:
    """Ensure data then model under ``args.out``; return the one-line summary."""
    data_params = {"task": "visual", "train_size": args.train_size, "test_size": args.test_size, "seed": args.seed}
    data = ensure_asset(args.out / "data", data_params, partial(_write_data, params=data_params), args.force)
    model_params = {"model": "tiny_qwen2_5_vl", "seed": args.seed}
    model = ensure_asset(args.out / "model", model_params, partial(_write_model, seed=args.seed), args.force)
    return f"{data}; {model} -> {args.out}"


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point: build what is missing and print one summary line."""
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        summary = build(args)
    except (StaleAssetError, ValueError) as err:
        sys.exit(f"build_vlm: error: {err}")
    print(f"build_vlm: {summary} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()

"""Build the CPU toy assets: ``OUT/model`` (tokenizer + tiny Qwen3) and ``OUT/data/{train,test}.parquet``.

Demo scripts run this on every start, so it is idempotent and cheap when the assets exist: each of
``model/`` and ``data/`` is built in a temp dir and renamed into place (an interrupted build leaves no
half-written asset), records its build settings in ``hpt_build.json``, and is skipped when present
with the same settings. Present with different settings is an error unless ``--force`` rebuilds it.

With ``--sft-stream-size N`` it also writes ``OUT/sft_stream/sft_stream.parquet``: N demonstrations
of questions that are neither train nor test prompts, for ``data.sft_stream.train_files`` (a separate
asset with its own manifest, so adding it never makes an existing ``data/`` stale).

    python -m hpt.toy.build_tiny --out DIR [--train-size 2000 --test-size 128 --seed 0
                                             --max-operand 9 --max-ops 3 --warm-start-steps 0
                                             --sft-stream-size 0 --force]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

MANIFEST = "hpt_build.json"
# Measured on the default data (see hpt.toy.warm_start): this many SFT steps at this lr leave the tiny
# model partially competent. The constants live here so --help never imports torch.
RECOMMENDED_WARM_START_STEPS = 200
RECOMMENDED_WARM_START_LR = 3e-3


class StaleAssetError(RuntimeError):
    """An existing asset was built with other settings; skipping it would silently use the wrong one."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and range-check the command line; argparse reports bad values with the flag name."""
    parser = argparse.ArgumentParser(prog="python -m hpt.toy.build_tiny", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    parser.add_argument("--train-size", type=_positive_int, default=2000, help="training rows")
    parser.add_argument("--test-size", type=_positive_int, default=128, help="held-out rows (not in train)")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed for model init and data")
    parser.add_argument("--max-operand", type=_positive_int, default=9, help="operands are drawn from 0..N")
    parser.add_argument("--max-ops", type=_positive_int, default=3, help="each problem has 1..N operations")
    parser.add_argument(
        "--warm-start-steps",
        type=_non_negative_int,
        default=0,
        help="also write OUT/model_warm: OUT/model after this many SFT steps on the train demonstrations: a "
        f"partially competent start for end-to-end HPT runs (0 = off; {RECOMMENDED_WARM_START_STEPS} recommended)",
    )
    parser.add_argument(
        "--sft-stream-size",
        type=_non_negative_int,
        default=0,
        help="also write OUT/sft_stream/sft_stream.parquet: this many demonstrations of questions outside train "
        "and test, for data.sft_stream.train_files (0 = off)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild assets even when present")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a directory")
    return args


def _write_model(tmp: Path, seed: int) -> str:
    # Imported here so the skip path never pays for importing torch/transformers.
    from transformers.utils import logging as hf_logging

    from hpt.toy.tiny_model import save_tiny_model

    hf_logging.disable_progress_bar()  # a one-shard save needs no progress bar in the summary output
    return f"{save_tiny_model(tmp, seed):,} parameters"


def _write_data(tmp: Path, params: dict[str, int]) -> str:
    from hpt.toy.arithmetic import make_splits, write_parquet

    train, test = make_splits(
        params["train_size"], params["test_size"], params["seed"], params["max_operand"], params["max_ops"]
    )
    longest = _longest_sequence(train + test)
    write_parquet(train, tmp / "train.parquet")
    write_parquet(test, tmp / "test.parquet")
    return f"train {len(train)}, test {len(test)}, longest sequence {longest} tokens"


def _longest_sequence(rows: list[dict[str, Any]]) -> int:
    """Tokens of the longest prompt+demonstration; an error when it does not fit the tiny model."""
    from hpt.toy.arithmetic import question_of
    from hpt.toy.tiny_model import MAX_POSITIONS

    # One token per character, plus <bos>, the ':' generation prompt and <eos> (see tiny_model.CHAT_TEMPLATE).
    longest = max(len(question_of(row)) + len(row["extra_info"]["target"]) + 3 for row in rows)
    if longest > MAX_POSITIONS:
        raise ValueError(
            f"the longest prompt+demonstration is {longest} tokens, over the model's {MAX_POSITIONS} "
            "positions; lower --max-operand or --max-ops"
        )
    return longest


def _write_sft_stream(tmp: Path, params: dict[str, int]) -> str:
    from hpt.toy.arithmetic import make_sft_stream_rows, make_splits, question_of, write_parquet

    train, test = make_splits(
        params["train_size"], params["test_size"], params["seed"], params["max_operand"], params["max_ops"]
    )
    exclude = {question_of(row) for row in train + test}
    rows = make_sft_stream_rows(
        params["size"], params["seed"], exclude, params["max_operand"], params["max_ops"]
    )
    longest = _longest_sequence(rows)
    write_parquet(rows, tmp / "sft_stream.parquet")
    return f"{len(rows)} demonstrations outside train and test, longest sequence {longest} tokens"


def ensure_asset(target: Path, params: dict[str, Any], write: Callable[[Path], str], force: bool) -> str:
    """Build ``target`` atomically unless it exists with the same ``params``; return a summary phrase."""
    wanted = json.dumps(params, sort_keys=True)
    if target.exists() and not force:
        manifest = target / MANIFEST
        recorded = manifest.read_text().strip() if manifest.is_file() else f"no {MANIFEST}"
        if recorded != wanted:
            raise StaleAssetError(f"{target} has {recorded}, not {wanted}; pass --force to rebuild it")
        return f"skipped {target.name} (present)"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-building-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; the renamed asset should read like any directory
    old = target.with_name(f".{target.name}-old-{tmp.name}")
    try:
        detail = write(tmp)
        (tmp / MANIFEST).write_text(wanted + "\n")
        if target.exists():
            target.rename(old)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)  # only once the new asset is in place
    return f"built {target.name} ({detail})"


def build(args: argparse.Namespace) -> str:
    """Ensure data then model under ``args.out``; return the one-line summary."""
    data_params = {
        "train_size": args.train_size,
        "test_size": args.test_size,
        "seed": args.seed,
        "max_operand": args.max_operand,
        "max_ops": args.max_ops,
    }
    data = ensure_asset(args.out / "data", data_params, partial(_write_data, params=data_params), args.force)
    model_params = {"seed": args.seed}
    model = ensure_asset(args.out / "model", model_params, partial(_write_model, seed=args.seed), args.force)
    if args.sft_stream_size:
        stream_params = {**data_params, "size": args.sft_stream_size}
        stream = ensure_asset(
            args.out / "sft_stream", stream_params, partial(_write_sft_stream, params=stream_params), args.force
        )
        data = f"{data}; {stream}"
    if not args.warm_start_steps:
        return f"{data}; {model} -> {args.out}"
    # Imported only when asked for, so a plain build never pays for importing torch.
    from hpt.toy.warm_start import warm_start

    report = warm_start(
        args.out / "model",
        args.out / "data" / "train.parquet",
        args.out / "model_warm",
        args.warm_start_steps,
        seed=args.seed,
        force=args.force,
    )
    warm = f"{'skipped' if report.skipped else 'built'} model_warm ({report.summary()})"
    return f"{data}; {model}; {warm} -> {args.out}"


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point: build what is missing and print one summary line."""
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        summary = build(args)
    except (StaleAssetError, ValueError) as err:
        sys.exit(f"build_tiny: error: {err}")
    print(f"build_tiny: {summary} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()

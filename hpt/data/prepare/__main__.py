"""Prepare one math dataset as hpt's verl parquet and print what was written, skipped and changed.

    python -m hpt.data.prepare NAME --out FILE.parquet [--source HUB_NAME_OR_FILE] [--split SPLIT]
        [--limit N] [--template boxed_instruct|boxed_base|qwen3_nonthinking]
        [--max-demo-tokens N --tokenizer MODEL_DIR --long-demos drop|truncate] [--missing-box add|drop|keep]
        [--solution 1|2|3|shortest] [--min-difficulty X] [--max-difficulty X]   (deepmath)
        [--mode paired|sft]                                                     (metamathqa)

NAME is one of deepmath, metamathqa, gsm8k, math500, aime2024, openr1; ``slidevqa`` (document QA
with page images) has its own flags, see ``hpt.data.prepare.slidevqa``. Without --source the dataset's
Hub name is loaded with ``datasets.load_dataset``; a local .json/.jsonl/.parquet file is read instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from hpt.data.prepare import DATASETS, PrepareError, PrepareOptions, prepare
from hpt.data.prepare.core import LONG_DEMO_POLICIES, MISSING_BOX_POLICIES
from hpt.data.prepare.deepmath import SOLUTION_CHOICES
from hpt.data.prepare.metamathqa import MODES
from hpt.data.templates import DEFAULT_TEMPLATE, TEMPLATES

PROG = "python -m hpt.data.prepare"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The CLI; dataset-specific flags are accepted for every NAME and rejected by the preparer if unused."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(DATASETS), metavar="NAME", help=f"one of {', '.join(DATASETS)}")
    parser.add_argument("--out", required=True, help="output parquet file")
    parser.add_argument("--source", help="Hub dataset name or local .json/.jsonl/.parquet (default: the real dataset)")
    parser.add_argument("--split", help="split to load (default: the dataset's usual one)")
    parser.add_argument("--limit", type=_positive_int, help="read at most N source rows")
    parser.add_argument("--template", choices=sorted(TEMPLATES), default=DEFAULT_TEMPLATE, help="prompt template")
    demo = parser.add_argument_group("demonstrations (deepmath, metamathqa, openr1)")
    demo.add_argument("--max-demo-tokens", type=_positive_int,
                      help="the trainer's data.max_response_length: demonstrations whose tokens + EOS exceed it are "
                           "handled by --long-demos")
    demo.add_argument("--tokenizer", help="tokenizer directory (the trained model's) to count demonstration tokens")
    demo.add_argument("--long-demos", choices=LONG_DEMO_POLICIES, help="drop long demonstrations or truncate them")
    demo.add_argument("--missing-box", choices=MISSING_BOX_POLICIES, default="add",
                      help="demonstration without \\boxed{}: add the answer in a box (default), drop the row, keep it")
    deep = parser.add_argument_group("deepmath")
    deep.add_argument("--solution", choices=SOLUTION_CHOICES, default="1",
                      help="which r1_solution is the demonstration")
    deep.add_argument("--min-difficulty", type=float, help="keep rows with difficulty >= this")
    deep.add_argument("--max-difficulty", type=float, help="keep rows with difficulty <= this")
    parser.add_argument_group("metamathqa").add_argument(
        "--mode", choices=MODES, default="paired", help="paired: RL prompts with demonstrations; sft: SFT-stream rows")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one preparer; print its report, or the error and what to do about it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["slidevqa"]:  # image document QA: its own inputs (QA file + page images), not a math source
        from hpt.data.prepare import slidevqa

        return slidevqa.main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = {key: value for key, value in vars(args).items() if key not in ("name", "out")}
    try:
        report = prepare(args.name, args.out, PrepareOptions(**settings))
    except PrepareError as exc:
        print(f"{PROG} {args.name}: error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())

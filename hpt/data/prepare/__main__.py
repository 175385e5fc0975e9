"""Prepare one math dataset as hpt's verl parquet and print what was written, skipped and changed.

    python -m hpt.data.prepare NAME --out FILE.parquet [--source HUB_NAME_OR_FILE] [--split SPLIT]
        [--limit N] [--template boxed_instruct|boxed_base|qwen3_nonthinking]
        [--max-demo-tokens N --tokenizer MODEL_DIR --long-demos drop|truncate] [--missing-box add|drop|keep]
        [--solution 1|2|3|shortest] [--min-difficulty X] [--max-difficulty X]   (deepmath)
        [--mode paired|sft]                                                     (metamathqa)

    python -m hpt.data.prepare hotpotqa --source FILE --out FILE.parquet [--corpus-out CORPUS.jsonl]
        [--max-demo-tokens N --tokenizer MODEL_DIR] [--limit N] [--split LABEL]

NAME is one of deepmath, metamathqa, gsm8k, math500, aime2024, openr1, hotpotqa (multi-turn search
trajectories from local HotpotQA json; see hpt.data.prepare.hotpotqa); ``slidevqa`` (document QA
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
from hpt.data.prepare.hotpotqa import prepare_hotpotqa
from hpt.data.prepare.metamathqa import MODES
from hpt.data.templates import DEFAULT_TEMPLATE, TEMPLATES

PROG = "python -m hpt.data.prepare"
HOTPOTQA = "hotpotqa"
HOTPOTQA_IGNORES = ("template", "long_demos", "missing_box", "solution", "min_difficulty", "max_difficulty", "mode")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The CLI; dataset-specific flags are accepted for every NAME and rejected by the preparer if unused."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    names = [*DATASETS, HOTPOTQA]
    parser.add_argument("name", choices=sorted(names), metavar="NAME", help=f"one of {', '.join(names)}")
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
    parser.add_argument_group("hotpotqa").add_argument(
        "--corpus-out", help="corpus jsonl of every context paragraph (default: OUT.corpus.jsonl)")
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
    if args.name == HOTPOTQA:
        return _hotpotqa(args)
    if args.corpus_out is not None:
        print(f"{PROG} {args.name}: error: --corpus-out only applies to {HOTPOTQA}", file=sys.stderr)
        return 2
    settings = {key: value for key, value in vars(args).items() if key not in ("name", "out", "corpus_out")}
    try:
        report = prepare(args.name, args.out, PrepareOptions(**settings))
    except PrepareError as exc:
        print(f"{PROG} {args.name}: error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


def _hotpotqa(args: argparse.Namespace) -> int:
    """The multi-turn preparer: local HotpotQA json → rows with target_turns + a corpus file."""
    try:
        if args.source is None:
            raise PrepareError("hotpotqa reads local files only: pass --source hotpot_train_v1.1.json")
        defaults = vars(build_parser().parse_args([HOTPOTQA, "--out", args.out]))
        unused = [k for k in HOTPOTQA_IGNORES if getattr(args, k) != defaults[k]]
        if unused:
            raise PrepareError(f"{', '.join('--' + k.replace('_', '-') for k in unused)} does not apply to hotpotqa")
        if (args.max_demo_tokens is None) != (args.tokenizer is None):
            raise PrepareError("--max-demo-tokens and --tokenizer go together (the budget is counted in its tokens)")
        budget = (args.tokenizer, args.max_demo_tokens) if args.max_demo_tokens else None
        report = prepare_hotpotqa(args.source, args.out, args.corpus_out, budget, args.limit, args.split or "train")
    except PrepareError as exc:
        print(f"{PROG} {HOTPOTQA}: error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())

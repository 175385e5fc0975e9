"""Synthetic chain-of-thought arithmetic: a task a 0.1M-parameter model can learn on a CPU in minutes.

A question such as ``Q12+7-3=?`` is answered by the demonstration ``12+7=19,19-3=16#16``: one
``a<op>b=c`` step per operation, evaluated left to right, then ``#`` and the final answer. The reward
only checks the number after the last ``#`` (see ``hpt.rewards.arithmetic``); the steps are there so
SFT has a chain of thought to imitate.

A second demonstration style, ``verify``, follows every step with its check by the inverse operation
(``12+7=19,19-7=12,19-3=16,16+3=19#16``): a teacher whose traces are longer than, and different from,
what a model trained on the ``steps`` style writes, the toy's stand-in for a stronger model's
reasoning traces used as off-policy demonstrations.
"""

from __future__ import annotations

import os
import random
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hpt.atomic import write_atomically

DATA_SOURCE = "hpt/arithmetic"
OPERATORS = "+-"
INVERSE = {"+": "-", "-": "+"}
DEMO_STYLES = ("steps", "verify")
SFT_STREAM_SPLIT = "sft_stream"


@dataclass(frozen=True)
class ArithmeticProblem:
    """One question with its worked demonstration and integer answer."""

    question: str
    demonstration: str
    answer: int


def _check_ranges(max_operand: int, max_ops: int) -> None:
    if max_operand < 1:
        raise ValueError(f"max_operand must be >= 1, got {max_operand}")
    if max_ops < 1:
        raise ValueError(f"max_ops must be >= 1, got {max_ops}")


def _check_style(style: str) -> None:
    if style not in DEMO_STYLES:
        raise ValueError(f"unknown demonstration style {style!r}; valid: {', '.join(DEMO_STYLES)}")


def make_problem(
    rng: random.Random, max_operand: int = 9, max_ops: int = 3, style: str = "steps"
) -> ArithmeticProblem:
    """Draw 1..max_ops operations (+ or -) over operands uniform in 0..max_operand; negatives are allowed.

    The random draws do not depend on ``style``, so one seed gives the same questions in every style.
    """
    _check_ranges(max_operand, max_ops)
    _check_style(style)
    value = rng.randint(0, max_operand)
    question = f"Q{value}"
    steps = []
    for _ in range(rng.randint(1, max_ops)):
        operator = rng.choice(OPERATORS)
        operand = rng.randint(0, max_operand)
        result = value + operand if operator == "+" else value - operand
        steps.append(f"{value}{operator}{operand}={result}")
        if style == "verify":
            steps.append(f"{result}{INVERSE[operator]}{operand}={value}")
        question += f"{operator}{operand}"
        value = result
    demonstration = f"{','.join(steps)}#{value}"
    return ArithmeticProblem(question=f"{question}=?", demonstration=demonstration, answer=value)


def make_rows(
    n: int,
    seed: int,
    split: str,
    max_operand: int = 9,
    max_ops: int = 3,
    exclude: Collection[str] = frozenset(),
    style: str = "steps",
) -> list[dict[str, Any]]:
    """Build ``n`` verl RL-dataset rows, skipping questions in ``exclude`` (how a test split avoids train).

    The random stream is keyed by both seed and split, so train and test drawn with one seed differ.
    Duplicates within a split are kept: with small operands there are few 1-operation questions, and
    deduplicating them would skew the mix of problem lengths.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    _check_ranges(max_operand, max_ops)
    _check_style(style)
    rng = random.Random(f"{DATA_SOURCE}:{split}:{seed}")
    rows: list[dict[str, Any]] = []
    max_draws = 1000 + 100 * n
    for _ in range(max_draws):
        if len(rows) == n:
            return rows
        problem = make_problem(rng, max_operand, max_ops, style)
        if problem.question in exclude:
            continue
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": "user", "content": problem.question}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": str(problem.answer)},
                "extra_info": {"index": len(rows), "split": split, "target": problem.demonstration},
            }
        )
    if len(rows) == n:
        return rows
    raise ValueError(
        f"found only {len(rows)} of {n} {split!r} questions outside the {len(exclude)} excluded ones "
        f"after {max_draws} draws; raise max_operand/max_ops or ask for fewer rows"
    )


def question_of(row: dict[str, Any]) -> str:
    """The question text of a row, the key used to keep splits disjoint."""
    return row["prompt"][0]["content"]


def make_splits(
    train_size: int, test_size: int, seed: int, max_operand: int = 9, max_ops: int = 3, style: str = "steps"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train and held-out test rows that share no question, so test accuracy is not memorisation."""
    train = make_rows(train_size, seed, "train", max_operand, max_ops, style=style)
    seen = {question_of(row) for row in train}
    test = make_rows(test_size, seed, "test", max_operand, max_ops, exclude=seen, style=style)
    return train, test


def make_sft_stream_rows(
    n: int,
    seed: int,
    exclude: Collection[str],
    max_operand: int = 9,
    max_ops: int = 3,
) -> list[dict[str, Any]]:
    """Rows for a separate SFT stream: demonstrations of questions that are not RL prompts.

    Drawn from their own random stream (split ``sft_stream``), skipping ``exclude`` (the train and
    test questions) so the stream neither pairs with an RL prompt nor leaks the test set. Same schema
    as the RL rows, with the demonstration in ``extra_info.target``.
    """
    return make_rows(n, seed, SFT_STREAM_SPLIT, max_operand, max_ops, exclude=exclude)


def write_parquet(rows: list[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write rows as parquet via a temp file and rename, so readers never see a partial file."""
    write_atomically(Path(path), lambda tmp: pd.DataFrame(rows).to_parquet(tmp, index=False))

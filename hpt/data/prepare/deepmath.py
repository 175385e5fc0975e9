"""DeepMath-103K → RL prompts paired with one of the three DeepSeek-R1 solutions as the demonstration.

Hub ``zwhe99/DeepMath-103K`` (split ``train``), columns ``question``, ``final_answer``, ``difficulty``
(float), ``topic``, ``r1_solution_1``..``r1_solution_3``. The ground truth is ``final_answer`` as
given (it is the dataset's verified answer; nothing is re-derived from the solutions).
``solution`` picks the demonstration: ``1``/``2``/``3`` or ``shortest`` (fewest characters among the
non-empty ones, a tokenizer-free proxy for tokens). A solution without a ``\\boxed{}`` answer gets
``final_answer`` appended in a box by default (``missing_box``, see ``core.ensure_boxed``).
``min_difficulty``/``max_difficulty`` keep rows with difficulty in that closed range.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from hpt.data.prepare.core import (
    DEMO_WITHOUT_BOX,
    DIFFICULTY_OUT_OF_RANGE,
    MISSING_ANSWER,
    MISSING_DEMO,
    MISSING_DIFFICULTY,
    MISSING_QUESTION,
    Binding,
    DatasetSpec,
    Example,
    PrepareOptions,
    Skip,
    ensure_boxed,
)
from hpt.data.prepare.sources import Columns, PrepareError, as_text

DATA_SOURCE = "zwhe99/DeepMath-103K"
SOLUTIONS = {"1": "r1_solution_1", "2": "r1_solution_2", "3": "r1_solution_3"}
SOLUTION_CHOICES = (*SOLUTIONS, "shortest")


def _difficulty(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _choose(raw: dict[str, Any], solution: str) -> tuple[str, str] | None:
    """(column, text) of the chosen solution, or None when it (or, for shortest, every one) is empty."""
    columns = SOLUTIONS.values() if solution == "shortest" else (SOLUTIONS[solution],)
    texts = [(column, text) for column in columns if (text := as_text(raw.get(column)))]
    return min(texts, key=lambda item: len(item[1])) if texts else None


def convert(raw: dict[str, Any], options: PrepareOptions) -> Example | Skip:
    """One DeepMath row → an RL prompt with its R1 demonstration, or the reason it is skipped."""
    question = as_text(raw.get("question"))
    if question is None:
        return Skip(MISSING_QUESTION, "question is empty")
    answer = as_text(raw.get("final_answer"))
    if answer is None:
        return Skip(MISSING_ANSWER, "final_answer is empty")
    difficulty = _difficulty(raw.get("difficulty"))
    low, high = options.min_difficulty, options.max_difficulty
    if low is not None or high is not None:
        if difficulty is None:
            return Skip(MISSING_DIFFICULTY, f"difficulty is {raw.get('difficulty')!r}")
        if low is not None and difficulty < low:
            return Skip(DIFFICULTY_OUT_OF_RANGE, f"difficulty {difficulty} below min_difficulty {low}")
        if high is not None and difficulty > high:
            return Skip(DIFFICULTY_OUT_OF_RANGE, f"difficulty {difficulty} above max_difficulty {high}")
    chosen = _choose(raw, options.solution)
    if chosen is None:
        return Skip(MISSING_DEMO, f"no non-empty r1 solution for --solution {options.solution}")
    column, text = chosen
    target, notes = ensure_boxed(text, answer, options.missing_box)
    if target is None:
        return Skip(DEMO_WITHOUT_BOX, f"{column} has no \\boxed{{}} answer")
    extra = {"difficulty": difficulty, "topic": as_text(raw.get("topic")), "solution": column}
    return Example(question, answer, target, extra, notes)


def bind(columns: Columns, options: PrepareOptions) -> Binding:
    """Check DeepMath's columns (only the solution columns the choice reads) and the options."""
    if options.solution not in SOLUTION_CHOICES:
        raise PrepareError(f"deepmath: solution must be one of {SOLUTION_CHOICES}, got {options.solution!r}")
    low, high = options.min_difficulty, options.max_difficulty
    if low is not None and high is not None and low > high:
        raise PrepareError(f"deepmath: min_difficulty {low} is above max_difficulty {high}")
    solutions = SOLUTIONS.values() if options.solution == "shortest" else (SOLUTIONS[options.solution],)
    columns.require("question", "final_answer", "difficulty", "topic", *solutions)
    return Binding(DATA_SOURCE, partial(convert, options=options), has_demonstrations=True)


SPEC = DatasetSpec(
    name="deepmath",
    default_source=DATA_SOURCE,
    default_split="train",
    bind=bind,
    options=("solution", "min_difficulty", "max_difficulty"),
    description="DeepMath-103K RL prompts paired with an R1 solution",
)

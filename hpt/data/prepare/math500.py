"""MATH-500 → validation prompts. Hub ``HuggingFaceH4/MATH-500`` (its only split is ``test``).

Columns ``problem``, ``answer`` (the ground truth, as given), ``subject``, ``level``, ``unique_id``
(the last three are copied to ``extra_info`` so results can be broken down by subject and level).
The reference ``solution`` is not read. A row with an empty ``answer`` is skipped as ``missing_answer``.
"""

from __future__ import annotations

from typing import Any

from hpt.data.prepare.core import MISSING_ANSWER, MISSING_QUESTION, Binding, DatasetSpec, Example, Skip
from hpt.data.prepare.sources import Columns, as_text

DATA_SOURCE = "HuggingFaceH4/MATH-500"


def convert(raw: dict[str, Any]) -> Example | Skip:
    """One MATH-500 row → a validation prompt, or the reason it is skipped."""
    question = as_text(raw.get("problem"))
    if question is None:
        return Skip(MISSING_QUESTION, "problem is empty")
    answer = as_text(raw.get("answer"))
    if answer is None:
        return Skip(MISSING_ANSWER, "answer is empty")
    level = raw.get("level")
    extra = {
        "subject": as_text(raw.get("subject")),
        "level": level if isinstance(level, int) and not isinstance(level, bool) else None,
        "unique_id": as_text(raw.get("unique_id")),
    }
    return Example(question, answer, extra=extra)


def bind(columns: Columns, options: object) -> Binding:
    """Check MATH-500's columns."""
    columns.require("problem", "answer", "subject", "level", "unique_id")
    return Binding(DATA_SOURCE, convert, has_demonstrations=False)


SPEC = DatasetSpec(
    name="math500",
    default_source=DATA_SOURCE,
    default_split="test",
    bind=bind,
    description="MATH-500 validation set",
)

"""AIME 2024 → validation prompts with ``data_source="aime2024"``.

Default source ``Maxwell-Jia/AIME_2024`` (split ``train``, 30 rows), columns ``ID``, ``Problem``,
``Solution``, ``Answer``. Other copies spell them in lower case (``HuggingFaceH4/aime_2024``: ``id``,
``problem``, ``solution``, ``answer``, ``url``, ``year``); both spellings are accepted. Answers stored
as numbers are written as digits ("204"). The id column is optional and copied to ``extra_info.id``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from hpt.data.prepare.core import MISSING_ANSWER, MISSING_QUESTION, Binding, DatasetSpec, Example, Skip
from hpt.data.prepare.sources import Columns, as_text

DATA_SOURCE = "aime2024"


def convert(raw: dict[str, Any], problem: str, answer: str, ident: str | None) -> Example | Skip:
    """One AIME row → a validation prompt, or the reason it is skipped."""
    question = as_text(raw.get(problem))
    if question is None:
        return Skip(MISSING_QUESTION, f"{problem} is empty")
    value = as_text(raw.get(answer))
    if value is None:
        return Skip(MISSING_ANSWER, f"{answer} is empty")
    return Example(question, value, extra={"id": as_text(raw.get(ident)) if ident else None})


def bind(columns: Columns, options: object) -> Binding:
    """Find the problem/answer/id columns in either capitalisation."""
    problem = columns.pick("Problem", "problem")
    answer = columns.pick("Answer", "answer")
    ident = columns.pick("ID", "id", required=False)
    return Binding(DATA_SOURCE, partial(convert, problem=problem, answer=answer, ident=ident), has_demonstrations=False)


SPEC = DatasetSpec(
    name="aime2024",
    default_source="Maxwell-Jia/AIME_2024",
    default_split="train",
    bind=bind,
    description="AIME 2024 validation set",
)

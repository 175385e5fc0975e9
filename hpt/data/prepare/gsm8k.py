"""GSM8K → validation prompts. Hub ``openai/gsm8k`` config ``main`` (default split ``test``).

Columns ``question`` and ``answer``; the ground truth is the number after the answer's ``####``
(``hpt.rewards.extract.gsm8k_answer``, thousands separators removed). An answer without ``####`` is
skipped as ``unparsable_answer``. No demonstrations: ``extra_info.target`` is None.
"""

from __future__ import annotations

from typing import Any

from hpt.data.prepare.core import (
    MISSING_ANSWER,
    MISSING_QUESTION,
    UNPARSABLE_ANSWER,
    Binding,
    DatasetSpec,
    Example,
    Skip,
)
from hpt.data.prepare.sources import Columns, as_text
from hpt.rewards.extract import gsm8k_answer

DATA_SOURCE = "openai/gsm8k"


def convert(raw: dict[str, Any]) -> Example | Skip:
    """One GSM8K row → a validation prompt, or the reason it is skipped."""
    question = as_text(raw.get("question"))
    if question is None:
        return Skip(MISSING_QUESTION, "question is empty")
    solution = as_text(raw.get("answer"))
    if solution is None:
        return Skip(MISSING_ANSWER, "answer is empty")
    answer = gsm8k_answer(solution)
    if not answer:
        return Skip(UNPARSABLE_ANSWER, f"no '#### n' in answer ending {solution[-60:]!r}")
    return Example(question, answer)


def bind(columns: Columns, options: object) -> Binding:
    """Check GSM8K's columns."""
    columns.require("question", "answer")
    return Binding(DATA_SOURCE, convert, has_demonstrations=False)


SPEC = DatasetSpec(
    name="gsm8k",
    default_source=DATA_SOURCE,
    default_split="test",
    hub_config="main",
    bind=bind,
    description="GSM8K validation set",
)

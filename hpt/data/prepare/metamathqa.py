"""MetaMathQA → SFT-stream rows (``mode="sft"``) or RL prompts paired with their response (``"paired"``).

Hub ``meta-math/MetaMathQA`` (split ``train``), columns ``query``, ``response``, ``type``,
``original_question``. The ground truth is the value after the response's last "The answer is:"
(``hpt.rewards.extract.answer_is``); a response without one is skipped as ``unparsable_answer`` and
counted, never guessed from the text. The response is the demonstration in both modes; responses
end in "The answer is: X" rather than a box, so by default (``missing_box="add"``) the parsed answer
is appended in ``\\boxed{}``, the format the prompts ask for and the verifier reads.

``sft`` rows are labelled ``extra_info.split="sft_stream"`` and go to ``data.sft_stream.train_files``;
``paired`` rows keep the loaded split name and go to ``data.train_files``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from hpt.data.prepare.core import (
    DEMO_WITHOUT_BOX,
    MISSING_DEMO,
    MISSING_QUESTION,
    UNPARSABLE_ANSWER,
    Binding,
    DatasetSpec,
    Example,
    PrepareOptions,
    Skip,
    ensure_boxed,
)
from hpt.data.prepare.sources import Columns, PrepareError, as_text
from hpt.rewards.extract import answer_is

DATA_SOURCE = "meta-math/MetaMathQA"
MODES = ("paired", "sft")
SFT_STREAM_SPLIT = "sft_stream"


def convert(raw: dict[str, Any], options: PrepareOptions) -> Example | Skip:
    """One MetaMathQA row → a prompt with its response as demonstration, or the reason it is skipped."""
    question = as_text(raw.get("query"))
    if question is None:
        return Skip(MISSING_QUESTION, "query is empty")
    response = as_text(raw.get("response"))
    if response is None:
        return Skip(MISSING_DEMO, "response is empty")
    answer = answer_is(response)
    if not answer or not answer.strip(":").strip():  # answer_is reads a bare "The answer is:" as ":"
        return Skip(UNPARSABLE_ANSWER, f"no 'The answer is: ...' in response ending {response[-60:]!r}")
    target, notes = ensure_boxed(response, answer, options.missing_box)
    if target is None:
        return Skip(DEMO_WITHOUT_BOX, "response has no \\boxed{} answer")
    extra = {"type": as_text(raw.get("type")), "original_question": as_text(raw.get("original_question"))}
    return Example(question, answer, target, extra, notes)


def bind(columns: Columns, options: PrepareOptions) -> Binding:
    """Check MetaMathQA's columns and the mode."""
    if options.mode not in MODES:
        raise PrepareError(f"metamathqa: mode must be one of {MODES}, got {options.mode!r}")
    columns.require("query", "response", "type", "original_question")
    label = SFT_STREAM_SPLIT if options.mode == "sft" else None
    return Binding(DATA_SOURCE, partial(convert, options=options), has_demonstrations=True, split_label=label)


SPEC = DatasetSpec(
    name="metamathqa",
    default_source=DATA_SOURCE,
    default_split="train",
    bind=bind,
    options=("mode",),
    description="MetaMathQA as an SFT stream or as paired RL prompts",
)

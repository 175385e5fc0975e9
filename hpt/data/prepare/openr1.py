"""OpenR1-Math (LUFFY/HPT's training set) → RL prompts paired with a DeepSeek-R1 trace, for reproductions.

Two source shapes are recognised by their columns:

* ``Elliott/Openr1-Math-46k-8192`` (the default; LUFFY's 46k subset that HPT trains on, traces of at
  most 8192 tokens), already in verl's shape: ``prompt`` (chat turns, a system prompt first),
  ``target`` (a list of turns whose first ``content`` is the R1 trace), ``reward_model.ground_truth``,
  plus ``data_source``, ``ability``, ``extra_info``. The question is the last user turn: the original
  system prompt is dropped (as HPT does) and replaced by the chosen template. A ground truth stored as
  ``\\boxed{x}`` is unwrapped to ``x`` so every hpt file holds bare answers.
* ``open-r1/OpenR1-Math-220k``: ``problem``, ``answer``, ``generations`` (R1 traces) with
  ``correctness_math_verify`` (and ``is_reasoning_complete`` when present) per trace. The
  demonstration is the first trace that Math-Verify marked correct and that is complete; a row with
  none is skipped as ``no_verified_demonstration``. ``source``, ``problem_type``, ``question_type``
  and ``uuid`` go to ``extra_info``.

``data_source`` is the shape's Hub name. Traces without a ``\\boxed{}`` answer follow ``missing_box``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from hpt.data.prepare.core import (
    DEMO_WITHOUT_BOX,
    MISSING_ANSWER,
    MISSING_DEMO,
    MISSING_QUESTION,
    Binding,
    DatasetSpec,
    Example,
    PrepareOptions,
    Skip,
    ensure_boxed,
)
from hpt.data.prepare.sources import Columns, MissingColumnsError, as_text
from hpt.rewards.extract import last_boxed

LUFFY_SOURCE = "Elliott/Openr1-Math-46k-8192"
OPENR1_220K_SOURCE = "open-r1/OpenR1-Math-220k"
NO_VERIFIED_DEMO = "no_verified_demonstration"
OPENR1_220K_EXTRA = ("source", "problem_type", "question_type", "uuid")


def _last_user_turn(prompt: Any) -> str | None:
    if isinstance(prompt, str):
        return as_text(prompt)
    turns = [turn for turn in prompt or () if isinstance(turn, dict) and turn.get("role") == "user"]
    return as_text(turns[-1].get("content")) if turns else None


def _first_content(target: Any) -> str | None:
    if isinstance(target, str):
        return as_text(target)
    first = next(iter(target or ()), None)
    return as_text(first.get("content")) if isinstance(first, dict) else None


def _finish(question: str, answer: str, trace: str, extra: dict[str, Any], policy: str) -> Example | Skip:
    target, notes = ensure_boxed(trace, answer, policy)
    if target is None:
        return Skip(DEMO_WITHOUT_BOX, "the R1 trace has no \\boxed{} answer")
    return Example(question, answer, target, extra, notes)


def convert_luffy(raw: dict[str, Any], options: PrepareOptions) -> Example | Skip:
    """One row of the LUFFY/HPT verl-shaped set → prompt + R1 trace, or the reason it is skipped."""
    question = _last_user_turn(raw.get("prompt"))
    if question is None:
        return Skip(MISSING_QUESTION, "prompt has no non-empty user turn")
    reward = raw.get("reward_model")
    answer = as_text(reward.get("ground_truth")) if isinstance(reward, dict) else None
    if answer is not None and answer.startswith("\\boxed"):
        answer = last_boxed(answer) or None
    if answer is None:
        return Skip(MISSING_ANSWER, "reward_model.ground_truth is empty")
    trace = _first_content(raw.get("target"))
    if trace is None:
        return Skip(MISSING_DEMO, "target has no content")
    return _finish(question, answer, trace, {}, options.missing_box)


def _verified_trace(raw: dict[str, Any]) -> str | None:
    generations = raw.get("generations") or ()
    correct = raw.get("correctness_math_verify") or ()
    complete = raw.get("is_reasoning_complete")
    for i, (text, ok) in enumerate(zip(generations, correct, strict=False)):
        finished = complete is None or (i < len(complete) and complete[i] is True)
        if ok is True and finished and as_text(text):
            return text.strip()
    return None


def convert_openr1_220k(raw: dict[str, Any], options: PrepareOptions) -> Example | Skip:
    """One OpenR1-Math-220k row → prompt + first verified complete trace, or the reason it is skipped."""
    question = as_text(raw.get("problem"))
    if question is None:
        return Skip(MISSING_QUESTION, "problem is empty")
    answer = as_text(raw.get("answer"))
    if answer is None:
        return Skip(MISSING_ANSWER, "answer is empty")
    trace = _verified_trace(raw)
    if trace is None:
        return Skip(NO_VERIFIED_DEMO, "no generation is both complete and marked correct by math-verify")
    extra = {name: as_text(raw.get(name)) for name in OPENR1_220K_EXTRA}
    return _finish(question, answer, trace, extra, options.missing_box)


def bind(columns: Columns, options: PrepareOptions) -> Binding:
    """Recognise the source's shape from its columns and check them."""
    if "generations" in columns:
        columns.require("problem", "answer", "generations", "correctness_math_verify")
        return Binding(OPENR1_220K_SOURCE, partial(convert_openr1_220k, options=options), has_demonstrations=True)
    if "target" in columns or "prompt" in columns:
        columns.require("prompt", "target", "reward_model")
        return Binding(LUFFY_SOURCE, partial(convert_luffy, options=options), has_demonstrations=True)
    raise MissingColumnsError(
        f"openr1: the source {columns.source!r} has neither LUFFY's columns 'prompt', 'target', 'reward_model' "
        f"({LUFFY_SOURCE}) nor the column 'generations' with 'problem', 'answer', 'correctness_math_verify' "
        f"({OPENR1_220K_SOURCE}); its columns: {', '.join(columns.names) or 'none'}. Pass --source with one of them."
    )


SPEC = DatasetSpec(
    name="openr1",
    default_source=LUFFY_SOURCE,
    default_split="train",
    bind=bind,
    description="OpenR1-Math R1 traces (LUFFY/HPT training set) paired with their prompts",
)

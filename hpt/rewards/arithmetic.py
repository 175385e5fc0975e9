"""Exact-answer reward for ``hpt/arithmetic``, in verl's ``custom_reward_function`` contract.

Only the integer after the final ``#`` is scored; the chain of thought before it is free-form, so
the policy is rewarded for the answer, not for copying the demonstration's format step by step.
"""

from __future__ import annotations

import re
from typing import Any

_TRAILING_EOS = re.compile(r"(?:\s*<eos>)+\s*$")
_FINAL_ANSWER = re.compile(r"#(-?\d+)\s*$")
_INTEGER = re.compile(r"-?\d+")


def parse_ground_truth(ground_truth: Any) -> int:
    """The expected answer; a malformed one raises, because scoring it 0 would hide a data bug."""
    text = str(ground_truth).strip() if ground_truth is not None else ""
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"hpt/arithmetic ground_truth must be an integer string, got {ground_truth!r}")
    return int(text)


def extract_answer(solution_str: str) -> int | None:
    """The integer after the last ``#`` at the end of the response (trailing ``<eos>`` text ignored)."""
    match = _FINAL_ANSWER.search(_TRAILING_EOS.sub("", solution_str))
    return int(match.group(1)) if match else None


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """1.0 when the final answer equals the ground truth, else 0.0; ``acc`` repeats it for logging."""
    expected = parse_ground_truth(ground_truth)
    score = 1.0 if extract_answer(solution_str) == expected else 0.0
    return {"score": score, "acc": score}

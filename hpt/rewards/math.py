"""Rule-based math verifier in verl's ``custom_reward_function`` contract.

``compute_score`` reads the final answer of a response (``hpt.rewards.extract``), compares it with
the reference answer (``hpt.rewards.equivalence``: normalised strings, numbers, then ``math-verify``
with a thread-safe deadline) and returns ``{"score", "acc", "pred"}``. verl 0.9.1 logs every key of
that dict: ``acc`` becomes ``val-core/<data_source>/acc/mean@N``, and the string ``pred`` is what its
validation metrics vote on for ``maj@N`` (strings are skipped when averaging).

Options (verl passes ``reward.custom_reward_function.reward_kwargs`` as keyword arguments):

``answer_format``  ``"auto"`` (default: ``\\boxed{}``, else "The answer is", else GSM8K's ``####``),
                   or exactly one of ``"boxed"``, ``"answer_is"``, ``"gsm8k"``.
``require_think``  the response must hold one closed ``<think>…</think>`` block and the answer is read
                   after it; otherwise the score is 0 (``think_opened_in_prompt=True`` when the chat
                   template already opened the block in the prompt).
``timeout_s``      seconds the symbolic check may take before it counts as "not equal" (default 5).
``format_score``   reward for a well-formed response whose answer is wrong (default 0).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

from hpt.rewards.equivalence import answers_equal, normalise, strip_wrappers
from hpt.rewards.extract import ANSWER_FORMATS, after_think, extract_answer, gsm8k_answer, last_boxed, strip_think

logger = logging.getLogger(__name__)

OPTIONS = ("answer_format", "require_think", "think_opened_in_prompt", "timeout_s", "format_score")
# Keyword arguments verl itself adds to the call when a reward model is configured.
_VERL_CALL_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer"})
MAX_PRED_CHARS = 500  # ``pred`` travels with every row of the batch; a runaway answer is cut for logging

_warned_unknown: set[str] = set()
_warn_lock = threading.Lock()


def reference_answer(data_source: str, ground_truth: Any) -> str:
    """The reference answer as a string, or a ValueError naming the data source and the value.

    An empty or unusable reference cannot be scored: returning 0 would silently train the policy away
    from a correct answer, so the row is reported instead (the preparers skip such rows up front).
    A reference that is itself a worked solution (with a box or ``####``) is reduced to its answer.
    """
    if isinstance(ground_truth, bool) or not isinstance(ground_truth, (str, int, float)):
        raise ValueError(
            f"{data_source}: ground_truth must be an answer string or number, got {type(ground_truth).__name__} "
            f"{ground_truth!r}; fix the row's reward_model.ground_truth"
        )
    if isinstance(ground_truth, float):
        if not math.isfinite(ground_truth):
            raise ValueError(f"{data_source}: ground_truth is {ground_truth!r}; the row has no reference answer")
        text = str(int(ground_truth)) if ground_truth.is_integer() else repr(ground_truth)
    else:
        text = str(ground_truth).strip()
    if "\\boxed" in text or "\\fbox" in text:
        text = last_boxed(text) or ""
    elif "####" in text:
        text = gsm8k_answer(text) or ""
    if not normalise(text):
        raise ValueError(
            f"{data_source}: empty or unparsable ground_truth {ground_truth!r}; the row has no reference answer to "
            "score against (drop it from the data: scoring it 0 would teach the model that every answer is wrong)"
        )
    return text


def check_options(
    answer_format: str = "auto",
    require_think: bool = False,
    think_opened_in_prompt: bool = False,
    timeout_s: float = 5.0,
    format_score: float = 0.0,
) -> None:
    """Raise a ValueError naming the option when a value is unusable (also used by the start-up check)."""
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"reward_kwargs.answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}")
    for name, flag in (("require_think", require_think), ("think_opened_in_prompt", think_opened_in_prompt)):
        if not isinstance(flag, bool):
            raise ValueError(f"reward_kwargs.{name} must be true or false, got {flag!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s < math.inf:
        raise ValueError(f"reward_kwargs.timeout_s must be a positive number of seconds, got {timeout_s!r}")
    if isinstance(format_score, bool) or not isinstance(format_score, (int, float)) or not 0 <= format_score < 1:
        raise ValueError(
            f"reward_kwargs.format_score must be in [0, 1) (below the reward of a correct answer), got {format_score!r}"
        )


def warn_unknown_options(kwargs: dict[str, Any]) -> None:
    """Log once per name a keyword this verifier does not read: usually a typo in ``reward_kwargs``."""
    unknown = set(kwargs) - _VERL_CALL_KWARGS
    with _warn_lock:
        new = sorted(unknown - _warned_unknown)
        _warned_unknown.update(new)
    if new:
        logger.warning("math verifier ignores unknown option(s) %s; it reads %s", new, list(OPTIONS))


def _result(score: float, correct: bool, pred: str) -> dict[str, Any]:
    return {"score": float(score), "acc": 1.0 if correct else 0.0, "pred": pred[:MAX_PRED_CHARS]}


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    answer_format: str = "auto",
    require_think: bool = False,
    think_opened_in_prompt: bool = False,
    timeout_s: float = 5.0,
    format_score: float = 0.0,
    **kwargs: Any,
) -> dict[str, Any]:
    """1.0 for a correct final answer, ``format_score`` for a wrong one, 0.0 for none; see the module doc.

    ``acc`` is 1.0/0.0 correctness (the format reward never counts as accuracy) and ``pred`` the
    extracted answer ("" when there is none).
    """
    check_options(answer_format, require_think, think_opened_in_prompt, timeout_s, format_score)
    if kwargs:
        warn_unknown_options(kwargs)
    gold = reference_answer(data_source, ground_truth)
    text = solution_str or ""
    body = after_think(text, think_opened_in_prompt) if require_think else strip_think(text)
    if body is None:
        return _result(0.0, False, "")
    pred = extract_answer(body, answer_format)
    if pred is None:
        return _result(0.0, False, "")
    correct = answers_equal(gold, pred, timeout_s)
    return _result(1.0 if correct else format_score, correct, strip_wrappers(pred))

"""Rule-based math verifier in verl's ``custom_reward_function`` contract, at Math-Verify's level.

``compute_score`` reads the reference answer and the response's final answer, compares them with
Math-Verify (``hpt.rewards.equivalence``) and returns ``{"score", "acc", "pred", "reason"}``. verl
0.9.1 logs every key: ``acc`` becomes ``val-core/<data_source>/acc/mean@N``; the strings ``pred`` (what
its ``maj@N`` votes on) and ``reason`` are kept in the generation dumps and skipped when averaging.

Two modes (``hpt.rewards.options`` lists every option and where it comes from):

``lenient``  any answer Math-Verify finds: the boxes first (several read together as Math-Verify reads
             them), then "final answer is … I hope" and "Answer:" phrases, LaTeX, numbers; plus GSM8K's
             ``#### n`` when there is no box. For evaluation and validation: a correct answer counts
             whatever its format.
``strict``   only the requested format counts: the last ``\\boxed{}`` (``answer_format="boxed"``, the
             default; or ``"gsm8k"``: the last ``####``; ``"answer_is"``: the last "The answer is").
             For training recipes that reward the format their prompts ask for (HPT's own reward reads
             the last box only).

Nothing a response or a reference contains raises: a verdict that cannot be reached scores 0 with a
``reason`` (``REASONS``), counted per process (``reason_counts``); only a bad option raises.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from typing import Any

from hpt.rewards import equivalence as eq
from hpt.rewards.equivalence import Answer
from hpt.rewards.extract import after_last_box, after_think, answer_is, box_count, gsm8k_answer, last_box, strip_think
from hpt.rewards.options import OPTIONS, VerifierOptions, resolve

logger = logging.getLogger(__name__)

# Each data source's default mode. Evaluation sets are read leniently; training sets whose prompts
# (hpt's templates) ask for a box are read strictly, as HPT's reward does. Any other source (the
# ``math*``/``aime*`` rules, your own registrations) is lenient: never a 0 for a correct answer's format.
SOURCE_MODES = {
    "openai/gsm8k": "lenient",
    "HuggingFaceH4/MATH-500": "lenient",
    "aime2024": "lenient",
    "zwhe99/DeepMath-103K": "strict",
    "open-r1/OpenR1-Math-220k": "strict",
    "meta-math/MetaMathQA": "strict",
}
DEFAULT_MODE = "lenient"

REASONS = {
    "": "a verdict was reached (correct or not)",
    "no_answer": "no answer in the response (strict: not in the requested format)",
    "empty_answer": "the last box is empty",
    "unclosed_answer": "the last box is never closed (a response cut inside it)",
    "think_malformed": "require_think and no well-formed <think>…</think> block",
    "too_large": "the answer holds a power or factorial too large to evaluate",
    "too_long": "the answer is too long for a symbolic check and differs from the reference",
    "degenerate_text": "a response Math-Verify's extraction cannot scan in time (many unclosed \\[ or \\( )",
    "timeout": "the check exceeded timeout_s",
    "busy": "too many timed-out checks still running; the symbolic check was skipped",
    "gold_missing": "no reference answer (None, empty, NaN or not a string/number)",
    "gold_unparsable": "the reference answer cannot be read (unbalanced braces, empty box, nothing found)",
    "error": "an unexpected error in the verifier (logged with its traceback)",
}
_VERL_CALL_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer"})
MAX_PRED_CHARS = 500  # ``pred`` travels with every row of the batch; a runaway answer is cut for logging
# Math-Verify's display/inline patterns rescan the rest of the text from every unclosed \[ or \( (quadratic,
# in C, holding the GIL past any deadline): a text with (unclosed openers x length) above this is refused.
MAX_UNCLOSED_SCAN = 2_000_000
_MATH_OPENERS = (("\\[", "\\]"), ("\\(", "\\)"))
_DELIMITED = re.compile(r"\$|\\\(|\\\[|\\boxed|\\fbox")
# One math environment spanning the whole text (inline ones on one line, as Math-Verify reads them).
_WHOLE_MATH = (re.compile(r"^\s*\$\$([^$]+)\$\$\s*\.?\s*$"), re.compile(r"^\s*\$([^$\n]+)\$\s*\.?\s*$"),
               re.compile(r"^\s*\\\(([^\n]+?)\\\)\s*\.?\s*$"), re.compile(r"^\s*\\\[(.+?)\\\]\s*\.?\s*$", re.DOTALL))


def _whole_math(text: str) -> str | None:
    """The content of a text that is one math environment without a box: the answer itself, or None."""
    for pattern in _WHOLE_MATH:
        match = pattern.match(text)
        if match:
            content = match.group(1).strip()
            return None if not content or "\\boxed" in content or "\\fbox" in content else content
    return None
# Euler's number set upright: Math-Verify's unit stripping removes it after a digit or a brace (2\mathrm{e} -> 2).
_UPRIGHT_E = re.compile(r"\\mathrm\s*\{\s*e\s*\}")
# Text inside text (\text{\textbf{Monday}}): Math-Verify keeps the inner command and reads a string.
_NESTED_TEXT = re.compile(r"\\text\s*\{\s*\\(?:text|textbf|textit|textrm|mathrm)\s*\{([^{}]*)\}\s*\}")
_AFTER_LAST_BOX = re.compile(r"^(?:\s|\$|\\\)|\\\]|\.)*$")

_lock = threading.Lock()
_counts: Counter[str] = Counter()
_warned: set[str] = set()


def reason_counts() -> dict[str, int]:
    """How many rows this process scored with each reason ("" = a verdict)."""
    with _lock:
        return dict(_counts)


def _count(reason: str, data_source: str, detail: str) -> None:
    with _lock:
        _counts[reason] += 1
        first = reason not in _warned
        _warned.add(reason)
    if first and (reason.startswith("gold_") or reason == "error"):
        logger.warning("math verifier: %s for data_source %s (%s); scored 0, counted in reason_counts(), "
                       "later ones are not logged", reason, data_source, detail[:200])


def warn_unknown_options(kwargs: dict[str, Any]) -> None:
    """Log once per name a keyword this verifier does not read: usually a typo in ``reward_kwargs``."""
    unknown = set(kwargs) - _VERL_CALL_KWARGS - set(OPTIONS)
    with _lock:
        new = sorted(unknown - _warned)
        _warned.update(new)
    if new:
        logger.warning("math verifier ignores unknown option(s) %s; it reads %s", new, list(OPTIONS))


def check_options(**kwargs: Any) -> VerifierOptions:
    """Raise a ValueError naming the option when a value is unusable (also used by the start-up check)."""
    return resolve(DEFAULT_MODE, kwargs, None)


class _Unscorable(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail)
        self.reason = reason


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += char == "{"
        depth -= char == "}"
        if depth < 0:
            return False
    return depth == 0


def _clean(text: str) -> str:
    """hpt's spelling fixes before Math-Verify reads a text: the Unicode minus sign, an upright e, nested text."""
    text = _UPRIGHT_E.sub("e", text.replace("\u2212", "-"))
    while "\\text" in text:
        text, changed = _NESTED_TEXT.subn(r"\\text{\1}", text)
        if not changed:
            break
    return text


def _reference(ground_truth: Any) -> Answer:
    """The reference answer: a bare answer, a GSM8K solution's ``####`` value, or a text with delimiters."""
    if isinstance(ground_truth, bool) or not isinstance(ground_truth, (str, int, float)):
        raise _Unscorable("gold_missing", f"ground_truth {type(ground_truth).__name__} {ground_truth!r}")
    if isinstance(ground_truth, float):
        if not math.isfinite(ground_truth):
            raise _Unscorable("gold_missing", f"ground_truth {ground_truth!r}")
        text = str(int(ground_truth)) if ground_truth.is_integer() else repr(ground_truth)
    else:
        text = _clean(str(ground_truth).strip())
    if not text.strip("$ ."):
        raise _Unscorable("gold_missing", f"ground_truth {ground_truth!r}")
    if "####" in text:
        value = gsm8k_answer(text)
        if not value:
            raise _Unscorable("gold_unparsable", f"nothing after #### in ground_truth {text!r}")
        return Answer("bare", value)
    if _DELIMITED.search(text):
        whole = _whole_math(text)
        if whole is not None:
            return Answer("bare", whole)
        if last_box(text) == ("", True):
            raise _Unscorable("gold_unparsable", f"empty box in ground_truth {text!r}")
        return Answer("text", text.replace("\\fbox", "\\boxed"))
    if not _balanced(text):  # hpt reads a bare reference as \boxed{text}: it must close what it opens
        raise _Unscorable("gold_unparsable", f"unbalanced braces in ground_truth {text!r}")
    return Answer("bare", text)


def _strict_answer(body: str, answer_format: str) -> Answer:
    if answer_format == "gsm8k":
        value = gsm8k_answer(body)
    elif answer_format == "answer_is":
        value = answer_is(body)
    else:
        value, found = last_box(body)
        if found and value is None:
            raise _Unscorable("unclosed_answer")
    if value is None:
        raise _Unscorable("no_answer")
    if not value.strip("$ ."):
        raise _Unscorable("empty_answer")
    return Answer("bare", value)


def _lenient_answer(body: str) -> Answer:
    """Math-Verify's reading of the whole response; one closing box is read directly (the same answer, faster)."""
    content, found = last_box(body)
    if found:
        if content is None:
            raise _Unscorable("unclosed_answer")
        if not content:
            raise _Unscorable("empty_answer")
        if box_count(body) == 1 and _AFTER_LAST_BOX.match(after_last_box(body) or ""):
            return Answer("bare", content)
    elif "####" in body:
        value = gsm8k_answer(body)
        if value:
            return Answer("bare", value)
    else:
        whole = _whole_math(body)
        if whole is not None:
            return Answer("bare", whole)
    unclosed = sum(max(0, body.count(opener) - body.count(closer)) for opener, closer in _MATH_OPENERS)
    if unclosed * len(body) > MAX_UNCLOSED_SCAN:
        raise _Unscorable("degenerate_text", f"{unclosed} unclosed math openers in {len(body)} characters")
    return Answer("text", body.replace("\\fbox", "\\boxed"))


def _shown(answer: Answer) -> str:
    text = answer.value.strip()
    while len(text) > 1 and text[0] == "$" and text[-1] == "$":
        text = text[1:-1].strip()
    return text


def _score(ground_truth: Any, solution_str: Any, options: VerifierOptions) -> tuple[bool, str, str]:
    """(correct, reason, shown answer) of one response."""
    gold = _reference(ground_truth)
    text = _clean(solution_str if isinstance(solution_str, str) else "")
    body = after_think(text, options.think_opened_in_prompt) if options.require_think else strip_think(text)
    if body is None:
        raise _Unscorable("think_malformed")
    pred = (_strict_answer(body, options.answer_format or "boxed") if options.mode == "strict"
            else _lenient_answer(body))
    shown = _shown(pred) if pred.kind == "bare" else ""
    quick = eq.quick_verdict(gold, pred, options.float_rounding)
    if quick is not None:
        return quick, "", shown
    for answer in (gold, pred):
        if eq.too_large_to_evaluate(answer.value):
            raise _Unscorable("gold_unparsable" if answer is gold else "too_large", answer.value[:200])
    if pred.kind == "bare" and len(pred.value) > eq.MAX_SYMPY_CHARS:
        return False, "too_long", shown
    settings = options.settings()
    try:
        correct, reason, extracted = eq.within_deadline(lambda: eq.sympy_equal(gold, pred, settings),
                                                        options.timeout_s, f"gold {gold.value:.80}")
    except eq.TimedOut:
        return False, "timeout", shown
    except eq.Saturated:
        return False, "busy", shown
    return correct, reason, shown or extracted


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """1.0 for a correct final answer, ``format_score`` for a wrong one, 0.0 otherwise; see the module doc.

    ``kwargs`` are verl's ``reward_kwargs`` (options); ``extra_info["verifier"]`` overrides them per row.
    ``acc`` is 1.0/0.0 correctness, ``pred`` the answer read ("" when none), ``reason`` why there was no
    verdict ("" when there was one).
    """
    options = resolve(SOURCE_MODES.get(data_source, DEFAULT_MODE), kwargs, extra_info)
    if set(kwargs) - set(OPTIONS):
        warn_unknown_options(kwargs)
    try:
        correct, reason, pred = _score(ground_truth, solution_str, options)
    except _Unscorable as exc:
        correct, reason, pred = False, exc.reason, ""
        detail = str(exc)
    except Exception as exc:  # a reward worker must survive any input; the traceback is logged once
        if "error" not in _warned:
            logger.exception("math verifier failed on data_source %s", data_source)
        correct, reason, pred, detail = False, "error", "", repr(exc)
    else:
        detail = ""
    _count(reason, data_source, detail)
    score = 1.0 if correct else options.format_score if reason == "" else 0.0
    return {"score": score, "acc": 1.0 if correct else 0.0, "pred": pred[:MAX_PRED_CHARS], "reason": reason}

"""Is an answer the reference answer? Math-Verify's ``parse`` and ``verify``, under a thread-safe deadline.

Two readings of a text, both Math-Verify's own extraction (``LatexExtractionConfig`` with boxes first,
``ExprExtractionConfig``), never a re-implementation of it:

- ``bare``: the text *is* the answer (a dataset's reference answer, or the content of the box that
  strict mode requires). It is read as ``\\boxed{text}``, and when that yields no mathematical object
  (Math-Verify reads a percentage inside a box as a plain string) as ``$text$``;
- ``text``: a whole response (or a reference written as a solution): whatever Math-Verify finds, the
  boxes first, read together when there are several, then final-answer phrases, LaTeX and numbers.

Cheap checks decide the commonest pairs without sympy, with Math-Verify's own numeric rules: two
integers or fractions (exactly), a decimal against a number (rounded to ``float_rounding`` places), or
two identical answers.
Everything else runs ``math_verify.parse`` + ``math_verify.verify`` in a daemon thread the caller waits
on for ``timeout_s`` seconds; a check still running then counts as "not equal". Math-Verify's own
timeouts use ``signal.alarm``, which works only in the main thread, and verl 0.9.1 calls a reward
function from an executor thread, so they are switched off (``parsing_timeout=None``,
``timeout_seconds=None``). Python cannot kill a thread: a timed-out check keeps running until sympy
returns; after ``MAX_ABANDONED`` of them are still running, new checks skip sympy until some end. And a
thread cannot be waited out while C code holds the GIL (sympy evaluating ``2^{2^{30}}`` computes a
billion-bit integer in one call), so ``too_large_to_evaluate`` refuses such answers before sympy sees them.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import re
import threading
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

MAX_SYMPY_CHARS = 1000  # a bare answer longer than this is compared as a string only
MAX_ABANDONED = 16  # timed-out checks still running before sympy is skipped altogether
TARGETS = ("latex", "expr")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How answers are read and compared: Math-Verify's ``verify`` options and extraction targets."""

    float_rounding: int = 6  # decimal places numbers are rounded to when one side is a decimal
    numeric_precision: int = 15  # significant digits of numeric evaluation
    strict_comparison: bool = True  # variables must match and sets differ from tuples
    allow_set_relation_comp: bool = False  # compare a relation (1 < x < 2) with a set/interval in the gold too
    decimal_comma: bool = False  # a bare answer "1,5" is the number 1.5, not the pair/set {1, 5}
    targets: tuple[str, ...] = TARGETS  # Math-Verify extraction configs used: "latex", "expr"


@dataclasses.dataclass(frozen=True)
class Answer:
    """An answer to compare: ``bare`` (the string is the answer) or ``text`` (Math-Verify finds it)."""

    kind: str
    value: str


# --- reading with Math-Verify ---------------------------------------------------------------------

_setup_lock = threading.Lock()
_mv: Any = None


class _DropTimeoutNotice(logging.Filter):
    """math-verify warns that its timeouts are off; hpt enforces its own, so the notice only misleads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


def load_math_verify() -> Any:
    """Import math-verify and parse once outside any deadline: the first call builds the LaTeX parser (~0.3 s)."""
    global _mv
    if _mv is None:
        with _setup_lock:
            if _mv is None:
                for name in ("math_verify.parser", "math_verify.grader"):
                    logging.getLogger(name).addFilter(_DropTimeoutNotice())
                import math_verify

                math_verify.parse("\\boxed{1}", parsing_timeout=None)
                _mv = math_verify
    return _mv


@lru_cache(maxsize=16)
def _configs(targets: tuple[str, ...]) -> list[Any]:
    mv = _mv
    made = {"latex": lambda: mv.LatexExtractionConfig(boxed_match_priority=0), "expr": mv.ExprExtractionConfig}
    return [made[name]() for name in targets]


def _has_object(parsed: list[Any]) -> bool:
    return any(not isinstance(item, str) for item in parsed)


# Spellings LaTeX renders alike and Math-Verify's normalisation removes: \left/\right, thin spaces, \dfrac.
_LAYOUT = re.compile(r"(?<!\\)\\(?:left|right)\b|(?<!\\)\\[!,;: ]|~")
_FRAC_STYLE = re.compile(r"(?<!\\)\\[dtc]frac\b")
_SPACE = re.compile(r"\s+")
_INNER_SPACE = re.compile(r"(?<![A-Za-z]) | (?![A-Za-z])")


def _layout_free(text: str) -> str:
    """``text`` without layout-only spelling; a space survives only between two letters (``\\pi r``)."""
    text = _FRAC_STYLE.sub(r"\\frac", _LAYOUT.sub("", text))
    return _INNER_SPACE.sub("", _SPACE.sub(" ", text).strip())


_COMMA_DECIMAL = re.compile(r"^\s*[+-]?\d+,\d+\s*$")


def _parse(answer: Answer, settings: Settings) -> list[Any]:
    """Math-Verify's parse of ``answer`` with the settings' extraction targets (no deadline: run it in one)."""
    mv = _mv
    configs = _configs(settings.targets)
    if answer.kind == "text":
        return mv.parse(answer.value, configs, parsing_timeout=None)
    value = answer.value
    if settings.decimal_comma and _COMMA_DECIMAL.match(value):
        value = value.replace(",", ".")
    if "latex" not in settings.targets:
        return mv.parse(value, configs, parsing_timeout=None)
    parsed = mv.parse(f"\\boxed{{{value}}}", configs, parsing_timeout=None)
    if not _has_object(parsed) and "\n" not in value and not re.search(r"(?<!\\)\$", value):
        inline = mv.parse(f"${value}$", configs, parsing_timeout=None)
        if _has_object(inline):
            return inline
    return parsed


@lru_cache(maxsize=8192)
def parse_cached(answer: Answer, settings: Settings) -> list[Any]:
    """``answer`` parsed, cached: a reference recurs for every rollout of its prompt, and a prompt's rollouts
    often give the same bare answer. Parsed values are immutable sympy objects, safe to share between threads."""
    return _parse(answer, settings)


# --- cheap verdicts and guards --------------------------------------------------------------------

_INTEGER = re.compile(r"^[+-]?\d{1,100}$")
_RATIONAL = re.compile(
    r"^([+-]?)(?:(\d{1,50})/(\d{1,50})|\\[dt]?frac\s*(?:\{\s*(\d{1,50})\s*\}\s*\{\s*(\d{1,50})\s*\}|(\d)(\d)))$"
)


def _rational(text: str) -> Fraction | None:
    """The exact value of ``n``, ``a/b`` or ``\\frac{a}{b}`` (no decimal point: Math-Verify compares those exactly)."""
    if _INTEGER.match(text):
        return Fraction(int(text))
    match = _RATIONAL.match(text)
    if not match:
        return None
    sign, *parts = match.groups()
    num, den = next((int(a), int(b)) for a, b in zip(parts[::2], parts[1::2], strict=True) if a is not None)
    if den == 0:
        return None
    return Fraction(-num if sign == "-" else num, den)


# A plain decimal, or a number in e-notation (1e3 is a thousand, not 1·e·3 as LaTeX would read it).
_DECIMAL = re.compile(r"^[+-]?(?:\d{1,9}\.\d{0,12}|\.\d{1,12}|\d{1,9}(?:\.\d{0,12})?[eE][+-]?\d{1,2})$")


def _rounded(value: Fraction, places: int) -> int | None:
    """``value`` rounded to ``places`` decimals, scaled to an integer; None at an exact half (rounding rules differ)."""
    scaled = value * 10**places
    low = scaled.numerator // scaled.denominator
    rest = scaled - low
    if rest == Fraction(1, 2):
        return None
    return low + (rest > Fraction(1, 2))


def quick_verdict(gold: Answer, pred: Answer, float_rounding: int = 6) -> bool | None:
    """The verdict without sympy when it is certain, else None.

    Two bare answers that differ only in layout (spacing, ``\\left``/``\\right``, ``\\dfrac``) are equal.
    Two exact rationals (integers, ``a/b``, ``\\frac{a}{b}``) are compared exactly, and a plain decimal
    with a rational or a decimal after rounding both to ``float_rounding`` places: Math-Verify's own
    numeric rules for these pairs (an exact half, where rounding conventions differ, is left to it).
    hpt's one addition: e-notation (``1e3``) is a number.
    """
    if gold.kind != "bare" or pred.kind != "bare":
        return None
    g, p = gold.value.strip(), pred.value.strip()
    if _INTEGER.match(g) and _INTEGER.match(p):  # the commonest pair, before any rewriting
        return int(g) == int(p)
    g, p = _layout_free(g), _layout_free(p)
    if g == p:
        return True
    g_value, p_value = _rational(g), _rational(p)
    if g_value is not None and p_value is not None:
        return g_value == p_value
    g_decimal, p_decimal = _DECIMAL.match(g), _DECIMAL.match(p)
    if not (g_decimal or p_decimal):
        return None
    g_value = Fraction(g) if g_decimal else g_value
    p_value = Fraction(p) if p_decimal else p_value
    if g_value is None or p_value is None:
        return None
    g_round, p_round = _rounded(g_value, float_rounding), _rounded(p_value, float_rounding)
    return None if g_round is None or p_round is None else g_round == p_round


_POWER = re.compile(r"\^|\*\*")
_NUMERIC_POWER = re.compile(r"\d\s*[)}]?\s*(?:\^|\*\*)")
_LONG_INTEGER = re.compile(r"\d{7,}")
_BIG_FACTORIAL = re.compile(r"\d{6,}\s*!")
_EXPONENT_TOKEN = re.compile(r"[+-]?[\w.\\]+")


def _exponent_after(text: str, start: int) -> tuple[str, int]:
    """The exponent that begins at ``start`` (a braced/parenthesised group or one token) and where it ends."""
    i = start
    while i < len(text) and text[i].isspace():
        i += 1
    if i < len(text) and text[i] in "{(":
        close = "}" if text[i] == "{" else ")"
        depth = 0
        for j in range(i, len(text)):
            depth += text[j] == text[i]
            depth -= text[j] == close
            if depth == 0:
                return text[i + 1 : j], j + 1
        return text[i + 1 :], len(text)
    match = _EXPONENT_TOKEN.match(text, i)
    return (match.group(0), match.end()) if match else ("", i)


def too_large_to_evaluate(answer: str) -> bool:
    """True for answers whose evaluation could hold the GIL for seconds (see the module docstring).

    Flags exponents that contain a numeric power (``2^{2^{30}}``, ``10^{3 \\cdot 10^{8}}``), exponents
    with 7+ digit integers, power chains (``10**10**10``) and factorials of 6+ digit numbers.
    """
    if _BIG_FACTORIAL.search(answer):
        return True
    for match in _POWER.finditer(answer):
        exponent, end = _exponent_after(answer, match.end())
        if _NUMERIC_POWER.search(exponent) or _LONG_INTEGER.search(exponent):
            return True
        if _POWER.match(answer, end) and re.search(r"\d", exponent):
            return True
    return False


# --- the deadline ---------------------------------------------------------------------------------

_state_lock = threading.Lock()
_abandoned: list[threading.Thread] = []
_timeouts = 0
_saturation_logged = False


class Saturated(Exception):
    """Too many timed-out checks are still running: sympy is skipped for now."""


class TimedOut(Exception):
    """The check did not answer within its deadline."""


def _live_abandoned() -> int:
    with _state_lock:
        _abandoned[:] = [thread for thread in _abandoned if thread.is_alive()]
        return len(_abandoned)


def timeout_count() -> int:
    """How many checks this process has given up on (for tests and diagnostics)."""
    return _timeouts


def within_deadline(work: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """``work()`` in a daemon thread; its result, its exception, ``TimedOut`` or ``Saturated``."""
    global _timeouts, _saturation_logged
    load_math_verify()
    if _live_abandoned() >= MAX_ABANDONED:
        if not _saturation_logged:
            _saturation_logged = True
            logger.warning("%d timed-out answer checks are still running; skipping sympy until they end", MAX_ABANDONED)
        raise Saturated
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(work())
        except BaseException as exc:  # reported to the waiting caller
            future.set_exception(exc)

    thread = threading.Thread(target=run, name="hpt-answer-check", daemon=True)
    thread.start()
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        with _state_lock:
            _abandoned.append(thread)
            _timeouts += 1
            first = _timeouts == 1
        log = logger.warning if first else logger.debug
        log("answer check exceeded %.3g s, scored as not equal (%s)%s", timeout_s, what,
            "; further timeouts are logged at DEBUG" if first else "")
        raise TimedOut from None


def sympy_equal(gold: Answer, pred: Answer, settings: Settings) -> tuple[bool, str, str]:
    """(equal, reason, extracted): Math-Verify's verdict on the parsed pair; call through ``within_deadline``.

    ``reason`` is "" for a verdict, ``gold_unparsable`` when Math-Verify reads nothing in the reference
    and ``no_answer`` when it reads nothing in the response; ``extracted`` is the answer's text as
    Math-Verify read it ("" when none).
    """
    mv = _mv
    gold_parsed = parse_cached(gold, settings)
    if not gold_parsed:
        return False, "gold_unparsable", ""
    pred_parsed = parse_cached(pred, settings) if pred.kind == "bare" else _parse(pred, settings)
    if not pred_parsed:
        return False, "no_answer", ""
    extracted = next((item for item in pred_parsed if isinstance(item, str)), "")
    equal = mv.verify(gold_parsed, pred_parsed, float_rounding=settings.float_rounding,
                      numeric_precision=settings.numeric_precision, strict=settings.strict_comparison,
                      allow_set_relation_comp=settings.allow_set_relation_comp, timeout_seconds=None)
    return bool(equal), "", extracted

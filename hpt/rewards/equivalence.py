"""Are two final answers the same? Cheap normalised-string and numeric checks, then ``math-verify``.

Order of the checks, cheapest first (the verdict is the same in any order, only the cost differs):

1. normalised string equality (``normalise``): equal strings are equal answers;
2. numeric equality with a relative tolerance of 1e-6 when *both* sides are plain numbers, simple
   fractions ``a/b`` or ``\\frac{a}{b}``. When both are numbers the numeric verdict is final, so the
   most common wrong answer (a wrong number) never reaches sympy;
3. ``math_verify.parse`` + ``math_verify.verify`` (symbolic equivalence: ``\\sqrt{12}`` = ``2\\sqrt{3}``,
   intervals, sets, matrices, equations), run in a worker thread with a deadline.

Why a thread and not math-verify's own timeouts: math-verify times out with ``signal.alarm``, which
only works in the main thread, and verl 0.9.1 calls a custom reward function from its reward loop's
thread-pool executor (``loop.run_in_executor``). So math-verify's timeouts are switched off
(``parsing_timeout=None``, ``timeout_seconds=None``) and the check runs in a daemon thread that the
caller waits on for ``timeout_s`` seconds; a check still running then counts as "not equal".

What that costs: Python cannot kill a thread, so a timed-out check keeps running (and taking CPU and
the GIL in slices) until sympy returns. The threads are daemons, so a stuck one never blocks the
process from exiting (``ThreadPoolExecutor`` workers are joined at exit, which is why none is used),
and when ``MAX_ABANDONED`` timed-out checks are still running, new checks skip sympy and use only the
string/numeric checks until some finish. Worse, a thread cannot even be *waited out* while C code
holds the GIL: sympy evaluating ``2^{2^{30}}`` computes a billion-bit integer in one C call, and the
waiting caller does not wake up until it ends. ``too_large_to_evaluate`` refuses such answers before
sympy sees them (numeric powers with huge or nested exponents, factorials of 6-digit numbers).
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
from fractions import Fraction
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

REL_TOL = 1e-6
MAX_SYMPY_CHARS = 1000  # longer answers are compared as strings/numbers only
MAX_ABANDONED = 16  # timed-out checks still running before sympy is skipped altogether

# --- normalisation --------------------------------------------------------------------------------

_WRAPPERS = re.compile(r"^\s*(?:\$+|\\\(|\\\[)(.*?)(?:\$+|\\\)|\\\])\s*$", re.DOTALL)
_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LATEX_SPACES = re.compile(r"\\(?:[!,;: ]|quad\b|qquad\b)|~")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)\b\s*")
_FRAC_VARIANTS = re.compile(r"\\[dt]frac\b")
_UNIT_AFTER_NUMBER = re.compile(r"(?<=[\d}])\s*\\(?:text|textrm|mbox|mathrm)\s*\{[^{}]*\}(?:\^\s*\{?\d\}?)?")
_WHOLE_TEXT = re.compile(r"^\\(?:text|textrm|textbf|mbox|mathrm|mathbf)\s*\{([^{}]*)\}$")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|°")
_PERCENT = re.compile(r"\\?%")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def _enclosing_box(text: str) -> str | None:
    """The content of a ``\\boxed{...}`` / ``\\fbox{...}`` that spans all of ``text``, else None."""
    match = _BOX_START.match(text)
    if not match:
        return None
    depth = 1
    for i in range(match.end(), len(text)):
        depth += text[i] == "{"
        depth -= text[i] == "}"
        if depth == 0:
            return text[match.end() : i].strip() if i == len(text) - 1 else None
    return None


def strip_wrappers(answer: str) -> str:
    """``answer`` without a final period and surrounding ``$…$`` / ``\\(…\\)`` / ``\\[…\\]`` or whole-answer box."""
    text = answer.strip()
    while True:
        text = text.rstrip(".").rstrip()
        match = _WRAPPERS.match(text)
        inner = match.group(1).strip() if match else _enclosing_box(text)
        if inner is None or inner == text:
            return text
        text = inner


def normalise(answer: str) -> str:
    """A canonical spelling for string comparison: no delimiters, spacing, units, degrees or separators.

    Deliberately conservative: it only removes what never changes the value (spacing commands,
    ``\\left``/``\\right``, a final period) or what graders conventionally ignore (units after a number,
    degree signs, percent signs). Thousands separators are dropped only when the whole answer is one
    number, because ``1,2`` is also how a model writes the pair or set {1, 2}.
    """
    text = strip_wrappers(answer)
    whole = _WHOLE_TEXT.match(text)
    if whole:  # an answer that is only text, e.g. \text{Monday}
        text = whole.group(1)
    text = text.replace("\\$", "").replace("$", "").replace("{,}", ",")
    text = _LATEX_SPACES.sub("", text)
    text = _LEFT_RIGHT.sub("", text)
    text = _FRAC_VARIANTS.sub(r"\\frac", text)
    text = _UNIT_AFTER_NUMBER.sub("", text)
    text = _DEGREES.sub("", text)
    text = _PERCENT.sub("", text)
    text = re.sub(r"\s+", "", text).rstrip(".")
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    return text


# --- numbers --------------------------------------------------------------------------------------

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?"
_PLAIN = re.compile(rf"^{_NUMBER}$")
_SLASH = re.compile(r"^([+-]?)(\d+)/(\d+)$")
_FRAC = re.compile(r"^([+-]?)\\frac(?:\{([+-]?\d+)\}\{([+-]?\d+)\}|(\d)(\d))$")
_MAX_NUMBER_CHARS = 100  # Fraction() of a 10^5-digit string would hold the GIL for a long time


def numeric_value(normalised: str) -> Fraction | None:
    """The exact value of a plain number, ``a/b`` or ``\\frac{a}{b}`` (already normalised), else None."""
    if not normalised or len(normalised) > _MAX_NUMBER_CHARS:
        return None
    try:
        if _PLAIN.match(normalised):
            return Fraction(normalised)
        slash = _SLASH.match(normalised)
        if slash:
            sign, num, den = slash.groups()
            return _signed(sign, Fraction(int(num), int(den)))
        frac = _FRAC.match(normalised)
        if frac:
            sign = frac.group(1)
            num, den = (frac.group(2), frac.group(3)) if frac.group(2) is not None else (frac.group(4), frac.group(5))
            return _signed(sign, Fraction(int(num), int(den)))
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _signed(sign: str, value: Fraction) -> Fraction:
    return -value if sign == "-" else value


def numbers_close(a: Fraction, b: Fraction, rel_tol: float = REL_TOL) -> bool:
    """Equal within ``rel_tol`` of the larger magnitude (exact for 0: no absolute tolerance)."""
    return abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b))


# --- guarding sympy -------------------------------------------------------------------------------

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
    with 7+ digit integers, power chains (``10**10**10``) and factorials of 6+ digit numbers. Such
    answers are still compared as strings and numbers, only not by sympy.
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


# --- math-verify in a thread with a deadline ------------------------------------------------------

_setup_lock = threading.Lock()
_math_verify: Any = None
_state_lock = threading.Lock()
_abandoned: list[threading.Thread] = []
_timeouts = 0
_saturation_logged = False


class _DropTimeoutNotice(logging.Filter):
    """math-verify warns that its timeouts are off; hpt enforces its own, so the notice only misleads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


def _load_math_verify() -> Any:
    """Import math-verify and parse once, outside any deadline: the first call builds the LaTeX parser (~0.3 s)."""
    global _math_verify
    if _math_verify is not None:
        return _math_verify
    with _setup_lock:
        if _math_verify is None:
            for name in ("math_verify.parser", "math_verify.grader"):
                logging.getLogger(name).addFilter(_DropTimeoutNotice())
            import math_verify

            math_verify.parse("\\boxed{1}", parsing_timeout=None)
            _math_verify = math_verify
    return _math_verify


@lru_cache(maxsize=8192)
def _parse(answer: str) -> list[Any]:
    """math-verify's parse of one answer, cached: a ground truth recurs for every rollout of its prompt.

    Both sides go in as ``\\boxed{...}`` so that math-verify reads exactly the extracted answer (its own
    extraction would otherwise look for answers anywhere in the text). Parsed values are immutable
    sympy objects (or strings), safe to share between threads.
    """
    mv = _math_verify
    config = [mv.LatexExtractionConfig(boxed_match_priority=0), mv.ExprExtractionConfig()]
    return mv.parse(f"\\boxed{{{answer}}}", extraction_config=config, parsing_timeout=None)


def sympy_equal(gold: str, pred: str) -> bool:
    """math-verify's verdict with its signal-based timeouts off; call through ``sympy_equal_within``."""
    mv = _math_verify
    return bool(mv.verify(_parse(gold), _parse(pred), timeout_seconds=None))


def _live_abandoned() -> int:
    with _state_lock:
        _abandoned[:] = [thread for thread in _abandoned if thread.is_alive()]
        return len(_abandoned)


def timeout_count() -> int:
    """How many checks this process has given up on (for tests and diagnostics)."""
    return _timeouts


def sympy_equal_within(gold: str, pred: str, timeout_s: float) -> bool:
    """``sympy_equal`` in a daemon thread; False when it errs or has not answered after ``timeout_s``."""
    global _timeouts, _saturation_logged
    _load_math_verify()
    if _live_abandoned() >= MAX_ABANDONED:
        if not _saturation_logged:
            _saturation_logged = True
            logger.warning("%d timed-out answer checks are still running; skipping sympy until they end", MAX_ABANDONED)
        return False
    future: concurrent.futures.Future[bool] = concurrent.futures.Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(sympy_equal(gold, pred))
        except BaseException as exc:  # reported to the waiting caller
            future.set_exception(exc)

    thread = threading.Thread(target=work, name="hpt-answer-check", daemon=True)
    thread.start()
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        with _state_lock:
            _abandoned.append(thread)
            _timeouts += 1
            first = _timeouts == 1
        log = logger.warning if first else logger.debug
        log("answer check exceeded %.3g s, scored as not equal (gold %.80r, answer %.80r)%s", timeout_s, gold, pred,
            "; further timeouts are logged at DEBUG" if first else "")
        return False
    except Exception:  # math-verify reports its own failures as False; anything else is "not equal" too
        logger.debug("answer check failed (gold %.80r, answer %.80r)", gold, pred, exc_info=True)
        return False


# --- the verdict ----------------------------------------------------------------------------------


def answers_equal(gold: str, pred: str, timeout_s: float = 5.0) -> bool:
    """True when ``pred`` is the same answer as ``gold`` (both already extracted from their texts)."""
    gold_norm, pred_norm = normalise(gold), normalise(pred)
    if not pred_norm:
        return False
    if gold_norm == pred_norm:
        return True
    gold_value, pred_value = numeric_value(gold_norm), numeric_value(pred_norm)
    if gold_value is not None and pred_value is not None:
        return numbers_close(gold_value, pred_value)
    gold_raw, pred_raw = strip_wrappers(gold), strip_wrappers(pred)
    if max(len(gold_raw), len(pred_raw)) > MAX_SYMPY_CHARS or too_large_to_evaluate(gold_raw) or too_large_to_evaluate(
        pred_raw
    ):
        return False
    return sympy_equal_within(gold_raw, pred_raw, timeout_s)


"""Verifiers by ``data_source`` and the dispatcher verl calls (``compute_score``).

verl passes every row's ``data_source`` to one custom reward function; this module routes it to the
verifier registered for it, so a run can mix tasks (e.g. DeepMath training prompts with GSM8K and
MATH-500 validation) under one reward config. Exact names are matched first, then prefix rules
(``math``/``aime`` alone or followed by a digit or one of ``/_-.``, case-insensitively:
``math_dapo``, ``MATH500``, ``aime2025``, not ``mathematics``). An unknown source is
an error, not a 0 reward: scoring a task with the wrong verifier (or none) silently trains nothing.

The dispatcher always returns exactly ``score``, ``acc``, ``pred`` and ``reason`` (why a row got no
verdict, "" when it did; see ``hpt.rewards.math.REASONS``). verl 0.9.1's reward loop reads
the extra-info key set from the *first* row of a batch and indexes every other row with it, so rows
of different sources must return the same keys or the step fails with a KeyError.

A verifier that raises or runs past ``verifier_timeout_s`` (a ``reward_kwargs`` option, default 30 s)
scores that response 0 instead of killing the reward worker; every such failure is counted per
process (``verifier_failures``) and logged with the running count. A ``ValueError`` is the exception:
verifiers raise it for bad options or an unusable ground truth, the row's or the config's fault
rather than the response's, and it stops the run like an unknown ``data_source``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from hpt.rewards import arithmetic, docqa
from hpt.rewards import math as math_verifier
from hpt.rewards import qa

logger = logging.getLogger(__name__)

Verifier = Callable[..., Any]

TIMEOUT_OPTION = "verifier_timeout_s"
DEFAULT_TIMEOUT_S = 30.0
FAILED = {"score": 0.0, "acc": 0.0, "pred": "", "reason": "error"}  # the keys every row returns
_LOG_FIRST, _LOG_EVERY = 5, 100  # log the first failures of each kind and source, then every 100th

_failures: dict[str, int] = {"raised": 0, "timed_out": 0}
_failures_by_source: dict[tuple[str, str], int] = {}

_exact: dict[str, Verifier] = {}
_prefixes: dict[str, Verifier] = {}
_lock = threading.Lock()

MATH_DATA_SOURCES = (
    "openai/gsm8k",
    "HuggingFaceH4/MATH-500",
    "aime2024",
    "zwhe99/DeepMath-103K",
    "meta-math/MetaMathQA",
    "open-r1/OpenR1-Math-220k",
    "lighteval/MATH",
    "DigitalLearningGmbH/MATH-lighteval",
)
MATH_PREFIXES = ("math", "aime")


def register_verifier(data_source: str, fn: Verifier, *, prefix: bool = False, replace: bool = False) -> None:
    """Route ``data_source`` (or, with ``prefix``, itself and every source continuing it with ``/_-.`` or a digit).

    ``fn`` follows verl's custom reward contract, ``fn(data_source, solution_str, ground_truth,
    extra_info=None, **kwargs)``, and returns a float or a dict with ``score`` (``acc`` and ``pred``
    optional). Registering a taken name raises unless ``replace``, so two modules cannot silently
    fight over a source. Register before training starts, in a module the reward workers import.
    """
    if not data_source:
        raise ValueError("register_verifier needs a non-empty data_source")
    if not callable(fn):
        raise TypeError(f"verifier for {data_source!r} must be callable, got {type(fn).__name__}")
    table = _prefixes if prefix else _exact
    key = data_source.lower() if prefix else data_source
    with _lock:
        if key in table and not replace:
            raise ValueError(f"a verifier is already registered for {data_source!r}; pass replace=True to override it")
        table[key] = fn


def _prefix_match(data_source: str) -> Verifier | None:
    lowered = data_source.lower()
    for prefix, fn in _prefixes.items():
        if re.fullmatch(rf"{re.escape(prefix)}(?:[/_\-.\d].*)?", lowered, flags=re.DOTALL):
            return fn
    return None


def get_verifier(data_source: str) -> Verifier | None:
    """The verifier for ``data_source``, or None."""
    return _exact.get(data_source) or _prefix_match(str(data_source))


def has_verifier(data_source: str) -> bool:
    """Whether ``compute_score`` can score rows of ``data_source``."""
    return get_verifier(data_source) is not None


def known_data_sources() -> list[str]:
    """Registered names, then prefix rules written as ``prefix*``, for error messages."""
    return sorted(_exact) + [f"{prefix}*" for prefix in sorted(_prefixes)]


def unknown_source_message(sources: list[str]) -> str:
    """The one wording of "no verifier" used by the dispatcher and the start-up check."""
    return (
        f"no verifier for data_source {', '.join(repr(s) for s in sources)}; known: {', '.join(known_data_sources())}. "
        "Register one with hpt.rewards.registry.register_verifier or set reward.custom_reward_function.path to "
        "your own reward function"
    )


def _standard(result: Any) -> dict[str, Any]:
    """A verifier's result as exactly ``{score, acc, pred, reason}`` (see the module docstring for why)."""
    if isinstance(result, dict):
        score = float(result["score"])
        acc = result.get("acc", score)
        pred = result.get("pred")
        reason = result.get("reason")
    else:
        score, acc, pred, reason = float(result), float(result), None, None
    return {"score": score, "acc": float(acc), "pred": "" if pred is None else str(pred),
            "reason": "" if reason is None else str(reason)}


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """verl's custom reward entry point: score one response with its ``data_source``'s verifier.

    ``kwargs`` (verl's ``reward_kwargs`` and call extras) go to the verifier; ``None`` values are
    dropped so that a config can leave an option unset and each verifier keeps its own default.
    """
    fn = get_verifier(data_source)
    if fn is None:
        raise ValueError(unknown_source_message([data_source]))
    options = {key: value for key, value in kwargs.items() if value is not None}
    timeout_s = float(options.pop(TIMEOUT_OPTION, DEFAULT_TIMEOUT_S))
    return _guarded(fn, timeout_s, data_source, solution_str, ground_truth, extra_info, options)


def verifier_failures() -> dict[str, int]:
    """How many calls in this process raised or timed out (each scored 0)."""
    with _lock:
        return dict(_failures)


def _record_failure(kind: str, data_source: str, detail: str) -> None:
    with _lock:
        _failures[kind] += 1
        count = _failures[kind]
        _failures_by_source[kind, data_source] = seen = _failures_by_source.get((kind, data_source), 0) + 1
    if seen <= _LOG_FIRST or count % _LOG_EVERY == 0:
        logger.warning(
            "verifier for data_source %r %s (%s); the response scores 0. %d such failure(s) in this process so far",
            data_source, kind.replace("_", " "), detail, count,
        )


def _guarded(fn: Verifier, timeout_s: float, data_source: str, solution_str: str, ground_truth: Any,
             extra_info: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Run one verifier call in a daemon thread: an exception or a hang costs one response its score, not the run.

    A thread, not a signal: verl may call the reward function outside the main thread. A timed-out call
    keeps running in its daemon thread until it returns; it cannot be killed, only abandoned.
    """
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["result"] = _standard(fn(data_source, solution_str, ground_truth, extra_info, **options))
        except Exception as exc:  # ValueError is re-raised below; anything else scores 0, counted
            outcome["error"] = exc

    worker = threading.Thread(target=call, name=f"verifier-{data_source}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        detail = f"no result after {timeout_s:g} s; raise reward_kwargs.{TIMEOUT_OPTION} if it needs longer"
        _record_failure("timed_out", data_source, detail)
        return dict(FAILED, reason="timeout")
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, ValueError):  # bad options or ground truth: the data's fault, stop loudly
            raise error
        _record_failure("raised", data_source, f"{type(error).__name__}: {error}")
        return dict(FAILED)
    return outcome["result"]


def _arithmetic(data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None, **_: Any) -> dict:
    """The tiny task's exact-integer reward, plus its extracted answer as ``pred``; math options do not apply."""
    result = dict(arithmetic.compute_score(data_source, solution_str, ground_truth, extra_info))
    answer = arithmetic.extract_answer(solution_str)
    result["pred"] = "" if answer is None else str(answer)
    return result


register_verifier("hpt/arithmetic", _arithmetic)
register_verifier("hpt/facts", _arithmetic)  # the fact-lookup toy (hpt.toy.facts) answers the same way
register_verifier("hotpotqa", qa.compute_score)  # exact match on <answer>...</answer> (hpt.data.prepare hotpotqa)
register_verifier("hpt/visual", _arithmetic)  # the visual toy task answers like the arithmetic one
register_verifier("hpt/vrag", _arithmetic)  # the visual-RAG toy (hpt.toy.vrag) answers like the fact lookup
register_verifier("slidevqa", docqa.compute_score, prefix=True)  # document QA: ANLS / exact match
# Every math source gets the math verifier; its mode (lenient or strict) defaults per source:
# hpt.rewards.math.SOURCE_MODES.
for _source in MATH_DATA_SOURCES:
    register_verifier(_source, math_verifier.compute_score)
for _prefix in MATH_PREFIXES:
    register_verifier(_prefix, math_verifier.compute_score, prefix=True)

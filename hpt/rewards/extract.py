"""Final-answer extraction from math text: the last ``\\boxed{...}``, GSM8K's ``#### n``, "The answer is".

Shared by the verifier (reading model responses) and the data preparers (reading datasets' reference
solutions), so both sides agree on what "the answer" of a text is. Every function returns None when
the text has no answer of that form; callers decide whether that is a zero reward or a data error.
"""

from __future__ import annotations

import re

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_GSM8K = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_ANSWER_IS = re.compile(r"the (?:final )?answer is\s*:?\s*([^:\s].*?)\s*$", re.IGNORECASE | re.MULTILINE)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), with nested braces balanced."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    start = starts[-1]
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i].strip()
    return None  # unbalanced: the response was cut inside the box


def gsm8k_answer(text: str) -> str | None:
    """The value after the last ``####`` (GSM8K's reference format), thousands separators removed."""
    matches = _GSM8K.findall(text)
    return matches[-1].replace(",", "").strip() if matches else None


def answer_is(text: str) -> str | None:
    """The value after the last "The answer is" / "The answer is:" (MetaMathQA's format), final period dropped."""
    matches = _ANSWER_IS.findall(text)
    if not matches:
        return None
    value = matches[-1].strip()
    return value[:-1].strip() if value.endswith(".") else value


# --- Reading a model response: format choice and the <think> block ------------------------------

ANSWER_FORMATS = ("auto", "boxed", "answer_is", "gsm8k")
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def _nonempty(value: str | None) -> str | None:
    """None for a missing or blank answer ("\\boxed{}", a bare "The answer is:"), else the value."""
    if value is None:
        return None
    value = value.strip()
    return value if value.strip(":").strip() else None


def extract_answer(text: str, answer_format: str = "auto") -> str | None:
    """The final answer of ``text`` in ``answer_format``; ``auto`` tries boxed, then "The answer is", then ####.

    ``auto`` prefers the box because hpt's prompt templates ask for one; the other two forms are the
    reference formats of MetaMathQA and GSM8K, which models fine-tuned on them keep using.
    """
    readers = {"boxed": (last_boxed,), "answer_is": (answer_is,), "gsm8k": (gsm8k_answer,)}
    if answer_format == "auto":
        chain = (last_boxed, answer_is, gsm8k_answer)
    elif answer_format in readers:
        chain = readers[answer_format]
    else:
        raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}")
    for reader in chain:
        value = _nonempty(reader(text))
        if value is not None:
            return value
    return None


def after_think(text: str, opened_in_prompt: bool = False) -> str | None:
    """The text after a well-formed ``<think>…</think>`` block, or None when the response has none.

    Well-formed means: the response starts with ``<think>`` (leading whitespace aside), and contains
    exactly one ``<think>`` and exactly one ``</think>``, in that order. A second block or a stray tag
    is malformed, so the format reward cannot be earned by sprinkling tags. With ``opened_in_prompt``
    (chat templates that end the prompt with ``<think>``, e.g. DeepSeek-R1 distills) the response
    must contain no ``<think>`` and exactly one ``</think>``.
    """
    if text.count(THINK_CLOSE) != 1:
        return None
    opens = text.count(THINK_OPEN)
    if opened_in_prompt:
        if opens != 0:
            return None
    elif opens != 1 or not text.lstrip().startswith(THINK_OPEN):
        return None
    return text.split(THINK_CLOSE, 1)[1]


def strip_think(text: str) -> str:
    """The text after the last ``</think>`` when there is one (drafts inside the thoughts are not the answer)."""
    head, sep, tail = text.rpartition(THINK_CLOSE)
    return tail if sep else text

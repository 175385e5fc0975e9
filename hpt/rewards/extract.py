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

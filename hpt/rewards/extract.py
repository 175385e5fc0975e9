"""The answer formats Math-Verify does not read, and the ``<think>`` block: hpt's additions to its extraction.

The last ``\\boxed{...}`` (the format strict mode requires, and how the preparers read reference
solutions), GSM8K's ``#### n``, MetaMathQA's "The answer is: x" (bounded to its sentence), and the
thinking block of reasoning models. Shared by the verifier and the data preparers, so both sides agree
on what "the answer" of a text is. Readers return None when the text has no answer of that form;
callers decide whether that is a zero reward or a data error. Everything else (several boxes,
final-answer phrases, bare LaTeX and numbers) is Math-Verify's extraction (``hpt.rewards.equivalence``).
"""

from __future__ import annotations

import re

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_GSM8K = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
# The value ends with its sentence: at a line break, a full stop followed by a space or the end, or "I hope".
_ANSWER_IS = re.compile(
    r"the (?:final )?answer is\s*:?\s*([^:\s].*?)(?=\s*(?:$|\n|\.\s|\.$|I hope\b))", re.IGNORECASE | re.MULTILINE
)


def _last_box_span(text: str) -> tuple[int, int | None] | None:
    """(content start, closing brace index or None when never closed) of the last box, or None."""
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
                return start, i
    return start, None


def last_box(text: str) -> tuple[str | None, bool]:
    """(content, found) of the last ``\\boxed{...}`` / ``\\fbox{...}``, nested braces balanced.

    ``found`` is False when the text has no box; a box that is never closed (a response cut inside
    it) gives ``(None, True)``.
    """
    span = _last_box_span(text)
    if span is None:
        return None, False
    start, end = span
    return (None if end is None else text[start:end].strip()), True


def after_last_box(text: str) -> str | None:
    """What follows the last closed box, or None when there is no closed last box."""
    span = _last_box_span(text)
    return None if span is None or span[1] is None else text[span[1] + 1 :]


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), or None (no box, or never closed)."""
    return last_box(text)[0]


def box_count(text: str) -> int:
    """How many ``\\boxed{`` / ``\\fbox{`` the text opens."""
    return sum(1 for _ in _BOXED.finditer(text))


def gsm8k_answer(text: str) -> str | None:
    """The value after the last ``####`` (GSM8K's reference format), thousands separators removed."""
    matches = _GSM8K.findall(text)
    return matches[-1].replace(",", "").strip() if matches else None


def answer_is(text: str) -> str | None:
    """The value after the last "The answer is" (MetaMathQA's format), up to the end of its sentence."""
    matches = _ANSWER_IS.findall(text)
    return matches[-1].strip() if matches else None


THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


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

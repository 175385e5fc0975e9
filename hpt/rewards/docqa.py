"""Answer rewards for document question answering (SlideVQA-style short answers): exact match and ANLS.

The response's answer is the text inside its last ``<answer>...</answer>`` when it has one, else the
whole response. Both sides are normalised (lower case, surrounding whitespace and final punctuation
removed, inner whitespace collapsed). ANLS (Average Normalized Levenshtein Similarity, Biten et al.
2019, the DocVQA metric) is per answer ``1 - NL`` when the normalised edit distance
``NL = lev(a, g) / max(|a|, |g|)`` is below ``tau`` (0.5), else 0, maximised over the gold answers.
Written from that formula (no maintained ANLS package is installable here). ``score`` is ANLS,
``acc`` exact match; ``extra_info.docqa_metric="exact"`` makes the score exact match too.
"""

from __future__ import annotations

import re
from typing import Any

ANLS_THRESHOLD = 0.5
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_SPACES = re.compile(r"\s+")


def extract_answer(response: str) -> str:
    """The last ``<answer>`` span, or the whole response."""
    spans = _ANSWER.findall(response)
    return spans[-1] if spans else response


def normalise(text: str) -> str:
    """Lower case, collapsed whitespace, no surrounding whitespace or trailing ``.,;:!?``."""
    return _SPACES.sub(" ", str(text).lower()).strip().rstrip(".,;:!?").strip()


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions cost 1), two-row dynamic programme."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def anls(prediction: str, golds: list[str], threshold: float = ANLS_THRESHOLD) -> float:
    """Best ``1 - NL`` over ``golds`` (0 where ``NL >= threshold``) on normalised strings."""
    predicted = normalise(prediction)
    best = 0.0
    for gold in golds:
        expected = normalise(gold)
        longest = max(len(predicted), len(expected))
        distance = levenshtein(predicted, expected) / longest if longest else 0.0
        best = max(best, 1.0 - distance if distance < threshold else 0.0)
    return best


def gold_answers(ground_truth: Any) -> list[str]:
    """One gold answer or a list of accepted ones; an empty one is a data error."""
    golds = [str(g) for g in ground_truth] if isinstance(ground_truth, list | tuple) else [str(ground_truth)]
    if not any(normalise(g) for g in golds):
        raise ValueError(f"document-QA ground_truth must name an answer, got {ground_truth!r}")
    return golds


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict[str, Any] | None = None, **_: Any
) -> dict[str, Any]:
    """verl's reward contract: ``score`` (ANLS, or exact match on request), ``acc`` (exact match), ``pred``."""
    golds = gold_answers(ground_truth)
    prediction = extract_answer(solution_str)
    exact = float(normalise(prediction) in {normalise(g) for g in golds})
    metric = (extra_info or {}).get("docqa_metric", "anls") if isinstance(extra_info, dict) else "anls"
    score = exact if metric == "exact" else anls(prediction, golds)
    return {"score": score, "acc": exact, "pred": normalise(prediction)}

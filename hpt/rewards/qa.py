"""Exact match and token F1 for short-answer QA (HotpotQA-style), in verl's custom reward contract.

The answer is the text inside the response's last ``<answer>...</answer>`` (tool results and search
calls before it are ignored). Both sides are normalised the SQuAD way before comparing: lower case,
punctuation removed, the articles ``a``/``an``/``the`` removed, whitespace collapsed. Exact match is
1 when the normalised strings are equal; F1 is the harmonic mean of precision and recall over the
normalised tokens counted with multiplicity. For yes/no/noanswer answers, as in HotpotQA's official
evaluation, a prediction that differs gets F1 0 rather than partial credit. A ground truth may be a
list of acceptable answers (the best score counts).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)
_CLOSED_ANSWERS = ("yes", "no", "noanswer")
METRICS = ("em", "f1")


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, truth: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1(prediction: str, truth: str) -> float:
    """Token F1 of the normalised strings (0 when either is empty or a yes/no answer differs)."""
    pred, gold = normalize_answer(prediction), normalize_answer(truth)
    if (pred in _CLOSED_ANSWERS or gold in _CLOSED_ANSWERS) and pred != gold:
        return 0.0
    common = Counter(pred.split()) & Counter(gold.split())
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred.split()), overlap / len(gold.split())
    return 2 * precision * recall / (precision + recall)


def extract_answer(solution_str: str) -> str | None:
    """The text of the last ``<answer>...</answer>``, stripped; None when there is none."""
    matches = _ANSWER.findall(solution_str)
    return matches[-1].strip() if matches else None


def _truths(ground_truth: Any) -> list[str]:
    truths = [ground_truth] if isinstance(ground_truth, str) else list(ground_truth or [])
    truths = [t for t in truths if isinstance(t, str) and t.strip()]
    if not truths:
        raise ValueError(f"QA ground_truth must be a non-empty string or list of strings, got {ground_truth!r}")
    return truths


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | Sequence[str],
    extra_info: dict[str, Any] | None = None,
    metric: str = "em",
    **kwargs: Any,
) -> dict[str, Any]:
    """``score`` = exact match (``metric="em"``) or F1 (``"f1"``) against the best ground truth; ``acc`` = EM.

    No ``<answer>`` scores 0 with ``reason`` ``no_answer``; a bad ground truth or metric raises
    ``ValueError`` (the data's or the config's fault, which must stop the run).
    """
    if metric not in METRICS:
        raise ValueError(f"QA metric must be one of {METRICS}, got {metric!r}")
    truths = _truths(ground_truth)
    prediction = extract_answer(solution_str)
    if prediction is None:
        return {"score": 0.0, "acc": 0.0, "pred": "", "reason": "no_answer"}
    em = max(exact_match(prediction, truth) for truth in truths)
    score = em if metric == "em" else max(f1(prediction, truth) for truth in truths)
    return {"score": score, "acc": em, "pred": prediction, "reason": ""}

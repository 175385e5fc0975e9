"""Exact match and F1 for QA answers, against hand-computed values."""

from __future__ import annotations

import pytest

from hpt.rewards.qa import compute_score, exact_match, extract_answer, f1, normalize_answer
from hpt.rewards.registry import compute_score as dispatch


def test_normalisation_drops_case_punctuation_articles_and_extra_spaces() -> None:
    assert normalize_answer("  The  Eiffel-Tower, in Paris! ") == "eiffeltower in paris"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre", "articles only as whole words"


def test_exact_match_after_normalisation() -> None:
    assert exact_match("the Beatles", "Beatles") == 1.0
    assert exact_match("Beatles band", "Beatles") == 0.0


def test_f1_by_hand() -> None:
    # pred tokens {new, york, city}, gold {new, york}: overlap 2, P = 2/3, R = 1, F1 = 2*(2/3)/(5/3) = 0.8
    assert f1("New York City", "new york") == pytest.approx(0.8)
    # pred "x y y", gold "y z": overlap 1 (one y), P = 1/3, R = 1/2
    assert f1("x y y", "y z") == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert f1("the", "the") == 0.0, "both empty after normalisation: no tokens, no overlap"
    assert f1("yes it is", "yes") == 0.0, "yes/no answers get no partial credit"
    assert f1("no", "no") == 1.0


def test_the_last_answer_tag_is_scored_and_tool_text_is_ignored() -> None:
    response = (
        '<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>\n'
        "<tool_response>Paris: capital of France</tool_response><answer>Lyon</answer> then <answer> Paris </answer>"
    )
    assert extract_answer(response) == "Paris"
    assert compute_score("hotpotqa", response, "paris") == {"score": 1.0, "acc": 1.0, "pred": "Paris", "reason": ""}
    assert compute_score("hotpotqa", "Paris", "Paris")["reason"] == "no_answer"


def test_f1_metric_and_answer_lists() -> None:
    response = "<answer>New York City</answer>"
    assert compute_score("hotpotqa", response, "New York", metric="f1")["score"] == pytest.approx(0.8)
    assert compute_score("hotpotqa", response, ["NYC", "new york city"])["score"] == 1.0
    with pytest.raises(ValueError, match="metric"):
        compute_score("hotpotqa", response, "x", metric="bleu")
    with pytest.raises(ValueError, match="ground_truth"):
        compute_score("hotpotqa", response, "  ")


def test_registry_routes_hotpotqa_to_the_qa_verifier() -> None:
    assert dispatch("hotpotqa", "<answer>the Beatles</answer>", "Beatles") == {
        "score": 1.0,
        "acc": 1.0,
        "pred": "the Beatles",
        "reason": "",
    }

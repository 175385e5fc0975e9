"""The arithmetic reward: exact match on the integer after the final ``#``, loud on bad ground truth."""

from __future__ import annotations

import pytest

from hpt.rewards.arithmetic import compute_score, extract_answer

SOURCE = "hpt/arithmetic"

# (response, ground truth, expected score)
CASES = [
    ("12+7=19,19-3=16#16", "16", 1.0),  # full chain of thought, right answer
    ("#16", "16", 1.0),  # bare answer, no chain of thought
    ("12+7=19,19-3=16#15", "16", 0.0),  # wrong final answer
    ("3-7=-4,-4+2=-2#-2", "-2", 1.0),  # negative intermediate and final answer
    ("3-7=-4#4", "-4", 0.0),  # sign dropped
    ("3-7=-4#-4", "4", 0.0),  # sign added
    ("12+7=19,19-3=16", "16", 0.0),  # missing '#': the last number is not read as the answer
    ("", "0", 0.0),  # empty response
    ("#16  \n", "16", 1.0),  # trailing whitespace
    ("1+2=3#3<eos>", "3", 1.0),  # eos text left in by decoding without skip_special_tokens
    ("1+2=3#3<eos><eos> ", "3", 1.0),  # repeated eos and a space
    ("1+2=3#3,3+1=4", "3", 0.0),  # text after the answer: '#' is not at the end
    ("#3#4", "4", 1.0),  # only the last '#' counts
    ("#3#4", "3", 0.0),
    ("any words here 7+1=8 #8", "8", 1.0),  # free-form chain of thought before '#'
    ("#16abc", "16", 0.0),  # junk after the number
    ("# 16", "16", 0.0),  # space between '#' and the number
    ("#016", "16", 1.0),  # integer comparison, not string comparison
    ("#0", "-0", 1.0),
    ("1+2=3#3", " 3 ", 1.0),  # ground truth with surrounding whitespace
    ("1+2=3#3", 3, 1.0),  # integer ground truth
]


@pytest.mark.parametrize(("response", "ground_truth", "expected"), CASES)
def test_reward_scores_exactly_the_integer_after_the_final_hash(
    response: str, ground_truth: object, expected: float
) -> None:
    assert compute_score(SOURCE, response, ground_truth) == {"score": expected, "acc": expected}


def test_reward_is_one_when_final_answer_matches_and_zero_when_it_differs() -> None:
    assert compute_score(SOURCE, "5-9=-4#-4", "-4")["score"] == 1.0
    assert compute_score(SOURCE, "5-9=-4#-5", "-4")["score"] == 0.0


def test_reward_accepts_verl_keyword_arguments() -> None:
    result = compute_score(
        data_source=SOURCE,
        solution_str="1+1=2#2",
        ground_truth="2",
        extra_info={"index": 0, "split": "test", "target": "1+1=2#2"},
        unused_future_kwarg=True,
    )
    assert result == {"score": 1.0, "acc": 1.0}


def test_extract_answer_returns_none_without_a_final_answer() -> None:
    assert extract_answer("1+2=3") is None
    assert extract_answer("1+2=3#-3<eos>") == -3


@pytest.mark.parametrize("ground_truth", ["", "  ", None, "abc", "1.5", "#3", "1_000", "+3"])
def test_bad_ground_truth_raises_and_names_the_value(ground_truth: object) -> None:
    with pytest.raises(ValueError, match="ground_truth") as excinfo:
        compute_score(SOURCE, "#3", ground_truth)
    assert repr(ground_truth) in str(excinfo.value)

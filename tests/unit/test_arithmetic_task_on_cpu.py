"""The synthetic arithmetic task: correct demonstrations, verl row schema, disjoint and repeatable splits."""

from __future__ import annotations

import random
import re

import pandas as pd
import pytest

from hpt.toy.arithmetic import (
    DATA_SOURCE,
    ArithmeticProblem,
    make_problem,
    make_rows,
    make_splits,
    question_of,
    write_parquet,
)


def evaluate_question(question: str) -> int:
    """Independent left-to-right evaluation of ``Q12+7-3=?``."""
    match = re.fullmatch(r"Q(\d+)((?:[+-]\d+)+)=\?", question)
    assert match, question
    value = int(match.group(1))
    for operator, operand in re.findall(r"([+-])(\d+)", match.group(2)):
        value = value + int(operand) if operator == "+" else value - int(operand)
    return value


class FixedRng(random.Random):
    """Replays scripted draws so a problem can be checked by hand."""

    def __init__(self, ints: list[int], choices: list[str]) -> None:
        super().__init__(0)
        self._ints = iter(ints)
        self._choices = iter(choices)

    def randint(self, a: int, b: int) -> int:
        value = next(self._ints)
        assert a <= value <= b
        return value

    def choice(self, seq):  # type: ignore[override]
        value = next(self._choices)
        assert value in seq
        return value


def test_problem_matches_hand_worked_example() -> None:
    # first operand 12, then 2 operations: +7, -3
    problem = make_problem(FixedRng([12, 2, 7, 3], ["+", "-"]), max_operand=20, max_ops=3)
    assert problem == ArithmeticProblem(question="Q12+7-3=?", demonstration="12+7=19,19-3=16#16", answer=16)


def test_demonstration_carries_negative_intermediate_values() -> None:
    problem = make_problem(FixedRng([3, 2, 7, 2], ["-", "+"]))
    assert problem == ArithmeticProblem(question="Q3-7+2=?", demonstration="3-7=-4,-4+2=-2#-2", answer=-2)


def test_verify_style_checks_every_step_by_its_inverse() -> None:
    problem = make_problem(FixedRng([12, 2, 7, 3], ["+", "-"]), max_operand=20, max_ops=3, style="verify")
    assert problem == ArithmeticProblem(
        question="Q12+7-3=?", demonstration="12+7=19,19-7=12,19-3=16,16+3=19#16", answer=16
    )


def test_styles_share_questions_and_answers_for_a_seed() -> None:
    steps = make_rows(50, seed=3, split="train", max_operand=19)
    verify = make_rows(50, seed=3, split="train", max_operand=19, style="verify")
    assert [question_of(row) for row in steps] == [question_of(row) for row in verify]
    assert [row["reward_model"] for row in steps] == [row["reward_model"] for row in verify]
    for short, long in zip(steps, verify, strict=True):
        assert len(long["extra_info"]["target"]) > len(short["extra_info"]["target"])


def test_unknown_style_is_rejected_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid: steps, verify"):
        make_rows(1, seed=0, split="train", style="fancy")


@pytest.mark.parametrize(("max_operand", "max_ops"), [(9, 3), (19, 3), (99, 5), (1, 1)])
def test_demonstration_arithmetic_is_correct_for_random_problems(max_operand: int, max_ops: int) -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        problem = make_problem(rng, max_operand, max_ops)
        answer = evaluate_question(problem.question)
        assert problem.answer == answer
        steps, final = problem.demonstration.rsplit("#", 1)
        assert int(final) == answer
        value = None
        for step in steps.split(","):
            left, operator, right, result = re.fullmatch(r"(-?\d+)([+-])(\d+)=(-?\d+)", step).groups()
            assert value is None or int(left) == value, "each step must start from the previous result"
            assert int(right) <= max_operand
            value = int(left) + int(right) if operator == "+" else int(left) - int(right)
            assert int(result) == value
        assert value == answer
        assert 1 <= len(steps.split(",")) <= max_ops


def test_problems_cover_every_operation_count_and_both_operators() -> None:
    rng = random.Random(0)
    problems = [make_problem(rng) for _ in range(500)]
    assert {p.demonstration.count(",") + 1 for p in problems} == {1, 2, 3}
    assert any("+" in p.question for p in problems) and any("-" in p.question[1:] for p in problems)
    assert any(p.answer < 0 for p in problems)


def test_rows_follow_the_verl_schema() -> None:
    rows = make_rows(5, seed=0, split="train")
    for index, row in enumerate(rows):
        assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
        assert row["data_source"] == DATA_SOURCE == "hpt/arithmetic"
        assert row["ability"] == "math"
        [message] = row["prompt"]
        assert message["role"] == "user" and message["content"].startswith("Q")
        answer = str(evaluate_question(message["content"]))
        assert row["reward_model"] == {"style": "rule", "ground_truth": answer}
        assert row["extra_info"]["index"] == index
        assert row["extra_info"]["split"] == "train"
        assert row["extra_info"]["target"].endswith("#" + row["reward_model"]["ground_truth"])


def test_splits_share_no_question_and_have_the_requested_sizes() -> None:
    train, test = make_splits(2000, 300, seed=0)
    assert (len(train), len(test)) == (2000, 300)
    assert not {question_of(r) for r in train} & {question_of(r) for r in test}
    assert {r["extra_info"]["split"] for r in test} == {"test"}


def test_rows_are_deterministic_for_a_seed_and_differ_across_seeds_and_splits() -> None:
    assert make_rows(50, seed=3, split="train") == make_rows(50, seed=3, split="train")
    assert make_splits(100, 20, seed=3) == make_splits(100, 20, seed=3)
    questions = [question_of(r) for r in make_rows(50, seed=3, split="train")]
    assert questions != [question_of(r) for r in make_rows(50, seed=4, split="train")]
    assert questions != [question_of(r) for r in make_rows(50, seed=3, split="test")]


def test_impossible_exclusion_fails_loudly_instead_of_looping() -> None:
    every_question = {f"Q{a}{op}{b}=?" for a in range(2) for b in range(2) for op in "+-"}
    with pytest.raises(ValueError, match="found only 0 of 3"):
        make_rows(3, seed=0, split="test", max_operand=1, max_ops=1, exclude=every_question)


@pytest.mark.parametrize(("max_operand", "max_ops"), [(0, 3), (9, 0)])
def test_bad_ranges_are_rejected(max_operand: int, max_ops: int) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        make_rows(1, seed=0, split="train", max_operand=max_operand, max_ops=max_ops)


def test_parquet_round_trip_keeps_nested_fields(tmp_path) -> None:
    rows = make_rows(4, seed=0, split="test")
    path = tmp_path / "sub" / "test.parquet"
    write_parquet(rows, path)
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert [list(p) for p in frame["prompt"]] == [r["prompt"] for r in rows]
    assert list(frame["reward_model"]) == [r["reward_model"] for r in rows]
    assert list(frame["extra_info"]) == [r["extra_info"] for r in rows]
    assert [p.name for p in path.parent.iterdir()] == ["test.parquet"], "no temp file left behind"

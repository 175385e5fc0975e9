"""The fact-lookup task: held-out questions name unseen entities, demonstrations are the expert's trajectory,
the search index finds each demonstrated fact, and the arithmetic reward reads the answer after tool text."""

from __future__ import annotations

import json
import random
import re

import pytest

from hpt.rewards.arithmetic import compute_score
from hpt.rewards.registry import compute_score as dispatch
from hpt.toy.facts import (
    AGENT_NAME,
    DATA_SOURCE,
    Fact,
    FactQuestion,
    guessed_turns,
    make_question,
    make_rows,
    make_world,
    target_turns_of,
    write_corpus,
)
from hpt.tools.index import build_index, load_index


@pytest.fixture(scope="module")
def world():
    return make_world(30, seed=0)


def test_splits_name_disjoint_entities_and_every_fact_is_a_corpus_line(world) -> None:
    train, val, test = (set(world.entities[s]) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert len(train | val | test) == 30
    assert len(world.corpus()) == 30 * 4 == len(set(world.corpus()))


def test_sum_question_demonstration_is_two_searches_then_the_worked_answer() -> None:
    first, second = Fact("zorbex", "moons", 4), Fact("kalitu", "roads", 7)
    question = FactQuestion("zorbex moons + kalitu roads?", (first, second), 11, "4+7=11#11")
    call = '<tool_call>{{"name": "search", "arguments": {{"query": "{}"}}}}</tool_call>'
    assert question.target_turns() == [
        {"role": "assistant", "content": call.format("zorbex moons")},
        {"role": "tool", "content": "zorbex moons 4"},
        {"role": "assistant", "content": call.format("kalitu roads")},
        {"role": "tool", "content": "kalitu roads 7"},
        {"role": "assistant", "content": "4+7=11#11"},
    ]


def test_questions_are_answered_by_their_facts(world) -> None:
    rng = random.Random(0)
    for kind, sign in (("lookup", None), ("sum", "+"), ("difference", "-")):
        for _ in range(20):
            q = make_question(rng, world, "val", kind)
            assert all(f.entity in world.entities["val"] for f in q.facts)
            if sign is None:
                assert (q.question, q.answer, q.final) == (f"{q.facts[0].query}?", q.facts[0].value, f"#{q.answer}")
            else:
                a, b = (f.value for f in q.facts)
                assert q.answer == (a + b if sign == "+" else a - b) and q.facts[0] != q.facts[1]
                assert q.final == f"{a}{sign}{b}={q.answer}#{q.answer}"


def test_rows_select_the_tool_agent_with_unique_indices_and_a_json_trajectory(world) -> None:
    rows = make_rows(world, 40, seed=0, split="train", kind_weights=(1, 1, 1))
    assert [r["extra_info"]["index"] for r in rows] == list(range(40))
    assert {r["agent_name"] for r in rows} == {AGENT_NAME} and {r["data_source"] for r in rows} == {DATA_SOURCE}
    for row in rows:
        turns = target_turns_of(row)
        assert [t["role"] for t in turns[-1:]] == ["assistant"] and len(turns) in (3, 5)
        assert turns[-1]["content"].endswith("#" + row["reward_model"]["ground_truth"])
        assert isinstance(row["extra_info"]["target_turns"], str)
    assert make_rows(world, 40, seed=0, split="train", kind_weights=(1, 1, 1)) == rows, "seeded"
    with pytest.raises(ValueError, match="kind_weights"):
        make_rows(world, 1, seed=0, split="train", kind_weights=(1, 1))


def test_the_index_returns_each_demonstrated_observation_first(world, tmp_path) -> None:
    write_corpus(world, tmp_path / "corpus.jsonl")
    build_index(tmp_path / "corpus.jsonl", tmp_path / "index")
    index = load_index(tmp_path / "index")
    for row in make_rows(world, 60, seed=1, split="test", kind_weights=(1, 1, 1)):
        turns = target_turns_of(row)
        for call, observation in zip(turns[0:-1:2], turns[1::2], strict=True):
            query = json.loads(call["content"].removeprefix("<tool_call>").removesuffix("</tool_call>"))["arguments"]
            assert index.search(query["query"], top_k=1) == [observation["content"]]


def test_reward_reads_the_final_answer_after_tool_text() -> None:
    response = (
        '<tool_call>{"name": "search", "arguments": {"query": "zorbex moons"}}</tool_call>\nuser\n'
        "<tool_response>zorbex moons 4</tool_response>\nassistant\n#4"
    )
    assert compute_score(DATA_SOURCE, response, "4")["score"] == 1.0
    assert dispatch(DATA_SOURCE, response, "4") == {"score": 1.0, "acc": 1.0, "pred": "4", "reason": ""}
    assert compute_score(DATA_SOURCE, response.removesuffix("#4"), "4")["score"] == 0.0, "no answer, no reward"


def test_guessed_turns_answer_in_the_demonstration_form_without_a_tool_call() -> None:
    rng = random.Random(3)
    worked = r"(\d)([+-])(\d)=(-?\d+)#(-?\d+)"
    for kind, pattern in (("lookup", r"#(\d)"), ("sum", worked), ("difference", worked)):
        for _ in range(20):
            (turn,) = guessed_turns(kind, rng)
            assert turn["role"] == "assistant" and "<tool_call>" not in turn["content"]
            match = re.fullmatch(pattern, turn["content"])
            assert match, turn
            if kind != "lookup":
                a, sign, b, result, answer = match.groups()
                assert sign == ("+" if kind == "sum" else "-")
                assert int(result) == int(answer) == (int(a) + int(b) if kind == "sum" else int(a) - int(b))
    with pytest.raises(ValueError, match="kind must be one of"):
        guessed_turns("product", rng)

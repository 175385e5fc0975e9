"""The HotpotQA preparer and the trajectory checks: search → observation → answer demonstrations from the
supporting facts, a corpus of every paragraph, and bad trajectories reported with row and reason."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoTokenizer

from hpt.data.prepare.__main__ import main
from hpt.data.trajectories import trajectory_problem
from hpt.toy.tool_model import save_tool_model
from hpt.tools.index import build_index, load_index

RAW = {
    "_id": "q1",
    "question": "Which band did the singer of Yesterday form?",
    "answer": "The Beatles",
    "type": "bridge",
    "level": "easy",
    "supporting_facts": [["Yesterday (song)", 0], ["Paul McCartney", 1], ["Yesterday (song)", 1]],
    "context": [
        ["Yesterday (song)", ["Yesterday is a song.", " It was sung by Paul McCartney."]],
        ["Paul McCartney", ["Paul McCartney is a singer.", " He formed the Beatles."]],
        ["Oslo", ["Oslo is a city."]],
    ],
}
HUB_SHAPED = {
    "id": "q2",
    "question": "Where is Oslo?",
    "answer": "Norway",
    "supporting_facts": {"title": ["Oslo"], "sent_id": [0]},
    "context": {"title": ["Oslo"], "sentences": [["Oslo is in Norway."]]},
}
MISSING_PARAGRAPH = {**RAW, "_id": "q3", "supporting_facts": [["Nowhere", 0]]}
NO_ANSWER = {**RAW, "_id": "q4", "answer": ""}


def _call(query: str, name: str = "search") -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {{"query": "{query}"}}}}</tool_call>'


def test_rows_corpus_and_skips(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = tmp_path / "hotpot.json"
    source.write_text(json.dumps([RAW, MISSING_PARAGRAPH, HUB_SHAPED, NO_ANSWER]))
    out = tmp_path / "train.parquet"
    assert main(["hotpotqa", "--source", str(source), "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert "read 4, wrote 2" in report and "supporting_paragraph_missing 1 (rows [1]" in report
    assert "missing_field 1 (rows [3]" in report
    rows = pd.read_parquet(out).to_dict("records")
    assert [r["extra_info"]["index"] for r in rows] == [0, 1] and rows[0]["agent_name"] == "tool_agent"
    assert rows[0]["reward_model"]["ground_truth"] == "The Beatles" and rows[0]["data_source"] == "hotpotqa"
    assert json.loads(rows[0]["extra_info"]["target_turns"]) == [
        {"role": "assistant", "content": _call("Yesterday (song)")},
        {"role": "tool", "content": "Yesterday (song): Yesterday is a song. It was sung by Paul McCartney."},
        {"role": "assistant", "content": _call("Paul McCartney")},
        {"role": "tool", "content": "Paul McCartney: Paul McCartney is a singer. He formed the Beatles."},
        {"role": "assistant", "content": "<answer>The Beatles</answer>"},
    ]
    corpus = [json.loads(line)["contents"] for line in Path(f"{out}.corpus.jsonl").read_text().splitlines()]
    assert corpus[2:] == ["Oslo: Oslo is a city.", "Oslo: Oslo is in Norway."], "same title, other text: both kept"
    assert len(corpus) == 4, "paragraphs repeated by the skipped rows are not duplicated"
    build_index(f"{out}.corpus.jsonl", tmp_path / "index")
    assert load_index(tmp_path / "index").search("Paul McCartney") == [corpus[1]]


def test_options_that_do_not_apply_and_a_missing_source_are_errors(tmp_path: Path, capsys) -> None:
    assert main(["hotpotqa", "--out", str(tmp_path / "x.parquet")]) == 2
    assert "--source" in capsys.readouterr().err
    source = tmp_path / "h.json"
    source.write_text(json.dumps([RAW]))
    assert (
        main(["hotpotqa", "--source", str(source), "--out", str(tmp_path / "x.parquet"), "--long-demos", "drop"]) == 2
    )
    assert "--long-demos does not apply" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("turns", "reason"),
    [
        ([], "bad_turns"),
        ([{"role": "user", "content": "hi"}], "bad_turns"),
        ([{"role": "tool", "content": "x"}, {"role": "assistant", "content": "a"}], "bad_alternation"),
        ([{"role": "assistant", "content": _call("q")}, {"role": "assistant", "content": "a"}], "bad_alternation"),
        ([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}], "bad_alternation"),
        ([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "x"}], "bad_alternation"),
        ([{"role": "assistant", "content": "<tool_call>{oops</tool_call>"}], "bad_tool_call"),
        (
            [
                {"role": "assistant", "content": _call("q", "browse")},
                {"role": "tool", "content": "x"},
                {"role": "assistant", "content": "a"},
            ],
            "unknown_tool",
        ),
    ],
)
def test_trajectory_problems_are_named(turns, reason) -> None:
    problem = trajectory_problem(turns, {"search"})
    assert problem is not None and problem.startswith(reason)


def test_a_good_trajectory_passes_and_the_budget_counts_replayed_tokens(tmp_path: Path) -> None:
    save_tool_model(tmp_path, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    turns = [
        {"role": "assistant", "content": _call("q")},
        {"role": "tool", "content": "x"},
        {"role": "assistant", "content": "#1"},
    ]
    assert trajectory_problem(turns, {"search"}) is None
    # the call + eos, the tool turn as context, then "#1" + eos
    call_tokens = len(tokenizer(_call("q"), add_special_tokens=False)["input_ids"]) + 1
    context = "\n<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n<|im_start|>assistant\n"
    total = call_tokens + len(tokenizer(context, add_special_tokens=False)["input_ids"]) + 3
    assert trajectory_problem(turns, {"search"}, (tokenizer, total, None)) is None
    assert trajectory_problem(turns, {"search"}, (tokenizer, total - 1, None)).startswith("too_long")

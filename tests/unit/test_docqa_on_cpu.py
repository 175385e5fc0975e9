"""Document QA: the ANLS/exact-match reward against hand-computed values, and the SlideVQA preparer."""

import io
import json

import pandas as pd
import pytest
from PIL import Image

from hpt.data.prepare.__main__ import main as prepare_main
from hpt.rewards import docqa
from hpt.rewards.registry import compute_score as dispatch


@pytest.mark.parametrize(
    ("a", "b", "distance"), [("", "", 0), ("kitten", "sitting", 3), ("abc", "", 3), ("ab", "ba", 2)]
)
def test_levenshtein_by_hand(a, b, distance):
    assert docqa.levenshtein(a, b) == distance == docqa.levenshtein(b, a)


def test_anls_by_hand():
    assert docqa.anls("helo", ["hello"]) == pytest.approx(0.8)  # 1 edit / 5 chars
    assert docqa.anls("cat", ["cut"]) == pytest.approx(2 / 3)  # 1 / 3
    assert docqa.anls("ab", ["abcd"]) == 0.0  # NL = 2/4 = 0.5, not below the 0.5 threshold
    assert docqa.anls("xyz", ["abc"]) == 0.0
    assert docqa.anls(" Paris. ", ["PARIS"]) == 1.0  # normalised: case, spaces, final punctuation
    assert docqa.anls("helo", ["world", "hello"]) == pytest.approx(0.8)  # best gold


def test_score_reads_the_last_answer_tag_and_reports_exact_match():
    result = docqa.compute_score("slidevqa", "<answer>x</answer> think <answer>Hellp</answer>", "hello")
    assert result == {"score": pytest.approx(0.8), "acc": 0.0, "pred": "hellp"}
    exact = docqa.compute_score("slidevqa", "<answer>Hellp</answer>", "hello", {"docqa_metric": "exact"})
    assert exact["score"] == 0.0
    assert dispatch("slidevqa", "<answer>42</answer>", "42")["score"] == 1.0  # routed by hpt's dispatcher
    with pytest.raises(ValueError, match="must name an answer"):
        docqa.compute_score("slidevqa", "x", " ")


def _jpg(path):
    buffer = io.BytesIO()
    Image.new("RGB", (120, 90), (250, 250, 250)).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())


def test_slidevqa_preparer_on_files_shaped_like_the_release(tmp_path):
    images = tmp_path / "images" / "train"
    for deck, pages in (("deck-a", 3), ("deck-b", 2)):
        (images / deck).mkdir(parents=True)
        for page in range(1, pages + 1):
            _jpg(images / deck / f"{deck}-{page}-1024.jpg")
    (images / "deck-b" / "deck-b-2-1024.jpg").write_bytes(b"truncated")
    qa = [
        {"deck_name": "deck-a", "qa_id": 1, "question": "What year?", "answer": "2019", "evidence_pages": [1, 3]},
        {"deck_name": "deck-a", "qa_id": 2, "question": "Who?", "answer": "Ann", "evidence_pages": [7]},
        {"deck_name": "deck-b", "qa_id": 3, "question": "How many?", "answer": "4", "evidence_pages": [2]},
        {"deck_name": "deck-b", "qa_id": 4, "question": "", "answer": "x", "evidence_pages": [1]},
    ]
    qa_file = tmp_path / "train.jsonl"
    qa_file.write_text("\n".join(json.dumps(q) for q in qa) + "\n")
    out = tmp_path / "train.parquet"
    assert prepare_main(["slidevqa", "--qa", str(qa_file), "--images", str(images), "--out", str(out)]) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["prompt"][0]["content"].count("<image>") == 2 == len(row["images"])
    assert row["images"][0]["path"].endswith("deck-a-1-1024.jpg") and row["images"][1]["path"].endswith("-3-1024.jpg")
    assert row["extra_info"]["target"] == "<answer>2019</answer>" and row["reward_model"]["ground_truth"] == "2019"
    assert dispatch(row["data_source"], row["extra_info"]["target"], row["reward_model"]["ground_truth"])["acc"] == 1.0

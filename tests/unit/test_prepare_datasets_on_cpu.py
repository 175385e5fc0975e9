"""Dataset preparers on small fixtures in the real datasets' shapes: schema, values, skip counts, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hpt.data.prepare import DATASETS, MissingColumnsError, PrepareError, PrepareOptions, prepare
from hpt.data.prepare.__main__ import main as cli_main
from hpt.data.prepare.sources import load_source
from hpt.data.templates import BOXED_INSTRUCTION, TEMPLATES, build_prompt
from hpt.toy.tiny_model import build_tokenizer

BOX = "\\boxed"
ROW_KEYS = ["data_source", "prompt", "ability", "reward_model", "extra_info"]


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def _parquet(path: Path, rows: list[dict]) -> str:
    pd.DataFrame(rows).to_parquet(path, index=False)
    return str(path)


def _read(path) -> list[dict]:
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ROW_KEYS
    rows = frame.to_dict("records")
    for i, row in enumerate(rows):  # the schema hpt's trainer reads
        assert [dict(turn) for turn in row["prompt"]] == [{"role": "user", "content": row["prompt"][0]["content"]}]
        assert row["ability"] == "math" and row["reward_model"]["style"] == "rule"
        assert isinstance(row["reward_model"]["ground_truth"], str) and row["reward_model"]["ground_truth"]
        assert row["extra_info"]["index"] == i
    return rows


def _question(row: dict) -> str:
    return row["prompt"][0]["content"]


# ---------------------------------------------------------------- fixtures in the real datasets' shapes

GSM8K = [
    {"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "A farm sells 1,000 eggs a day for 2 days.", "answer": "1000*2=2000\n#### 2,000"},
    {"question": "No marker here.", "answer": "The result is 5."},
    {"question": "Empty answer.", "answer": "  "},
    {"question": "Half of 10?", "answer": "10/2=5\n#### 5"},
]


@pytest.fixture
def gsm8k_file(tmp_path):
    return _jsonl(tmp_path / "gsm8k_test.jsonl", GSM8K)


def _deepmath_row(question, answer, difficulty, solutions, topic="Algebra"):
    row = {"question": question, "final_answer": answer, "difficulty": difficulty, "topic": topic}
    row.update({f"r1_solution_{i + 1}": text for i, text in enumerate(solutions)})
    return row


DEEPMATH = [
    _deepmath_row("What is 2+2?", "4", 5.0, ["<think>add</think> so " + BOX + "{4}", "short " + BOX + "{4}",
                                            "a much longer third solution " + BOX + "{4}"]),
    _deepmath_row("Hard limit?", "0", 9.0, ["limit is " + BOX + "{0}"] * 3),
    _deepmath_row("No answer?", "", 6.0, ["x " + BOX + "{1}"] * 3),
    _deepmath_row("Unboxed?", "\\frac{1}{2}", 6.5, ["the answer is one half", "half " + BOX + "{\\frac12}", "h"]),
    _deepmath_row("Easy sum?", "3", 3.0, ["1+2=3 " + BOX + "{3}"] * 3),
    _deepmath_row("Long one?", "10", 7.0, ["x" * 200 + " " + BOX + "{10}", "y " + BOX + "{10}", "z " + BOX + "{10}"]),
    _deepmath_row("First empty?", "8", 5.5, ["", "solution two " + BOX + "{8}", "sol three " + BOX + "{8}"]),
]


@pytest.fixture
def deepmath_file(tmp_path):
    return _parquet(tmp_path / "deepmath.parquet", DEEPMATH)


METAMATH = [
    {"query": "Janet has 3 cats and 2 dogs. How many pets?", "response": "3 + 2 = 5.\nThe answer is: 5",
     "type": "GSM_Rephrased", "original_question": "Janet has 3 cats and 2 dogs. How many pets does she have?"},
    {"query": "What is $\\frac{6}{3}$?", "response": "We get $\\boxed{2}$.\nThe answer is: 2",
     "type": "MATH_AnsAug", "original_question": "What is $\\frac{6}{3}$?"},
    {"query": "No final line.", "response": "I think it is 4.", "type": "GSM_SV", "original_question": "x"},
    {"query": "Empty final line.", "response": "Work.\nThe answer is:", "type": "GSM_FOBAR", "original_question": "y"},
    {"query": "If the answer is 12, what is x?", "response": "x = 12 - 4 = 8.\nThe answer is: 8.",
     "type": "GSM_FOBAR", "original_question": "z"},
]


@pytest.fixture
def metamath_file(tmp_path):
    path = tmp_path / "MetaMathQA-395K.json"  # the real file is one JSON array
    path.write_text(json.dumps(METAMATH), encoding="utf-8")
    return str(path)


MATH500 = [
    {"problem": "Compute $1+1$.", "solution": "It is $\\boxed{2}$.", "answer": "2", "subject": "Prealgebra",
     "level": 1, "unique_id": "test/prealgebra/1.json"},
    {"problem": "Simplify $\\sqrt{8}$.", "solution": "$2\\sqrt{2}$", "answer": "2\\sqrt{2}", "subject": "Algebra",
     "level": 3, "unique_id": "test/algebra/2.json"},
    {"problem": "Broken row.", "solution": "?", "answer": "", "subject": "Geometry", "level": 5,
     "unique_id": "test/geometry/3.json"},
]


def test_gsm8k_parses_hashes_and_counts_bad_rows(gsm8k_file, tmp_path):
    out = tmp_path / "gsm8k.parquet"
    report = prepare("gsm8k", out, source=gsm8k_file)
    rows = _read(out)
    assert (report.rows_read, report.rows_written) == (5, 3)
    assert dict(report.skipped) == {"unparsable_answer": 1, "missing_answer": 1}
    assert report.skipped_rows == {"unparsable_answer": [2], "missing_answer": [3]}
    assert [row["reward_model"]["ground_truth"] for row in rows] == ["7", "2000", "5"]
    assert {row["data_source"] for row in rows} == {"openai/gsm8k"}
    assert _question(rows[0]) == f"{GSM8K[0]['question']}\n\n{BOXED_INSTRUCTION}"
    info = rows[1]["extra_info"]
    assert info["target"] is None and info["split"] == "test" and info["source_row"] == 1


def test_math500_keeps_subject_level_and_id(tmp_path):
    source = _jsonl(tmp_path / "test.jsonl", MATH500)
    report = prepare("math500", tmp_path / "math500.parquet", source=source, template="boxed_base")
    rows = _read(tmp_path / "math500.parquet")
    assert (report.rows_written, dict(report.skipped)) == (2, {"missing_answer": 1})
    assert [row["reward_model"]["ground_truth"] for row in rows] == ["2", "2\\sqrt{2}"]
    assert rows[1]["data_source"] == "HuggingFaceH4/MATH-500"
    info = rows[1]["extra_info"]
    assert (info["subject"], info["level"], info["unique_id"]) == ("Algebra", 3, "test/algebra/2.json")
    assert _question(rows[0]).startswith("Problem:\nCompute $1+1$.") and _question(rows[0]).endswith("Solution:")
    assert report.overrides and "custom_chat_template" in report.overrides[0]


@pytest.mark.parametrize(
    "shape",
    [
        [{"ID": "2024-I-1", "Problem": "Find $m+n$.", "Solution": "...", "Answer": 204},
         {"ID": "2024-I-2", "Problem": "Find $x$.", "Solution": "...", "Answer": 25},
         {"ID": "2024-I-3", "Problem": "Lost answer.", "Solution": "...", "Answer": None}],
        [{"id": 60, "problem": "Find $m+n$.", "solution": "...", "answer": "204", "url": "u", "year": "2024"},
         {"id": 61, "problem": "Find $x$.", "solution": "...", "answer": "025", "url": "u", "year": "2024"},
         {"id": 62, "problem": "Lost answer.", "solution": "...", "answer": "", "url": "u", "year": "2024"}],
    ],
    ids=["Maxwell-Jia", "HuggingFaceH4"],
)
def test_aime2024_accepts_both_column_spellings(tmp_path, shape):
    report = prepare("aime2024", tmp_path / "aime.parquet", source=_parquet(tmp_path / "aime_src.parquet", shape))
    rows = _read(tmp_path / "aime.parquet")
    assert (report.rows_written, dict(report.skipped)) == (2, {"missing_answer": 1})
    assert rows[0]["reward_model"]["ground_truth"] == "204"  # an int64 column is written as digits
    assert {row["data_source"] for row in rows} == {"aime2024"}
    assert rows[1]["extra_info"]["id"] in ("2024-I-2", "61")


def test_deepmath_pairs_solution_and_reports_every_filter(deepmath_file, tmp_path):
    out = tmp_path / "deepmath.parquet"
    report = prepare("deepmath", out, source=deepmath_file, min_difficulty=4.0, max_difficulty=8.0)
    rows = _read(out)
    assert report.rows_read == 7 and report.rows_written == 3
    assert dict(report.skipped) == {"difficulty_out_of_range": 2, "missing_answer": 1, "missing_demonstration": 1}
    assert dict(report.changed) == {"boxed_answer_added": 1}
    by_question = {_question(row).split("\n")[0]: row for row in rows}
    first = by_question["What is 2+2?"]
    assert first["data_source"] == "zwhe99/DeepMath-103K"
    assert first["extra_info"]["target"] == DEEPMATH[0]["r1_solution_1"]
    assert first["reward_model"]["ground_truth"] == "4"
    assert (first["extra_info"]["difficulty"], first["extra_info"]["topic"]) == (5.0, "Algebra")
    assert by_question["Unboxed?"]["extra_info"]["target"] == (
        "the answer is one half\n\nThe final answer is $\\boxed{\\frac{1}{2}}$.")


def test_deepmath_solution_choice_and_missing_box_policy(deepmath_file, tmp_path):
    shortest = prepare("deepmath", tmp_path / "short.parquet", source=deepmath_file, solution="shortest")
    rows = _read(tmp_path / "short.parquet")
    assert shortest.rows_written == 6 and dict(shortest.skipped) == {"missing_answer": 1}
    targets = {_question(row).split("\n")[0]: row["extra_info"]["target"] for row in rows}
    assert targets["What is 2+2?"] == "short \\boxed{4}"
    assert targets["First empty?"] == "sol three \\boxed{8}"
    assert targets["Unboxed?"] == "h\n\nThe final answer is $\\boxed{\\frac{1}{2}}$."

    dropped = prepare("deepmath", tmp_path / "drop.parquet", source=deepmath_file, missing_box="drop")
    assert dropped.skipped["demonstration_without_boxed_answer"] == 1 and not dropped.changed
    kept = prepare("deepmath", tmp_path / "keep.parquet", source=deepmath_file, solution="3", missing_box="keep")
    assert kept.rows_written == 6 and not kept.changed


def test_long_demonstrations_dropped_or_truncated_with_counts(deepmath_file, tmp_path):
    tokenizer = build_tokenizer()  # one token per character
    budget = 80  # fits every demonstration but the 200-character one
    dropped = prepare("deepmath", tmp_path / "drop.parquet", source=deepmath_file, max_demo_tokens=budget,
                      tokenizer=tokenizer, long_demos="drop")
    assert dropped.skipped["demonstration_too_long"] == 1 and dropped.rows_written == 4
    assert "Long one?" not in {_question(row).split("\n")[0] for row in _read(tmp_path / "drop.parquet")}

    truncated = prepare("deepmath", tmp_path / "cut.parquet", source=deepmath_file, max_demo_tokens=budget,
                        tokenizer=tokenizer, long_demos="truncate")
    assert truncated.rows_written == 5 and "demonstration_too_long" not in truncated.skipped
    assert truncated.changed["demonstration_truncated"] == 1
    rows = {_question(row).split("\n")[0]: row["extra_info"]["target"] for row in _read(tmp_path / "cut.parquet")}
    cut = rows["Long one?"]
    assert DEEPMATH[5]["r1_solution_1"].startswith(cut)
    assert len(tokenizer(cut, add_special_tokens=False)["input_ids"]) == budget  # no room left for EOS
    for target in rows.values():
        assert len(tokenizer(target, add_special_tokens=False)["input_ids"]) <= budget


def test_metamathqa_answers_parsed_never_guessed(metamath_file, tmp_path):
    paired = prepare("metamathqa", tmp_path / "paired.parquet", source=metamath_file)
    rows = _read(tmp_path / "paired.parquet")
    assert (paired.rows_read, paired.rows_written) == (5, 3)
    assert dict(paired.skipped) == {"unparsable_answer": 2}
    assert [row["reward_model"]["ground_truth"] for row in rows] == ["5", "2", "8"]
    assert {row["data_source"] for row in rows} == {"meta-math/MetaMathQA"}
    assert rows[0]["extra_info"]["target"] == METAMATH[0]["response"] + "\n\nThe final answer is $\\boxed{5}$."
    assert rows[1]["extra_info"]["target"] == METAMATH[1]["response"]  # already boxed: untouched
    assert paired.changed["boxed_answer_added"] == 2
    assert rows[2]["extra_info"]["type"] == "GSM_FOBAR" and rows[0]["extra_info"]["split"] == "train"

    sft = prepare("metamathqa", tmp_path / "sft.parquet", source=metamath_file, mode="sft", missing_box="keep")
    sft_rows = _read(tmp_path / "sft.parquet")
    assert (sft.rows_written, dict(sft.skipped), dict(sft.changed)) == (3, {"unparsable_answer": 2}, {})
    assert {row["extra_info"]["split"] for row in sft_rows} == {"sft_stream"}
    assert [row["extra_info"]["target"] for row in sft_rows] == [METAMATH[i]["response"] for i in (0, 1, 4)]


def _luffy_row(question, answer, trace, system="Think in <think> tags."):
    return {"data_source": "openr1", "prompt": [{"content": system, "role": "system"},
                                                {"content": question, "role": "user"}],
            "target": [{"content": trace, "role": "assistant"}], "ability": "math",
            "reward_model": {"ground_truth": answer, "style": "rule"}, "extra_info": {"index": 0, "split": "default"}}


def _openr1_220k_row(problem, answer, generations, correct, complete):
    return {"problem": problem, "solution": "ref", "answer": answer, "problem_type": "Algebra",
            "question_type": "math-word-problem", "source": "olympiads", "uuid": f"u-{problem}",
            "is_reasoning_complete": complete, "generations": generations, "correctness_math_verify": correct,
            "correctness_llama": None, "finish_reasons": None, "correctness_count": sum(correct),
            "messages": [{"content": problem, "role": "user"}, {"content": generations[0], "role": "assistant"}]}


def test_openr1_luffy_shape_drops_system_prompt_and_unwraps_boxed_truth(tmp_path):
    source = _parquet(tmp_path / "openr1.parquet", [
        _luffy_row("Find 6*7.", "42", "<think>6*7</think> " + BOX + "{42}"),
        _luffy_row("Find 2^3.", "\\boxed{8}", "<think>cube</think> eight"),
        _luffy_row("No truth.", "", "<think>?</think>"),
    ])
    report = prepare("openr1", tmp_path / "out.parquet", source=source)
    rows = _read(tmp_path / "out.parquet")
    assert (report.rows_written, dict(report.skipped), dict(report.changed)) == (
        2, {"missing_answer": 1}, {"boxed_answer_added": 1})
    assert {row["data_source"] for row in rows} == {"Elliott/Openr1-Math-46k-8192"}
    assert _question(rows[0]) == f"Find 6*7.\n\n{BOXED_INSTRUCTION}"  # system turn gone, our instruction added
    assert rows[1]["reward_model"]["ground_truth"] == "8"
    assert rows[1]["extra_info"]["target"].endswith("$\\boxed{8}$.")


def test_openr1_220k_shape_uses_first_verified_complete_trace(tmp_path):
    source = _parquet(tmp_path / "openr1_220k.parquet", [
        _openr1_220k_row("P1", "3", ["wrong " + BOX + "{2}", "right " + BOX + "{3}"], [False, True], [True, True]),
        _openr1_220k_row("P2", "5", ["cut " + BOX + "{5}", "done " + BOX + "{5}"], [True, True], [False, True]),
        _openr1_220k_row("P3", "1", ["no " + BOX + "{0}", "no " + BOX + "{2}"], [False, False], [True, True]),
    ])
    report = prepare("openr1", tmp_path / "out.parquet", source=source)
    rows = _read(tmp_path / "out.parquet")
    assert (report.rows_written, dict(report.skipped)) == (2, {"no_verified_demonstration": 1})
    assert {row["data_source"] for row in rows} == {"open-r1/OpenR1-Math-220k"}
    assert [row["extra_info"]["target"] for row in rows] == ["right \\boxed{3}", "done \\boxed{5}"]
    assert rows[0]["extra_info"]["source"] == "olympiads"


@pytest.mark.parametrize(
    ("name", "rows", "message"),
    [
        ("gsm8k", [{"question": "q"}], r"gsm8k: .*no column 'answer'"),
        ("deepmath", [{"question": "q", "final_answer": "1", "difficulty": 1.0, "topic": "t"}],
         r"deepmath: .*no column 'r1_solution_1'"),
        ("metamathqa", [{"query": "q", "response": "r", "type": "t"}], r"metamathqa: .*'original_question'"),
        ("aime2024", [{"Question": "q", "Answer": 1}], r"aime2024: .*'Problem'/'problem'"),
        ("math500", [{"problem": "p", "answer": "1"}], r"math500: .*'subject' or 'level' or 'unique_id'"),
        ("openr1", [{"problem": "p", "answer": "1"}], r"openr1: .*'generations'"),
    ],
)
def test_missing_column_names_the_column_and_the_dataset(tmp_path, name, rows, message):
    source = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(MissingColumnsError, match=message):
        prepare(name, tmp_path / "out.parquet", source=source)
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("gsm8k", {"solution": "2"}, "option solution does not apply to dataset gsm8k"),
        ("deepmath", {"mode": "sft"}, "option mode does not apply to dataset deepmath"),
        ("deepmath", {"max_demo_tokens": 10}, "needs a tokenizer"),
        ("deepmath", {"max_demo_tokens": 10, "tokenizer": "x"}, "explicit long_demos policy"),
        ("deepmath", {"long_demos": "drop"}, "only apply with max_demo_tokens"),
        ("deepmath", {"min_difficulty": 5.0, "max_difficulty": 2.0}, "min_difficulty 5.0 is above"),
        ("gsm8k", {"missing_box": "drop"}, "gsm8k has no demonstrations"),
        ("gsm8k", {"template": "chatml"}, "unknown prompt template 'chatml'"),
        ("gsm8k", {"colour": "red"}, "valid settings"),
        ("mmlu", {}, "unknown dataset 'mmlu'"),
    ],
)
def test_bad_options_are_clear_errors(gsm8k_file, deepmath_file, tmp_path, name, settings, message):
    source = deepmath_file if name == "deepmath" else gsm8k_file
    with pytest.raises(ValueError, match=message):
        prepare(name, tmp_path / "out.parquet", source=source, **settings)


def test_every_row_skipped_is_an_error_with_the_report(tmp_path):
    source = _jsonl(tmp_path / "bad.jsonl", [GSM8K[2], GSM8K[3]])
    with pytest.raises(PrepareError, match=r"no rows left(.|\n)*missing_answer 1, unparsable_answer 1"):
        prepare("gsm8k", tmp_path / "out.parquet", source=source)


def test_unreachable_hub_dataset_says_to_pass_a_file(monkeypatch, tmp_path):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(PrepareError, match=r"'openai/gsm8k'.*split 'test'.*--source FILE"):
        prepare("gsm8k", tmp_path / "out.parquet")
    with pytest.raises(PrepareError, match="no such file"):
        load_source(str(tmp_path / "missing.jsonl"), "train")


def test_limit_reads_only_the_first_rows(gsm8k_file, tmp_path):
    report = prepare("gsm8k", tmp_path / "out.parquet", source=gsm8k_file, limit=2)
    assert (report.rows_read, report.rows_written) == (2, 2)


def test_cli_writes_parquet_and_prints_the_report(gsm8k_file, tmp_path):
    out = tmp_path / "out.parquet"
    done = subprocess.run([sys.executable, "-m", "hpt.data.prepare", "gsm8k", "--source", gsm8k_file, "--out",
                           str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "gsm8k -> " in done.stdout and "read 5, wrote 3" in done.stdout
    assert "missing_answer 1, unparsable_answer 1" in done.stdout
    assert len(_read(out)) == 3


def test_cli_tokenizer_dir_template_and_errors(deepmath_file, tmp_path, capsys):
    tokenizer_dir = tmp_path / "tok"
    build_tokenizer().save_pretrained(tokenizer_dir)
    out = tmp_path / "dm.parquet"
    assert cli_main(["deepmath", "--source", deepmath_file, "--out", str(out), "--template", "qwen3_nonthinking",
                     "--max-demo-tokens", "40", "--tokenizer", str(tokenizer_dir), "--long-demos", "drop",
                     "--solution", "2", "--max-difficulty", "8"]) == 0
    printed = capsys.readouterr().out
    assert "demonstration_too_long" not in printed and "difficulty_out_of_range 1" in printed
    assert "train with: ++data.apply_chat_template_kwargs.enable_thinking=false" in printed
    assert cli_main(["gsm8k", "--source", deepmath_file, "--out", str(tmp_path / "x.parquet")]) == 2
    assert "gsm8k: the source" in capsys.readouterr().err


def test_templates_ask_for_a_box_and_qwen3_only_changes_the_config():
    question = "What is 1+1?"
    assert all(BOX in TEMPLATES[name].render(question) for name in TEMPLATES)
    assert build_prompt(question, "qwen3_nonthinking") == build_prompt(question) == [
        {"role": "user", "content": f"{question}\n\n{BOXED_INSTRUCTION}"}]
    assert TEMPLATES["qwen3_nonthinking"].overrides == ("++data.apply_chat_template_kwargs.enable_thinking=false",)
    assert set(DATASETS) == {"deepmath", "metamathqa", "gsm8k", "math500", "aime2024", "openr1"}
    assert PrepareOptions().template == "boxed_instruct"


def _hpt_config(*overrides: str, primary: str | None = None):
    from hydra import compose, initialize_config_module

    from hpt.config import resolvers
    from hpt.main import CPU_OVERLAY

    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        return compose(primary or CPU_OVERLAY, overrides=list(overrides))


@pytest.mark.parametrize("primary", ["hpt_trainer", "hpt_trainer_cpu"])
def test_qwen3_override_sets_verls_chat_template_kwargs(primary):
    config = _hpt_config(TEMPLATES["qwen3_nonthinking"].overrides[0], primary=primary)
    assert dict(config.data.apply_chat_template_kwargs) == {"enable_thinking": False}


def test_passthrough_chat_template_emits_the_base_prompt_verbatim():
    from hpt.data.templates import PASSTHROUGH_CHAT_TEMPLATE

    tokenizer = build_tokenizer()
    messages = build_prompt("Q1+1=?", "boxed_base")
    text = tokenizer.apply_chat_template(messages, chat_template=PASSTHROUGH_CHAT_TEMPLATE, tokenize=False,
                                         add_generation_prompt=True)
    assert text == messages[0]["content"]
    demo = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": "2"}], tokenize=False,
                                         chat_template=PASSTHROUGH_CHAT_TEMPLATE)
    assert demo == messages[0]["content"] + "2<eos>"


@pytest.mark.parametrize("name", ["deepmath", "gsm8k"])
def test_prepared_parquet_loads_in_verls_rl_dataset(deepmath_file, gsm8k_file, tmp_path, name):
    from verl.trainer.ppo.utils import create_rl_dataset

    out = tmp_path / f"{name}.parquet"
    report = prepare(name, out, source=deepmath_file if name == "deepmath" else gsm8k_file)
    data_config = _hpt_config("data.max_prompt_length=1024").data
    dataset = create_rl_dataset([str(out)], data_config, build_tokenizer(), None)
    assert len(dataset) == report.rows_written
    item = dataset[0]
    row = _read(out)[0]
    assert [dict(turn) for turn in item["raw_prompt"]] == [dict(turn) for turn in row["prompt"]]
    assert item["extra_info"]["target"] == row["extra_info"]["target"]
    assert item["reward_model"]["ground_truth"] == row["reward_model"]["ground_truth"]
    assert item["data_source"] == row["data_source"]


def test_metamathqa_sft_rows_feed_hpts_sft_stream(metamath_file, tmp_path):
    from hpt.trainer.sft_stream import SFTStream, SFTStreamConfig

    out = tmp_path / "sft.parquet"
    prepare("metamathqa", out, source=metamath_file, mode="sft")
    data_config = _hpt_config("data.max_prompt_length=1024").data
    stream = SFTStream(SFTStreamConfig(train_files=(str(out),), batch_size=2, shuffle=False), data_config,
                       build_tokenizer(), hf_model_type="qwen3")
    assert len(stream) == 3 and stream.draw(3) == [0, 1, 2]

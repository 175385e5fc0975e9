"""The agent toy build: its layout, a tool config verl loads against the built index, a warm-start report whose
shares add up, and idempotence (a rebuild with the same settings is skipped, other settings refused)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hpt.toy import build_agent
from hpt.toy.agent_rollout import RolloutLimits
from hpt.toy.agent_warm_start import AgentWarmStartSettings, agent_warm_start, warm_start_turns

ARGS = ["--entities", "12", "--train-size", "8", "--val-size", "4", "--test-size", "4", "--warm-start-steps", "0"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("agent")
    build_agent.main(["--out", str(out), *ARGS])
    return out


def test_layout_holds_model_data_index_tool_config_and_warm_model(built: Path) -> None:
    for path in (
        "model/config.json",
        "model/tokenizer.json",
        "data/corpus.jsonl",
        "index/hpt_index.json",
        "tools/search.yaml",
    ):
        assert (built / path).is_file(), path
    sizes = {split: len(pd.read_parquet(built / "data" / f"{split}.parquet")) for split in ("train", "val", "test")}
    assert sizes == {"train": 8, "val": 4, "test": 4}
    assert len((built / "data" / "corpus.jsonl").read_text().splitlines()) == 12 * 4


def test_tool_config_loads_in_verl_and_searches_the_built_index(built: Path) -> None:
    import asyncio

    from verl.tools.tool_registry import initialize_tools_from_config

    (tool,) = initialize_tools_from_config(str(built / "tools" / "search.yaml"))
    fact = json.loads((built / "data" / "corpus.jsonl").read_text().splitlines()[5])["contents"]
    response, _, _ = asyncio.run(tool.execute("id", {"query": fact.rsplit(" ", 1)[0]}))
    assert response.text == fact


def test_warm_start_writes_a_report_whose_shares_add_up_and_is_skipped_when_present(built: Path, tmp_path) -> None:
    settings = AgentWarmStartSettings(steps=2, batch_size=4, limits=RolloutLimits(response_length=48))
    first = agent_warm_start(built / "model", built / "data", built / "index", tmp_path / "warm", settings)
    assert (tmp_path / "warm" / "config.json").is_file() and not first.skipped
    again = agent_warm_start(built / "model", built / "data", built / "index", tmp_path / "warm", settings)
    assert again.skipped and again.greedy_accuracy == first.greedy_accuracy
    report = json.loads((tmp_path / "warm" / "warm_start_report.json").read_text())
    assert report["steps"] == 2 and report["eval_prompts"] == 8 and report["samples_per_prompt"] == 4
    assert report["mixed_share"] + report["zero_share"] + report["all_share"] == pytest.approx(1.0)
    for key in ("greedy_accuracy", "greedy_val_accuracy", "greedy_tool_call_share", "sampled_tool_call_share"):
        assert 0.0 <= report[key] <= 1.0


def test_rebuild_is_skipped_and_other_settings_are_refused(built: Path, capsys: pytest.CaptureFixture) -> None:
    build_agent.main(["--out", str(built), *ARGS])
    out = capsys.readouterr().out
    assert out.count("skipped") == 4 and "max_response_length=256" in out
    with pytest.raises(SystemExit, match="pass --force"):
        build_agent.main(["--out", str(built), *ARGS, "--seed", "1"])


def test_warm_start_mix_replaces_about_the_share_with_tool_free_guesses(built: Path) -> None:
    rows = pd.read_parquet(built / "data" / "train.parquet").to_dict("records") * 50  # 400 rows
    mixed = warm_start_turns(rows, 0.3, seed=0)
    guesses = [turns for turns in mixed if len(turns) == 1]
    assert 0.22 < len(guesses) / len(rows) < 0.38
    assert all("<tool_call>" not in turns[0]["content"] for turns in guesses)
    for row, turns in zip(rows, mixed, strict=True):
        if len(turns) > 1:  # every demonstration calls the tool: the others are kept unchanged
            assert turns == json.loads(row["extra_info"]["target_turns"])
    assert warm_start_turns(rows, 0.3, seed=0) == mixed and warm_start_turns(rows, 0.3, seed=1) != mixed
    assert warm_start_turns(rows, 0.0, seed=0) == [json.loads(r["extra_info"]["target_turns"]) for r in rows]
    with pytest.raises(ValueError, match="no_tool_share"):
        warm_start_turns(rows, 1.0, seed=0)

"""Start-up checks of tool-agent data (hpt.config.agent_checks), each failure naming its fix."""

import json

import pandas as pd
import pytest
from hydra import compose, initialize_config_module

from hpt.config import resolvers
from hpt.config.agent_checks import check_agent_data
from hpt.main import CPU_OVERLAY
from hpt.toy.tiny_model import save_tiny_model
from hpt.toy.tool_model import save_tool_model, tool_call_text
from tests.unit.test_multiturn_demo_on_cpu import SEARCH_TOOL

GOOD_TURNS = [{"role": "assistant", "content": tool_call_text("search", {"query": "zorbex moons"})},
              {"role": "tool", "content": "zorbex has 4 moons"}, {"role": "assistant", "content": "#4"}]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("agent_checks")
    save_tool_model(root / "tool_model", seed=0)
    save_tiny_model(root / "tiny_model", seed=0)
    return root


def _data(root, name: str, turns, agent: str = "tool_agent") -> str:
    row = {"data_source": "toy/facts", "agent_name": agent, "prompt": [{"role": "user", "content": "moons?"}],
           "reward_model": {"ground_truth": "4"},
           "extra_info": {"index": 0, "target_turns": turns if isinstance(turns, str) else json.dumps(turns)}}
    path = root / f"{name}.parquet"
    pd.DataFrame([row]).to_parquet(path)
    return str(path)


def _config(root, data: str, *overrides: str, model: str = "tool_model", tools: bool = True):
    resolvers.register()
    tool = [f"actor_rollout_ref.rollout.multi_turn.function_tool_path={SEARCH_TOOL}"] if tools else []
    with initialize_config_module("hpt.config", version_base=None):
        return compose(CPU_OVERLAY, overrides=[
            f"actor_rollout_ref.model.path={root / model}", f"data.train_files={data}", f"data.val_files={data}",
            "data.max_prompt_length=96", "data.max_response_length=160", *tool, *overrides])


def test_good_tool_data_passes(world):
    check_agent_data(_config(world, _data(world, "good", GOOD_TURNS)))


def test_tool_rows_without_tools_name_the_tool_keys(world):
    with pytest.raises(ValueError, match="no tools are configured.*function_tool_path"):
        check_agent_data(_config(world, _data(world, "good", GOOD_TURNS), tools=False))


def test_a_template_without_tool_roles_is_refused_early(world):
    with pytest.raises(ValueError, match="cannot render a tool conversation.*custom_chat_template"):
        check_agent_data(_config(world, _data(world, "good", GOOD_TURNS), "data.max_prompt_length=40",
                                 "data.max_response_length=40", model="tiny_model"))


def test_trajectories_longer_than_the_model_positions_are_refused(world):
    with pytest.raises(ValueError, match="max_position_embeddings=512.*= 600"):
        check_agent_data(_config(world, _data(world, "good", GOOD_TURNS), "data.max_prompt_length=300",
                                 "data.max_response_length=300"))


@pytest.mark.parametrize("turns, message", [
    ("{not json", "row 0: extra_info.target_turns is not JSON"),
    (GOOD_TURNS[1:], "row 0: target_turns starts with a tool message"),
    ([{"role": "assistant", "content": tool_call_text("browse", {"url": "x"})}, GOOD_TURNS[1], GOOD_TURNS[2]],
     r"row 0: assistant message 0 calls unknown tool\(s\) \['browse'\]"),
])
def test_bad_target_turns_are_refused_with_file_and_row(world, turns, message):
    with pytest.raises(ValueError, match=message):
        check_agent_data(_config(world, _data(world, "bad", turns)))


def test_target_turns_on_a_single_turn_row_are_refused(world):
    with pytest.raises(ValueError, match="agent_name='single_turn_agent'.*agent_name='tool_agent'"):
        check_agent_data(_config(world, _data(world, "single", GOOD_TURNS, agent="single_turn_agent")))

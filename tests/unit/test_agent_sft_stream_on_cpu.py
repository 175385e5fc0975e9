"""The SFT stream on tool-agent rows: prompts templated with the tool schemas, target_turns replayed."""

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from transformers import AutoTokenizer
from verl import DataProto
from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

from hpt.config import resolvers
from hpt.main import CPU_OVERLAY
from hpt.toy.facts import make_rows, make_world, write_parquet
from hpt.toy.tool_model import save_tool_model
from hpt.trainer.multiturn import DemoSource, TurnLimits, TurnReplayer, load_tools, parse_turns
from hpt.trainer.sft_stream import SFTStream, SFTStreamConfig
from tests.unit.test_multiturn_demo_on_cpu import SEARCH_TOOL

ROWS, PROMPT_WIDTH, RESPONSE_WIDTH = 4, 128, 256


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("agent_stream")
    save_tool_model(root / "model", seed=0)
    write_parquet(make_rows(make_world(10, 0), 12, 0, "train", (1, 1, 1)), root / "stream.parquet")
    tokenizer = AutoTokenizer.from_pretrained(root / "model")
    builder = create_continuous_token_builder(tokenizer, hf_model_type="qwen3")
    tools = load_tools(resolvers_config(root).actor_rollout_ref.rollout.multi_turn)
    replayer = TurnReplayer(builder, tokenizer, tools, "hermes", TurnLimits())
    return root, tokenizer, replayer


def resolvers_config(root):
    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        return compose(CPU_OVERLAY, overrides=[
            "data.max_prompt_length=128", "data.max_response_length=256",
            f"actor_rollout_ref.rollout.multi_turn.function_tool_path={SEARCH_TOOL}"])


def _batch(tokenizer) -> DataProto:
    rows = 4
    prompt_mask = (torch.arange(PROMPT_WIDTH)[None] >= 100).long().expand(rows, -1)
    response_mask = (torch.arange(RESPONSE_WIDTH)[None] < 6).long().expand(rows, -1)
    attention = torch.cat([prompt_mask, response_mask], 1)
    batch = DataProto.from_single_dict({
        "prompts": torch.full((rows, PROMPT_WIDTH), 5) * prompt_mask,
        "responses": torch.full((rows, RESPONSE_WIDTH), 5), "response_mask": response_mask,
        "input_ids": torch.zeros(rows, PROMPT_WIDTH + RESPONSE_WIDTH).long(), "attention_mask": attention,
        "position_ids": (attention.cumsum(1) - 1).clamp(min=0), "rm_scores": torch.zeros(rows, RESPONSE_WIDTH),
    })
    rl = {"data_source": "hpt/facts", "extra_info": {"index": 99}, "raw_prompt": [{"role": "user", "content": "q"}],
          "agent_name": "tool_agent"}
    for key, value in rl.items():
        batch.non_tensor_batch[key] = np.fromiter([value] * rows, dtype=object, count=rows)
    batch.non_tensor_batch["uid"] = np.array([f"q{i}" for i in range(rows)], dtype=object)
    return batch


def test_stream_rows_of_tool_rows_carry_the_tool_prompt_and_the_replayed_trajectory(setup):
    root, tokenizer, replayer = setup
    config = resolvers_config(root)
    stream = SFTStream(SFTStreamConfig(train_files=(str(root / "stream.parquet"),), batch_size=ROWS, shuffle=False),
                       config.data, tokenizer, hf_model_type="qwen3", demo_source=DemoSource(tokenizer, replayer))
    rows, truncated = stream.rows(_batch(tokenizer), tokenizer, scale=1.0)
    assert len(rows) == ROWS and truncated == 0
    for i in range(ROWS):
        messages = list(rows.non_tensor_batch["raw_prompt"][i])
        prompt = rows.batch["prompts"][i][rows.batch["attention_mask"][i, :PROMPT_WIDTH].bool()].tolist()
        assert prompt == replayer.builder.build_initial_tokens(messages, tools=replayer.schemas)
        assert "Tools: search(query)" in tokenizer.decode(prompt)
        turns = parse_turns(rows.non_tensor_batch["extra_info"][i]["target_turns"], "row")
        demo = replayer.replay(prompt, messages, turns, RESPONSE_WIDTH)
        length = len(demo.token_ids)
        assert rows.batch["responses"][i, :length].tolist() == list(demo.token_ids)
        assert rows.batch["response_mask"][i, :length].tolist() == list(demo.loss_mask)
        assert 0 in demo.loss_mask and int(rows.batch["attention_mask"][i, PROMPT_WIDTH:].sum()) == length

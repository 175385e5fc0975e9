"""The tool-capable tiny model: its template renders tool trajectories as written, keeps tool markers through
decoding, is prefix-stable, and verl's Continuous-Token builder turns it into the stream the template renders."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoConfig, AutoTokenizer

from hpt.toy.tool_model import CHARACTERS, MAX_POSITIONS, TOOL_MARKERS, save_tool_model, tool_call_text

SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "look up a fact",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}
CALL = {"id": "c0", "type": "function", "function": {"name": "search", "arguments": {"query": "zorbex moons"}}}
TRAJECTORY = [
    {"role": "user", "content": "zorbex moons?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": "zorbex moons 4"},
    {"role": "assistant", "content": "#4"},
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tool_model")
    save_tool_model(out, seed=0)
    return out


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path):
    return AutoTokenizer.from_pretrained(model_dir)


def _render(tokenizer, messages, **kwargs) -> str:
    return tokenizer.apply_chat_template(messages, tools=[SEARCH], tokenize=False, **kwargs)


def test_config_is_qwen3_with_room_for_multi_turn_trajectories(model_dir: Path, tokenizer) -> None:
    config = AutoConfig.from_pretrained(model_dir)
    assert config.model_type == "qwen3"
    assert config.max_position_embeddings == MAX_POSITIONS >= 512
    assert config.vocab_size == len(tokenizer) == 3 + len(CHARACTERS) + 1 + len(TOOL_MARKERS) == 104
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"


def test_template_renders_a_two_turn_tool_trajectory_as_written(tokenizer) -> None:
    expected = (
        "<|im_start|>system\nTools: search(query)<|im_end|>\n"
        "<|im_start|>user\nzorbex moons?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>{"name": "search", "arguments": {"query": "zorbex moons"}}'
        "</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>zorbex moons 4</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n#4<|im_end|>\n"
    )
    assert _render(tokenizer, TRAJECTORY) == expected
    assert tool_call_text("search", {"query": "zorbex moons"}) in expected


def test_template_groups_consecutive_tool_messages_and_keeps_a_given_system_prompt(tokenizer) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [CALL, CALL]},
        {"role": "tool", "content": "a"},
        {"role": "tool", "content": "b"},
    ]
    text = _render(tokenizer, messages, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nbe brief\nTools: search(query)<|im_end|>\n<|im_start|>user\nq")
    assert text.endswith(
        "<|im_start|>user\n<tool_response>a</tool_response><tool_response>b</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    without_tools = tokenizer.apply_chat_template(messages[:2], tokenize=False)
    assert without_tools == "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nq<|im_end|>\n"


def test_template_is_prefix_stable(tokenizer) -> None:
    for k in range(1, len(TRAJECTORY)):
        assert _render(tokenizer, TRAJECTORY).startswith(_render(tokenizer, TRAJECTORY[:k]))


def test_tool_markers_and_newlines_survive_decoding_without_special_tokens(tokenizer) -> None:
    text = _render(tokenizer, TRAJECTORY)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    for marker in TOOL_MARKERS:
        assert tokenizer.convert_tokens_to_ids(marker) in ids, "each marker is one token"
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded == text.replace("<|im_start|>", "").replace("<|im_end|>", "")
    assert "<tool_call>" in decoded and "</tool_response>" in decoded


def test_verl_continuous_token_stream_equals_the_template_render(tokenizer) -> None:
    """What ToolAgentLoop builds (prompt, generated call + eos, tool group, answer + eos) is the rendered text."""
    from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

    builder = create_continuous_token_builder(tokenizer, hf_model_type="qwen3")
    assert type(builder).__name__.startswith("Qwen")
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    stream = builder.build_initial_tokens(TRAJECTORY[:1], tools=[SEARCH])
    stream = builder.merge_assistant_tokens(
        stream, encode(tool_call_text("search", {"query": "zorbex moons"})) + [tokenizer.eos_token_id]
    ).token_ids
    stream = builder.merge_context_tokens(TRAJECTORY[:2], TRAJECTORY[:3], stream, tools=[SEARCH]).token_ids
    stream = builder.merge_assistant_tokens(stream, encode("#4") + [tokenizer.eos_token_id]).token_ids
    assert stream == encode(_render(tokenizer, TRAJECTORY).removesuffix("\n"))

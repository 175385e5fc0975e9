"""Start-up checks for tool-agent data: tools configured, a chat template that renders tool turns, room for
whole trajectories, and well-formed ``extra_info.target_turns`` demonstrations.

Each of these would otherwise fail mid-run (a template without tool roles raises inside the agent loop on
the first tool result) or silently (``tool_agent`` rows without tools degrade to single-turn rollouts; a
model with too few positions cannot score the end of a long trajectory).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

logger = logging.getLogger(__name__)

MULTI_TURN = "actor_rollout_ref.rollout.multi_turn"
FILE_KEYS = ("train_files", "val_files", "sft_stream.train_files")
PROBE_MESSAGES = [
    {"role": "system", "content": "probe system"},
    {"role": "user", "content": "probe question"},
]


def _rows(path: Path) -> list[tuple[str | None, Any]]:
    """(agent_name, extra_info) of every row of a parquet file."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    columns = [c for c in ("agent_name", "extra_info") if c in names]
    table = pq.read_table(path, columns=columns).to_pydict() if columns else {}
    count = pq.ParquetFile(path).metadata.num_rows
    agents = table.get("agent_name", [None] * count)
    infos = table.get("extra_info", [None] * count)
    return list(zip(agents, infos, strict=True))


def _local_files(config: DictConfig) -> list[Path]:
    from hpt.data.checks import local_parquets

    return [path for key in FILE_KEYS for path in local_parquets(OmegaConf.select(config.data, key))]


def check_agent_data(config: DictConfig) -> None:
    """Every check above, for the local data files; nothing to do without ``tool_agent`` rows."""
    from hpt.trainer.multiturn import TOOL_AGENT, TOOL_PATH_KEYS, target_turns

    rows = {path: _rows(path) for path in _local_files(config)}
    for path, file_rows in rows.items():
        for i, (agent, info) in enumerate(file_rows):
            if target_turns(info) is not None and agent not in (TOOL_AGENT, None):
                raise ValueError(
                    f"{path} row {i}: extra_info.target_turns is a tool trajectory but agent_name={agent!r}; set "
                    f"agent_name={TOOL_AGENT!r} (verl's tool agent loop) or give a single-turn extra_info.target"
                )
    tool_files = [path for path, file_rows in rows.items() if any(agent == TOOL_AGENT for agent, _ in file_rows)]
    if not tool_files:
        return
    multi_turn = config.actor_rollout_ref.rollout.multi_turn
    if not any(multi_turn.get(key) for key in TOOL_PATH_KEYS):
        raise ValueError(
            f"{tool_files[0]} has agent_name={TOOL_AGENT!r} rows but no tools are configured: set "
            f"{MULTI_TURN}.tool_config_path=<tools yaml> (BaseTool classes) or {MULTI_TURN}.function_tool_path="
            "<file with @function_tool functions>; without tools the rollouts cannot call any"
        )
    _check_positions(config)
    replayer = _replayer(config)
    _probe_template(replayer, config)
    _check_turns(rows, replayer)


def _check_positions(config: DictConfig) -> None:
    """A whole trajectory (prompt + every turn) must fit the model's positions."""
    from verl.utils.fs import copy_to_local
    from transformers import AutoConfig

    model_path = copy_to_local(config.actor_rollout_ref.model.path, use_shm=False)
    positions = getattr(AutoConfig.from_pretrained(model_path, trust_remote_code=True), "max_position_embeddings", None)
    needed = int(config.data.max_prompt_length) + int(config.data.max_response_length)
    if positions is not None and positions < needed:
        raise ValueError(
            f"the model has max_position_embeddings={positions}, fewer than data.max_prompt_length + "
            f"data.max_response_length = {needed} that a tool trajectory may fill (the rollout server generates up "
            "to that); lower the lengths or use a model with more positions"
        )


def _replayer(config: DictConfig):
    """The trainer's tool set-up (tools, parser, CT builder), built here to check with."""
    from transformers import AutoConfig
    from verl.utils import hf_processor, hf_tokenizer
    from verl.utils.fs import copy_to_local

    from hpt.trainer.multiturn import demo_source
    from hpt.trainer.sft_stream import prompt_builder

    model_path = copy_to_local(config.actor_rollout_ref.model.path, use_shm=False)
    tokenizer = hf_tokenizer(model_path, trust_remote_code=True)
    custom = config.actor_rollout_ref.model.get("custom_chat_template")
    if custom is not None:  # the agent loop applies it the same way
        tokenizer.chat_template = custom
    model_type = getattr(AutoConfig.from_pretrained(model_path, trust_remote_code=True), "model_type", None)
    processor = hf_processor(model_path, trust_remote_code=True)  # a VLM's builder renders through it; None for text
    return demo_source(config, tokenizer, prompt_builder(tokenizer, config.data, processor, model_type)).replayer


def _probe_template(replayer, config: DictConfig) -> None:
    """Render what a tool rollout renders: a prompt with the tools, then a tool result after a tool call."""
    name = sorted(replayer.tool_names)[0] if replayer.tool_names else "tool"
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": name, "arguments": {}}}]}
    try:
        prompt = replayer.builder.build_initial_tokens(PROBE_MESSAGES, tools=replayer.schemas)
        history = [*PROBE_MESSAGES, call]
        replayer.builder.merge_context_tokens(history, [*history, {"role": "tool", "content": "probe result"}],
                                              prompt, tools=replayer.schemas)
    except Exception as exc:  # any template failure means the agent loop would fail the same way
        raise ValueError(
            f"the chat template of {config.actor_rollout_ref.model.path} cannot render a tool conversation "
            f"({type(exc).__name__}: {exc}). The tool agent renders tools=, system, assistant messages with "
            "tool_calls (arguments as a dict) and tool messages, and needs rendering to be prefix-stable; use a "
            "model whose template does (Qwen2.5/Qwen3 do; hpt.toy.tool_model is a tiny one) or set "
            "actor_rollout_ref.model.custom_chat_template"
        ) from exc


def _check_turns(rows: dict[Path, list], replayer) -> None:
    """Every ``target_turns`` demonstration parses, alternates as a rollout does and calls known tools."""
    from hpt.trainer.multiturn import parse_turns, target_turns

    checked = 0
    for path, file_rows in rows.items():
        for i, (_, info) in enumerate(file_rows):
            raw = target_turns(info)
            if raw is None:
                continue
            where = f"{path} row {i}"
            turns = parse_turns(raw, where)
            replayer.check(turns, where)
            _check_images(turns, where)
            checked += 1
    logger.info("checked %d multi-turn demonstrations (extra_info.target_turns)", checked)


def _check_images(turns: list[dict], where: str) -> None:
    """Every observation image a demonstration names opens (a visual-RAG page or crop)."""
    from hpt.data.images import ImageBounds, row_image_problem
    from hpt.trainer.multiturn import IMAGES_KEY

    for i, message in enumerate(turns):
        problem = row_image_problem(message.get(IMAGES_KEY), ImageBounds())
        if problem is not None:
            raise ValueError(
                f"{where}: message {i} of extra_info.target_turns: {problem}; rebuild the data (python -m "
                "hpt.toy.build_vrag for the toy) or fix the path"
            )

"""A separate SFT stream: demonstrations not paired with the RL prompts, mixed into every update.

HPT's MetaMathQA-beside-DeepMath set-up trains on a second parquet of (prompt, demonstration) pairs
that never go through rollout. Each step draws ``data.sft_stream.batch_size`` of them and appends
them to the rebuilt batch as SFT rows weighted ``coef * lambda``, so they share the update (and its
global token normalisers) with the gated rows.

The prompts go through verl's own dataset class with the RL data's ``data.*`` settings (prompt key,
overlong-prompt filter, chat-template kwargs) and through verl's Continuous Token builder, the same
tokenisation the agent loop applies to RL prompts, then are left-padded to the rollout batch's
prompt width: a stream prompt has exactly the tokens the policy would see in a rollout. Text-only.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from verl import DataProto
from verl.trainer.ppo.utils import create_rl_dataset
from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

from hpt.padding import left_pad
from hpt.trainer.batch import demonstration_rows, stamp_weights
from hpt.trainer.multiturn import DemoSource, has_demonstration

logger = logging.getLogger(__name__)

KEY = "data.sft_stream"
TARGET_COLUMN = "extra_info.target (or extra_info.target_turns on agent_name=tool_agent rows)"


@dataclass(frozen=True)
class SFTStreamConfig:
    """``data.sft_stream``: which demonstrations, how many per step, and their weight."""

    train_files: tuple[str, ...]
    batch_size: int = 16
    coef: float = 1.0
    shuffle: bool = True
    seed: int = 1

    def __post_init__(self) -> None:
        if not self.train_files:
            raise ValueError(f"{KEY}.train_files is an empty list; give parquet paths, or null to disable the stream")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"{KEY}.batch_size must be an integer >= 1 (rows per step), got {self.batch_size!r}")
        if isinstance(self.coef, bool) or not isinstance(self.coef, int | float) or not math.isfinite(self.coef):
            raise ValueError(f"{KEY}.coef must be a finite number, got {self.coef!r}")
        if self.coef < 0:
            raise ValueError(f"{KEY}.coef must be >= 0 (0 turns the stream's loss off), got {self.coef}")
        if not isinstance(self.shuffle, bool):
            raise ValueError(f"{KEY}.shuffle must be true or false, got {self.shuffle!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"{KEY}.seed must be an integer, got {self.seed!r}")

    @classmethod
    def from_data_config(cls, data_cfg: DictConfig) -> "SFTStreamConfig | None":
        """The stream's settings from the ``data`` config group; None when ``train_files`` is null."""
        group = OmegaConf.to_container(data_cfg.sft_stream, resolve=True)
        files = group.pop("train_files")
        if files is None:
            return None
        if isinstance(files, str):
            files = [files]
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise ValueError(f"{KEY}.train_files must be a path or a list of paths (null = off), got {files!r}")
        unknown = set(group) - {"batch_size", "coef", "shuffle", "seed"}
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)} under {KEY}; valid: batch_size, coef, shuffle, seed")
        return cls(train_files=tuple(files), **group)

    def check_files(self) -> None:
        """Fail before any compute when a local stream file is missing or has no rows.

        Remote paths (``hdfs://...``) are left to verl's download step.
        """
        import pyarrow.parquet as pq

        for name in self.train_files:
            if "://" in name:
                continue
            path = Path(name).expanduser()
            if not path.is_file():
                raise ValueError(f"{KEY}.train_files: {name} does not exist; fix the path or set it to null")
            if path.suffix == ".parquet" and pq.ParquetFile(path).metadata.num_rows == 0:
                raise ValueError(
                    f"{KEY}.train_files: {name} has no rows; the SFT stream needs demonstrations "
                    "(fill the file, or set the key to null to train without a stream)"
                )


class SFTStream:
    """Draws ``batch_size`` demonstration rows per step, reshuffled every epoch, cycling forever.

    Its order comes from its own ``torch.Generator`` seeded by ``seed``: deterministic and
    independent of the RL dataloader; ``state_dict`` carries it through a checkpoint. Rows without
    ``extra_info.target`` are skipped.
    """

    def __init__(
        self,
        config: SFTStreamConfig,
        data_config: DictConfig,
        tokenizer,
        processor=None,
        hf_model_type: str | None = None,
        demo_source: DemoSource | None = None,
    ):
        config.check_files()
        self.config = config
        self._dataset = create_rl_dataset(
            list(config.train_files), data_config, tokenizer, processor, is_train=True, max_samples=-1
        )
        if len(self._dataset) == 0:
            raise ValueError(
                f"{KEY}.train_files {list(config.train_files)}: no rows (the files are empty, or every prompt is "
                f"longer than data.max_prompt_length={data_config.max_prompt_length} and "
                "data.filter_overlong_prompts dropped it); add rows or raise data.max_prompt_length"
            )
        self._rows = _rows_with_target(self._dataset, config.train_files)
        self._prompt_builder = prompt_builder(tokenizer, data_config, processor, hf_model_type)
        self._demos = demo_source if demo_source is not None else DemoSource(tokenizer, None)
        self._generator = torch.Generator().manual_seed(config.seed)
        self._order = np.empty(0, dtype=np.int64)
        self._position = 0
        self.epoch = 0  # epochs started so far

    def __len__(self) -> int:
        """Usable rows (those with a demonstration)."""
        return len(self._rows)

    def state_dict(self) -> dict[str, Any]:
        """Where the stream is: this epoch's order, the position in it, epochs started, the RNG state."""
        return {
            "order": [int(i) for i in self._order],
            "position": self._position,
            "epoch": self.epoch,
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position; the saved order must index rows this stream has."""
        order = np.asarray(state["order"], dtype=np.int64)
        if not set(order.tolist()) <= set(self._rows.tolist()) or not 0 <= state["position"] <= len(order):
            raise ValueError(
                f"the saved {KEY} position does not fit {list(self.config.train_files)} "
                f"({len(self._rows)} usable rows); the files changed since the checkpoint was written"
            )
        self._order, self._position, self.epoch = order, int(state["position"]), int(state["epoch"])
        self._generator.set_state(state["generator"])

    def draw(self, count: int) -> list[int]:
        """Dataset indices of the next ``count`` rows, starting a new (reshuffled) epoch when one runs out."""
        drawn: list[int] = []
        while len(drawn) < count:
            if self._position == len(self._order):
                self._order = self._rows
                if self.config.shuffle:
                    self._order = self._rows[torch.randperm(len(self._rows), generator=self._generator).numpy()]
                self._position = 0
                self.epoch += 1
            take = self._order[self._position : self._position + count - len(drawn)]
            drawn.extend(int(i) for i in take)
            self._position += len(take)
        return drawn

    def rows(self, batch: DataProto, tokenizer, scale: float) -> tuple[DataProto | None, int]:
        """This step's stream rows shaped like ``batch``, and how many demonstrations were truncated.

        Returns ``(None, 0)`` when the rows would carry no weight (``coef * scale == 0``): they would
        only cost compute. Each row is its own GRPO group (fresh ``uid``, zero reward: advantage 0).
        """
        weight = self.config.coef * scale
        if weight <= 0:
            return None, 0
        _check_text_only(batch)
        items = [self._dataset[i] for i in self.draw(self.config.batch_size)]
        prompt_ids = [  # templated as the row's agent loop templates it (tool schemas for tool-agent rows)
            self._prompt_builder.build_initial_tokens(
                list(item["raw_prompt"]), tools=self._demos.tools_for(item.get("agent_name"))
            )
            for item in items
        ]
        source = source_rows(batch, items, prompt_ids, tokenizer.pad_token_id)
        budget = batch.batch["responses"].shape[-1]
        demos = [self._demos.demo(source, row, budget) for row in range(len(items))]
        uids = np.array([f"sft-stream-{uuid.uuid4().hex}" for _ in items], dtype=object)
        rows = demonstration_rows(source, demos, tokenizer.pad_token_id, uids)
        rows.batch["prefix_mask"] = rows.batch["response_mask"].bool()
        zeros = torch.zeros(len(rows))
        stamp_weights(rows, zeros, torch.full((len(rows),), float(weight)), zeros)
        return rows, sum(d.truncated for d in demos)


def prompt_builder(tokenizer, data_config: DictConfig, processor=None, hf_model_type: str | None = None):
    """verl's Continuous Token builder: the agent loop's tokenisation of a ``raw_prompt``."""
    chat_kwargs = data_config.get("apply_chat_template_kwargs")
    return create_continuous_token_builder(
        tokenizer,
        hf_model_type=hf_model_type,
        chat_template_kwargs=OmegaConf.to_container(chat_kwargs, resolve=True) if chat_kwargs else {},
        processor=processor,
    )


def _rows_with_target(dataset, files: Sequence[str]) -> np.ndarray:
    """Indices of rows that carry a demonstration; an error when none does."""
    frame = getattr(dataset, "dataframe", None)
    if frame is not None and "extra_info" not in frame.column_names:
        raise ValueError(
            f"{KEY}.train_files {list(files)} have no extra_info column; the stream reads each demonstration "
            f"from {TARGET_COLUMN}"
        )
    if frame is not None:
        infos = frame["extra_info"]
        agents = frame["agent_name"] if "agent_name" in frame.column_names else [None] * len(infos)
    else:
        items = [dataset[i] for i in range(len(dataset))]
        infos, agents = [item.get("extra_info") for item in items], [item.get("agent_name") for item in items]
    has_target = np.array([has_demonstration(info, agent) for info, agent in zip(infos, agents, strict=True)],
                          dtype=bool)
    if not has_target.any():
        raise ValueError(
            f"{KEY}.train_files {list(files)}: no row has a demonstration in {TARGET_COLUMN}; put the "
            "demonstration text there (the RL data's schema) or set the key to null"
        )
    missing = int((~has_target).sum())
    if missing:
        logger.warning(
            "%s: skipping %d of %d rows of %s with an empty %s",
            KEY, missing, len(has_target), list(files), TARGET_COLUMN,
        )
    return np.flatnonzero(has_target)


def _check_text_only(batch: DataProto) -> None:
    multi_modal = batch.non_tensor_batch.get("multi_modal_inputs")
    if batch.batch["position_ids"].dim() != 2 or (multi_modal is not None and any(bool(m) for m in multi_modal)):
        raise ValueError(
            f"{KEY} supports text-only models; this batch has multi-modal inputs. "
            f"Set {KEY}.train_files=null"
        )


def source_rows(
    batch: DataProto, items: list[dict[str, Any]], prompt_ids: list[list[int]], pad_id: int, what: str = KEY
) -> DataProto:
    """Copies of ``batch`` row 0 carrying ``items``' left-padded prompts and non-tensor fields.

    Non-tensor keys the dataset items also have (``data_source``, ``extra_info``, ``reward_model``,
    ``raw_prompt``, ``index``, ...) take the items' values; the others (rollout-side fields such as
    ``__num_turns__`` or reward extras like ``acc``) keep row 0's, like the trainer's pad rows. So
    do keys stored as multi-dimensional arrays, which could not be concatenated otherwise.
    """
    width = batch.batch["prompts"].shape[-1]
    source = batch[[0] * len(items)]
    longest = max((len(ids) for ids in prompt_ids), default=0)
    if longest > width:
        raise ValueError(
            f"a {what} prompt has {longest} tokens, more than the rollout prompt width {width}; "
            "set data.filter_overlong_prompts=true (drops it) or raise data.max_prompt_length"
        )
    prompts, prompt_mask = left_pad(prompt_ids, pad_id, width=width, dtype=source.batch["prompts"].dtype)
    source.batch["prompts"] = prompts
    source.batch["attention_mask"][:, :width] = prompt_mask.to(source.batch["attention_mask"].dtype)
    for key, values in source.non_tensor_batch.items():
        shared = all(key in item and not torch.is_tensor(item[key]) for item in items)
        if key != "uid" and values.ndim == 1 and shared:
            source.non_tensor_batch[key] = _like(values, [item[key] for item in items])
    return source


def _like(template: np.ndarray, values: list) -> np.ndarray:
    """``values`` as a 1-d array of ``template``'s dtype (object arrays hold lists and dicts as elements)."""
    if template.dtype != object:
        return np.asarray(values, dtype=template.dtype)
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out

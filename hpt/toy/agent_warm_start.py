"""Warm-start the tool-capable tiny model on demonstrated search trajectories, and measure what it learned.

A random model never emits a well-formed tool call, so every group of an agent run would fail and
HPT's switch gate would only ever take its SFT branch. A short plain-torch SFT on the demonstration
trajectories (loss on assistant tokens only; tool results are context) leaves it calling the tool and
answering sometimes. A share of the warm start's trajectories (``no_tool_share``) answer with a guess
instead of searching, as a model that sometimes answers from memory would: the warm model then skips the
tool on part of its rollouts and fails there, so tool use has room to rise. The competence report
measures it with in-process rollouts that follow verl's tool agent loop (``hpt.toy.agent_rollout``)
against the real index: greedy success, the share of trajectories that call the tool, and at ``n``
samples per prompt the shares of prompts with mixed, zero and all successes (what the switch gate
sees). Built atomically and skipped when present with the same settings, like ``hpt.toy.warm_start``,
whose training loop it reuses.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from hpt.rewards.arithmetic import compute_score
from hpt.toy.agent_rollout import RolloutLimits, SearchFn, Trajectory, response_text, rollout
from hpt.toy.build_tiny import MANIFEST, ensure_asset
from hpt.toy.facts import DATA_SOURCE, guessed_turns, target_turns_of
from hpt.toy.trajectory import encode_trajectory, prompt_ids
from hpt.toy.warm_start import THREADS, batch_loss, collate, fingerprint, train_examples
from hpt.tools.index import load_index
from hpt.tools.schemas import SEARCH_SCHEMA

logger = logging.getLogger(__name__)

REPORT_FILE = "warm_start_report.json"
SAMPLES_PER_PROMPT = 4
TOOLS = [SEARCH_SCHEMA]


@dataclass(frozen=True)
class AgentWarmStartReport:
    """What the warm start did and how the model then behaves as an agent (the three shares sum to 1)."""

    steps: int
    batch_size: int
    lr: float
    seed: int
    initial_loss: float  # assistant-token loss on the eval prompts' demonstrations before training
    final_loss: float
    greedy_accuracy: float  # train prompts (entities seen in training)
    greedy_val_accuracy: float  # validation prompts: entities never named in training, only the tool knows them
    greedy_tool_call_share: float  # greedy trajectories (train prompts) with at least one tool call
    sampled_tool_call_share: float  # sampled trajectories (T=1) with at least one tool call
    sampled_accuracy: float
    mixed_share: float  # prompts with 0 < successes < samples_per_prompt: the RL branch has signal
    zero_share: float  # prompts with no success: the SFT branch
    all_share: float
    mean_response_tokens: float  # sampled trajectories
    eval_prompts: int
    samples_per_prompt: int
    seconds: float
    skipped: bool = False
    no_tool_share: float = 0.0  # of the warm start's trajectories, answered by a guess without the tool

    def summary(self) -> str:
        """One phrase for the build summary line."""
        return (
            f"{self.steps} SFT steps, loss {self.initial_loss:.3f}->{self.final_loss:.3f}, greedy acc "
            f"{self.greedy_accuracy:.0%} (val {self.greedy_val_accuracy:.0%}), tool calls greedy "
            f"{self.greedy_tool_call_share:.0%} sampled {self.sampled_tool_call_share:.0%}, "
            f"{self.samples_per_prompt} samples/prompt mixed {self.mixed_share:.0%} zero {self.zero_share:.0%} "
            f"all {self.all_share:.0%} on {self.eval_prompts} train prompts"
        )


def _messages(row: dict[str, Any]) -> list[dict[str, str]]:
    return [dict(message) for message in row["prompt"]]


def encode_row(
    tokenizer: PreTrainedTokenizerBase, row: dict[str, Any], turns: list[dict[str, str]] | None = None
) -> tuple[list[int], list[int]]:
    """A row's prompt + trajectory (its demonstration unless ``turns``) as (ids, labels), assistant tokens labelled."""
    return encode_trajectory(tokenizer, _messages(row), target_turns_of(row) if turns is None else turns, TOOLS)


def warm_start_turns(rows: Sequence[dict[str, Any]], no_tool_share: float, seed: int) -> list[list[dict[str, str]]]:
    """Each row's warm-start trajectory: its demonstration, or with probability ``no_tool_share`` a guess.

    The guess (``hpt.toy.facts.guessed_turns``) answers without searching; drawn from a generator of its
    own, so the same settings give the same mix.
    """
    if not 0.0 <= no_tool_share < 1.0:
        raise ValueError(f"no_tool_share must be in [0, 1), got {no_tool_share}")
    rng = random.Random(f"{DATA_SOURCE}:no-tool:{seed}")
    return [
        guessed_turns(row["extra_info"]["kind"], rng)
        if rng.random() < no_tool_share
        else target_turns_of(row)
        for row in rows
    ]


def _scores(tokenizer, trajectories: Sequence[Trajectory], rows: Sequence[dict[str, Any]]) -> list[float]:
    return [
        compute_score(row["data_source"], response_text(tokenizer, t), row["reward_model"]["ground_truth"])["score"]
        for t, row in zip(trajectories, rows, strict=True)
    ]


def agent_rollouts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[dict[str, Any]],
    search: SearchFn,
    limits: RolloutLimits,
    n: int = 1,
    temperature: float | None = None,
    seed: int = 0,
) -> tuple[list[Trajectory], list[float]]:
    """``n`` rollouts per row (row-major) and their rewards; sampling runs in a forked RNG seeded with ``seed``."""
    repeated = [row for row in rows for _ in range(n)]
    prompts = [prompt_ids(tokenizer, _messages(row), TOOLS) for row in repeated]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trajectories = rollout(model, tokenizer, prompts, search, TOOLS, limits, temperature)
    return trajectories, _scores(tokenizer, trajectories, repeated)


def _competence(model, tokenizer, rows, val_rows, search, limits: RolloutLimits, seed: int) -> dict[str, float]:
    """The report's behaviour fields, measured with greedy and sampled rollouts."""
    both, both_scores = agent_rollouts(model, tokenizer, [*rows, *val_rows], search, limits)  # one batch
    greedy, greedy_scores, val_scores = both[: len(rows)], both_scores[: len(rows)], both_scores[len(rows) :]
    n = SAMPLES_PER_PROMPT
    sampled, scores = agent_rollouts(model, tokenizer, rows, search, limits, n=n, temperature=1.0, seed=seed)
    counts = [int(sum(scores[i * n : (i + 1) * n])) for i in range(len(rows))]
    return {
        "greedy_accuracy": sum(greedy_scores) / len(rows),
        "greedy_val_accuracy": sum(val_scores) / max(1, len(val_rows)),
        "greedy_tool_call_share": sum(t.tool_calls > 0 for t in greedy) / len(greedy),
        "sampled_tool_call_share": sum(t.tool_calls > 0 for t in sampled) / len(sampled),
        "sampled_accuracy": sum(scores) / len(scores),
        "mixed_share": sum(0 < c < n for c in counts) / len(counts),
        "zero_share": counts.count(0) / len(counts),
        "all_share": counts.count(n) / len(counts),
        "mean_response_tokens": sum(len(t.response) for t in sampled) / len(sampled),
    }


@dataclass(frozen=True)
class AgentWarmStartSettings:
    """Training and measuring settings (all recorded in the asset's manifest)."""

    steps: int
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    no_tool_share: float = 0.0  # trajectories replaced by a guess without the tool (warm_start_turns)
    limits: RolloutLimits = RolloutLimits()
    eval_prompts: int = 32  # the report's prompts: the first rows of train and of val (same rows across runs)


def _run(model_dir: Path, data_dir: Path, index_dir: Path, out_dir: Path, settings: AgentWarmStartSettings):
    """Train, measure and save into ``out_dir``; the caller makes the result appear atomically."""
    start = time.perf_counter()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = pd.read_parquet(data_dir / "train.parquet").to_dict("records")
    count = settings.eval_prompts
    val_rows = pd.read_parquet(data_dir / "val.parquet").to_dict("records")[:count]
    examples = [
        encode_row(tokenizer, row, turns)
        for row, turns in zip(rows, warm_start_turns(rows, settings.no_tool_share, settings.seed), strict=True)
    ]
    eval_batch = collate(examples[:count], tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        with torch.no_grad():
            initial_loss = batch_loss(model, eval_batch).item()
        train_examples(
            model, examples, tokenizer.pad_token_id, settings.steps, settings.batch_size, settings.lr, settings.seed
        )
        with torch.no_grad():
            final_loss = batch_loss(model, eval_batch).item()
    index = load_index(index_dir)
    competence = _competence(model, tokenizer, rows[:count], val_rows, index.search, settings.limits, settings.seed)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    report = AgentWarmStartReport(
        steps=settings.steps,
        batch_size=settings.batch_size,
        lr=settings.lr,
        seed=settings.seed,
        no_tool_share=settings.no_tool_share,
        initial_loss=initial_loss,
        final_loss=final_loss,
        eval_prompts=min(count, len(rows)),
        samples_per_prompt=SAMPLES_PER_PROMPT,
        seconds=round(time.perf_counter() - start, 2),
        **competence,
    )
    logger.info("agent warm start: %s in %.1fs", report.summary(), report.seconds)
    return report


def agent_warm_start(
    model_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    index_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    settings: AgentWarmStartSettings,
    force: bool = False,
) -> AgentWarmStartReport:
    """SFT ``model_dir`` on ``data_dir/train.parquet``'s trajectories into ``out_dir``, with a competence report.

    Skipped (returning the stored report with ``skipped=True``) when ``out_dir`` holds a warm start with
    the same settings, base model and data; present with others raises ``StaleAssetError`` unless ``force``.
    """
    if min(settings.steps, settings.batch_size, settings.eval_prompts) < 1 or settings.lr <= 0:
        raise ValueError(f"steps, batch_size and eval_prompts must be >= 1 and lr > 0, got {settings}")
    model_dir, data_dir, index_dir, out_dir = Path(model_dir), Path(data_dir), Path(index_dir), Path(out_dir)
    params = {
        **asdict(settings),
        "base_model_sha256": fingerprint(sorted(p for p in model_dir.iterdir() if p.is_file() and p.name != MANIFEST)),
        "train_data_sha256": fingerprint([data_dir / "train.parquet", data_dir / "val.parquet"]),
    }
    built: list[AgentWarmStartReport] = []

    def write(tmp: Path) -> str:
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(THREADS)
        try:
            report = _run(model_dir, data_dir, index_dir, tmp, settings)
        finally:
            torch.set_num_threads(previous_threads)
        (tmp / REPORT_FILE).write_text(json.dumps(asdict(report), indent=1) + "\n")
        built.append(report)
        return report.summary()

    ensure_asset(out_dir, params, write, force)
    if built:
        return built[0]
    return replace(AgentWarmStartReport(**json.loads((out_dir / REPORT_FILE).read_text())), skipped=True)

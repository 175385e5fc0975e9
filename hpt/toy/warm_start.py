"""Warm-start the tiny model with a short SFT run, so HPT's switch gate sees both of its branches.

A randomly initialised model solves nothing: every prompt's rollouts fail, every prompt takes the
SFT branch, and an end-to-end run never exercises RL. A short plain-PyTorch SFT on the demonstrations
leaves the model with partial competence instead: sampling at temperature 1.0, some prompts get some
correct rollouts and others none (see ``build_tiny.RECOMMENDED_WARM_START_STEPS`` for a measured
step count). The result is built like the other toy assets: atomically, with its settings in
``hpt_build.json``, and skipped when present with the same settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from hpt.toy.build_tiny import MANIFEST, RECOMMENDED_WARM_START_LR, ensure_asset
from hpt.generation import generate_texts, prompt_ids
from hpt.rewards.arithmetic import compute_score

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label of tokens that take no part in the loss (prompt and padding)
REPORT_FILE = "warm_start_report.json"
EVAL_PROMPTS = 64  # the first rows of the train split; fixed so reports of different runs compare
SAMPLES_PER_PROMPT = 4
THREADS = 2  # fixed so the float reduction order, hence the result, does not depend on the machine


@dataclass(frozen=True)
class WarmStartReport:
    """What a warm start did and how competent it left the model (the share fields sum to 1)."""

    steps: int
    batch_size: int
    lr: float
    seed: int
    initial_loss: float  # response-token loss on the eval prompts before training
    final_loss: float  # the same after training
    greedy_accuracy: float
    mixed_share: float  # prompts with 0 < successes < samples_per_prompt: the RL branch has signal
    zero_share: float  # prompts with no success: the SFT branch
    all_share: float  # prompts solved by every sample
    eval_prompts: int
    samples_per_prompt: int
    seconds: float
    skipped: bool = False

    def summary(self) -> str:
        """One phrase for the build summary line."""
        return (
            f"{self.steps} SFT steps, loss {self.initial_loss:.3f}->{self.final_loss:.3f}, "
            f"greedy acc {self.greedy_accuracy:.0%}, "
            f"{self.samples_per_prompt} samples/prompt mixed {self.mixed_share:.0%} zero {self.zero_share:.0%} "
            f"all {self.all_share:.0%} on {self.eval_prompts} train prompts"
        )


def _messages(row: dict[str, Any]) -> list[dict[str, str]]:
    # Parquet gives the chat as a numpy array of dicts; the chat template wants a list.
    return [dict(message) for message in row["prompt"]]


def encode_example(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict[str, str]], demonstration: str
) -> tuple[list[int], list[int]]:
    """Input ids of prompt + demonstration + eos, and labels that are ``IGNORE_INDEX`` on the prompt.

    Only the response is supervised: the prompt is always given, so fitting it would spend the tiny
    model's capacity on something it never has to produce.
    """
    prompt = prompt_ids(tokenizer, messages)
    response = [*tokenizer(demonstration, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    return prompt + response, [IGNORE_INDEX] * len(prompt) + response


def collate(examples: Sequence[tuple[list[int], list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad encoded examples into ``input_ids``, ``attention_mask`` and ``labels`` (padding ignored)."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (ids, row_labels) in enumerate(examples):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(ids)] = torch.tensor(row_labels)
        attention_mask[i, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def response_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled tokens: position t's logits predict label t+1."""
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )


def batch_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The labelled-token loss of one collated batch (shared with ``hpt.toy.agent_warm_start``)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return response_token_loss(logits, batch["labels"])


def _score(response: str, row: dict[str, Any]) -> float:
    return compute_score(row["data_source"], response, row["reward_model"]["ground_truth"])["score"]


def sampled_pass_rate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[dict[str, Any]],
    n: int = SAMPLES_PER_PROMPT,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[int]:
    """Per-prompt count of correct answers among ``n`` samples, as HPT's switch gate would count them.

    Sampling runs in a forked RNG seeded with ``seed``: repeatable, and the caller's RNG is untouched.
    """
    prompts = [prompt_ids(tokenizer, _messages(row)) for row in rows]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        repeated = [ids for ids in prompts for _ in range(n)]
        responses = generate_texts(model, tokenizer, repeated, max_new_tokens, temperature)
    return [
        int(sum(_score(response, row) for response in responses[i * n : (i + 1) * n])) for i, row in enumerate(rows)
    ]


def greedy_accuracy(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: Sequence[dict[str, Any]], max_new_tokens: int = 32
) -> float:
    """Share of rows whose greedy answer is correct."""
    prompts = [prompt_ids(tokenizer, _messages(row)) for row in rows]
    responses = generate_texts(model, tokenizer, prompts, max_new_tokens, temperature=None)
    return sum(_score(response, row) for response, row in zip(responses, rows, strict=True)) / len(rows)


def train_examples(
    model: PreTrainedModel,
    examples: Sequence[tuple[list[int], list[int]]],
    pad_token_id: int,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> None:
    """AdamW SFT over reshuffled epochs of ``examples``; the order comes from ``seed`` alone."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    model.train()
    for step in range(1, steps + 1):
        while len(order) < batch_size:
            order += torch.randperm(len(examples), generator=generator).tolist()
        indices, order = order[:batch_size], order[batch_size:]
        loss = batch_loss(model, collate([examples[i] for i in indices], pad_token_id))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % max(1, steps // 10) == 0 or step == steps:
            logger.info("warm start step %d/%d: loss %.4f", step, steps, loss.item())


def _read_rows(train_parquet: Path) -> list[dict[str, Any]]:
    return pd.read_parquet(train_parquet).to_dict("records")


def _run(
    model_dir: Path, train_parquet: Path, out_dir: Path, steps: int, batch_size: int, lr: float, seed: int
) -> WarmStartReport:
    """Train, measure and save into ``out_dir``; the caller makes the result appear atomically."""
    start = time.perf_counter()
    hf_logging.disable_progress_bar()  # loading and saving one shard needs no progress bar in the summary output
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = _read_rows(train_parquet)
    examples = [encode_example(tokenizer, _messages(row), row["extra_info"]["target"]) for row in rows]
    eval_rows = rows[:EVAL_PROMPTS]
    eval_batch = collate(examples[:EVAL_PROMPTS], tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the tiny model has no dropout, but a base model with some stays repeatable
        with torch.no_grad():
            initial_loss = batch_loss(model, eval_batch).item()
        train_examples(model, examples, tokenizer.pad_token_id, steps, batch_size, lr, seed)
        with torch.no_grad():
            final_loss = batch_loss(model, eval_batch).item()
    counts = sampled_pass_rate(model, tokenizer, eval_rows, n=SAMPLES_PER_PROMPT, seed=seed)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    report = WarmStartReport(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        initial_loss=initial_loss,
        final_loss=final_loss,
        greedy_accuracy=greedy_accuracy(model, tokenizer, eval_rows),
        mixed_share=sum(0 < c < SAMPLES_PER_PROMPT for c in counts) / len(counts),
        zero_share=counts.count(0) / len(counts),
        all_share=counts.count(SAMPLES_PER_PROMPT) / len(counts),
        eval_prompts=len(eval_rows),
        samples_per_prompt=SAMPLES_PER_PROMPT,
        seconds=round(time.perf_counter() - start, 2),
    )
    logger.info("warm start: %s in %.1fs", report.summary(), report.seconds)
    return report


def fingerprint(paths: Sequence[Path]) -> str:
    """sha256 over file names and contents: a changed base model or data set makes the warm start stale."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def warm_start(
    model_dir: str | os.PathLike[str],
    train_parquet: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    steps: int,
    batch_size: int = 64,
    lr: float = RECOMMENDED_WARM_START_LR,
    seed: int = 0,
    force: bool = False,
) -> WarmStartReport:
    """SFT ``model_dir`` on the demonstrations in ``train_parquet`` and save tokenizer + model to ``out_dir``.

    Skipped (returning the stored report with ``skipped=True``) when ``out_dir`` holds a warm start with
    the same settings, base model and data; present with others raises ``StaleAssetError`` unless ``force``.
    """
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"steps and batch_size must be >= 1 and lr > 0, got {steps}, {batch_size}, {lr}")
    model_dir, train_parquet, out_dir = Path(model_dir), Path(train_parquet), Path(out_dir)
    settings = {
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "base_model_sha256": fingerprint(sorted(p for p in model_dir.iterdir() if p.is_file() and p.name != MANIFEST)),
        "train_data_sha256": fingerprint([train_parquet]),
    }
    built: list[WarmStartReport] = []

    def write(tmp: Path) -> str:
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(THREADS)
        try:
            report = _run(model_dir, train_parquet, tmp, steps, batch_size, lr, seed)
        finally:
            torch.set_num_threads(previous_threads)
        (tmp / REPORT_FILE).write_text(json.dumps(asdict(report), indent=1) + "\n")
        built.append(report)
        return report.summary()

    ensure_asset(out_dir, settings, write, force)
    if built:
        return built[0]
    return replace(WarmStartReport(**json.loads((out_dir / REPORT_FILE).read_text())), skipped=True)

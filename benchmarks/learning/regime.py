"""The learning benchmark's toy regime: a partially competent base and off-policy demonstrations.

It mirrors the paper's set-up at toy scale (see ``../shared/research/cpu_experiment.md`` §6):

- **Base model**: the tiny Qwen3 warm-started with SFT on an *easy* mix (90 % operands 0..9, 10 %
  operands 0..19, 1-3 operations) in the task's own ``steps`` style, so it solves part of the hard
  split and fails the rest: GRPO alone has signal, as it has for Qwen2.5-Math-7B on math.
- **Hard split**: operands 0..19, 1-3 operations, questions disjoint from the base's data.
- **Demonstrations** in the ``verify`` style (every step checked by its inverse): about twice as long
  as and different from what the base writes, the stand-in for R1 traces given to a Qwen base.

Every asset is cached under one directory and built atomically (``ensure_asset``); a competence probe
checks, before any comparison, that a real share of the hard prompts gives mixed groups.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from hpt.toy.build_tiny import ensure_asset

logger = logging.getLogger(__name__)

HARD_MAX_OPERAND = 19
EASY_MAX_OPERAND = 9
MAX_OPS = 3
EASY_HARD_SHARE = 0.1  # share of hard-range problems in the base's pretraining mix
DATA_SEED = 1000
MIN_MIXED_SHARE = 0.15  # below this the regime is "RL cannot start", not the paper's


@dataclass(frozen=True)
class RegimeSpec:
    """Sizes of the regime; the defaults are the benchmark's, tests shrink them."""

    train_size: int = 2000
    test_size: int = 256
    easy_size: int = 16000
    base_steps: int = 1000
    base_lr: float = 3e-3
    probe_prompts: int = 256
    probe_samples: int = 4
    model_seed: int = 0


@dataclass(frozen=True)
class Regime:
    """Paths of the built assets and the base's measured competence on the hard split."""

    base_model: Path
    train_file: Path
    test_file: Path
    max_response_length: int
    competence: dict[str, float]


def _rows_longest_response(rows: list[dict[str, Any]]) -> int:
    # one token per character (tiny_model's tokenizer) plus the eos
    return max(len(row["extra_info"]["target"]) for row in rows) + 1


def _write_data(tmp: Path, spec: RegimeSpec) -> str:
    from hpt.toy.arithmetic import make_rows, make_splits, question_of, write_parquet

    train, test = make_splits(spec.train_size, spec.test_size, DATA_SEED, HARD_MAX_OPERAND, MAX_OPS, style="verify")
    hard_questions = {question_of(row) for row in train + test}
    n_hard = round(spec.easy_size * EASY_HARD_SHARE)
    easy = make_rows(spec.easy_size - n_hard, DATA_SEED, "easy", EASY_MAX_OPERAND, MAX_OPS, exclude=hard_questions)
    easy += make_rows(n_hard, DATA_SEED, "easy_hard_range", HARD_MAX_OPERAND, MAX_OPS, exclude=hard_questions)
    for index, row in enumerate(easy):
        row["extra_info"] = {**row["extra_info"], "index": index}
    write_parquet(train, tmp / "train.parquet")
    write_parquet(test, tmp / "test.parquet")
    write_parquet(easy, tmp / "easy.parquet")
    (tmp / "lengths.json").write_text(json.dumps({"max_response_length": _rows_longest_response(train + test)}))
    return f"hard train {len(train)} / test {len(test)} (verify demos), easy base mix {len(easy)}"


def _write_model(tmp: Path, seed: int) -> str:
    from hpt.toy.tiny_model import save_tiny_model

    return f"{save_tiny_model(tmp, seed):,} parameters"


def probe_competence(
    model_dir: Path, rows: list[dict[str, Any]], samples: int, max_new_tokens: int
) -> dict[str, float]:
    """Greedy accuracy and the shares of all-fail / mixed / all-pass groups at temperature 1.

    The shares are what the gates will see: mixed groups are where GRPO has signal, all-fail groups
    are where HPT's switch sends a prompt to its demonstration.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hpt.toy.warm_start import greedy_accuracy, sampled_pass_rate

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    counts = sampled_pass_rate(model, tokenizer, rows, n=samples, max_new_tokens=max_new_tokens, seed=0)
    return {
        "greedy_accuracy": greedy_accuracy(model, tokenizer, rows, max_new_tokens=max_new_tokens),
        "pass_at_1_t1": sum(counts) / (samples * len(counts)),
        "zero_share": counts.count(0) / len(counts),
        "mixed_share": sum(0 < c < samples for c in counts) / len(counts),
        "all_share": counts.count(samples) / len(counts),
        "prompts": len(counts),
        "samples": samples,
    }


def build_regime(cache: Path, spec: RegimeSpec = RegimeSpec(), force: bool = False) -> Regime:
    """Build (or reuse) the data, the random model and the warm-started base; probe the base."""
    import pandas as pd

    from hpt.toy.warm_start import warm_start

    cache.mkdir(parents=True, exist_ok=True)
    data_params = {"train_size": spec.train_size, "test_size": spec.test_size, "easy_size": spec.easy_size}
    logger.info(ensure_asset(cache / "data", data_params, partial(_write_data, spec=spec), force))
    model_params = {"seed": spec.model_seed}
    logger.info(ensure_asset(cache / "model", model_params, partial(_write_model, seed=spec.model_seed), force))
    report = warm_start(
        cache / "model", cache / "data" / "easy.parquet", cache / "base", spec.base_steps, lr=spec.base_lr, force=force
    )
    logger.info("base: %s", report.summary())
    max_response_length = json.loads((cache / "data" / "lengths.json").read_text())["max_response_length"]
    probe_file = cache / "base" / "hard_split_competence.json"
    if probe_file.is_file() and not force:
        competence = json.loads(probe_file.read_text())
    else:
        rows = pd.read_parquet(cache / "data" / "train.parquet").to_dict("records")[: spec.probe_prompts]
        competence = probe_competence(cache / "base", rows, spec.probe_samples, max_response_length)
        probe_file.write_text(json.dumps(competence, indent=1) + "\n")
    return Regime(
        base_model=cache / "base",
        train_file=cache / "data" / "train.parquet",
        test_file=cache / "data" / "test.parquet",
        max_response_length=max_response_length,
        competence=competence,
    )


def check_partial_competence(competence: dict[str, float]) -> None:
    """Refuse a regime where RL has no signal: the comparison would not be the paper's."""
    if competence["mixed_share"] < MIN_MIXED_SHARE:
        raise RuntimeError(
            f"the base gives mixed groups on only {competence['mixed_share']:.0%} of hard prompts "
            f"(need >= {MIN_MIXED_SHARE:.0%}): GRPO would have no signal. Raise RegimeSpec.base_steps or "
            f"EASY_HARD_SHARE and rebuild with --force"
        )

"""The learning benchmark's regimes: a partially competent base, a hard split, and demonstrations of a style.

Every regime mirrors the paper's set-up at toy scale (``../shared/research/cpu_experiment.md`` §6):

- **Base model**: the tiny Qwen3 warm-started with SFT on an *easy* mix (90 % operands 0..9, 10 %
  operands 0..19, 1..``base_max_ops`` operations) in the task's own ``steps`` style.
- **Hard split**: operands 0..19, 1-3 operations, train / validation / test sharing no question and
  none of the base's questions.
- **Demonstrations** of the hard split, by regime:

  - ``on_style``: in the base's own ``steps`` style;
  - ``foreign``: in the ``verify`` style (every step checked by its inverse), about twice as long as
    what the base writes: the stand-in for R1 traces given to a Qwen base;
  - ``knowledge_gap``: ``steps`` style, but the base never saw a 3-operation chain: that skill it
    cannot solve (RL alone has no success to reinforce), the 1-2 operation skills it partly solves.

Every asset is cached under one directory and built atomically (``ensure_asset``). A probe measures the
base per skill (number of operations) and ``check_profile`` refuses a regime whose base lacks the
intended competence profile, saying what to change.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
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
MAX_UNSEEN_PASS = 0.10  # knowledge gap: the unseen skill's pass@1 at T=1 must stay below (lucky answers)


@dataclass(frozen=True)
class RegimeSpec:
    """Sizes of the regime; the defaults are the benchmark's, tests shrink them."""

    name: str = "foreign"
    style: str = "verify"  # demonstration style of the hard split
    base_max_ops: int = MAX_OPS  # longest chain in the base's warm-up mix (< MAX_OPS: a knowledge gap)
    train_size: int = 2000
    test_size: int = 256
    easy_size: int = 16000
    base_steps: int = 1000
    base_lr: float = 3e-3
    probe_prompts: int = 256
    probe_samples: int = 4
    model_seed: int = 0
    val_size: int = 256


REGIMES: dict[str, RegimeSpec] = {
    "on_style": RegimeSpec(name="on_style", style="steps"),
    "foreign": RegimeSpec(name="foreign", style="verify"),
    "knowledge_gap": RegimeSpec(name="knowledge_gap", style="steps", base_max_ops=2),
}


@dataclass(frozen=True)
class Regime:
    """Paths of the built assets and the base's measured competence on the hard split."""

    base_model: Path
    train_file: Path
    test_file: Path
    max_response_length: int
    competence: dict[str, Any]
    val_file: Path | None = None
    name: str = "foreign"
    skills: dict[str, dict[str, float]] = field(default_factory=dict)  # competence per skill ("ops=k")


def _rows_longest_response(rows: list[dict[str, Any]]) -> int:
    # one token per character (tiny_model's tokenizer) plus the eos
    return max(len(row["extra_info"]["target"]) for row in rows) + 1


def skill_of(row: dict[str, Any]) -> str:
    """The skill a prompt exercises: its number of operations (``ops=k``)."""
    question = row["prompt"][0]["content"]
    return f"ops={len(re.findall(r'[+-]', question[1:-2]))}"


def _write_hard(tmp: Path, spec: RegimeSpec) -> str:
    from hpt.toy.arithmetic import make_rows, make_splits, question_of, write_parquet

    train, test = make_splits(spec.train_size, spec.test_size, DATA_SEED, HARD_MAX_OPERAND, MAX_OPS, spec.style)
    seen = {question_of(row) for row in train + test}
    val = make_rows(spec.val_size, DATA_SEED, "val", HARD_MAX_OPERAND, MAX_OPS, exclude=seen, style=spec.style)
    for name, rows in (("train", train), ("val", val), ("test", test)):
        write_parquet(rows, tmp / f"{name}.parquet")
    longest = _rows_longest_response(train + val + test)
    (tmp / "lengths.json").write_text(json.dumps({"max_response_length": longest}))
    return f"hard train {len(train)} / val {len(val)} / test {len(test)} ({spec.style} demos)"


def _write_easy(tmp: Path, spec: RegimeSpec) -> str:
    """The base's warm-up mix, disjoint from every hard split question (they do not depend on the style)."""
    from hpt.toy.arithmetic import make_rows, make_splits, question_of, write_parquet

    train, test = make_splits(spec.train_size, spec.test_size, DATA_SEED, HARD_MAX_OPERAND, MAX_OPS)
    hard = {question_of(row) for row in train + test}
    hard |= {question_of(r) for r in make_rows(spec.val_size, DATA_SEED, "val", HARD_MAX_OPERAND, MAX_OPS,
                                                exclude=hard)}
    n_hard = round(spec.easy_size * EASY_HARD_SHARE)
    ops = spec.base_max_ops
    easy = make_rows(spec.easy_size - n_hard, DATA_SEED, "easy", EASY_MAX_OPERAND, ops, exclude=hard)
    easy += make_rows(n_hard, DATA_SEED, "easy_hard_range", HARD_MAX_OPERAND, ops, exclude=hard)
    for index, row in enumerate(easy):
        row["extra_info"] = {**row["extra_info"], "index": index}
    write_parquet(easy, tmp / "easy.parquet")
    return f"easy base mix {len(easy)} (1-{ops} operations)"


def _write_model(tmp: Path, seed: int) -> str:
    from hpt.toy.tiny_model import save_tiny_model

    return f"{save_tiny_model(tmp, seed):,} parameters"


def _shares(counts: list[int], samples: int) -> dict[str, float]:
    return {
        "pass_at_1_t1": sum(counts) / (samples * len(counts)),
        "zero_share": counts.count(0) / len(counts),
        "mixed_share": sum(0 < c < samples for c in counts) / len(counts),
        "all_share": counts.count(samples) / len(counts),
        "prompts": len(counts),
    }


def probe_competence(
    model_dir: Path, rows: list[dict[str, Any]], samples: int, max_new_tokens: int
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Greedy accuracy and the shares of all-fail / mixed / all-pass groups at T=1, overall and per skill.

    The shares are what the gates will see: mixed groups are where GRPO has signal, all-fail groups
    are where HPT's switch sends a prompt to its demonstration.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hpt.toy.warm_start import greedy_accuracy, sampled_pass_rate

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    counts = sampled_pass_rate(model, tokenizer, rows, n=samples, max_new_tokens=max_new_tokens, seed=0)
    overall = {"greedy_accuracy": greedy_accuracy(model, tokenizer, rows, max_new_tokens=max_new_tokens),
               **_shares(counts, samples), "samples": samples}
    skills = {}
    for skill in sorted({skill_of(row) for row in rows}):
        members = [i for i, row in enumerate(rows) if skill_of(row) == skill]
        skills[skill] = _shares([counts[i] for i in members], samples)
    return overall, skills


def build_regime(cache: Path, spec: RegimeSpec = RegimeSpec(), force: bool = False) -> Regime:
    """Build (or reuse) the data, the random model and the warm-started base; probe the base per skill."""
    import pandas as pd

    from hpt.toy.warm_start import warm_start

    cache.mkdir(parents=True, exist_ok=True)
    sizes = {"train_size": spec.train_size, "val_size": spec.val_size, "test_size": spec.test_size}
    data, easy = cache / f"{spec.name}_data", cache / f"easy_ops{spec.base_max_ops}"
    logger.info(ensure_asset(data, {**sizes, "style": spec.style}, partial(_write_hard, spec=spec), force))
    easy_params = {**sizes, "easy_size": spec.easy_size, "max_ops": spec.base_max_ops}
    logger.info(ensure_asset(easy, easy_params, partial(_write_easy, spec=spec), force))
    model_params = {"seed": spec.model_seed}
    logger.info(ensure_asset(cache / "model", model_params, partial(_write_model, seed=spec.model_seed), force))
    base = cache / f"base_ops{spec.base_max_ops}"
    report = warm_start(cache / "model", easy / "easy.parquet", base, spec.base_steps, lr=spec.base_lr, force=force)
    logger.info("base: %s", report.summary())
    max_response_length = json.loads((data / "lengths.json").read_text())["max_response_length"]
    probe_file = data / "base_competence.json"
    if probe_file.is_file() and not force:
        probe = json.loads(probe_file.read_text())
    else:
        rows = pd.read_parquet(data / "train.parquet").to_dict("records")[: spec.probe_prompts]
        overall, skills = probe_competence(base, rows, spec.probe_samples, max_response_length)
        probe = {"overall": overall, "skills": skills}
        probe_file.write_text(json.dumps(probe, indent=1) + "\n")
    return Regime(base_model=base, train_file=data / "train.parquet", test_file=data / "test.parquet",
                  max_response_length=max_response_length, competence=probe["overall"],
                  val_file=data / "val.parquet", name=spec.name, skills=probe["skills"])


def check_partial_competence(competence: dict[str, float]) -> None:
    """Refuse a regime where RL has no signal: the comparison would not be the paper's."""
    if competence["mixed_share"] < MIN_MIXED_SHARE:
        raise RuntimeError(
            f"the base gives mixed groups on only {competence['mixed_share']:.0%} of hard prompts "
            f"(need >= {MIN_MIXED_SHARE:.0%}): GRPO would have no signal. Raise RegimeSpec.base_steps or "
            f"EASY_HARD_SHARE and rebuild with --force"
        )


def check_profile(regime: Regime, spec: RegimeSpec) -> None:
    """Refuse a regime whose base lacks its intended profile (partial competence; for the gap, a skill never solved)."""
    if spec.base_max_ops >= MAX_OPS:
        check_partial_competence(regime.competence)
        return
    unseen = [f"ops={k}" for k in range(spec.base_max_ops + 1, MAX_OPS + 1)]
    seen = [skill for skill in regime.skills if skill not in unseen]
    for skill in unseen:
        solved = regime.skills[skill]["pass_at_1_t1"]
        if solved > MAX_UNSEEN_PASS:
            raise RuntimeError(
                f"regime {spec.name}: the base solves {solved:.0%} of the unseen skill {skill} at T=1 "
                f"(must stay <= {MAX_UNSEEN_PASS:.0%} for a knowledge gap). Lower RegimeSpec.base_max_ops "
                f"or base_steps and rebuild with --force"
            )
    mixed = sum(regime.skills[s]["mixed_share"] * regime.skills[s]["prompts"] for s in seen)
    mixed /= max(sum(regime.skills[s]["prompts"] for s in seen), 1)
    if mixed < MIN_MIXED_SHARE:
        raise RuntimeError(
            f"regime {spec.name}: the base gives mixed groups on only {mixed:.0%} of the seen skills' prompts "
            f"({', '.join(seen)}; need >= {MIN_MIXED_SHARE:.0%}): the gap regime needs skills it partly solves. "
            "Change RegimeSpec.base_steps or EASY_HARD_SHARE and rebuild with --force"
        )

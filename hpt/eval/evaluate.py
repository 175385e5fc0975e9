"""Offline evaluation of a model directory or verl checkpoint: mean@k and pass@k per data source.

The metric names are those of verl's in-training validation (``val-core/<data_source>/acc/mean@k``),
plus ``pass@k``, so offline and in-training numbers line up. The protocol (sampling settings, k,
token budget, verifier and package versions) is written next to the numbers: an accuracy without
its protocol cannot be compared with anything.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from hpt.atomic import write_atomically
from hpt.eval.passk import mean_at_k, pass_at_k

logger = logging.getLogger(__name__)

Scorer = Callable[..., Any]  # verl's custom_reward_function contract: (data_source, solution_str, ground_truth, ...)


@dataclass(frozen=True)
class EvalProtocol:
    """Everything that changes the numbers; recorded in the output."""

    k: int = 1
    temperature: float = 0.0  # 0 = greedy (then k must be 1)
    top_p: float = 1.0
    max_new_tokens: int = 1024
    chat_template_kwargs: dict = field(default_factory=dict)
    backend: str = "hf"  # hf (CPU or one GPU) | vllm (GPU)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 1 or self.max_new_tokens < 1:
            raise ValueError(f"k and max_new_tokens must be >= 1, got {self.k}, {self.max_new_tokens}")
        if self.temperature == 0 and self.k > 1:
            raise ValueError("greedy decoding (temperature 0) gives k identical samples: set --temperature > 0")
        if not 0 < self.top_p <= 1 or self.temperature < 0:
            raise ValueError(f"need 0 < top_p <= 1 and temperature >= 0, got {self.top_p}, {self.temperature}")
        if self.backend not in ("hf", "vllm"):
            raise ValueError(f"unknown backend {self.backend!r}; use hf or vllm")


def _has_weights(directory: Path) -> bool:
    return any(directory.glob("*.safetensors")) or any(directory.glob("pytorch_model*.bin"))


def resolve_model_dir(path: str | os.PathLike[str]) -> Path:
    """A Hugging Face model directory, or the one inside a verl checkpoint (``global_step_N[/actor]``).

    verl always writes the config and tokenizer to ``actor/huggingface`` but the weights only with
    ``hf_model`` in ``save_contents``; a directory without weights is refused with the conversion command.
    """
    path = Path(path)
    for candidate in (path, path / "huggingface", path / "actor" / "huggingface"):
        if (candidate / "config.json").is_file():
            if _has_weights(candidate):
                return candidate
            actor = candidate.parent
            raise FileNotFoundError(
                f"{candidate} holds a model config but no weights (the checkpoint was saved without hf_model). "
                f"Convert the FSDP checkpoint first: python -m verl.model_merger merge --backend fsdp "
                f"--local_dir {actor} --target_dir {candidate}"
            )
    raise FileNotFoundError(
        f"{path} is neither a Hugging Face model directory nor a verl checkpoint with actor/huggingface; save "
        "checkpoints with actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]"
    )


def load_scorer(path: str | os.PathLike[str], name: str = "compute_score") -> Scorer:
    """The reward function of a Python file, loaded the way verl loads ``custom_reward_function``."""
    spec = importlib.util.spec_from_file_location(f"hpt_eval_reward_{abs(hash(str(path)))}", path)
    if spec is None or not Path(path).is_file():
        raise FileNotFoundError(f"reward file {path} does not exist")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, name):
        raise AttributeError(f"{path} defines no function {name!r}")
    return getattr(module, name)


def read_rows(files: Sequence[str | os.PathLike[str]]) -> list[dict]:
    """Rows of verl-format parquet files (``prompt``, ``data_source``, ``reward_model.ground_truth``)."""
    rows: list[dict] = []
    for file in files:
        frame = pd.read_parquet(file)
        missing = {"prompt", "data_source", "reward_model"} - set(frame.columns)
        if missing:
            raise ValueError(f"{file} lacks column(s) {sorted(missing)}; prepare it with python -m hpt.data.prepare")
        rows.extend(frame.to_dict("records"))
    if not rows:
        raise ValueError(f"no rows in {list(map(str, files))}")
    return rows


def _accuracy(result: Any) -> float:
    if isinstance(result, dict):
        return float(result.get("acc", result.get("score", 0.0)))
    return float(result)


def summarise(rows: Sequence[dict], responses: Sequence[Sequence[str]], scorer: Scorer, k: int) -> dict[str, float]:
    """Score every sample and aggregate per data source with verl's metric names."""
    correct_by_source: dict[str, list[int]] = defaultdict(list)
    for row, samples in zip(rows, responses, strict=True):
        truth = row["reward_model"]["ground_truth"]
        extra = row.get("extra_info")
        correct = sum(_accuracy(scorer(row["data_source"], text, truth, extra)) > 0.5 for text in samples)
        correct_by_source[row["data_source"]].append(correct)
    metrics: dict[str, float] = {}
    for source, counts in sorted(correct_by_source.items()):
        prefix = f"val-core/{source}/acc"
        metrics[f"{prefix}/mean@{k}"] = sum(mean_at_k(c, k) for c in counts) / len(counts)
        metrics[f"{prefix}/pass@{k}"] = sum(pass_at_k(k, c, k) for c in counts) / len(counts)
        metrics[f"{prefix}/pass@1"] = sum(pass_at_k(k, c, 1) for c in counts) / len(counts)
        metrics[f"val-core/{source}/prompts"] = len(counts)
    return metrics


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("hpt", "verl", "math-verify", "transformers", "torch", "vllm"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def evaluate(
    model: str | os.PathLike[str],
    data_files: Sequence[str | os.PathLike[str]],
    protocol: EvalProtocol,
    scorer: Scorer,
    reward_path: str = "",
) -> dict:
    """Generate ``k`` samples per prompt, score them, and return metrics + protocol (JSON-ready)."""
    from hpt.eval.backends import generate

    model_dir = resolve_model_dir(model)
    rows = read_rows(data_files)
    messages = [[dict(m) for m in row["prompt"]] for row in rows]
    logger.info("evaluating %s on %d prompts x %d samples (%s)", model_dir, len(rows), protocol.k, protocol.backend)
    responses = generate(model_dir, messages, protocol)
    return {
        "metrics": summarise(rows, responses, scorer, protocol.k),
        "protocol": {**asdict(protocol), "model": str(model_dir), "data_files": [str(f) for f in data_files],
                     "reward": reward_path, "versions": _versions()},
        "samples": [{"data_source": row["data_source"], "responses": list(texts)}
                    for row, texts in zip(rows[:8], responses[:8], strict=True)],
    }


def write_result(result: dict, out: str | os.PathLike[str]) -> None:
    """Write atomically: a half-written result file must never look like a finished evaluation."""
    write_atomically(Path(out), lambda tmp: tmp.write_text(json.dumps(result, indent=2) + "\n"))

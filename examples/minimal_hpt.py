"""HPT in one readable loop: the executable spec of the algorithm that ``hpt``'s verl trainer runs.

Single process, a Hugging Face model, plain PyTorch: no Ray, no verl. The loop is ``hpt.toy.engine``
(the learning benchmark's engine); every decision goes through the same ``hpt.core`` functions the
trainer calls, and its loss (``hpt.toy.loss``) is tested equal to the trainer's. One step:

1. draw prompts and sample ``n`` responses for each, score them with the task's verifier;
2. count successes per prompt group; the gate routes each group (RL on its rollouts, SFT or off-policy
   RL on its demonstration, or a mix) and ``plan_rebuild`` lays out the rows with per-row weights;
3. GRPO advantages over each group (a demonstration in a group counts as one more success);
4. one loss, a sum of three weighted token means, each over its own tokens: PPO-clipped RL on the
   rollouts, the offline loss on demonstrations (x SFT weight), the off-policy loss (x off weight).

Any gate runs here, CHORD and SRFT included (``--gate chord``: μ stays at ``ChordSchedule``'s peak).

    python -m hpt.toy.build_tiny --out .hpt_tiny --warm-start-steps 200
    python examples/minimal_hpt.py --model .hpt_tiny/model_warm --data .hpt_tiny/data --gate switch
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from hpt.core import GateConfig
from hpt.core.offpolicy import OffPolicyParams
from hpt.core.schedules import ScheduleParams
from hpt.toy import engine
from hpt.toy.loss import LossSettings

logger = logging.getLogger("minimal_hpt")


@dataclass(frozen=True)
class Settings:
    """One run; each field is also a CLI flag (``switch_gate_off`` -> ``--switch-gate-off``)."""

    model: Path  # Hugging Face model directory
    data: Path  # holds train.parquet and test.parquet
    steps: int = 20
    prompts_per_step: int = 8
    n: int = 4  # rollouts per prompt
    lr: float = 3e-4
    gate: str = "switch"  # hpt.core.gates registry: switch | soft | no | sft | luffy | mix | chord | srft
    switch_gate: int = 0
    switch_gate_off: int | None = None
    soft_type: int = 0
    offline_loss: str = "nll"  # per-token loss of the SFT term (hpt.core.offpolicy registry)
    off_loss: str = "shaped"  # per-token loss of the off-policy RL term
    gamma: float = 0.1  # shaping constant of the shaped loss
    schedule: str = "constant"  # lambda schedule (hpt.core.schedules registry)
    lambda_value: float = 1.0  # constant schedule
    lambda_start: float = 1.0  # linear / cosine / adaptive
    lambda_end: float = 0.0
    sft_coef: float = 1.0
    off_coef: float = 1.0
    loss_normalization: str = "global"  # or original
    max_new_tokens: int = 32  # the response budget
    seed: int = 0
    eval_every: int = 10  # 0: never
    eval_size: int = 64
    metrics_out: Path | None = None  # JSON lines, one per step


def configs(s: Settings) -> tuple[engine.RunConfig, engine.MethodConfig]:
    """The engine's run and method configurations of ``s``."""
    method = engine.MethodConfig(
        unify_strategy=s.gate,
        gate=GateConfig(switch_gate=s.switch_gate, switch_gate_off=s.switch_gate_off, soft_type=s.soft_type),
        lambda_schedule=s.schedule,
        lambda_params=ScheduleParams(start=s.lambda_start, end=s.lambda_end, value=s.lambda_value),
        loss=LossSettings(loss_normalization=s.loss_normalization, offline_loss_type=s.offline_loss,
                          off_policy_loss_type=s.off_loss, off_policy=OffPolicyParams(gamma=s.gamma),
                          sft_loss_coef=s.sft_coef, off_loss_coef=s.off_coef),
    )
    run = engine.RunConfig(steps=s.steps, prompts_per_step=s.prompts_per_step, n=s.n, lr=s.lr,
                           max_new_tokens=s.max_new_tokens, seed=s.seed, eval_every=s.eval_every)
    return run, method


def train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, s: Settings) -> list[dict[str, float]]:
    """``s.steps`` steps on ``model`` in place; held-out greedy accuracy (``val/acc``) every ``s.eval_every``.

    The first record is step 0 (the evaluation before training) when ``s.eval_every`` is set.
    """
    train_rows = pd.read_parquet(s.data / "train.parquet").to_dict("records")
    evals = {"val": pd.read_parquet(s.data / "test.parquet").to_dict("records")[: s.eval_size]} if s.eval_every else {}
    history = engine.train(model, tokenizer, train_rows, evals, *configs(s))
    for metrics in history:
        logger.info("%s", " ".join(f"{key.removeprefix('hpt/')}={value:.3g}" for key, value in metrics.items()))
    return history if s.eval_every else history[1:]


def run(s: Settings) -> list[dict[str, float]]:
    """Load the model, train, and write the metrics as JSON lines when ``s.metrics_out`` is set."""
    hf_logging.disable_progress_bar()  # a progress bar per load would bury the step lines
    tokenizer = AutoTokenizer.from_pretrained(s.model)
    model = AutoModelForCausalLM.from_pretrained(s.model, dtype=torch.float32)
    history = train(model, tokenizer, s)
    if s.metrics_out is not None:
        s.metrics_out.write_text("".join(json.dumps(m) + "\n" for m in history))
    return history


def parse_args(argv: list[str] | None = None) -> Settings:
    """The CLI: one flag per ``Settings`` field."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    defaults = Settings(Path(), Path())
    for name in ("steps", "prompts_per_step", "n", "switch_gate", "soft_type", "max_new_tokens", "seed",
                 "eval_every", "eval_size"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("lr", "gamma", "lambda_value", "lambda_start", "lambda_end", "sft_coef", "off_coef"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    for name in ("gate", "offline_loss", "off_loss", "schedule", "loss_normalization"):
        p.add_argument(f"--{name.replace('_', '-')}", default=getattr(defaults, name))
    p.add_argument("--switch-gate-off", type=int, default=None)
    p.add_argument("--metrics-out", type=Path, default=None)
    return Settings(**vars(p.parse_args(argv)))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run(parse_args())

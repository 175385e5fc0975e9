"""HPT in one readable loop: the executable spec of the algorithm that ``hpt``'s verl trainer runs.

Single process, a Hugging Face model, plain PyTorch: no Ray, no verl. Every decision goes through the
same ``hpt.core`` functions the trainer calls, so any gate, off-policy loss or lambda schedule can be
tried here in seconds on a CPU. One step:

1. draw prompts and sample ``n`` responses for each, score them with the task's verifier;
2. count successes per prompt group; the gate routes each group (RL on its rollouts, SFT or off-policy
   RL on its demonstration, or a mix) and ``plan_rebuild`` lays out the rows with per-row weights;
3. GRPO advantages over each group (a demonstration in a group counts as one more success);
4. one loss, a sum of three weighted token means, each over its own tokens: PPO-clipped RL on the
   rollouts, the offline loss on demonstrations (x SFT weight), the off-policy loss (x off weight).

    python -m hpt.toy.build_tiny --out .hpt_tiny --warm-start-steps 200
    python examples/minimal_hpt.py --model .hpt_tiny/model_warm --data .hpt_tiny/data --gate switch
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from hpt import metrics as M
from hpt.core import GateConfig, HybridLossParts, RebuildPlan, build_gate, count_successes, plan_rebuild
from hpt.core import term_counts, term_masks, weighted_token_mean
from hpt.core.offpolicy import OffPolicyInputs, OffPolicyParams, build_off_policy_loss
from hpt.core.schedules import ScheduleParams, build_schedule
from hpt.generation import generate_response_ids, prompt_ids
from hpt.toy.warm_start import IGNORE_INDEX, collate, encode_example, greedy_accuracy
from hpt.rewards.arithmetic import compute_score

logger = logging.getLogger("minimal_hpt")

CLIP = 0.2  # PPO ratio clip
SUCCESS_THRESHOLD = 0.5  # a rollout with reward > this is a success (trainer.success_threshold)
DEMO_REWARD = 1.0  # a demonstration is a verified solution (trainer.demo_reward)


@dataclass(frozen=True)
class Settings:
    """One run; each field is also a CLI flag (``switch_gate_off`` -> ``--switch-gate-off``)."""

    model: Path  # Hugging Face model directory
    data: Path  # holds train.parquet and test.parquet
    steps: int = 20
    prompts_per_step: int = 8
    n: int = 4  # rollouts per prompt
    lr: float = 3e-4
    gate: str = "switch"  # hpt.core.gates registry: switch | soft | no | sft | luffy | mix (not chord, srft)
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
    max_new_tokens: int = 32  # the response budget
    seed: int = 0
    eval_every: int = 10  # 0: never
    eval_size: int = 64
    metrics_out: Path | None = None  # JSON lines, one per step


@dataclass(frozen=True)
class Row:
    """One training row: tokens, the group its advantage is computed in, and its three loss weights."""

    prompt: list[int]
    response: list[int]
    reward: float
    group: int
    demo: bool = False
    rl_weight: float = 0.0
    sft_weight: float = 0.0
    off_weight: float = 0.0


def sample_rollouts(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[dict[str, Any]], s: Settings
) -> list[Row]:
    """``n`` sampled responses per prompt (temperature 1), scored by the verifier; group = prompt index."""
    tokens = [prompt_ids(tokenizer, list(p["prompt"])) for p in prompts]
    repeated = [t for t in tokens for _ in range(s.n)]
    responses = generate_response_ids(model, tokenizer, repeated, s.max_new_tokens, temperature=1.0)
    rows = []
    for i, response in enumerate(responses):
        prompt = prompts[i // s.n]
        text = tokenizer.decode(response, skip_special_tokens=True)
        reward = compute_score(prompt["data_source"], text, prompt["reward_model"]["ground_truth"])["score"]
        rows.append(Row(repeated[i], response, reward, group=i // s.n))
    return rows


def demonstration(tokenizer: PreTrainedTokenizerBase, prompt: dict[str, Any], budget: int) -> list[int]:
    """The prompt's target + eos as response tokens, cut to the response budget like a rollout."""
    ids, labels = encode_example(tokenizer, list(prompt["prompt"]), prompt["extra_info"]["target"])
    return ids[labels.count(IGNORE_INDEX) :][:budget]


def build_rows(plan: RebuildPlan, rollouts: list[Row], demos: list[list[int]], lam: float) -> list[Row]:
    """Kept rollouts with their RL weight, then one row per planned demonstration.

    Demonstration weights are scaled by this step's lambda. A demonstration ``in_group`` shares its
    group's advantage baseline; otherwise it is a group of its own.
    """
    rows = [replace(rollouts[i], rl_weight=w) for i, w in zip(plan.keep_rows, plan.keep_weights, strict=True)]
    for k, d in enumerate(plan.demos):
        source = rollouts[d.source_row]
        group = source.group if d.in_group else -(k + 1)  # prompt groups are >= 0
        # As in the trainer: only a demonstration whose advantage is used gets the reward.
        reward = DEMO_REWARD if d.in_group or d.off_weight > 0 else 0.0
        weights = {"sft_weight": d.sft_weight * lam, "off_weight": d.off_weight * lam}
        rows.append(Row(source.prompt, demos[source.group], reward, group, demo=True, **weights))
    return rows


def grpo_advantages(rewards_B: torch.Tensor, group_B: torch.Tensor) -> torch.Tensor:
    """Reward minus its group's mean over the group's std (+1e-6); a row alone in its group keeps its reward.

    The unbiased std and the lone-row rule are those of verl's GRPO estimator, so both loops agree.
    """
    advantages_B = rewards_B.clone()
    for group in group_B.unique():
        members = group_B == group
        if members.sum() > 1:
            rewards = rewards_B[members]
            advantages_B[members] = (rewards - rewards.mean()) / (rewards.std() + 1e-6)
    return advantages_B


def to_tensors(rows: list[Row], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors; per-token tensors are ``B x (L-1)``: position t predicts token t+1."""
    batch = collate([(r.prompt + r.response, [IGNORE_INDEX] * len(r.prompt) + r.response) for r in rows], pad_token_id)
    response_mask = batch["labels"][:, 1:] != IGNORE_INDEX
    weights = {key: torch.tensor([getattr(r, key) for r in rows]) for key in ("rl_weight", "sft_weight", "off_weight")}
    return {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
        "targets": batch["input_ids"][:, 1:],
        "response_mask": response_mask,
        "prefix_mask": response_mask & torch.tensor([r.demo for r in rows])[:, None],  # demonstration tokens
        "advantages": grpo_advantages(torch.tensor([r.reward for r in rows]), torch.tensor([r.group for r in rows])),
        **weights,
    }


def token_log_probs(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of every next token and the policy's entropy there (``B x (L-1)`` each)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    log_p = logits.log_softmax(-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return log_p.gather(-1, batch["targets"][..., None]).squeeze(-1), entropy


def hybrid_loss(
    log_prob: torch.Tensor, entropy: torch.Tensor, batch: dict[str, torch.Tensor], s: Settings
) -> HybridLossParts:
    """``L = L_RL + sft_coef * L_SFT + off_coef * L_off``, each term a weighted mean over its own tokens.

    One PPO epoch on one mini-batch: the old policy is the current one, so the old log-probs are the
    current ones detached (ratio 1, but the clipped surrogate's gradient). Single process: dp_size 1
    and the local token counts are the global ones.
    """
    masks = term_masks(batch["response_mask"], batch["prefix_mask"], batch["rl_weight"], batch["sft_weight"],
                       batch["off_weight"])
    on_tokens, sft_tokens, off_tokens = term_counts(masks)[:3].tolist()
    old_log_prob = log_prob.detach()
    advantages = batch["advantages"][:, None].expand_as(log_prob)
    ratio = (log_prob - old_log_prob).exp()
    surrogate = torch.maximum(-advantages * ratio, -advantages * ratio.clamp(1 - CLIP, 1 + CLIP))
    rl = weighted_token_mean(surrogate, batch["rl_weight"], masks.on, on_tokens, dp_size=1)

    inputs = OffPolicyInputs(advantages_B_T=advantages, old_log_prob_B_T=old_log_prob, entropy_B_T=entropy)
    params = OffPolicyParams(gamma=s.gamma)
    sft_B_T = build_off_policy_loss(s.offline_loss)(log_prob, inputs, params)
    sft = weighted_token_mean(sft_B_T, batch["sft_weight"], masks.sft, sft_tokens, dp_size=1)
    off_B_T = build_off_policy_loss(s.off_loss)(log_prob, inputs, params)
    off = weighted_token_mean(off_B_T, batch["off_weight"], masks.off, off_tokens, dp_size=1)
    return HybridLossParts(rl, sft, off, s.sft_coef, s.off_coef)


def hpt_step(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    optimizer: torch.optim.Optimizer,
    prompts: list[dict[str, Any]],
    step: int,
    s: Settings,
) -> dict[str, float]:
    """Sample, gate, rebuild, one update; returns the step's metrics under the trainer's key names."""
    rollouts = sample_rollouts(model, tokenizer, prompts, s)
    scores_B = torch.tensor([r.reward for r in rollouts])
    groups = count_successes(scores_B, torch.tensor([r.group for r in rollouts]), SUCCESS_THRESHOLD)
    pass_rate = float((scores_B > SUCCESS_THRESHOLD).float().mean())
    progress = (step - 1) / max(s.steps - 1, 1)  # 0 at the first step, 1 at the last, as in the trainer
    schedule_params = ScheduleParams(start=s.lambda_start, end=s.lambda_end, value=s.lambda_value)
    lam = build_schedule(s.schedule)(progress, pass_rate, schedule_params)

    gate_config = GateConfig(switch_gate=s.switch_gate, switch_gate_off=s.switch_gate_off, soft_type=s.soft_type)
    plan = plan_rebuild(groups, [True] * len(groups), build_gate(s.gate), gate_config, multiple=1)
    demos = [demonstration(tokenizer, p, s.max_new_tokens) for p in prompts]
    rows = build_rows(plan, rollouts, demos, lam)

    batch = to_tensors(rows, tokenizer.pad_token_id)
    model.train()
    parts = hybrid_loss(*token_log_probs(model, batch), batch, s)
    optimizer.zero_grad(set_to_none=True)
    parts.total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return {
        "step": step,
        **{key: plan.fraction(mode) for mode, key in M.GATE_FRAC.items()},
        M.GATE_LAMBDA: lam,
        M.GATE_PASS_RATE: pass_rate,
        M.REWARD_MEAN: float(scores_B.mean()),
        M.LOSS_RL: parts.rl.item(),
        M.LOSS_SFT: parts.sft.item(),
        M.LOSS_OFF: parts.off.item(),
        M.BATCH_ROWS: len(rows),
        M.BATCH_DEMO_ROWS: len(plan.demos),
    }


def train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, s: Settings) -> list[dict[str, float]]:
    """``s.steps`` HPT steps on ``model`` in place, with held-out greedy accuracy every ``s.eval_every``."""
    torch.manual_seed(s.seed)
    draw = random.Random(s.seed)
    train_rows = pd.read_parquet(s.data / "train.parquet").to_dict("records")
    eval_rows = pd.read_parquet(s.data / "test.parquet").to_dict("records")[: s.eval_size]
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr)
    history = []
    for step in range(1, s.steps + 1):
        metrics = hpt_step(model, tokenizer, optimizer, draw.sample(train_rows, s.prompts_per_step), step, s)
        if s.eval_every and (step % s.eval_every == 0 or step == s.steps):
            metrics["val/acc"] = greedy_accuracy(model, tokenizer, eval_rows, s.max_new_tokens)
        logger.info("%s", " ".join(f"{key.removeprefix('hpt/')}={value:.3g}" for key, value in metrics.items()))
        history.append(metrics)
    return history


def run(s: Settings) -> list[dict[str, float]]:
    """Load the model, train, and write the metrics as JSON lines when ``s.metrics_out`` is set."""
    hf_logging.disable_progress_bar()  # a progress bar per load would bury the step lines
    tokenizer = AutoTokenizer.from_pretrained(s.model)
    model = AutoModelForCausalLM.from_pretrained(s.model, dtype=torch.float32)
    history = train(model, tokenizer, s)
    if s.metrics_out is not None:
        s.metrics_out.write_text("".join(json.dumps(m) + "\n" for m in history))
    return history


TRAINER_ONLY_GATES = ("chord", "srft")  # their weights beyond the routes are applied by the trainer and its loss


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
    for name in ("gate", "offline_loss", "off_loss", "schedule"):
        p.add_argument(f"--{name.replace('_', '-')}", default=getattr(defaults, name))
    p.add_argument("--switch-gate-off", type=int, default=None)
    p.add_argument("--metrics-out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.gate in TRAINER_ONLY_GATES:
        p.error(f"--gate {args.gate}: its mu schedule / entropy weights live in the trainer (python -m hpt.main "
                f"trainer.unify_strategy={args.gate}); this loop would train the bare routes under that name")
    return Settings(**vars(args))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run(parse_args())

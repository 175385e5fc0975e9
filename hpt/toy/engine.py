"""The in-process engine: every method the trainer trains, in one process, with the trainer's ``hpt.core`` calls.

No Ray, no verl: a Hugging Face model and plain PyTorch, so a run of the tiny model starts in a second
instead of the trainer's ~75 s. One step does what ``HPTRayTrainer._rebuild`` and the actor update do:

1. draw prompts (seeded epoch-wise shuffle) and sample ``n`` responses each with ``hpt.generation``;
   score them with the task's verifier (an SFT step generates nothing: its gate ignores the rollouts);
2. count successes per group; the step's gate (``gate_name_at_step``: SFT during ``sft_warmup_steps``)
   routes each group and ``plan_rebuild`` lays out the rows; λ (``hpt.core.schedules``) scales the
   demonstrations, CHORD's μ scales them by μ and the rollouts by 1 − μ;
3. GRPO advantages per group, verl's estimator (a demonstration used by the off-policy term or in its
   group carries ``demo_reward``);
4. one update of ``hpt.toy.loss.hybrid_loss`` (the trainer's loss, proven equal by a unit test), gradient
   clip 1.0, AdamW with verl's defaults; a non-finite gradient norm skips the update as verl does.

With a ``SelectionConfig`` (``trainer.rollout_selection``), step 1 asks ``hpt.core.selection`` about
every prompt drawn, as the trainer's ``SelectingLoader`` does (``pick_step``): GENERATE and PROBE prompts
are generated, ROUTE prompts become demonstration rows without rollouts (``plan_rebuild(routed_rows=)``),
DEFER prompts are skipped for this visit, and prompts are drawn until the step holds ``prompts_per_step``
generated or routed ones. Every generated group then updates the pass-rate memory.

Greedy accuracy on each evaluation split before training, every ``eval_every`` steps and at the end.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from hpt import metrics as M
from hpt.core import GateConfig, GroupOutcome, GroupStats, RebuildPlan, build_gate, count_successes, gate_name_at_step
from hpt.core import plan_rebuild
from hpt.core.gates.base import in_sft_warmup
from hpt.core.methods import ChordSchedule
from hpt.core.plan import rollouts_with_gradient
from hpt.core.selection import RolloutSelector, SelectionConfig, StepPick, check_routable, mispredicted, pick_step
from hpt.core.schedules import ScheduleParams, build_schedule
from hpt.generation import generate_response_ids, prompt_ids
from hpt.rewards.arithmetic import compute_score
from hpt.toy.loss import LossBatch, LossSettings, hybrid_loss
from hpt.toy.warm_start import IGNORE_INDEX, collate, encode_example, greedy_accuracy

logger = logging.getLogger(__name__)

ADAMW = {"betas": (0.9, 0.999), "weight_decay": 0.01}  # verl's actor optimiser defaults
GRAD_CLIP = 1.0


@dataclass(frozen=True)
class MethodConfig:
    """What a method is, in the trainer's key names (``trainer.*`` and ``actor_rollout_ref.actor.*``)."""

    unify_strategy: str = "switch"  # a gate of hpt.core.gates: switch | soft | no | sft | luffy | mix | chord | srft
    sft_warmup_steps: int = 0  # SFT on every prompt for this many steps first (SFT→GRPO with strategy "no")
    gate: GateConfig = field(default_factory=GateConfig)
    chord: ChordSchedule = field(default_factory=ChordSchedule)
    lambda_schedule: str = "constant"
    lambda_params: ScheduleParams = field(default_factory=ScheduleParams)
    loss: LossSettings = field(default_factory=LossSettings)


@dataclass(frozen=True)
class RunConfig:
    """The budget and optimiser of one run (every method of a comparison gets the same)."""

    steps: int = 20
    prompts_per_step: int = 8
    n: int = 4  # rollouts per prompt
    lr: float = 1e-4
    max_new_tokens: int = 32  # the response budget
    seed: int = 0
    eval_every: int = 10  # 0: only before training and at the end
    temperature: float = 1.0
    success_threshold: float = 0.5  # trainer.success_threshold
    demo_reward: float = 1.0  # trainer.demo_reward


@dataclass(frozen=True)
class Row:
    """One training row: tokens, its advantage group, its reward and its three loss weights."""

    prompt: list[int]
    response: list[int]
    reward: float
    group: int
    demo: bool = False
    rl_weight: float = 0.0
    sft_weight: float = 0.0
    off_weight: float = 0.0


def _messages(row: dict[str, Any]) -> list[dict[str, str]]:
    return [dict(message) for message in row["prompt"]]


def sample_rollouts(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[dict[str, Any]],
                    run: RunConfig) -> list[Row]:
    """``n`` sampled responses per prompt, scored by the verifier; group = prompt index."""
    tokens = [prompt_ids(tokenizer, _messages(p)) for p in prompts]
    repeated = [t for t in tokens for _ in range(run.n)]
    responses = generate_response_ids(model, tokenizer, repeated, run.max_new_tokens, temperature=run.temperature)
    rows = []
    for i, response in enumerate(responses):
        prompt = prompts[i // run.n]
        text = tokenizer.decode(response, skip_special_tokens=True)
        reward = compute_score(prompt["data_source"], text, prompt["reward_model"]["ground_truth"])["score"]
        rows.append(Row(repeated[i], response, reward, group=i // run.n))
    return rows


def demonstration(tokenizer: PreTrainedTokenizerBase, prompt: dict[str, Any], budget: int) -> list[int]:
    """The prompt's target + eos as response tokens, cut to the response budget like a rollout."""
    ids, labels = encode_example(tokenizer, _messages(prompt), prompt["extra_info"]["target"])
    return ids[labels.count(IGNORE_INDEX) :][:budget]


def build_rows(plan: RebuildPlan, rollouts: list[Row], demos: list[list[int]], scale: float,
               demo_reward: float) -> list[Row]:
    """Kept rollouts with their RL weight, then one row per planned demonstration (weights x ``scale``).

    A demonstration ``in_group`` shares its group's advantage baseline, otherwise it is a group of its
    own; as in the trainer only a demonstration whose advantage is used gets the reward.
    """
    rows = [replace(rollouts[i], rl_weight=w) for i, w in zip(plan.keep_rows, plan.keep_weights, strict=True)]
    for k, d in enumerate(plan.demos):
        source = rollouts[d.source_row]
        group = source.group if d.in_group else -(k + 1)  # prompt groups are >= 0
        reward = demo_reward if d.in_group or d.off_weight > 0 else 0.0
        rows.append(Row(source.prompt, demos[source.group], reward, group, demo=True,
                        sft_weight=d.sft_weight * scale, off_weight=d.off_weight * scale))
    return rows


def grpo_advantages(rewards_B: torch.Tensor, group_B: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """verl's GRPO: (reward - group mean) / (unbiased group std + eps); a lone row: reward / (1 + eps)."""
    advantages_B = rewards_B / (1.0 + eps)
    for group in group_B.unique():
        members = group_B == group
        if members.sum() > 1:
            rewards = rewards_B[members]
            advantages_B[members] = (rewards - rewards.mean()) / (rewards.std() + eps)
    return advantages_B


def to_tensors(rows: list[Row], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors; per-token tensors are ``B x (L-1)``: position t predicts token t+1."""
    batch = collate([(r.prompt + r.response, [IGNORE_INDEX] * len(r.prompt) + r.response) for r in rows], pad_token_id)
    response_mask = batch["labels"][:, 1:] != IGNORE_INDEX
    advantages_B = grpo_advantages(torch.tensor([r.reward for r in rows]), torch.tensor([r.group for r in rows]))
    return {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
        "targets": batch["input_ids"][:, 1:],
        "response_mask": response_mask,
        "prefix_mask": response_mask & torch.tensor([r.demo for r in rows])[:, None],
        "advantages": advantages_B[:, None] * response_mask,
        **{key: torch.tensor([getattr(r, key) for r in rows]) for key in ("rl_weight", "sft_weight", "off_weight")},
    }


def token_log_probs(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of every next token and the policy's entropy there (``B x (L-1)`` each)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    log_p = logits.log_softmax(-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return log_p.gather(-1, batch["targets"][..., None]).squeeze(-1), entropy.detach()


@dataclass(frozen=True)
class StepPlan:
    """The rows of one step and what the trainer would log about how they were chosen."""

    rows: list[Row]
    plan: RebuildPlan
    scale: float  # λ (x μ for CHORD) on the demonstration weights
    pass_rate: float
    reward_mean: float
    rollout_tokens: int
    groups: list[GroupStats]  # one per prompt of ``prompts`` (group = its position there)
    sampled: bool  # the groups hold generated rollouts (an SFT step generates none)
    no_grad_tokens: int  # generated tokens that get no policy gradient
    generation_seconds: float


def _placeholders(tokenizer: PreTrainedTokenizerBase, prompts: list[dict[str, Any]], first_group: int) -> list[Row]:
    """Rows holding only a prompt (nothing generated): sources of demonstration rows, never trained themselves."""
    return [Row(prompt_ids(tokenizer, _messages(p)), [], 0.0, group=first_group + i) for i, p in enumerate(prompts)]


def plan_step(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[dict[str, Any]], step: int,
              run: RunConfig, method: MethodConfig, routed: list[dict[str, Any]] = ()) -> StepPlan:
    """Sample, gate and lay out the rows of training step ``step`` (1-based), as ``HPTRayTrainer._rebuild``.

    ``routed`` prompts (rollout selection) are not generated: each gets a demonstration row weighted
    as the step's gate weighs an all-fail group.
    """
    gate_name = gate_name_at_step(step, method.unify_strategy, method.sft_warmup_steps)
    start = time.perf_counter()
    sampled = gate_name != "sft" and bool(prompts)
    if not sampled:  # an SFT step sends every group to its demonstration whatever its rollouts: generate none
        rollouts = _placeholders(tokenizer, prompts, 0)
    else:
        rollouts = sample_rollouts(model, tokenizer, prompts, run)
    generation_seconds = time.perf_counter() - start
    scores_B = torch.tensor([r.reward for r in rollouts])
    groups = count_successes(scores_B, torch.tensor([r.group for r in rollouts], dtype=torch.long),
                             run.success_threshold)
    pass_rate = float((scores_B > run.success_threshold).float().mean()) if rollouts else 0.0
    progress = min(max((step - 1) / max(run.steps - 1, 1), 0.0), 1.0)
    warming_up = in_sft_warmup(step, method.sft_warmup_steps)
    scale = 1.0 if warming_up else build_schedule(method.lambda_schedule)(progress, pass_rate, method.lambda_params)
    mu = method.chord.mu(step - 1) if gate_name == "chord" else None
    if mu is not None:
        scale *= mu
    gate = build_gate(gate_name)
    routed_rows = list(range(len(rollouts), len(rollouts) + len(routed)))
    routed_route = gate(GroupOutcome(0, run.n), method.gate) if routed else None
    plan = plan_rebuild(groups, [True] * len(groups), gate, method.gate, multiple=1, routed_rows=routed_rows,
                        routed_route=routed_route)
    if mu is not None:
        plan = replace(plan, keep_weights=tuple(w * (1.0 - mu) for w in plan.keep_weights))
    tokens_B = torch.tensor([len(r.response) for r in rollouts], dtype=torch.long)
    no_grad_tokens = int(tokens_B[~rollouts_with_gradient(scores_B, groups, plan)].sum())
    generated = rollouts
    rollouts = rollouts + _placeholders(tokenizer, list(routed), len(prompts))
    demos = [demonstration(tokenizer, p, run.max_new_tokens) for p in [*prompts, *routed]]
    rows = build_rows(plan, rollouts, demos, scale, run.demo_reward)
    return StepPlan(rows, plan, scale, pass_rate, float(scores_B.mean()) if generated else 0.0,
                    int(tokens_B.sum()), groups, sampled, no_grad_tokens, generation_seconds)


def update(model: PreTrainedModel, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor],
           loss_batch_fields: dict[str, Any], settings: LossSettings) -> tuple[Any, bool]:
    """One optimiser step on the hybrid loss; returns its parts and whether the update was applied."""
    model.train()
    log_prob, entropy = token_log_probs(model, batch)
    loss_batch = LossBatch(log_prob=log_prob, old_log_prob=log_prob.detach(), entropy=entropy,
                           response_mask=batch["response_mask"], prefix_mask=batch["prefix_mask"],
                           advantages=batch["advantages"], rl_weight=batch["rl_weight"],
                           sft_weight=batch["sft_weight"], off_weight=batch["off_weight"], **loss_batch_fields)
    parts = hybrid_loss(loss_batch, settings)
    optimizer.zero_grad(set_to_none=True)
    parts.total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    applied = bool(torch.isfinite(grad_norm))
    if applied:
        optimizer.step()
    return parts, applied


def train_step(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, optimizer: torch.optim.Optimizer,
               prompts: list[dict[str, Any]], step: int, run: RunConfig, method: MethodConfig,
               routed: list[dict[str, Any]] = ()) -> tuple[dict[str, float], StepPlan]:
    """Plan and train one step; returns its metrics under the trainer's key names, and its plan."""
    start = time.perf_counter()
    planned = plan_step(model, tokenizer, prompts, step, run, method, routed)
    batch = to_tensors(planned.rows, tokenizer.pad_token_id)
    gate_name = gate_name_at_step(step, method.unify_strategy, method.sft_warmup_steps)
    success = torch.tensor([r.reward > run.success_threshold for r in planned.rows], dtype=torch.float32)
    fields = {"success": success, "method": gate_name,
              "phi": gate_name == "chord" and method.chord.enable_phi_function}
    settings = method.loss
    if settings.loss_scale_factor is None:  # sum / L over the response budget, as a constant
        settings = replace(settings, loss_scale_factor=run.max_new_tokens)
    parts, applied = update(model, optimizer, batch, fields, settings)
    tokens = planned.rollout_tokens
    metrics = {
        "step": step,
        **{key: planned.plan.fraction(mode) for mode, key in M.GATE_FRAC.items()},
        M.GATE_LAMBDA: planned.scale,
        M.GATE_PASS_RATE: planned.pass_rate,
        M.REWARD_MEAN: planned.reward_mean,
        M.LOSS_RL: parts.rl.item(),
        M.LOSS_SFT: parts.sft.item(),
        M.LOSS_OFF: parts.off.item(),
        M.BATCH_ROWS: len(planned.rows),
        M.BATCH_DEMO_ROWS: len(planned.plan.demos),
        M.ROLLOUT_TOKENS: tokens,
        M.ROLLOUT_NO_GRAD_SHARE: planned.no_grad_tokens / tokens if tokens else 0.0,
        M.UPDATE_SKIPPED_NONFINITE: 0.0 if applied else 1.0,
        "timing_s/gen": planned.generation_seconds,
        "timing_s/step": time.perf_counter() - start,
    }
    return metrics, planned


class PromptOrder:
    """Epoch-wise shuffled prompts (a seeded permutation per epoch), as the trainer's shuffled dataloader."""

    def __init__(self, rows: list[dict[str, Any]], seed: int) -> None:
        self._rows, self._draw, self._order = rows, random.Random(seed), []

    def __len__(self) -> int:
        return len(self._rows)

    def take(self, count: int) -> list[dict[str, Any]]:
        while len(self._order) < count:
            epoch = list(range(len(self._rows)))
            self._draw.shuffle(epoch)
            self._order += epoch
        taken, self._order = self._order[:count], self._order[count:]
        return [self._rows[i] for i in taken]


def evaluate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, splits: dict[str, list[dict[str, Any]]],
             max_new_tokens: int) -> dict[str, float]:
    """Greedy accuracy on every evaluation split, as ``<split>/acc``."""
    return {f"{name}/acc": greedy_accuracy(model, tokenizer, rows, max_new_tokens) for name, rows in splits.items()}


def _key(prompt: dict[str, Any]) -> Any:
    return prompt["extra_info"]["index"]


def _has_demo(prompt: dict[str, Any]) -> bool:
    return bool(prompt["extra_info"].get("target"))


class SelectingOrder:
    """``PromptOrder`` behind the rollout selection: each step's generated and routed prompts (``pick_step``).

    The order is endless (epoch after epoch), so a deferred prompt comes back at its next epoch, as
    with the trainer's ``SelectingLoader``. A step that draws two epochs' worth of prompts without
    filling up is refused: nearly every prompt is predicted solved and none is probed.
    """

    def __init__(self, order: PromptOrder, selector: RolloutSelector, batch_size: int) -> None:
        self.order, self.selector, self.batch_size = order, selector, batch_size

    def next_step(self) -> StepPick[dict[str, Any]]:
        drawn = 0

        def draw() -> dict[str, Any] | None:
            nonlocal drawn
            drawn += 1
            return self.order.take(1)[0] if drawn <= 2 * len(self.order) else None

        pick = pick_step(draw, self.selector, self.batch_size, _key, _has_demo)
        if not pick.complete:
            raise RuntimeError(
                f"rollout selection deferred nearly every prompt over two epochs ({2 * len(self.order)} drawn, "
                f"{len(pick.generate) + len(pick.route)} of {self.batch_size} kept); raise the selection's "
                "explore or set defer_pass=False"
            )
        return pick

    def observe(self, pick: StepPick[dict[str, Any]], groups: list[GroupStats]) -> dict[str, float]:
        """Feed every generated group to the memory (group g = ``pick.generate[g]``); the step's counters."""
        wrong = 0
        for stats in groups:
            key = _key(pick.generate[stats.group])
            if key in pick.probes:
                wrong += mispredicted(pick.probes[key], stats.successes, stats.size)
            self.selector.memory.update(key, stats.successes, stats.size)
        return {
            M.SELECTION_GENERATED: len(groups),
            M.SELECTION_ROUTED: len(pick.route),
            M.SELECTION_DEFERRED: pick.deferred,
            M.SELECTION_PROBES: len(pick.probes),
            M.SELECTION_MISPREDICTIONS: wrong,
            M.SELECTION_MEMORY: len(self.selector.memory),
        }


def selecting_order(train_rows: list[dict[str, Any]], run: RunConfig, method: MethodConfig,
                    selection: SelectionConfig | None) -> SelectingOrder | None:
    """The run's selection (None when off); routing is refused for a gate that keeps all-fail rollouts."""
    if selection is None or not selection.enable:
        return None
    if selection.route_fail:
        names = {gate_name_at_step(step, method.unify_strategy, method.sft_warmup_steps)
                 for step in (1, method.sft_warmup_steps + 1)}
        check_routable({name: build_gate(name) for name in names}, method.gate, run.n)
    return SelectingOrder(PromptOrder(train_rows, run.seed), RolloutSelector(selection, run.n), run.prompts_per_step)


def train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_rows: list[dict[str, Any]],
          eval_splits: dict[str, list[dict[str, Any]]], run: RunConfig, method: MethodConfig,
          selection: SelectionConfig | None = None) -> list[dict[str, float]]:
    """``run.steps`` steps on ``model`` in place; the first record (step 0) is the evaluation before training.

    ``selection`` (enabled): the rollout selection picks each step's prompts (``SelectingOrder``).
    """
    torch.manual_seed(run.seed)
    order = PromptOrder(train_rows, run.seed)
    selecting = selecting_order(train_rows, run, method, selection)
    optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr, **ADAMW)
    history: list[dict[str, float]] = [{"step": 0, **evaluate(model, tokenizer, eval_splits, run.max_new_tokens)}]
    for step in range(1, run.steps + 1):
        if selecting is None:
            metrics, _ = train_step(model, tokenizer, optimizer, order.take(run.prompts_per_step), step, run, method)
        else:
            pick = selecting.next_step()
            metrics, planned = train_step(model, tokenizer, optimizer, pick.generate, step, run, method, pick.route)
            metrics.update(selecting.observe(pick, planned.groups if planned.sampled else []))
        if (run.eval_every and step % run.eval_every == 0) or step == run.steps:
            metrics.update(evaluate(model, tokenizer, eval_splits, run.max_new_tokens))
        logger.debug("%s", " ".join(f"{key.removeprefix('hpt/')}={value:.3g}" for key, value in metrics.items()))
        history.append(metrics)
    return history

"""HPTRayTrainer: verl's legacy Ray PPO trainer with the HPT rebuild and the hybrid whole-loss.

It extends verl at seams and never copies ``fit``:
- ``_balance_batch`` runs after generation and reward and before old log-probs, reference
  log-probs and advantages: exactly where HPT gates each prompt group and rebuilds the batch;
- ``init_workers`` installs the hybrid loss with ``set_loss_fn`` (``init_model`` would overwrite
  anything installed earlier);
- ``_update_actor`` passes the step to the loss and un-prefixes hpt's and custom losses' metrics;
- ``train_dataloader`` is wrapped in ``SelectingLoader`` when ``trainer.rollout_selection.enable``:
  the batch verl sends to generation then holds only the prompts worth generating, and the
  prompts routed to their demonstration join the batch at the rebuild;
- ``_save_checkpoint`` writes hpt's run state (``hpt.trainer.run_state``) into the step's directory
  before verl writes its part and the tracker; ``_load_checkpoint`` checks it before verl loads and
  restores it after.

With a prompt-history option or the rollout selection on, epochs shrink as prompts are skipped;
verl sizes the run from the full data (``total_epochs`` x batches per full epoch), so the trainer
lets verl's epoch loop run as many (shorter) epochs as it takes to reach that step: the last step,
its validation and checkpoint happen, and schedules reach the end of their horizon.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import dataclasses
import logging
import math
from collections import Counter
from functools import partial
from typing import Any

import numpy as np
import torch
from omegaconf import open_dict
from verl import DataProto
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.utils.config import omega_conf_to_dataclass

from hpt import metrics as M
from hpt.config.schema import HPTSettings
from hpt.core.gates import GroupOutcome, Mode, build_gate
from hpt.core.history import PromptHistory
from hpt.core.groups import count_successes
from hpt.core.plan import RebuildPlan, plan_rebuild, rollouts_with_gradient
from hpt.core.selection import RolloutSelector, check_routable, mispredicted
from hpt.trainer.actor_loss import hpt_actor_loss
from hpt.trainer import run_state
from hpt.trainer.agent_metrics import agent_metrics
from hpt.trainer.batch import DemoOptions, apply_plan, group_index
from hpt.trainer.multiturn import DemoSource, agent_names, has_demonstration
from hpt.trainer.selection_loader import (
    SelectingLoader,
    StepSelection,
    generated_multiple,
    prompt_key,
    selection_config,
)
from hpt.trainer.sft_stream import source_rows

logger = logging.getLogger(__name__)


class HPTRayTrainer(RayPPOTrainer):
    """Per-prompt gating between SFT, off-policy RL and GRPO on top of verl's trainer (``use_v1=false``)."""

    def __init__(
        self,
        *args,
        sft_stream=None,
        history: PromptHistory | None = None,
        prompt_builder=None,
        demo_source: DemoSource | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        # which demonstration each row trains: single-turn text, or a tool trajectory replayed like a rollout
        self._demo_source = demo_source if demo_source is not None else DemoSource(self.tokenizer, None)
        self._history = history
        self.hpt = HPTSettings.from_trainer_config(self.config.trainer)
        self._sft_stream = sft_stream
        self._gates = {name: build_gate(name) for name in (self._route_gate_name(1), self._route_gate_name(10**9))}
        self._warned_truncation = False
        self._selector: RolloutSelector | None = None
        self._prompt_builder = prompt_builder  # the agent loop's prompt tokenisation, for routed prompts
        if selection_config(self.config.trainer).enable:
            self._start_selection()
        if (history is not None and history.config.enabled) or self._selector is not None:
            self._let_shrinking_epochs_reach_the_last_step()

    def _start_selection(self) -> None:
        """Wrap verl's dataloader so that only the selected prompts go to generation."""
        config = selection_config(self.config.trainer)
        n = int(self.config.actor_rollout_ref.rollout.n)
        if config.route_fail:
            check_routable(self._gates, self.hpt.gate, n)
        if self._prompt_builder is None:
            raise ValueError("rollout selection needs the agent loop's prompt builder (prompt_builder=...)")
        self._selector = RolloutSelector(config, n)
        batch_size = int(self.config.data.get("gen_batch_size") or self.config.data.train_batch_size)
        workers = int(self.config.actor_rollout_ref.rollout.agent.num_workers)
        self.train_dataloader = SelectingLoader(
            self.train_dataloader, self._selector, batch_size, generated_multiple(workers, n)
        )

    def _let_shrinking_epochs_reach_the_last_step(self) -> None:
        """verl loops ``total_epochs`` times; skipped prompts shorten epochs, so allow enough of them.

        Every epoch has at least one batch (the sampler samples every prompt rather than none) and
        a resume may start one loop pass late, so one pass per step plus one always suffices; the
        run still ends at ``total_training_steps`` (verl's ``is_last_step``).
        """
        passes = self.total_training_steps + 1
        if self.config.trainer.total_epochs < passes:
            logger.info(
                "prompt history: epochs shrink as prompts are skipped; the run lasts total_training_steps=%d "
                "steps (trainer.total_epochs=%d full epochs), so verl's epoch loop may run up to %d passes",
                self.total_training_steps, self.config.trainer.total_epochs, passes,
            )
            with open_dict(self.config):
                self.config.trainer.total_epochs = passes

    def init_workers(self):
        super().init_workers()
        actor_config = omega_conf_to_dataclass(self.config.actor_rollout_ref.actor)
        self.actor_rollout_wg.set_loss_fn(partial(hpt_actor_loss, config=actor_config))

    def _balance_batch(self, batch: DataProto, metrics, logging_prefix="global_seqlen", keep_minibatch=False):
        rebuilt = self._rebuild(batch, metrics)
        batch.batch, batch.non_tensor_batch = rebuilt.batch, rebuilt.non_tensor_batch
        return super()._balance_batch(batch, metrics, logging_prefix=logging_prefix, keep_minibatch=keep_minibatch)

    def _save_checkpoint(self):
        directory = run_state.step_dir(self.config.trainer, self.global_steps)
        run_state.save_run_state(directory, self._run_state())
        run_state.pause_if_requested(directory, self.global_steps)
        super()._save_checkpoint()  # the model, data.pt, then the tracker that names this step

    def _load_checkpoint(self):
        directory = run_state.checkpoint_to_resume(self.config.trainer)
        state = None if directory is None else run_state.load_run_state(directory, self._fingerprint())
        if state is not None and state.get("selection") is not None and self._selector is None:
            raise run_state.RunStateError(
                f"{directory} was written with trainer.rollout_selection.enable=true (its data.pt holds the "
                "selection's prompt buffer); resume with it on, or start a new run (trainer.resume_mode=disable)"
            )
        result = super()._load_checkpoint()
        if state is not None:
            self._restore(state, directory)
        return result

    def _fingerprint(self) -> dict:
        return run_state.fingerprint(self.config, len(self.train_dataset))

    def _run_state(self) -> dict:
        return {
            "global_step": self.global_steps,
            "fingerprint": self._fingerprint(),
            "total_training_steps": self.total_training_steps,
            "history": self._history.state_dict() if self._history is not None else None,
            "sft_stream": self._sft_stream.state_dict() if self._sft_stream is not None else None,
            "selection": self._selector.state_dict() if self._selector is not None else None,
        }

    def _restore(self, state: dict, directory) -> None:
        """hpt's state from ``directory`` (verl has loaded its own and set ``global_steps``)."""
        if state["global_step"] != self.global_steps:
            raise run_state.RunStateError(
                f"{directory} holds hpt state of step {state['global_step']} but verl resumed step {self.global_steps}"
            )
        if self._history is not None and state["history"] is not None:
            self._history.load_state_dict(state["history"])
        if self._sft_stream is not None and state["sft_stream"] is not None:
            self._sft_stream.load_state_dict(state["sft_stream"])
        if self._selector is not None and state.get("selection") is not None:
            self._selector.load_state_dict(state["selection"])
        elif self._selector is not None:
            logger.warning(
                "%s holds no rollout-selection memory (written without trainer.rollout_selection); "
                "resume_without_memory=true: the selection starts with an empty memory", directory,
            )
        data = directory / "data.pt"
        if data.is_file():  # verl skips it when it thinks an epoch ended; hpt's sampler knows
            self.train_dataloader.load_state_dict(torch.load(data, weights_only=False))
        if state["total_training_steps"] != self.total_training_steps:
            logger.warning(
                "resuming a run of %d steps as one of %d: lambda schedules jump to the new progress",
                state["total_training_steps"], self.total_training_steps,
            )
        logger.info("restored hpt run state of step %d from %s", self.global_steps, directory)

    def _route_gate_name(self, step: int) -> str:
        """The gate routing ``step``'s groups; CHORD with a separate SFT stream takes its experts from the
        stream, so the prompts' groups train on their rollouts only."""
        name = self.hpt.gate_name_at_step(step)
        return "no" if name == "chord" and self._sft_stream is not None else name

    def _update_actor(self, batch: DataProto) -> DataProto:
        method = self.hpt.gate_name_at_step(self.global_steps)
        batch.meta_info.update(hpt_global_step=self.global_steps, hpt_total_steps=self.total_training_steps,
                               hpt_method=method, hpt_phi=method == "chord" and self.hpt.chord.enable_phi_function)
        output = super()._update_actor(batch)
        output.meta_info["metrics"] = {
            _logged_name(key): value for key, value in output.meta_info["metrics"].items()
        }
        return output

    def _row_multiple(self) -> int:
        """Rows must divide into DP shards and into whole PPO mini-batches."""
        actor = self.config.actor_rollout_ref.actor
        mini_batch_rows = actor.ppo_mini_batch_size * self.config.actor_rollout_ref.rollout.n
        return math.lcm(self._get_dp_size(self.actor_rollout_wg, "actor"), mini_batch_rows)

    def _progress(self) -> float:
        return min(max((self.global_steps - 1) / max(self.total_training_steps - 1, 1), 0.0), 1.0)

    def _rebuild(self, batch: DataProto, metrics: dict) -> DataProto:
        """Gate every prompt group, then rebuild the batch with the planned rows and weights."""
        scores_B = _rollout_scores(batch)
        groups = count_successes(scores_B, group_index(batch.non_tensor_batch["uid"]), self.hpt.success_threshold)
        extra_info = batch.non_tensor_batch["extra_info"]
        agents = agent_names(batch)
        has_demo = [has_demonstration(extra_info[g.rows[0]], agents[g.rows[0]]) for g in groups]
        pass_rate = float((scores_B > self.hpt.success_threshold).float().mean())
        warming_up = self.hpt.in_sft_warmup(self.global_steps)
        # The SFT warm-up is plain SFT: lambda shapes the demonstration terms of the strategy after it.
        scale = 1.0 if warming_up else self.hpt.schedule(self._progress(), pass_rate)
        chord = self.hpt.gate_name_at_step(self.global_steps) == "chord"
        mu = self.hpt.chord.mu(self.global_steps - 1) if chord else None
        if mu is not None:  # CHORD: (1 - mu) * GRPO + mu * SFT
            scale *= mu
        budget = batch.batch["responses"].shape[-1]
        stream, stream_truncated = (None, 0)
        if self._sft_stream is not None:
            stream, stream_truncated = self._sft_stream.rows(batch, self.tokenizer, scale)
        gate = self._gates[self._route_gate_name(self.global_steps)]
        selected = self._take_selection()
        source, routed_rows = self._with_routed_prompts(batch, selected.routed)
        routed_route = gate(GroupOutcome(0, self.config.actor_rollout_ref.rollout.n), self.hpt.gate)
        plan = plan_rebuild(
            groups,
            has_demo,
            gate,
            self.hpt.gate,
            self._row_multiple(),
            stream_rows=0 if stream is None else len(stream),
            routed_rows=routed_rows,
            routed_route=routed_route,
        )
        if mu is not None:
            plan = dataclasses.replace(plan, keep_weights=tuple(w * (1.0 - mu) for w in plan.keep_weights))
        demos = [self._demo_source.demo(source, d.source_row, budget) for d in plan.demos]
        options = DemoOptions(
            self.tokenizer.pad_token_id, scale=scale, reward=self.hpt.demo_reward, processor=self.processor
        )
        rebuilt = apply_plan(source, plan, demos, options, stream)
        # per-row success (SRFT's rollout weights); demonstration rows carry demo_reward when scored
        rebuilt.batch["hpt_success"] = (rebuilt.batch["rm_scores"].sum(-1) > self.hpt.success_threshold).float()
        if self._history is not None and self._history.config.enabled and not warming_up:
            # the warm-up trains every prompt on its demonstration: recording that would let
            # remove_sfted_data drop every warm-up prompt from the strategy's later epochs
            for stats, mode in zip(groups, plan.group_modes, strict=True):
                key = extra_info[stats.rows[0]].get("index")
                self._history.record(key, stats.pass_rate, trained_on_demo=mode is Mode.SFT)
            for row in routed_rows:  # predicted all-fail (pass rate 0), trained like an all-fail group
                key = prompt_key(source.non_tensor_batch["extra_info"][row])
                self._history.record(key, 0.0, trained_on_demo=routed_route.mode is Mode.SFT)
            metrics[M.HISTORY_EXCLUDED] = len(self._history.excluded())
        metrics.update(_waste_metrics(batch, scores_B, groups, plan))
        if self._selector is not None:
            metrics.update(self._observe(groups, extra_info, selected, plan))
        truncated = sum(d.truncated for d in demos) + stream_truncated
        self._warn_truncation(truncated, budget)
        metrics.update(_gate_metrics(plan, groups, rebuilt, scale, pass_rate))
        metrics.update(_demo_metrics(plan, scale, len(groups) + len(routed_rows)))
        metrics.update(agent_metrics(batch, agents, plan, demos, self._demo_source.replayer))
        if mu is not None:
            metrics[M.CHORD_MU] = mu
        metrics.update(
            {
                M.BATCH_DEMO_TRUNCATED: truncated,
                M.BATCH_SFT_STREAM_ROWS: plan.stream_rows,
                M.REWARD_MEAN: float(scores_B.mean()),
            }
        )
        metrics.update(no_verdict_shares(batch.non_tensor_batch.get("reason")))
        return rebuilt

    def _take_selection(self) -> StepSelection:
        """What the selecting loader decided for this step (empty without selection); consumed once."""
        if self._selector is None:
            return StepSelection()
        selected, self.train_dataloader.step = self.train_dataloader.step, StepSelection()
        return selected

    def _with_routed_prompts(self, batch: DataProto, routed: DataProto | None):
        """``batch`` plus one row per routed prompt carrying its templated prompt (the demonstration's source).

        The extra rows belong to no group and are never kept; they only lend their ``prompts`` to the
        demonstration rows, tokenised as the agent loop would have for a rollout.
        """
        if routed is None:
            return batch, []
        items = [{key: values[i] for key, values in routed.non_tensor_batch.items()} for i in range(len(routed))]
        prompt_ids = [
            self._prompt_builder.build_initial_tokens(
                list(item["raw_prompt"]), tools=self._demo_source.tools_for(item.get("agent_name"))
            )
            for item in items
        ]
        extra = source_rows(batch, items, prompt_ids, self.tokenizer.pad_token_id, what="routed (rollout_selection)")
        rows = list(range(len(batch), len(batch) + len(routed)))
        return DataProto.concat([batch, extra]), rows

    def _observe(self, groups, extra_info, selected: StepSelection, plan: RebuildPlan) -> dict:
        """Feed every generated group to the pass-rate memory; the step's selection metrics."""
        wrong = 0
        for stats in groups:
            key = prompt_key(extra_info[stats.rows[0]])
            if key in selected.probes:
                wrong += mispredicted(selected.probes[key], stats.successes, stats.size)
            self._selector.memory.update(key, stats.successes, stats.size)
        return {
            M.SELECTION_GENERATED: len(groups),
            M.SELECTION_ROUTED: plan.routed_prompts,
            M.SELECTION_DEFERRED: selected.deferred,
            M.SELECTION_PROBES: len(selected.probes),
            M.SELECTION_MISPREDICTIONS: wrong,
            M.SELECTION_FORCED: selected.forced,
            M.SELECTION_MEMORY: len(self._selector.memory),
        }

    def _warn_truncation(self, truncated: int, budget: int) -> None:
        if truncated and not self._warned_truncation:
            logger.warning(
                "%d demonstration(s) are longer than the response budget of %d tokens and were truncated "
                "(their final answer may be lost); raise data.max_response_length or filter long "
                "demonstrations. Counted every step in %s.",
                truncated,
                budget,
                M.BATCH_DEMO_TRUNCATED,
            )
            self._warned_truncation = True


def _rollout_scores(batch: DataProto):
    """Each rollout's reward; the rebuild point comes after streaming rewards, before a colocated reward model."""
    if "rm_scores" not in batch.batch.keys():
        raise RuntimeError(
            "no rewards (rm_scores) at HPT's rebuild point: a colocated reward model scores later in verl's step. "
            "Set reward.reward_model.enable_resource_pool=true or use a rule-based reward function"
        )
    return batch.batch["rm_scores"].sum(-1)


def no_verdict_shares(reasons: Any) -> dict[str, float]:
    """Per reason, the share of rollouts the verifier scored without a verdict (hpt's math verifier's
    ``reason``; "" = a verdict). Nothing for a reward function that returns no ``reason``."""
    if reasons is None or len(reasons) == 0:
        return {}
    counts = Counter(str(reason) for reason in reasons if reason)
    return {M.REWARD_NO_VERDICT.format(reason=reason): count / len(reasons) for reason, count in sorted(counts.items())}


def _logged_name(key: str) -> str:
    """verl prefixes worker metrics with ``actor/``; hpt's keys and a custom loss's own keep their names."""
    name = key.removeprefix("actor/")
    if name.startswith(M.CUSTOM_PREFIX):
        return name.removeprefix(M.CUSTOM_PREFIX)
    return name if name.startswith("hpt/") else key


def _waste_metrics(batch: DataProto, scores_B: torch.Tensor, groups, plan: RebuildPlan) -> dict:
    """Generated rollout tokens, and the share of them that gets no policy gradient (``rollouts_with_gradient``)."""
    tokens_B = batch.batch["response_mask"].sum(-1).to(torch.float64)
    trained = rollouts_with_gradient(scores_B, groups, plan)
    total = float(tokens_B.sum())
    return {
        M.ROLLOUT_TOKENS: total,
        M.ROLLOUT_NO_GRAD_SHARE: float(tokens_B[~trained].sum()) / total if total else 0.0,
    }


def _demo_metrics(plan: RebuildPlan, scale: float, num_groups: int) -> dict:
    """Share of prompt groups whose own demonstration is trained this step (by any term, SFT, off-policy).

    From the weights actually stamped (route weight x lambda, x mu for CHORD), so it is true for every
    strategy: 1.0 for mix/chord/srft/luffy, the SFT groups' share for switch, 0 for GRPO or lambda = 0.
    """
    sft = sum(d.sft_weight * scale > 0 for d in plan.demos)
    off = sum(d.off_weight * scale > 0 for d in plan.demos)
    trained = sum((d.sft_weight + d.off_weight) * scale > 0 for d in plan.demos)
    share = 1.0 / num_groups if num_groups else 0.0
    return {M.DEMO_PROMPT_FRAC: trained * share, M.DEMO_SFT_PROMPT_FRAC: sft * share,
            M.DEMO_OFF_PROMPT_FRAC: off * share}


def _gate_metrics(plan: RebuildPlan, groups, rebuilt: DataProto, scale: float, pass_rate: float) -> dict:
    """Mode fractions, success histogram, lambda and row counts of one rebuild."""
    metrics = {key: plan.fraction(mode) for mode, key in M.GATE_FRAC.items()}
    sizes = {g.size for g in groups}
    histogram = np.bincount([g.successes for g in groups], minlength=max(sizes) + 1) / len(groups)
    metrics.update({M.GATE_SUCCESS_HIST.format(k=k): float(v) for k, v in enumerate(histogram)})
    demo_mask = rebuilt.batch["prefix_mask"] & rebuilt.batch["response_mask"].bool()
    metrics.update(
        {
            M.GATE_MISSING_DEMO: plan.missing_demo_groups,
            M.GATE_LAMBDA: scale,
            M.GATE_PASS_RATE: pass_rate,
            M.BATCH_DEMO_ROWS: len(plan.demos),
            M.BATCH_DEMO_TOKENS: int(demo_mask.sum()),
            M.BATCH_PAD_ROWS: plan.num_pad,
            M.BATCH_ROWS: len(rebuilt),
        }
    )
    return metrics

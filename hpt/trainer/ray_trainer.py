"""HPTRayTrainer: verl's legacy Ray PPO trainer with the HPT rebuild and the hybrid whole-loss.

It extends verl at two seams and never copies ``fit``:
- ``_balance_batch`` runs after generation and reward and before old log-probs, reference
  log-probs and advantages: exactly where HPT gates each prompt group and rebuilds the batch;
- ``init_workers`` installs the hybrid loss with ``set_loss_fn`` (``init_model`` would overwrite
  anything installed earlier).
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import logging
import math
from functools import partial

import numpy as np
from verl import DataProto
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.utils.config import omega_conf_to_dataclass

from hpt import metrics as M
from hpt.config.schema import HPTSettings
from hpt.core.gates import build_gate
from hpt.core.groups import count_successes
from hpt.core.plan import plan_rebuild
from hpt.trainer.actor_loss import hpt_actor_loss
from hpt.trainer.batch import Demonstration, apply_plan, demonstration_target, group_index, tokenize_demonstration

logger = logging.getLogger(__name__)


class HPTRayTrainer(RayPPOTrainer):
    """Per-prompt SFT/RL gating on top of verl's trainer (``trainer.use_v1=false``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hpt = HPTSettings.from_trainer_config(self.config.trainer)
        self._gate = build_gate(self.hpt.unify_strategy)
        self._warned_truncation = False

    def init_workers(self):
        super().init_workers()
        actor_config = omega_conf_to_dataclass(self.config.actor_rollout_ref.actor)
        self.actor_rollout_wg.set_loss_fn(partial(hpt_actor_loss, config=actor_config))

    def _balance_batch(self, batch: DataProto, metrics, logging_prefix="global_seqlen", keep_minibatch=False):
        rebuilt = self._rebuild(batch, metrics)
        batch.batch, batch.non_tensor_batch = rebuilt.batch, rebuilt.non_tensor_batch
        return super()._balance_batch(batch, metrics, logging_prefix=logging_prefix, keep_minibatch=keep_minibatch)

    def _update_actor(self, batch: DataProto) -> DataProto:
        output = super()._update_actor(batch)
        # verl prefixes worker metrics with "actor/"; hpt's keys keep their own namespace.
        worker_metrics = output.meta_info["metrics"]
        output.meta_info["metrics"] = {
            key.removeprefix("actor/") if key.startswith("actor/hpt/") else key: value
            for key, value in worker_metrics.items()
        }
        return output

    def _row_multiple(self) -> int:
        """Rows must divide into DP shards and into whole PPO mini-batches."""
        actor = self.config.actor_rollout_ref.actor
        mini_batch_rows = actor.ppo_mini_batch_size * self.config.actor_rollout_ref.rollout.n
        return math.lcm(self._get_dp_size(self.actor_rollout_wg, "actor"), mini_batch_rows)

    def _rebuild(self, batch: DataProto, metrics: dict) -> DataProto:
        """Gate every prompt group, then replace SFT groups' rollouts with their demonstration."""
        scores_B = batch.batch["rm_scores"].sum(-1)
        groups = count_successes(scores_B, group_index(batch.non_tensor_batch["uid"]), self.hpt.success_threshold)
        extra_info = batch.non_tensor_batch["extra_info"]
        targets = [demonstration_target(extra_info[g.rows[0]]) for g in groups]
        plan = plan_rebuild(
            groups, [t is not None for t in targets], self._gate, self.hpt.gate, self._row_multiple()
        )
        demos = self._demonstrations(batch, plan.demo_source_rows)
        rebuilt = apply_plan(batch, plan, demos, self.tokenizer.pad_token_id)
        n_groups = len(groups)
        metrics.update(
            {
                M.GATE_SFT_FRAC: plan.sft_groups / n_groups,
                M.GATE_RL_FRAC: plan.rl_groups / n_groups,
                M.GATE_MISSING_DEMO: plan.missing_demo_groups,
                M.BATCH_DEMO_ROWS: len(plan.demo_source_rows),
                M.BATCH_PAD_ROWS: plan.num_pad,
                M.BATCH_ROWS: len(rebuilt),
                M.BATCH_DEMO_TRUNCATED: sum(d.truncated for d in demos),
                M.REWARD_MEAN: float(scores_B.mean()),
            }
        )
        return rebuilt

    def _demonstrations(self, batch: DataProto, source_rows: tuple[int, ...]) -> list[Demonstration]:
        budget = batch.batch["responses"].shape[-1]
        extra_info = batch.non_tensor_batch["extra_info"]
        demos = [
            tokenize_demonstration(self.tokenizer, demonstration_target(extra_info[row]), budget)
            for row in source_rows
        ]
        truncated = int(np.sum([d.truncated for d in demos]))
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
        return demos

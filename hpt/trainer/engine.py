"""FSDP engine that also counts the hybrid loss's global normalisers, once per mini-batch.

verl's engine sums ``loss_mask`` over the mini-batch and all DP ranks (``batch_num_tokens``) before
splitting it into micro-batches; the loss only ever sees a micro-batch. The hybrid loss needs the
same kind of global count *per term* (on-policy, SFT and off-policy tokens, and their rows), so
this subclass computes them at the same point, with one all-reduce, and attaches them to the
mini-batch as non-tensor data that every micro-batch inherits. Without ``prefix_mask`` in the batch
(plain verl runs) it behaves exactly like verl's engine.

verl's ``optimizer_step`` already skips the update when the gradient norm is not finite (a NaN or
infinite loss gives one); this engine counts and logs those skips (``hpt/update/skipped_nonfinite``).
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin and platform before the imports below)
import logging
import math

import torch
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.utils.device import get_device_id
from verl.workers.engine.base import EngineRegistry
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

from hpt import metrics as M
from hpt.core.loss import COUNT_NAMES, term_counts, term_masks

logger = logging.getLogger(__name__)

COUNT_KEYS = tuple(f"hpt_{name}" for name in COUNT_NAMES)
WEIGHT_KEYS = ("hpt_rl_weight", "hpt_sft_weight", "hpt_off_weight")  # per-row weights stamped by the trainer


def batch_term_masks(data: TensorDict):
    """The hybrid loss's token masks of a padded batch that carries ``prefix_mask`` and the row weights."""
    return term_masks(data["response_mask"], data["prefix_mask"], *(data[key] for key in WEIGHT_KEYS))


class HPTFSDPEngineWithLMHead(FSDPEngineWithLMHead):
    """verl's FSDP language-model engine plus per-term global counts for ``prefix_mask`` batches."""

    def forward_backward_batch(self, data: TensorDict, loss_function, forward_only=False):
        if not forward_only and "prefix_mask" in data.keys():
            counts = term_counts(batch_term_masks(data)).to(get_device_id())
            torch.distributed.all_reduce(
                counts, op=torch.distributed.ReduceOp.SUM, group=self.get_data_parallel_group()
            )
            for key, value in zip(COUNT_KEYS, counts.tolist(), strict=True):
                tu.assign_non_tensor(data, **{key: int(value)})
        return super().forward_backward_batch(data, loss_function, forward_only=forward_only)

    def train_batch(self, data: TensorDict, loss_function):
        outputs = super().train_batch(data, loss_function)
        if self.is_mp_src_rank_with_outputs():
            grad_norm = float(outputs["metrics"]["grad_norm"])
            skipped = not math.isfinite(grad_norm)
            if skipped:
                self._skipped_updates = getattr(self, "_skipped_updates", 0) + 1
                logger.warning(
                    "gradient norm %s is not finite: this mini-batch's update was skipped (weights unchanged); "
                    "%d update(s) skipped so far in this run, logged as %s", grad_norm, self._skipped_updates,
                    M.UPDATE_SKIPPED_NONFINITE,
                )
            outputs["metrics"][M.UPDATE_SKIPPED_NONFINITE] = [float(skipped)]  # verl's shape: one value per micro-batch
        return outputs


def install() -> None:
    """Swap verl's FSDP language-model engine for the counting subclass under every registered device."""
    by_backend = EngineRegistry._engines["language_model"]
    for backend in ("fsdp", "fsdp2"):
        for key, engine_cls in by_backend.get(backend, {}).items():
            if engine_cls is FSDPEngineWithLMHead:
                by_backend[backend][key] = HPTFSDPEngineWithLMHead


def installed() -> bool:
    """True when every FSDP language-model registration points at the counting engine."""
    by_backend = EngineRegistry._engines["language_model"]
    registered = [cls for backend in ("fsdp", "fsdp2") for cls in by_backend.get(backend, {}).values()]
    return bool(registered) and all(cls is HPTFSDPEngineWithLMHead for cls in registered)


install()

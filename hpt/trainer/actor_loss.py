"""The whole actor loss for verl's engine workers, installed with ``set_loss_fn``.

It replaces verl's ``ppo_loss`` for HPT runs. Every row carries three weights stamped by the trainer
(``hpt_rl_weight``, ``hpt_sft_weight``, ``hpt_off_weight``); each term covers the tokens whose row has
weight > 0 and is normalised by its own global count that ``hpt.trainer.engine`` attached:

- RL: whichever policy loss is registered in verl (``policy_loss.loss_mode``) on rollout tokens,
  advantages scaled by the row's RL weight (exact for losses linear in the advantage);
- SFT: ``offline_loss_type`` (NLL by default) on demonstration tokens, times ``sft_loss_coef``;
- off-policy RL: ``off_policy_loss_type`` (LUFFY's shaped loss by default) on demonstration tokens
  with their own advantages, times ``off_loss_coef``.

Entropy and KL terms cover on-policy tokens only. With ``loss_mode=custom`` the user's function gets
the RL inputs plus the hybrid data in ``config.global_batch_info`` and returns the whole loss.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
from dataclasses import dataclass

import torch
from tensordict import TensorDict
from verl.trainer.ppo.core_algos import agg_loss, get_policy_loss_fn, kl_penalty
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.padding import no_padding_2_padding

from hpt import metrics as M
from hpt.core.loss import HybridLossParts, TermMasks, term_masks
from hpt.core.offpolicy import OffPolicyInputs, build_off_policy_loss
from hpt.trainer.custom_contract import CUSTOM_LOSS_MODE, HYBRID_KEYS, load_custom_loss
from hpt.trainer.engine import COUNT_KEYS, WEIGHT_KEYS

SUM = AggregationType.SUM  # each micro-batch holds a partial sum of a global mean


def _global_counts(data: TensorDict) -> dict[str, int]:
    missing = [key for key in COUNT_KEYS if key not in data.keys()]
    if missing:
        raise RuntimeError(
            f"hpt loss: mini-batch lacks {missing}; the FSDP engine is not hpt's counting engine. "
            "Is the hpt plugin loaded in the workers (see hpt.plugin.check_registrations)?"
        )
    return {key.removeprefix("hpt_"): int(data[key]) for key in COUNT_KEYS}


@dataclass(frozen=True)
class _MicroBatch:
    """What every term of one micro-batch's loss reads."""

    log_prob: torch.Tensor
    inputs: OffPolicyInputs
    counts: dict[str, int]
    dp_size: int


def _demo_term(config, loss_name: str, weight_B: torch.Tensor, mask: torch.Tensor, term: str, mb: _MicroBatch):
    """A demonstration term: per-token loss x row weight, aggregated over the term's global counts."""
    loss_B_T = build_off_policy_loss(loss_name)(mb.log_prob, mb.inputs, config.off_policy_params())
    return agg_loss(
        loss_B_T * weight_B.to(loss_B_T.dtype)[:, None],
        mask,
        config.offline_loss_agg_mode,
        dp_size=mb.dp_size,
        batch_num_tokens=max(mb.counts[f"{term}_tokens"], 1),
        global_batch_size=max(mb.counts[f"{term}_rows"], 1),
        loss_scale_factor=config.loss_scale_factor,
    )


def _rl_term(config, batch, log_prob, masks: TermMasks, extra: dict):
    """verl's registered policy loss on rollout tokens; ``extra`` joins ``global_batch_info`` (custom)."""
    mode = config.policy_loss.get("loss_mode", "vanilla")
    loss_fn = load_custom_loss(config.custom_loss_path) if mode == CUSTOM_LOSS_MODE else get_policy_loss_fn(mode)
    config.global_batch_info.update(extra)
    try:
        return loss_fn(
            old_log_prob=batch["old_log_probs"],
            log_prob=log_prob,
            advantages=batch["advantages"] * batch["hpt_rl_weight"].to(batch["advantages"].dtype)[:, None],
            response_mask=masks.on,
            loss_agg_mode=config.loss_agg_mode,
            config=config,
            rollout_is_weights=batch.get("rollout_is_weights", None),
        )
    finally:  # do not keep this micro-batch's tensors (and their graphs) alive in the config
        for key in HYBRID_KEYS:
            config.global_batch_info.pop(key, None)


def hpt_actor_loss(config, model_output, data: TensorDict, dp_group=None):
    """Hybrid loss of one micro-batch (see the module docstring)."""
    counts = _global_counts(data)
    dp_size = int(data["dp_size"])
    log_prob = no_padding_2_padding(model_output["log_probs"], data)
    entropy = model_output.get("entropy", None)
    if entropy is not None:
        entropy = no_padding_2_padding(entropy, data)

    fields = ["response_mask", "prefix_mask", "old_log_probs", "advantages", *WEIGHT_KEYS]
    fields += [key for key in ("rollout_is_weights", "ref_log_prob") if key in data.keys()]
    batch = data.select(*fields).to_padded_tensor()
    masks = term_masks(batch["response_mask"], batch["prefix_mask"], *(batch[key] for key in WEIGHT_KEYS))
    inputs = OffPolicyInputs(advantages_B_T=batch["advantages"], old_log_prob_B_T=batch["old_log_probs"],
                             entropy_B_T=entropy)
    mb = _MicroBatch(log_prob=log_prob, inputs=inputs, counts=counts, dp_size=dp_size)
    sft = _demo_term(config, config.offline_loss_type, batch["hpt_sft_weight"], masks.sft, "sft", mb)
    off = _demo_term(config, config.off_policy_loss_type, batch["hpt_off_weight"], masks.off, "off", mb)

    # verl's policy losses aggregate with ``**config.global_batch_info``: point it at the RL term's
    # own global counts so token-mean and seq-mean both normalise over on-policy data only.
    extra = dict(dp_size=dp_size, batch_num_tokens=max(counts["on_tokens"], 1),
                 global_batch_size=max(counts["on_rows"], 1), loss_scale_factor=config.loss_scale_factor)
    custom = config.policy_loss.get("loss_mode", "vanilla") == CUSTOM_LOSS_MODE
    if custom:
        extra.update(sft_loss=sft, sft_log_prob=log_prob, sft_labels_mask=masks.sft.to(log_prob.dtype),
                     global_step=int(data["hpt_global_step"]), total_steps=int(data["hpt_total_steps"]))
    rl, pg_metrics = _rl_term(config, batch, log_prob, masks, extra)
    parts = HybridLossParts(rl=rl, sft=sft, off=off, sft_coef=config.sft_loss_coef, off_coef=config.off_loss_coef)
    loss = rl if custom else parts.total

    metrics = _loss_metrics(pg_metrics, parts, custom)
    if entropy is not None:
        entropy_term = agg_loss(entropy, masks.on, config.loss_agg_mode, **config.global_batch_info)
        loss = loss - config.entropy_coeff * entropy_term
        metrics["actor/entropy_loss"] = Metric(value=entropy_term, aggregation=SUM)
    if config.use_kl_loss:
        kld = kl_penalty(logprob=log_prob, ref_logprob=batch["ref_log_prob"], kl_penalty=config.kl_loss_type)
        kl = agg_loss(kld, masks.on, config.loss_agg_mode, **config.global_batch_info)
        loss = loss + config.kl_loss_coef * kl
        metrics["actor/kl_loss"] = Metric(value=kl, aggregation=SUM)
    return loss, metrics


def _loss_metrics(pg_metrics: dict, parts: HybridLossParts, custom: bool) -> dict:
    """Per-term losses (global means summed over micro-batches); a custom loss's own metrics pass through.

    A custom loss's metric names (``sft_weight``, ``rl_loss``, ...) are averaged over micro-batches and
    reach the logger unchanged (the trainer strips verl's ``actor/`` prefix from them).
    """
    prefix = M.CUSTOM_PREFIX if custom else ""
    metrics = Metric.from_dict(
        {
            prefix + key: value.detach().item() if torch.is_tensor(value) else value
            for key, value in pg_metrics.items()
        },
        aggregation=AggregationType.MEAN,
    )
    if not custom:
        metrics["actor/pg_loss"] = Metric(value=parts.rl.detach(), aggregation=SUM)
    metrics[M.LOSS_RL] = Metric(value=parts.rl.detach(), aggregation=SUM)
    metrics[M.LOSS_SFT] = Metric(value=parts.sft.detach(), aggregation=SUM)
    metrics[M.LOSS_OFF] = Metric(value=parts.off.detach(), aggregation=SUM)
    return metrics

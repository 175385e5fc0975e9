"""The whole actor loss for verl's engine workers, installed with ``set_loss_fn``.

It replaces verl's ``ppo_loss`` for HPT runs: the RL term goes through whichever policy loss is
registered in verl (``actor.policy_loss.loss_mode``) on on-policy tokens only, the demonstration
term is NLL on ``prefix_mask`` tokens, and each is normalised by its own global count that
``hpt.trainer.engine`` attached to the mini-batch. Entropy and KL terms cover on-policy tokens only.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
from tensordict import TensorDict
from verl.trainer.ppo.core_algos import agg_loss, get_policy_loss_fn, kl_penalty
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.padding import no_padding_2_padding

from hpt import metrics as M
from hpt.core.loss import hybrid_loss, nll_term, split_token_masks
from hpt.trainer.engine import COUNT_KEYS


def _global_counts(data: TensorDict) -> dict[str, int]:
    missing = [key for key in COUNT_KEYS if key not in data.keys()]
    if missing:
        raise RuntimeError(
            f"hpt loss: mini-batch lacks {missing}; the FSDP engine is not hpt's counting engine. "
            "Is the hpt plugin loaded in the workers (see hpt.plugin.check_registrations)?"
        )
    return {key: int(data[key]) for key in COUNT_KEYS}


def hpt_actor_loss(config, model_output, data: TensorDict, dp_group=None):
    """Hybrid loss of one micro-batch: ``RL(on-policy) + sft_loss_coef * NLL(demonstrations)``."""
    counts = _global_counts(data)
    dp_size = int(data["dp_size"])
    log_prob = no_padding_2_padding(model_output["log_probs"], data)
    entropy = model_output.get("entropy", None)
    if entropy is not None:
        entropy = no_padding_2_padding(entropy, data)

    fields = ["response_mask", "prefix_mask", "old_log_probs", "advantages"]
    fields += [key for key in ("rollout_is_weights", "ref_log_prob") if key in data.keys()]
    batch = data.select(*fields).to_padded_tensor()
    on_mask, off_mask = split_token_masks(batch["response_mask"], batch["prefix_mask"])

    # verl's policy losses aggregate with ``**config.global_batch_info``: point it at the RL term's
    # own global counts so token-mean and seq-mean both normalise over on-policy data only.
    config.global_batch_info.update(
        dp_size=dp_size,
        batch_num_tokens=max(counts["hpt_on_tokens"], 1),
        global_batch_size=max(counts["hpt_on_rows"], 1),
        loss_scale_factor=config.loss_scale_factor,
    )
    policy_loss_fn = get_policy_loss_fn(config.policy_loss.get("loss_mode", "vanilla"))
    rl, pg_metrics = policy_loss_fn(
        old_log_prob=batch["old_log_probs"],
        log_prob=log_prob,
        advantages=batch["advantages"],
        response_mask=on_mask,
        loss_agg_mode=config.loss_agg_mode,
        config=config,
        rollout_is_weights=batch.get("rollout_is_weights", None),
    )
    off = nll_term(log_prob, off_mask, counts["hpt_off_tokens"], dp_size)
    parts = hybrid_loss(rl, off, config.sft_loss_coef)
    loss = parts.total

    total = AggregationType.SUM  # each micro-batch holds a partial sum of a global mean
    metrics = Metric.from_dict(pg_metrics, aggregation=AggregationType.MEAN)
    metrics["actor/pg_loss"] = Metric(value=rl, aggregation=total)
    metrics[M.LOSS_RL] = Metric(value=rl.detach(), aggregation=total)
    metrics[M.LOSS_SFT] = Metric(value=off.detach(), aggregation=total)
    if entropy is not None:
        entropy_term = agg_loss(entropy, on_mask, config.loss_agg_mode, **config.global_batch_info)
        loss = loss - config.entropy_coeff * entropy_term
        metrics["actor/entropy_loss"] = Metric(value=entropy_term, aggregation=total)
    if config.use_kl_loss:
        kld = kl_penalty(logprob=log_prob, ref_logprob=batch["ref_log_prob"], kl_penalty=config.kl_loss_type)
        kl = agg_loss(kld, on_mask, config.loss_agg_mode, **config.global_batch_info)
        loss = loss + config.kl_loss_coef * kl
        metrics["actor/kl_loss"] = Metric(value=kl, aggregation=total)
    return loss, metrics

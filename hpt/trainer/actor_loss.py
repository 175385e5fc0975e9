"""The whole actor loss for verl's engine workers, installed with ``set_loss_fn``.

It replaces verl's ``ppo_loss`` for HPT runs. Every row carries three weights stamped by the trainer
(``hpt_rl_weight``, ``hpt_sft_weight``, ``hpt_off_weight``); each term covers the tokens whose row has
weight > 0:

- RL: whichever policy loss is registered in verl (``policy_loss.loss_mode``) on rollout tokens,
  advantages scaled by the row's RL weight (exact for losses linear in the advantage); SRFT's own
  rollout loss when the trainer's method (``hpt_method``) is ``srft``;
- SFT: ``offline_loss_type`` (NLL by default) on demonstration tokens, times ``sft_loss_coef``
  (CHORD-phi's and SRFT's weights when the method asks for them);
- off-policy RL: ``off_policy_loss_type`` (LUFFY's shaped loss by default) on demonstration tokens
  with their own advantages, times ``off_loss_coef``.

``loss_normalization`` picks the normalisers (``hpt.core.loss``): ``global`` = each term over its own
global count (``hpt.trainer.engine``), ``original`` = the original code's per-micro-batch sums.
Entropy and KL cover on-policy tokens under ``global`` and every response token of the micro-batch
under ``original`` (as the original did). With ``loss_mode=custom`` the user's function gets the RL
inputs plus the hybrid data in ``config.global_batch_info`` and returns the whole loss.
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
from hpt.core.methods import row_mean, srft_rollout_loss, srft_sft_weight
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
class _Normalisers:
    """``agg_loss`` mode and keyword arguments of every term of one micro-batch."""

    rl_mode: str
    rl: dict
    off_mode: str
    off: dict
    sft_mode: str
    sft: dict
    regulariser_mask: torch.Tensor  # tokens of the entropy and KL terms
    regulariser_mode: str
    regulariser: dict


def _normalisers(config, counts: dict[str, int], dp_size: int, masks: TermMasks, valid: torch.Tensor) -> _Normalisers:
    """``global``: each term over its global counts; ``original``: the original code's micro-batch sums."""
    scale = config.loss_scale_factor
    if config.loss_normalization == "global":
        def info(term: str) -> dict:
            return dict(dp_size=dp_size, batch_num_tokens=max(counts[f"{term}_tokens"], 1),
                        global_batch_size=max(counts[f"{term}_rows"], 1), loss_scale_factor=scale)

        demo_mode = config.offline_loss_agg_mode
        return _Normalisers(config.loss_agg_mode, info("on"), demo_mode, info("off"), demo_mode, info("sft"),
                            masks.on, config.loss_agg_mode, info("on"))
    # original: dp_size=1 (no rescaling: FSDP averages over ranks, as the original's did) and micro-batch
    # counts. seq-mean-token-sum-norm is the original's loss_remove_token_mean=True: sum / L, no division
    # by rows (global_batch_size=1); token-mean is one token mean over on- and off-policy tokens together.
    def local(tokens: torch.Tensor) -> dict:
        return dict(dp_size=1, batch_num_tokens=max(int(tokens.sum()), 1), global_batch_size=1,
                    loss_scale_factor=scale)

    shared = local(masks.on | masks.off)
    mean = "token-mean"
    return _Normalisers(config.loss_agg_mode, shared, config.loss_agg_mode, shared, mean, local(masks.sft),
                        valid, mean, local(valid))


@dataclass(frozen=True)
class _MicroBatch:
    """What every term of one micro-batch's loss reads."""

    log_prob: torch.Tensor
    inputs: OffPolicyInputs
    norms: _Normalisers
    method: str
    phi: bool
    row_entropy: torch.Tensor | None  # per-row mean entropy (SRFT)


def _zero(mb: _MicroBatch) -> torch.Tensor:
    """A term with no token in this micro-batch contributes exactly 0 (and costs nothing)."""
    return torch.zeros((), dtype=mb.log_prob.dtype, device=mb.log_prob.device)


def _rows(mb: _MicroBatch, weight_B: torch.Tensor, mask: torch.Tensor):
    """Only the rows a demonstration term trains: its per-token loss is computed on those alone.

    Every normaliser is an explicit count (or L), so dropping rows with no token changes no value.
    """
    rows = mask.any(-1).nonzero().squeeze(-1)
    inputs = OffPolicyInputs(**{name: None if value is None else value[rows]
                                for name, value in vars(mb.inputs).items()})
    entropy = None if mb.row_entropy is None else mb.row_entropy[rows]
    return mb.log_prob[rows], inputs, weight_B[rows], mask[rows], entropy


def _sft_term(config, weight_B: torch.Tensor, mask: torch.Tensor, mb: _MicroBatch):
    """The SFT term; CHORD-phi and SRFT fix its per-token loss and weights (``hpt.core.methods``)."""
    if not mask.any():
        return _zero(mb)
    log_prob, inputs, weight_B, mask, row_entropy = _rows(mb, weight_B, mask)
    name = "phi_nll" if mb.phi else config.offline_loss_type
    loss_B_T = build_off_policy_loss(name)(log_prob, inputs, config.off_policy_params())
    if mb.method == "srft":
        weight_B = weight_B * srft_sft_weight(row_entropy).to(weight_B.dtype)
    return agg_loss(loss_B_T * weight_B.to(loss_B_T.dtype)[:, None], mask, mb.norms.sft_mode, **mb.norms.sft)


def _off_term(config, weight_B: torch.Tensor, mask: torch.Tensor, mb: _MicroBatch):
    """The off-policy RL term: per-token loss x row weight, aggregated like the RL term's normaliser says."""
    if not mask.any():
        return _zero(mb)
    log_prob, inputs, weight_B, mask, _ = _rows(mb, weight_B, mask)
    loss_B_T = build_off_policy_loss(config.off_policy_loss_type)(log_prob, inputs, config.off_policy_params())
    return agg_loss(loss_B_T * weight_B.to(loss_B_T.dtype)[:, None], mask, mb.norms.off_mode, **mb.norms.off)


def _rl_term(config, batch, masks: TermMasks, mb: _MicroBatch, extra: dict):
    """verl's registered policy loss on rollout tokens (SRFT's own for ``srft``); ``extra`` joins
    ``global_batch_info`` (custom)."""
    weight_B = batch["hpt_rl_weight"]
    if mb.method == "srft":
        loss_B_T = srft_rollout_loss(mb.log_prob, batch["hpt_success"], mb.row_entropy)
        loss = agg_loss(loss_B_T * weight_B.to(loss_B_T.dtype)[:, None], masks.on, mb.norms.rl_mode, **mb.norms.rl)
        return loss, {}
    mode = config.policy_loss.get("loss_mode", "vanilla")
    loss_fn = load_custom_loss(config.custom_loss_path) if mode == CUSTOM_LOSS_MODE else get_policy_loss_fn(mode)
    config.global_batch_info.update(extra)
    try:
        return loss_fn(
            old_log_prob=batch["old_log_probs"],
            log_prob=mb.log_prob,
            advantages=batch["advantages"] * weight_B.to(batch["advantages"].dtype)[:, None],
            response_mask=masks.on,
            loss_agg_mode=mb.norms.rl_mode,
            config=config,
            rollout_is_weights=batch.get("rollout_is_weights", None),
        )
    finally:  # do not keep this micro-batch's tensors (and their graphs) alive in the config
        for key in HYBRID_KEYS:
            config.global_batch_info.pop(key, None)


def _method(data: TensorDict) -> tuple[str, bool]:
    """The trainer's method of this step (the gate's name) and whether CHORD-phi weights the SFT tokens."""
    method = str(data["hpt_method"]) if "hpt_method" in data.keys() else ""
    return method, bool(data["hpt_phi"]) if "hpt_phi" in data.keys() else False


def hpt_actor_loss(config, model_output, data: TensorDict, dp_group=None):
    """Hybrid loss of one micro-batch (see the module docstring)."""
    counts = _global_counts(data)
    dp_size = int(data["dp_size"])
    method, phi = _method(data)
    log_prob = no_padding_2_padding(model_output["log_probs"], data)
    entropy = model_output.get("entropy", None)
    if entropy is not None:
        entropy = no_padding_2_padding(entropy, data)

    fields = ["response_mask", "prefix_mask", "old_log_probs", "advantages", *WEIGHT_KEYS]
    fields += [key for key in ("rollout_is_weights", "ref_log_prob", "hpt_success") if key in data.keys()]
    batch = data.select(*fields).to_padded_tensor()
    masks = term_masks(batch["response_mask"], batch["prefix_mask"], *(batch[key] for key in WEIGHT_KEYS))
    valid = batch["response_mask"].bool()
    norms = _normalisers(config, counts, dp_size, masks, valid)
    inputs = OffPolicyInputs(advantages_B_T=batch["advantages"], old_log_prob_B_T=batch["old_log_probs"],
                             entropy_B_T=entropy)
    row_entropy = _srft_row_entropy(method, entropy, valid)
    mb = _MicroBatch(log_prob=log_prob, inputs=inputs, norms=norms, method=method, phi=phi, row_entropy=row_entropy)
    sft = _sft_term(config, batch["hpt_sft_weight"], masks.sft, mb)
    off = _off_term(config, batch["hpt_off_weight"], masks.off, mb)

    # verl's policy losses aggregate with ``**config.global_batch_info``: point it at the RL term's
    # normaliser so token-mean and seq-mean both normalise over on-policy data only.
    extra = dict(norms.rl)
    custom = config.policy_loss.get("loss_mode", "vanilla") == CUSTOM_LOSS_MODE
    if custom:
        extra.update(sft_loss=sft, sft_log_prob=log_prob, sft_labels_mask=masks.sft.to(log_prob.dtype),
                     global_step=int(data["hpt_global_step"]), total_steps=int(data["hpt_total_steps"]))
    rl, pg_metrics = _rl_term(config, batch, masks, mb, extra)
    parts = HybridLossParts(rl=rl, sft=sft, off=off, sft_coef=config.sft_loss_coef, off_coef=config.off_loss_coef)
    loss = rl if custom else parts.total

    metrics = _loss_metrics(pg_metrics, parts, custom)
    if entropy is not None:
        entropy_term = agg_loss(entropy, norms.regulariser_mask, norms.regulariser_mode, **norms.regulariser)
        loss = loss - config.entropy_coeff * entropy_term
        metrics["actor/entropy_loss"] = Metric(value=entropy_term, aggregation=SUM)
    if config.use_kl_loss:
        kld = kl_penalty(logprob=log_prob, ref_logprob=batch["ref_log_prob"], kl_penalty=config.kl_loss_type)
        kl = agg_loss(kld, norms.regulariser_mask, norms.regulariser_mode, **norms.regulariser)
        loss = loss + config.kl_loss_coef * kl
        metrics["actor/kl_loss"] = Metric(value=kl, aggregation=SUM)
    return loss, metrics


def _srft_row_entropy(method: str, entropy: torch.Tensor | None, valid: torch.Tensor) -> torch.Tensor | None:
    """SRFT's H: each row's mean token entropy (detached); SRFT cannot run without entropies."""
    if method != "srft":
        return None
    if entropy is None:
        raise RuntimeError("unify_strategy=srft weights by the policy's entropy: set actor.calculate_entropy=true")
    return row_mean(entropy, valid)


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

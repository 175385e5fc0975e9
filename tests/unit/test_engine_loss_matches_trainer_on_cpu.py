"""The in-process engine trains the trainer's loss: one batch, one set of weights, the same terms and gradients.

Each method's rows and weights are those the trainer's gates stamp (``test_methods_by_formula_on_cpu``'s
batches, old log-probs away from the current ones so PPO's clip and dual clip are active). The batch goes
through ``hpt_actor_loss`` (the trainer's loss, verl's ``vanilla`` PPO loss for the RL term, one rank,
one micro-batch: what the engine trains) and through ``hpt.toy.loss.hybrid_loss``. Per-term losses must
agree, and so must the gradient of each term, read off by switching the SFT and off-policy coefficients.
"""

from __future__ import annotations

import pytest
import torch
from verl.utils import tensordict_utils as tu

from hpt import metrics as M
from hpt.core.loss import term_counts, term_masks
from hpt.core.offpolicy import OffPolicyParams
from hpt.toy.loss import LossBatch, LossSettings, hybrid_loss
from hpt.trainer.actor_loss import hpt_actor_loss
from hpt.trainer.engine import COUNT_KEYS
from tests.unit.test_methods_by_formula_on_cpu import GAMMA, METHODS, T, Batch, _config, _micro_batch

TOL = 1e-5
COEFS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0))  # gradients of rl, rl + sft, rl + off
AGGS = ("token-mean", "seq-mean-token-sum-norm")


def _trainer(b: Batch, normalization: str, agg: str, method: str, phi: bool, coefs: tuple[float, float]):
    """The trainer's loss on the whole batch as one micro-batch of one rank."""
    config = _config(normalization, agg, "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla",
                     f"actor_rollout_ref.actor.sft_loss_coef={coefs[0]}",
                     f"actor_rollout_ref.actor.off_loss_coef={coefs[1]}")
    counts_t = term_counts(term_masks(b.valid, b.demo[:, None] & b.valid, b.rl_w, b.sft_w, b.off_w)).tolist()
    counts = {key: int(v) for key, v in zip(COUNT_KEYS, counts_t, strict=True)}
    td, output = _micro_batch(b, range(8), counts, method, phi)
    tu.assign_non_tensor(td, dp_size=1)
    loss, metrics = hpt_actor_loss(config, output, td)
    terms = [metrics[key].aggregate() for key in (M.LOSS_RL, M.LOSS_SFT, M.LOSS_OFF)]
    return loss, terms


def _engine(b: Batch, normalization: str, agg: str, method: str, phi: bool, coefs: tuple[float, float]):
    settings = LossSettings(loss_normalization=normalization, loss_agg_mode=agg, loss_scale_factor=T,
                            off_policy=OffPolicyParams(gamma=GAMMA), sft_loss_coef=coefs[0], off_loss_coef=coefs[1])
    batch = LossBatch(
        log_prob=b.logp, old_log_prob=b.old, entropy=b.entropy, response_mask=b.valid,
        prefix_mask=b.demo[:, None] & b.valid, advantages=b.adv[:, None].expand(-1, T) * b.valid,
        rl_weight=b.rl_w, sft_weight=b.sft_w, off_weight=b.off_w, success=b.success, method=method, phi=phi,
    )
    parts = hybrid_loss(batch, settings)
    return parts.total, [parts.rl.item(), parts.sft.item(), parts.off.item()]


@pytest.mark.parametrize("agg", AGGS)
@pytest.mark.parametrize("normalization", ["global", "original"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_engine_loss_terms_and_gradients_equal_the_trainers(name, normalization, agg):
    make, method, phi, _ = METHODS[name]
    b = make()
    with torch.no_grad():  # move the old policy away from the current one: ratios clip, dual clip bites
        b.old.copy_(b.logp + 0.6 * torch.randn(b.logp.shape, generator=torch.Generator().manual_seed(3),
                                               dtype=b.logp.dtype))
    moved = 0.0
    for coefs in COEFS:
        theirs, their_terms = _trainer(b, normalization, agg, method, phi, coefs)
        ours, our_terms = _engine(b, normalization, agg, method, phi, coefs)
        assert our_terms == pytest.approx(their_terms, abs=TOL)
        assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
        (their_grad,) = torch.autograd.grad(theirs, b.logp)
        (our_grad,) = torch.autograd.grad(ours, b.logp)
        assert torch.allclose(our_grad, their_grad, atol=TOL), (coefs, (our_grad - their_grad).abs().max())
        moved += float(their_grad.abs().sum())
    assert moved > 0


def test_clipping_is_active_in_the_compared_batches():
    """The comparison would not test PPO's clip if every ratio stayed inside [0.8, 1.2]."""
    b = METHODS["hpt_switch"][0]()
    old = b.logp.detach() + 0.6 * torch.randn(b.logp.shape, generator=torch.Generator().manual_seed(3),
                                              dtype=b.logp.dtype)
    ratio = (b.logp.detach() - old).exp()[b.valid]
    assert ((ratio < 0.8) | (ratio > 1.2)).float().mean() > 0.3
    assert (ratio > 3.0).any()  # the dual clip's region for negative advantages

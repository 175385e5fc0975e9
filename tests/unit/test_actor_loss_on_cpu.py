"""The whole-loss against verl's own ``ppo_loss`` and against hand-computed demonstration-term gradients."""

from functools import cache

import pytest
import torch
from hydra import compose, initialize_config_module
from verl import DataProto
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.utils.losses import ppo_loss
from verl.workers.utils.padding import left_right_2_no_padding, no_padding_2_padding

from hpt import metrics as M
from hpt.core.loss import term_counts, term_masks
from hpt.trainer.actor_loss import hpt_actor_loss
from hpt.trainer.engine import COUNT_KEYS

PROMPT_LEN, RESPONSE_LEN = 3, 5


@cache
def _actor_config(*overrides: str):
    with initialize_config_module("hpt.config", version_base=None):
        cfg = compose(
            "hpt_trainer",
            overrides=[
                "actor_rollout_ref.actor.ppo_mini_batch_size=2",
                "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
                "actor_rollout_ref.actor.entropy_coeff=0",
                *overrides,
            ],
        )
    return omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)


def _micro_batch(prefix_rows: list[int], seed: int = 0, off_rows: tuple[int, ...] = (), rl_weight: float = 1.0):
    """A padded batch shaped like the agent loop's, converted the way verl's actor update does.

    Rollout rows carry RL weight ``rl_weight``; demonstration rows SFT weight 1, or off-policy weight 1
    when listed in ``off_rows``.
    """
    g = torch.Generator().manual_seed(seed)
    rows = 4
    prompts = torch.randint(3, 20, (rows, PROMPT_LEN), generator=g)
    prompt_mask = torch.ones_like(prompts)
    prompt_mask[0, 0] = 0  # left padding
    lengths = torch.tensor([5, 3, 4, 2])
    response_mask = (torch.arange(RESPONSE_LEN)[None] < lengths[:, None]).long()
    responses = torch.randint(3, 20, (rows, RESPONSE_LEN), generator=g) * response_mask
    attention = torch.cat([prompt_mask, response_mask], dim=1)
    prefix = torch.zeros(rows, RESPONSE_LEN, dtype=torch.bool)
    prefix[prefix_rows] = True
    advantages = torch.randn(rows, 1, generator=g).expand(rows, RESPONSE_LEN) * response_mask
    advantages[[r for r in prefix_rows if r not in off_rows]] = 0.0
    is_demo = prefix.any(-1)
    is_off = torch.zeros(rows, dtype=torch.bool)
    is_off[list(off_rows)] = True
    weights = {
        "hpt_rl_weight": (~is_demo).float() * rl_weight,
        "hpt_sft_weight": (is_demo & ~is_off).float(),
        "hpt_off_weight": is_off.float(),
    }
    batch = DataProto.from_single_dict(
        {
            "prompts": prompts,
            "responses": responses,
            "input_ids": torch.cat([prompts, responses], dim=1),
            "attention_mask": attention,
            "position_ids": (attention.cumsum(1) - 1).clamp(min=0),
            "response_mask": response_mask,
            "prefix_mask": prefix,
            "old_log_probs": -torch.rand(rows, RESPONSE_LEN, generator=g),
            "advantages": advantages.contiguous(),
            **weights,
        }
    )
    td = left_right_2_no_padding(batch.to_tensordict())
    lengths_full = attention.sum(1)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths_full.cumsum(0)])
    flat = (-torch.rand(int(lengths_full.sum()), generator=g)).requires_grad_()
    log_probs = torch.nested.nested_tensor_from_jagged(flat, offsets=offsets)
    counts = term_counts(term_masks(response_mask, prefix, *weights.values())).tolist()
    global_counts = {key: int(value) for key, value in zip(COUNT_KEYS, counts, strict=True)}
    tu.assign_non_tensor(td, dp_size=1, global_batch_size=rows, **global_counts)
    return td, flat, log_probs, response_mask.bool() & ~prefix, response_mask.bool() & prefix, advantages


def test_without_demonstrations_it_equals_verls_ppo_loss():
    config = _actor_config()
    td, flat, log_probs, on_mask, _, _ = _micro_batch(prefix_rows=[])
    tu.assign_non_tensor(td, batch_num_tokens=int(on_mask.sum()))
    ours, metrics = hpt_actor_loss(config, {"log_probs": log_probs}, td)
    (grad_ours,) = torch.autograd.grad(ours, flat, retain_graph=True)
    theirs, _ = ppo_loss(_actor_config(), {"log_probs": log_probs}, td)
    (grad_theirs,) = torch.autograd.grad(theirs, flat)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(grad_ours, grad_theirs, atol=1e-6)
    assert metrics[M.LOSS_SFT].aggregate() == 0.0


def test_demo_token_gradient_is_nll_gradient_times_coefficient():
    coef = 0.7
    config = _actor_config(f"actor_rollout_ref.actor.sft_loss_coef={coef}")
    td, flat, log_probs, on_mask, off_mask, _ = _micro_batch(prefix_rows=[1, 3])
    ours, _ = hpt_actor_loss(config, {"log_probs": log_probs}, td)
    (grad_ours,) = torch.autograd.grad(ours, flat, retain_graph=True)

    # reference: verl's vanilla loss over on-policy tokens only (global on-policy token count)
    on_td, *_ = _micro_batch(prefix_rows=[1, 3])
    on_td["response_mask"] = on_mask.long()
    tu.assign_non_tensor(on_td, batch_num_tokens=int(on_mask.sum()))
    rl, _ = ppo_loss(_actor_config(), {"log_probs": log_probs}, on_td)
    response_log_prob = no_padding_2_padding(log_probs, td)
    nll = -(response_log_prob * off_mask).sum() / off_mask.sum()
    (grad_expected,) = torch.autograd.grad(rl + coef * nll, flat, retain_graph=True)
    assert ours.item() == pytest.approx((rl + coef * nll).item(), abs=1e-6)
    assert torch.allclose(grad_ours, grad_expected, atol=1e-6)

    (grad_demo_only,) = torch.autograd.grad(coef * nll, flat)
    nonzero = grad_demo_only[grad_demo_only != 0]
    assert nonzero.numel() == int(off_mask.sum())
    assert torch.allclose(nonzero, torch.full_like(nonzero, -coef / off_mask.sum().item()))


def test_all_demonstration_batch_has_finite_loss():
    config = _actor_config()
    td, flat, log_probs, *_ = _micro_batch(prefix_rows=[0, 1, 2, 3])
    loss, metrics = hpt_actor_loss(config, {"log_probs": log_probs}, td)
    assert torch.isfinite(loss)
    assert metrics[M.LOSS_RL].aggregate() == 0.0


def test_missing_global_counts_fail_with_a_pointer_to_the_plugin():
    config = _actor_config()
    td, _, log_probs, *_ = _micro_batch(prefix_rows=[1])
    del td["hpt_on_tokens"]
    with pytest.raises(RuntimeError, match="counting engine"):
        hpt_actor_loss(config, {"log_probs": log_probs}, td)


def test_off_policy_demo_gradient_is_shaped_closed_form():
    """LUFFY shaping: d/dlogp of -A p/(p+g) is -A g p/(p+g)^2, over the global off-policy token count."""
    coef, gamma = 0.5, 0.1
    config = _actor_config(
        f"actor_rollout_ref.actor.off_loss_coef={coef}", f"actor_rollout_ref.actor.off_policy_reshape=p_div_p_{gamma}"
    )
    td, flat, log_probs, on_mask, off_mask, advantages = _micro_batch(prefix_rows=[1, 3], off_rows=(1, 3))
    loss, metrics = hpt_actor_loss(config, {"log_probs": log_probs}, td)
    assert metrics[M.LOSS_SFT].aggregate() == 0.0
    (grad_flat,) = torch.autograd.grad(loss, flat)
    grad = no_padding_2_padding(torch.nested.nested_tensor_from_jagged(grad_flat, offsets=log_probs.offsets()), td)
    p = no_padding_2_padding(log_probs, td).detach().exp()
    expected = -advantages * gamma * p / (p + gamma) ** 2 * coef / off_mask.sum()
    assert torch.allclose(grad[off_mask], expected[off_mask], atol=1e-6)


def test_rl_weight_scales_the_rollout_gradient():
    td_full, flat_full, lp_full, *_ = _micro_batch(prefix_rows=[], rl_weight=1.0)
    td_half, flat_half, lp_half, *_ = _micro_batch(prefix_rows=[], rl_weight=0.25)
    full, _ = hpt_actor_loss(_actor_config(), {"log_probs": lp_full}, td_full)
    quarter, _ = hpt_actor_loss(_actor_config(), {"log_probs": lp_half}, td_half)
    (g_full,) = torch.autograd.grad(full, flat_full)
    (g_quarter,) = torch.autograd.grad(quarter, flat_half)
    assert quarter.item() == pytest.approx(0.25 * full.item(), abs=1e-7)
    assert torch.allclose(g_quarter, 0.25 * g_full, atol=1e-7)


def test_unclipped_policy_loss_is_minus_advantage_times_ratio():
    config = _actor_config("actor_rollout_ref.actor.policy_loss.loss_mode=unclipped")
    td, flat, log_probs, on_mask, _, advantages = _micro_batch(prefix_rows=[])
    loss, _ = hpt_actor_loss(config, {"log_probs": log_probs}, td)
    log_prob = no_padding_2_padding(log_probs, td)
    ratio = torch.exp(log_prob - td["old_log_probs"])
    expected = (-advantages * ratio)[on_mask].sum() / on_mask.sum()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)

"""The whole-loss against verl's own ``ppo_loss`` and against hand-computed NLL gradients."""

import pytest
import torch
from hydra import compose, initialize_config_module
from verl import DataProto
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.utils.losses import ppo_loss
from verl.workers.utils.padding import left_right_2_no_padding, no_padding_2_padding

from hpt import metrics as M
from hpt.core.loss import token_counts
from hpt.trainer.actor_loss import hpt_actor_loss
from hpt.trainer.engine import COUNT_KEYS

PROMPT_LEN, RESPONSE_LEN = 3, 5


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


def _micro_batch(prefix_rows: list[int], seed: int = 0):
    """A padded batch shaped like the agent loop's, converted the way verl's actor update does."""
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
    advantages[prefix_rows] = 0.0
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
        }
    )
    td = left_right_2_no_padding(batch.to_tensordict())
    lengths_full = attention.sum(1)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths_full.cumsum(0)])
    flat = (-torch.rand(int(lengths_full.sum()), generator=g)).requires_grad_()
    log_probs = torch.nested.nested_tensor_from_jagged(flat, offsets=offsets)
    counts = token_counts(response_mask, prefix).tolist()
    global_counts = {key: int(value) for key, value in zip(COUNT_KEYS, counts, strict=True)}
    tu.assign_non_tensor(td, dp_size=1, global_batch_size=rows, **global_counts)
    return td, flat, log_probs, response_mask.bool() & ~prefix, response_mask.bool() & prefix


def test_without_demonstrations_it_equals_verls_ppo_loss():
    config = _actor_config()
    td, flat, log_probs, on_mask, _ = _micro_batch(prefix_rows=[])
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
    td, flat, log_probs, on_mask, off_mask = _micro_batch(prefix_rows=[1, 3])
    ours, _ = hpt_actor_loss(config, {"log_probs": log_probs}, td)
    (grad_ours,) = torch.autograd.grad(ours, flat, retain_graph=True)

    # reference: verl's vanilla loss over on-policy tokens only (global on-policy token count)
    on_td, _, _, _, _ = _micro_batch(prefix_rows=[1, 3])
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
    td, flat, log_probs, _, off_mask = _micro_batch(prefix_rows=[0, 1, 2, 3])
    loss, metrics = hpt_actor_loss(config, {"log_probs": log_probs}, td)
    assert torch.isfinite(loss)
    assert metrics[M.LOSS_RL].aggregate() == 0.0


def test_missing_global_counts_fail_with_a_pointer_to_the_plugin():
    config = _actor_config()
    td, _, log_probs, _, _ = _micro_batch(prefix_rows=[1])
    del td["hpt_on_tokens"]
    with pytest.raises(RuntimeError, match="counting engine"):
        hpt_actor_loss(config, {"log_probs": log_probs}, td)

"""Every method's loss against its paper's / the original code's formula, written out by hand.

One tiny batch (8 rows, response width 6) is split over two simulated data-parallel ranks and two
micro-batches per rank. hpt's loss (``hpt_actor_loss``, the function the trainer installs) runs on
every micro-batch with the engine's global counts; like verl's FSDP engine, the micro-batch losses are
summed and the ranks averaged. The reference is computed from the formulas on the padded batch:

- ``global``: the paper's formula, every term a mean over the whole batch; splitting the same batch
  differently must not change the gradient.
- ``original``: the original HPT/LUFFY code per micro-batch (hpt_spec §2.2-2.3): on- and off-policy
  tokens share ``sum / L`` (or one micro-batch token mean), SFT is the micro-batch's token mean, the
  micro-batch losses are summed; the result depends on the split, exactly as the original's did.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pytest
import torch
from hydra import compose, initialize_config_module
from verl import DataProto
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.utils.padding import left_right_2_no_padding

from hpt.core.loss import term_counts, term_masks
from hpt.trainer.actor_loss import hpt_actor_loss
from hpt.trainer.engine import COUNT_KEYS

T, PROMPT, DP = 6, 3, 2
GAMMA, MU = 0.1, 0.3
SPLIT_A = (((0, 1), (2, 3)), ((4, 5), (6, 7)))  # rank -> micro-batches -> rows
SPLIT_B = (((0,), (1, 2, 3)), ((4, 5, 6), (7,)))
SPLIT_C = (((7, 0, 2), (5,)), ((1, 3), (4, 6)))  # rows moved across ranks too


@dataclass(frozen=True)
class Batch:
    """Padded tensors of the 8-row batch; ``logp`` is the leaf every gradient is taken with respect to."""

    logp: torch.Tensor
    old: torch.Tensor
    entropy: torch.Tensor
    valid: torch.Tensor  # response mask
    demo: torch.Tensor  # (B,) demonstration rows
    adv: torch.Tensor  # (B,) advantage
    success: torch.Tensor  # (B,)
    rl_w: torch.Tensor
    sft_w: torch.Tensor
    off_w: torch.Tensor


def _batch(demo_rows, rl_w=1.0, sft_w=0.0, off_w=0.0, row_weights=None) -> Batch:
    g = torch.Generator().manual_seed(7)
    lengths = torch.tensor([6, 3, 5, 2, 4, 6, 1, 5])
    valid = torch.arange(T)[None] < lengths[:, None]
    demo = torch.zeros(8, dtype=torch.bool)
    demo[list(demo_rows)] = True
    weights = {"rl": (~demo).double() * rl_w, "sft": demo.double() * sft_w, "off": demo.double() * off_w}
    for key, values in (row_weights or {}).items():
        weights[key] = torch.tensor(values, dtype=torch.float64)
    return Batch(
        logp=(-0.05 - 2.0 * torch.rand(8, T, generator=g, dtype=torch.float64)).requires_grad_(),
        old=-0.05 - 2.0 * torch.rand(8, T, generator=g, dtype=torch.float64),
        entropy=0.2 + 1.5 * torch.rand(8, T, generator=g, dtype=torch.float64),
        valid=valid,
        demo=demo,
        adv=torch.randn(8, generator=g, dtype=torch.float64),
        success=(torch.rand(8, generator=g) > 0.5).double(),
        rl_w=weights["rl"],
        sft_w=weights["sft"],
        off_w=weights["off"],
    )


@cache
def _config(normalization: str, agg: str, *overrides: str):
    with initialize_config_module("hpt.config", version_base=None):
        cfg = compose(
            "hpt_trainer",
            overrides=[
                "actor_rollout_ref.actor.ppo_mini_batch_size=2",
                "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
                "actor_rollout_ref.actor.entropy_coeff=0",
                "actor_rollout_ref.actor.policy_loss.loss_mode=unclipped",
                f"actor_rollout_ref.actor.loss_agg_mode={agg}",
                f"actor_rollout_ref.actor.loss_scale_factor={T}",
                f"actor_rollout_ref.actor.loss_normalization={normalization}",
                f"actor_rollout_ref.actor.off_policy_reshape=p_div_p_{GAMMA}",
                *overrides,
            ],
        )
    return omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)


def _nested(values_B_T: torch.Tensor, rows, valid: torch.Tensor) -> torch.Tensor:
    """verl's no-padding layout: per row, the prompt then the response, shifted left by one token."""
    pieces = []
    for r in rows:
        n = int(valid[r].sum())
        zeros = torch.zeros(PROMPT - 1, dtype=values_B_T.dtype)
        pieces += [zeros, values_B_T[r, :n], torch.zeros(1, dtype=values_B_T.dtype)]
    flat = torch.cat(pieces)
    lengths = valid[list(rows)].sum(1) + PROMPT
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    return torch.nested.nested_tensor_from_jagged(flat, offsets=offsets)


def _micro_batch(b: Batch, rows, counts: dict, method: str, phi: bool):
    rows = list(rows)
    valid = b.valid[rows].long()
    prompts = torch.full((len(rows), PROMPT), 5)
    responses = torch.full((len(rows), T), 6) * valid
    attention = torch.cat([torch.ones_like(prompts), valid], dim=1)
    adv_B_T = b.adv[rows, None].expand(-1, T) * valid
    proto = DataProto.from_single_dict(
        {
            "prompts": prompts,
            "responses": responses,
            "input_ids": torch.cat([prompts, responses], dim=1),
            "attention_mask": attention,
            "position_ids": (attention.cumsum(1) - 1).clamp(min=0),
            "response_mask": valid,
            "prefix_mask": b.demo[rows, None].expand(-1, T) & valid.bool(),
            "old_log_probs": b.old[rows].contiguous(),
            "advantages": adv_B_T.contiguous(),
            "hpt_rl_weight": b.rl_w[rows],
            "hpt_sft_weight": b.sft_w[rows],
            "hpt_off_weight": b.off_w[rows],
            "hpt_success": b.success[rows],
        }
    )
    td = left_right_2_no_padding(proto.to_tensordict())
    tu.assign_non_tensor(td, dp_size=DP, hpt_method=method, hpt_phi=phi, **counts)
    return td, {"log_probs": _nested(b.logp, rows, b.valid), "entropy": _nested(b.entropy, rows, b.valid)}


def hpt_loss(b: Batch, split, config, method: str, phi: bool = False) -> torch.Tensor:
    """Sum over ranks and micro-batches of hpt's micro-batch losses, divided by DP (FSDP's average)."""
    valid = b.valid
    prefix = b.demo[:, None] & valid
    counts_t = term_counts(term_masks(valid, prefix, b.rl_w, b.sft_w, b.off_w)).tolist()
    counts = {key: int(v) for key, v in zip(COUNT_KEYS, counts_t, strict=True)}
    total = 0.0
    for rank in split:
        for rows in rank:
            td, output = _micro_batch(b, rows, counts, method, phi)
            loss, _ = hpt_actor_loss(config, output, td)
            total = total + loss
    return total / DP


# ---- the formulas (masks and sums written out; no hpt code below this line)


def _masks(b: Batch, rows):
    sel = torch.zeros(8, dtype=torch.bool)
    sel[list(rows)] = True
    on = b.valid & (~b.demo & sel & (b.rl_w > 0))[:, None]
    sft = b.valid & (b.demo & sel & (b.sft_w > 0))[:, None]
    off = b.valid & (b.demo & sel & (b.off_w > 0))[:, None]
    return on, sft, off


def _ratio(b: Batch):
    return torch.exp(b.logp - b.old)


def _shaped(b: Batch):
    p = b.logp.exp()
    return -b.adv[:, None] * p / (p + GAMMA)


def _row_entropy(b: Batch):
    return (b.entropy * b.valid).sum(1) / b.valid.sum(1)


def _srft_rollout(b: Batch):
    a_hat = torch.where(b.success.bool(), 0.1 * torch.exp(_row_entropy(b)), torch.full((8,), -1.0, dtype=b.adv.dtype))
    return -a_hat[:, None] * b.logp


def _pg(b: Batch, method: str):
    """Per-token on-policy loss: -A*rho unclipped (A scaled by the row's RL weight), SRFT's own for srft."""
    if method == "srft":
        return _srft_rollout(b) * b.rl_w[:, None]
    return -(b.adv * b.rl_w)[:, None] * _ratio(b)


def _sft_tok(b: Batch, method: str, phi: bool):
    nll = -b.logp
    if phi:
        p = b.logp.detach().exp()
        nll = p * (1 - p) * nll
    w = b.sft_w
    if method == "srft":
        w = w * 0.5 * torch.exp(-_row_entropy(b))
    return nll * w[:, None]


def _tmean(values, mask):
    n = mask.sum()
    return (values * mask).sum() / n if n > 0 else (values * 0).sum()


def formula_global(b: Batch, agg: str, method: str, phi: bool = False):
    """Paper form: L_RL (mean over rollout rows of sum/L, or token mean) + c*L_SFT + c_off*L_off."""
    every = range(8)
    on, sft, off = _masks(b, every)
    pg = _pg(b, method)
    if agg == "seq-mean-token-sum-norm":
        rows = max(int(on.any(1).sum()), 1)  # no rollout rows: an empty sum
        rl = (pg * on).sum() / T / rows
    else:
        rl = _tmean(pg, on)
    off_term = _tmean(_shaped(b) * b.off_w[:, None], off)
    return rl + _tmean(_sft_tok(b, method, phi), sft) + off_term


def formula_original(b: Batch, split, agg: str, method: str, phi: bool = False):
    """Original code: per micro-batch [sum over on+off tokens of (p*l_off + (1-p)*l_on)] / L (or their
    token mean) + token mean of the micro-batch's SFT tokens; summed over micro-batches, averaged over ranks."""
    total = 0.0
    for rank in split:
        for rows in rank:
            on, sft, off = _masks(b, rows)
            mixed = _pg(b, method) * on + _shaped(b) * b.off_w[:, None] * off
            if agg == "seq-mean-token-sum-norm":
                shared = mixed.sum() / T
            else:
                shared = mixed.sum() / max(int((on | off).sum()), 1)
            total = total + shared + _tmean(_sft_tok(b, method, phi), sft)
    return total / DP


# ---- the methods: rows and weights as the trainer's gates stamp them

METHODS = {
    # name: (batch, strategy sent by the trainer, CHORD-phi, aggregation of the paper's RL term)
    "grpo": (lambda: _batch(demo_rows=()), "no", False, "seq-mean-token-sum-norm"),
    "sft": (lambda: _batch(demo_rows=range(8), sft_w=1.0), "sft", False, "seq-mean-token-sum-norm"),
    "hpt_switch": (lambda: _batch(demo_rows=(0, 1, 6), sft_w=1.0), "switch", False, "seq-mean-token-sum-norm"),
    "hpt_soft": (
        lambda: _batch(
            demo_rows=(5, 6),
            row_weights={
                "rl": [0.5, 0.5, 0.5, 0.125, 1, 0, 0, 0.125],
                "sft": [0, 0, 0, 0, 0, 0.125, 0.5, 0],
                "off": [0, 0, 0, 0, 0, 0.5, 0.5, 0],
            },
        ),
        "soft", False, "seq-mean-token-sum-norm",
    ),
    "luffy": (lambda: _batch(demo_rows=(3, 7), off_w=1.0), "luffy", False, "seq-mean-token-sum-norm"),
    "chord": (lambda: _batch(demo_rows=(2, 5), rl_w=1 - MU, sft_w=MU), "chord", False, "token-mean"),
    "chord_phi": (lambda: _batch(demo_rows=(2, 5), rl_w=1 - MU, sft_w=MU), "chord", True, "token-mean"),
    "srft": (lambda: _batch(demo_rows=(0, 1), sft_w=1.0, off_w=1.0), "srft", False, "seq-mean-token-sum-norm"),
}
# The original's sum / L terms do not depend on the packing; its per-micro-batch token means do.
PACKING_DEPENDENT = {"sft", "hpt_switch", "hpt_soft", "chord", "chord_phi", "srft"}


def _grad(loss, b: Batch):
    (grad,) = torch.autograd.grad(loss, b.logp)
    return grad


@pytest.mark.parametrize("name", sorted(METHODS))
def test_global_normalization_is_the_papers_formula_and_independent_of_the_split(name):
    make, method, phi, agg = METHODS[name]
    b = make()
    config = _config("global", agg)
    expected = formula_global(b, agg, method, phi)
    expected_grad = _grad(expected, b)
    for split in (SPLIT_A, SPLIT_B, SPLIT_C):
        ours = hpt_loss(b, split, config, method, phi)
        assert ours.item() == pytest.approx(expected.item(), abs=1e-6)
        assert torch.allclose(_grad(ours, b), expected_grad, atol=1e-6)
    assert expected_grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(METHODS))
def test_original_normalization_is_the_original_codes_micro_batch_sum(name):
    make, method, phi, agg = METHODS[name]
    b = make()
    config = _config("original", agg)
    grads = []
    for split in (SPLIT_A, SPLIT_B):
        expected = formula_original(b, split, agg, method, phi)
        ours = hpt_loss(b, split, config, method, phi)
        assert ours.item() == pytest.approx(expected.item(), abs=1e-6)
        grad = _grad(ours, b)
        assert torch.allclose(grad, _grad(expected, b), atol=1e-6)
        grads.append(grad)
    # the original's gradient depends on the packing exactly where it takes micro-batch token means
    assert torch.allclose(grads[0], grads[1], atol=1e-9) is (name not in PACKING_DEPENDENT)


@pytest.mark.parametrize("agg", ["seq-mean-token-sum-norm", "token-mean"])
def test_original_luffy_shares_one_normaliser_between_rollout_and_demonstration_tokens(agg):
    """LUFFY's demo tokens weigh exactly as much as on-policy tokens (one sum/L, or one token mean)."""
    b = _batch(demo_rows=(3, 7), off_w=1.0)
    ours = hpt_loss(b, SPLIT_A, _config("original", agg), "luffy")
    assert ours.item() == pytest.approx(formula_original(b, SPLIT_A, agg, "luffy").item(), abs=1e-6)


def test_demo_share_metric_counts_every_strategys_trained_demonstrations():
    """hpt/demo/prompt_frac is 1 for mix (SFT on every prompt), the SFT groups' share for switch, 0 at lambda 0."""
    from hpt import metrics as M
    from hpt.core.gates import GateConfig, build_gate
    from hpt.core.groups import GroupStats
    from hpt.core.plan import plan_rebuild
    from hpt.trainer.ray_trainer import _demo_metrics

    groups = [GroupStats(g, tuple(range(4 * g, 4 * g + 4)), s) for g, s in enumerate((0, 2, 4, 0))]
    expected = {"mix": (1.0, 1.0, 0.0), "chord": (1.0, 1.0, 0.0), "switch": (0.5, 0.5, 0.0), "no": (0.0, 0.0, 0.0),
                "luffy": (1.0, 0.0, 1.0), "srft": (1.0, 1.0, 1.0)}
    for strategy, (any_term, sft, off) in expected.items():
        plan = plan_rebuild(groups, [True] * 4, build_gate(strategy), GateConfig(), multiple=1)
        got = _demo_metrics(plan, scale=1.0, num_groups=4)
        shares = (got[M.DEMO_PROMPT_FRAC], got[M.DEMO_SFT_PROMPT_FRAC], got[M.DEMO_OFF_PROMPT_FRAC])
        assert shares == (any_term, sft, off), strategy
    zero = _demo_metrics(plan_rebuild(groups, [True] * 4, build_gate("mix"), GateConfig(), multiple=1), 0.0, 4)
    assert zero[M.DEMO_PROMPT_FRAC] == 0.0

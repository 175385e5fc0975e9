import math

import pytest
import torch

from hpt.core.loss import COUNT_NAMES, HybridLossParts, global_token_mean, term_counts, term_masks, weighted_token_mean

# 3 rows x 4 tokens:
#   row 0: rollout, RL weight 1, 3 valid tokens
#   row 1: rollout kept only as a baseline, RL weight 0, 4 valid tokens -> not on-policy trained
#   row 2: demonstration, 2 valid tokens; prefix_mask also covers its 2 padding tokens
RESPONSE = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
PREFIX = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
RL_W = torch.tensor([1.0, 0.0, 0.0])
SFT_W = torch.tensor([0.0, 0.0, 1.0])
OFF_W = torch.tensor([0.0, 0.0, 0.5])


def test_term_masks_split_tokens_by_row_weight_and_exclude_demo_padding():
    masks = term_masks(RESPONSE, PREFIX, RL_W, SFT_W, OFF_W)
    assert masks.on.tolist() == [[True, True, True, False], [False] * 4, [False] * 4]
    assert masks.sft.tolist() == [[False] * 4, [False] * 4, [True, True, False, False]]
    assert masks.off.tolist() == [[False] * 4, [False] * 4, [True, True, False, False]]


def test_term_masks_demo_tokens_never_count_as_on_policy():
    # a demonstration row that also carries RL weight (LUFFY-style prefix + on-policy continuation)
    response = torch.tensor([[1, 1, 1, 1]])
    prefix = torch.tensor([[1, 1, 0, 0]])
    one = torch.tensor([1.0])
    masks = term_masks(response, prefix, one, one, one)
    assert masks.on.tolist() == [[False, False, True, True]]
    assert masks.sft.tolist() == [[True, True, False, False]]
    assert masks.off.tolist() == [[True, True, False, False]]


def test_term_counts_by_hand():
    counts = term_counts(term_masks(RESPONSE, PREFIX, RL_W, SFT_W, OFF_W))
    assert COUNT_NAMES == ("on_tokens", "sft_tokens", "off_tokens", "on_rows", "sft_rows", "off_rows")
    assert counts.dtype == torch.float64
    assert counts.tolist() == [3.0, 2.0, 2.0, 1.0, 1.0, 1.0]


def test_term_counts_with_zero_off_weight_leave_off_term_empty():
    counts = term_counts(term_masks(RESPONSE, PREFIX, RL_W, SFT_W, torch.zeros(3)))
    assert counts.tolist() == [3.0, 2.0, 0.0, 1.0, 1.0, 0.0]


def test_global_token_mean_value_and_gradient_by_hand():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [0, 1, 0]])
    # local sum 1 + 2 + 5 = 8; global count 10 over 2 ranks -> 8 * 2 / 10
    out = global_token_mean(values, mask, global_count=10, dp_size=2)
    assert out.item() == pytest.approx(1.6)
    out.backward()
    assert torch.allclose(values.grad, torch.tensor([[0.2, 0.2, 0.0], [0.0, 0.2, 0.0]]))


def test_empty_term_is_zero_not_nan_and_keeps_graph():
    log_prob = torch.randn(2, 3, requires_grad=True)
    term = global_token_mean(-log_prob, torch.zeros(2, 3, dtype=torch.bool), global_count=0, dp_size=1)
    assert term.item() == 0.0
    assert term.requires_grad
    term.backward()
    assert torch.equal(log_prob.grad, torch.zeros(2, 3))


def test_weighted_nll_gradient_is_minus_weight_times_dp_over_count():
    log_prob = torch.log(torch.tensor([[0.5, 0.25, 0.9], [0.1, 0.2, 0.3]])).requires_grad_()
    mask = torch.tensor([[True, True, False], [False, True, True]])
    weight = torch.tensor([0.5, 0.5])
    # dp 2, global count 8: every masked token gets d/dlogp = -0.5 * 2 / 8 = -0.125
    out = weighted_token_mean(-log_prob, weight, mask, global_count=8, dp_size=2)
    expected_value = 0.5 * 2 / 8 * -(math.log(0.5) + math.log(0.25) + math.log(0.2) + math.log(0.3))
    assert out.item() == pytest.approx(expected_value)
    out.backward()
    assert torch.allclose(log_prob.grad, torch.tensor([[-0.125, -0.125, 0.0], [0.0, -0.125, -0.125]]))


def test_weighted_token_mean_scales_each_row_by_its_weight():
    loss = torch.ones(2, 2)
    mask = torch.ones(2, 2, dtype=torch.bool)
    # (0.25 * 2 + 1.0 * 2) / 4
    out = weighted_token_mean(loss, torch.tensor([0.25, 1.0]), mask, global_count=4, dp_size=1)
    assert out.item() == pytest.approx(0.625)


def test_loss_and_gradient_do_not_depend_on_micro_batching():
    torch.manual_seed(0)
    log_prob = (-torch.rand(8, 5)).requires_grad_()
    response = (torch.rand(8, 5) > 0.2).long()
    prefix = torch.zeros(8, 5, dtype=torch.long)
    prefix[[1, 4, 6]] = 1
    rl_w = torch.tensor([1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0, 0.25])
    sft_w = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.5, 0.0, 1.0, 0.0])
    off_w = torch.zeros(8)
    global_count = term_counts(term_masks(response, prefix, rl_w, sft_w, off_w))[1].item()

    def term(rows):
        masks = term_masks(response[rows], prefix[rows], rl_w[rows], sft_w[rows], off_w[rows])
        return weighted_token_mean(-log_prob[rows], sft_w[rows], masks.sft, global_count, dp_size=1)

    whole = term(slice(0, 8))
    (grad_whole,) = torch.autograd.grad(whole, log_prob)
    pieces = [term(slice(i, i + 2)) for i in range(0, 8, 2)]
    summed = torch.stack(pieces).sum()
    (grad_pieces,) = torch.autograd.grad(summed, log_prob)
    assert summed.item() == pytest.approx(whole.item())
    assert torch.allclose(grad_pieces, grad_whole)
    assert grad_whole.abs().sum() > 0


def test_two_ranks_average_to_the_single_rank_loss():
    torch.manual_seed(1)
    values = torch.rand(6, 4)
    mask = torch.rand(6, 4) > 0.3
    count = mask.sum().item()
    single = global_token_mean(values, mask, count, dp_size=1)
    rank0 = global_token_mean(values[:3], mask[:3], count, dp_size=2)
    rank1 = global_token_mean(values[3:], mask[3:], count, dp_size=2)
    assert ((rank0 + rank1) / 2).item() == pytest.approx(single.item())


def test_hybrid_total_is_rl_plus_coefficient_weighted_demo_terms():
    parts = HybridLossParts(
        rl=torch.tensor(0.2), sft=torch.tensor(1.5), off=torch.tensor(-0.4), sft_coef=0.1, off_coef=2.0
    )
    # 0.2 + 0.1 * 1.5 + 2.0 * -0.4
    assert parts.total.item() == pytest.approx(-0.45)


def test_demo_token_gradient_is_plain_nll_gradient_times_coefficient():
    log_prob = torch.log(torch.tensor([[0.5, 0.25, 0.9], [0.1, 0.2, 0.3]])).requires_grad_()
    sft_mask = torch.tensor([[True, True, False], [False, False, False]])
    off_mask = torch.tensor([[False, False, False], [False, True, True]])
    one = torch.ones(2)
    sft = weighted_token_mean(-log_prob, one, sft_mask, global_count=2, dp_size=1)
    off = weighted_token_mean(-log_prob, one, off_mask, global_count=2, dp_size=1)
    parts = HybridLossParts(rl=torch.zeros((), requires_grad=True), sft=sft, off=off, sft_coef=0.3, off_coef=0.1)
    expected = 0.3 * -(math.log(0.5) + math.log(0.25)) / 2 + 0.1 * -(math.log(0.2) + math.log(0.3)) / 2
    assert parts.total.item() == pytest.approx(expected)
    parts.total.backward()
    # plain NLL gradient -1/count = -0.5 per token, times 0.3 (SFT) or 0.1 (off-policy)
    assert torch.allclose(log_prob.grad, torch.tensor([[-0.15, -0.15, 0.0], [0.0, -0.05, -0.05]]))


@pytest.mark.parametrize(("sft_coef", "off_coef"), [(-0.1, 1.0), (1.0, -0.1)])
def test_negative_coefficient_is_rejected(sft_coef, off_coef):
    with pytest.raises(ValueError, match="sft_loss_coef"):
        HybridLossParts(torch.zeros(()), torch.zeros(()), torch.zeros(()), sft_coef=sft_coef, off_coef=off_coef)

import math

import pytest
import torch

from hpt.core.loss import global_token_mean, hybrid_loss, nll_term, split_token_masks, token_counts


def test_split_masks_ignore_prefix_beyond_response():
    response = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    prefix = torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]])
    on, off = split_token_masks(response, prefix)
    assert on.tolist() == [[True, True, True, False], [False, False, False, False]]
    assert off.tolist() == [[False, False, False, False], [True, True, False, False]]


def test_token_counts_by_hand():
    response = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    prefix = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    assert token_counts(response, prefix).tolist() == [3.0, 2.0, 1.0, 1.0]


def test_global_token_mean_by_hand():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [0, 1, 0]])
    # local sum 1 + 2 + 5 = 8; global count 10 over 2 ranks -> 8 * 2 / 10
    assert global_token_mean(values, mask, global_count=10, dp_size=2).item() == pytest.approx(1.6)


def test_empty_term_is_zero_not_nan_and_keeps_graph():
    log_prob = torch.randn(2, 3, requires_grad=True)
    term = nll_term(log_prob, torch.zeros(2, 3, dtype=torch.bool), global_off_tokens=0, dp_size=1)
    assert term.item() == 0.0
    term.backward()
    assert torch.equal(log_prob.grad, torch.zeros(2, 3))


def test_nll_gradient_is_minus_coef_over_count_on_demo_tokens():
    log_prob = torch.log(torch.tensor([[0.5, 0.25, 0.9], [0.1, 0.2, 0.3]])).requires_grad_()
    off = torch.tensor([[True, True, False], [False, False, False]])
    rl = torch.zeros((), requires_grad=True)
    parts = hybrid_loss(rl, nll_term(log_prob, off, global_off_tokens=2, dp_size=1), off_coef=0.3)
    # value: 0.3 * -(log .5 + log .25) / 2
    assert parts.total.item() == pytest.approx(0.3 * -(math.log(0.5) + math.log(0.25)) / 2)
    parts.total.backward()
    expected = torch.tensor([[-0.15, -0.15, 0.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(log_prob.grad, expected)


def test_loss_and_gradient_do_not_depend_on_micro_batching():
    torch.manual_seed(0)
    log_prob = (-torch.rand(8, 5)).requires_grad_()
    response = (torch.rand(8, 5) > 0.2).long()
    prefix = torch.zeros(8, 5, dtype=torch.long)
    prefix[[1, 4, 6]] = 1
    counts = token_counts(response, prefix)

    def term(rows):
        _, off = split_token_masks(response[rows], prefix[rows])
        return nll_term(log_prob[rows], off, counts[1].item(), dp_size=1)

    whole = term(slice(0, 8))
    (grad_whole,) = torch.autograd.grad(whole, log_prob)
    pieces = [term(slice(i, i + 2)) for i in range(0, 8, 2)]
    summed = torch.stack(pieces).sum()
    (grad_pieces,) = torch.autograd.grad(summed, log_prob)
    assert summed.item() == pytest.approx(whole.item())
    assert torch.allclose(grad_pieces, grad_whole)


def test_two_ranks_average_to_the_single_rank_loss():
    torch.manual_seed(1)
    values = torch.rand(6, 4)
    mask = torch.rand(6, 4) > 0.3
    count = mask.sum().item()
    single = global_token_mean(values, mask, count, dp_size=1)
    rank0 = global_token_mean(values[:3], mask[:3], count, dp_size=2)
    rank1 = global_token_mean(values[3:], mask[3:], count, dp_size=2)
    assert ((rank0 + rank1) / 2).item() == pytest.approx(single.item())


def test_negative_coefficient_is_rejected():
    with pytest.raises(ValueError, match="sft_loss_coef"):
        hybrid_loss(torch.zeros(()), torch.zeros(()), off_coef=-0.1)

"""CHORD's mu schedule and SRFT's weights against values worked out by hand from the papers' formulas."""

import math

import pytest
import torch

from hpt.core.methods import ChordSchedule, row_mean, srft_rollout_loss, srft_sft_weight


def test_chord_mu_warms_up_linearly_then_decays_along_a_cosine_to_the_valley():
    chord = ChordSchedule(mu_warmup_steps=4, mu_decay_steps=10, mu_peak=0.8, mu_valley=0.1)
    assert chord.mu(0) == 0.0
    assert chord.mu(2) == pytest.approx(0.4)  # halfway up: 0.8 * 2 / 4
    assert chord.mu(4) == pytest.approx(0.8)  # decay start: peak
    assert chord.mu(9) == pytest.approx(0.1 + 0.7 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # = 0.45
    assert chord.mu(9) == pytest.approx(0.45)
    assert chord.mu(14) == pytest.approx(0.1)
    assert chord.mu(1000) == pytest.approx(0.1)


def test_chord_mu_without_decay_steps_stays_at_the_peak():
    chord = ChordSchedule(mu_warmup_steps=0, mu_decay_steps=0, mu_peak=0.3, mu_valley=0.0)
    assert [chord.mu(s) for s in (0, 1, 50)] == [0.3, 0.3, 0.3]


@pytest.mark.parametrize("field, value", [("mu_peak", 1.5), ("mu_valley", -0.1), ("mu_peak", math.nan)])
def test_chord_mu_outside_zero_one_is_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        ChordSchedule(**{field: value})


def test_chord_negative_steps_are_rejected():
    with pytest.raises(ValueError, match="mu_warmup_steps"):
        ChordSchedule(mu_warmup_steps=-1)


def test_srft_weights_are_half_exp_minus_h_for_sft_and_tenth_exp_h_or_minus_one_for_rollouts():
    entropy = torch.tensor([[0.0, 2.0, 9.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    valid = torch.tensor([[True, True, False], [True, True, True]])
    h = row_mean(entropy, valid)
    assert torch.allclose(h, torch.tensor([1.0, 1.0], dtype=torch.float64))  # the masked 9.0 is ignored
    assert torch.allclose(srft_sft_weight(h), torch.full((2,), 0.5 * math.exp(-1.0), dtype=torch.float64))
    log_prob = torch.log(torch.tensor([[0.5, 0.25, 1.0], [0.5, 0.5, 0.5]], dtype=torch.float64)).requires_grad_()
    loss = srft_rollout_loss(log_prob, torch.tensor([1.0, 0.0]), h)
    (grad,) = torch.autograd.grad(loss.sum(), log_prob)
    # success: -0.1 e^H log p, gradient -0.1 e; failure: +log p, gradient +1
    assert torch.allclose(grad[0], torch.full((3,), -0.1 * math.e, dtype=torch.float64))
    assert torch.allclose(grad[1], torch.ones(3, dtype=torch.float64))

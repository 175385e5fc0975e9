"""Off-policy losses against hand-computed values and closed-form gradients wrt log p."""

import math

import pytest
import torch

from hpt.core.offpolicy import (
    OFF_POLICY_LOSSES,
    OffPolicyInputs,
    OffPolicyParams,
    build_off_policy_loss,
    nll_loss,
    parse_reshape,
    register_off_policy_loss,
)

LN2 = math.log(2.0)


def _log_prob(probs: list[list[float]]) -> torch.Tensor:
    """Leaf log-prob tensor (float64, so hand-computed values compare tightly)."""
    return torch.tensor(probs, dtype=torch.float64).log().requires_grad_(True)


def _grad(loss_B_T: torch.Tensor, log_prob_B_T: torch.Tensor) -> torch.Tensor:
    """Per-token gradient: tokens are independent, so the gradient of the sum is elementwise."""
    (grad_B_T,) = torch.autograd.grad(loss_B_T.sum(), log_prob_B_T)
    return grad_B_T


def _t(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_registry_holds_the_five_losses_under_names_that_say_what_they_compute():
    assert set(OFF_POLICY_LOSSES) == {"nll", "shaped", "clipped_old_ratio", "phi_nll", "entropy_weighted_nll"}


def test_nll_loss_is_minus_log_p_with_gradient_minus_one():
    log_prob = _log_prob([[0.5, 0.25], [1.0, 0.125]])
    loss = build_off_policy_loss("nll")(log_prob, OffPolicyInputs(), OffPolicyParams())
    assert loss.shape == (2, 2)
    assert torch.allclose(loss, _t([[LN2, 2 * LN2], [0.0, 3 * LN2]]))
    assert torch.allclose(_grad(loss, log_prob), _t([[-1.0, -1.0], [-1.0, -1.0]]))


def test_shaped_loss_is_minus_advantage_times_p_over_p_plus_gamma():
    log_prob = _log_prob([[0.5, 0.25]])
    inputs = OffPolicyInputs(advantages_B_T=_t([[2.0, -1.0]]))
    loss = build_off_policy_loss("shaped")(log_prob, inputs, OffPolicyParams(gamma=0.1))
    # p=0.5: -2 * 0.5 / 0.6 = -5/3 ; p=0.25: +1 * 0.25 / 0.35 = 5/7
    assert torch.allclose(loss, _t([[-5.0 / 3.0, 5.0 / 7.0]]))


def test_shaped_loss_gradient_is_gamma_p_over_p_plus_gamma_squared():
    log_prob = _log_prob([[0.5, 0.25]])
    inputs = OffPolicyInputs(advantages_B_T=_t([[2.0, -1.0]]))
    loss = build_off_policy_loss("shaped")(log_prob, inputs, OffPolicyParams(gamma=0.1))
    # -A * gamma * p / (p + gamma)^2: p=0.5, A=2 -> -0.1 / 0.36 = -5/18 ; p=0.25, A=-1 -> 0.025 / 0.1225 = 10/49
    assert torch.allclose(_grad(loss, log_prob), _t([[-5.0 / 18.0, 10.0 / 49.0]]))


def test_shaped_loss_uses_the_configured_gamma():
    log_prob = _log_prob([[0.5]])
    inputs = OffPolicyInputs(advantages_B_T=_t([[1.0]]))
    loss = build_off_policy_loss("shaped")(log_prob, inputs, OffPolicyParams(gamma=0.5))
    assert torch.allclose(loss, _t([[-0.5]]))  # -0.5 / (0.5 + 0.5)
    assert torch.allclose(_grad(loss, log_prob), _t([[-0.25]]))  # -0.5 * 0.5 / 1.0^2


def test_clipped_old_ratio_loss_is_minus_advantage_times_ratio_below_the_clip():
    log_prob = _log_prob([[0.3, 0.1]])
    inputs = OffPolicyInputs(advantages_B_T=_t([[2.0, -1.0]]), old_log_prob_B_T=_t([[0.2, 0.4]]).log())
    loss = build_off_policy_loss("clipped_old_ratio")(log_prob, inputs, OffPolicyParams(is_clip=2.0))
    # ratios 0.3/0.2 = 1.5 and 0.1/0.4 = 0.25
    assert torch.allclose(loss, _t([[-3.0, 0.25]]))
    assert torch.allclose(_grad(loss, log_prob), _t([[-3.0, 0.25]]))  # d/dlogp of -A*r is -A*r


def test_clipped_old_ratio_loss_is_clipped_above_with_zero_gradient():
    log_prob = _log_prob([[0.6, 0.6]])
    inputs = OffPolicyInputs(advantages_B_T=_t([[1.0, -1.0]]), old_log_prob_B_T=_t([[0.2, 0.2]]).log())
    loss = build_off_policy_loss("clipped_old_ratio")(log_prob, inputs, OffPolicyParams(is_clip=2.0))
    # ratio 3 > is_clip = 2: the loss uses 2 and no longer depends on log p
    assert torch.allclose(loss, _t([[-2.0, 2.0]]))
    assert torch.allclose(_grad(loss, log_prob), _t([[0.0, 0.0]]))


def test_clipped_old_ratio_loss_sends_no_gradient_into_old_log_prob_or_advantages():
    log_prob = _log_prob([[0.3]])
    old = _t([[0.2]]).log().requires_grad_(True)
    advantages = _t([[2.0]]).requires_grad_(True)
    loss = build_off_policy_loss("clipped_old_ratio")(
        log_prob, OffPolicyInputs(advantages_B_T=advantages, old_log_prob_B_T=old), OffPolicyParams()
    )
    loss.sum().backward()
    assert old.grad is None and advantages.grad is None
    assert torch.allclose(log_prob.grad, _t([[-3.0]]))


def test_phi_nll_loss_is_phi_weighted_nll():
    log_prob = _log_prob([[0.5, 0.9]])
    loss = build_off_policy_loss("phi_nll")(log_prob, OffPolicyInputs(), OffPolicyParams())
    # phi(0.5) = 0.25, phi(0.9) = 0.09
    assert torch.allclose(loss, _t([[0.25 * LN2, -0.09 * math.log(0.9)]]))


def test_phi_nll_loss_gradient_is_minus_p_times_one_minus_p():
    log_prob = _log_prob([[0.5, 0.9], [0.2, 1.0]])
    loss = build_off_policy_loss("phi_nll")(log_prob, OffPolicyInputs(), OffPolicyParams())
    assert torch.allclose(_grad(loss, log_prob), _t([[-0.25, -0.09], [-0.16, 0.0]]))


def test_entropy_weighted_nll_loss_is_exp_minus_entropy_weighted_nll():
    log_prob = _log_prob([[0.5, 0.5]])
    inputs = OffPolicyInputs(entropy_B_T=_t([[0.0, LN2]]))
    loss = build_off_policy_loss("entropy_weighted_nll")(log_prob, inputs, OffPolicyParams())
    # weights exp(0) = 1 and exp(-ln 2) = 1/2
    assert torch.allclose(loss, _t([[LN2, 0.5 * LN2]]))


def test_entropy_weighted_nll_loss_gradient_is_minus_exp_minus_entropy_and_entropy_gets_none():
    log_prob = _log_prob([[0.5, 0.25]])
    entropy = _t([[0.0, LN2]]).requires_grad_(True)
    loss = build_off_policy_loss("entropy_weighted_nll")(
        log_prob, OffPolicyInputs(entropy_B_T=entropy), OffPolicyParams()
    )
    loss.sum().backward()
    assert torch.allclose(log_prob.grad, _t([[-1.0, -0.5]]))
    assert entropy.grad is None


def test_unknown_loss_error_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        build_off_policy_loss("dpo")
    for name in OFF_POLICY_LOSSES:
        assert name in str(excinfo.value)


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_off_policy_loss("nll")(lambda log_prob, inputs, params: log_prob)
    assert OFF_POLICY_LOSSES["nll"] is nll_loss  # the built-in survives


def test_registered_custom_loss_is_buildable():
    def double_nll(log_prob, inputs, params):
        return -2 * log_prob

    try:
        register_off_policy_loss("test_double_nll")(double_nll)
        assert build_off_policy_loss("test_double_nll") is double_nll
    finally:
        OFF_POLICY_LOSSES.pop("test_double_nll", None)


@pytest.mark.parametrize("name", ["shaped", "clipped_old_ratio"])
def test_losses_needing_advantages_raise_without_them(name):
    inputs = OffPolicyInputs(old_log_prob_B_T=_t([[0.0]]))
    with pytest.raises(ValueError, match="advantages_B_T"):
        build_off_policy_loss(name)(_log_prob([[0.5]]), inputs, OffPolicyParams())


def test_clipped_old_ratio_loss_raises_without_old_log_prob():
    inputs = OffPolicyInputs(advantages_B_T=_t([[1.0]]))
    with pytest.raises(ValueError, match="old_log_prob_B_T"):
        build_off_policy_loss("clipped_old_ratio")(_log_prob([[0.5]]), inputs, OffPolicyParams())


def test_entropy_weighted_nll_loss_raises_without_entropy():
    with pytest.raises(ValueError, match="entropy_B_T"):
        build_off_policy_loss("entropy_weighted_nll")(_log_prob([[0.5]]), OffPolicyInputs(), OffPolicyParams())


def test_side_input_with_wrong_shape_is_rejected():
    inputs = OffPolicyInputs(advantages_B_T=_t([[1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"shape of log_prob \(1, 2\)"):
        build_off_policy_loss("shaped")(_log_prob([[0.5, 0.5]]), inputs, OffPolicyParams())


@pytest.mark.parametrize("field, bad", [("gamma", 0.0), ("gamma", -0.1), ("is_clip", 0.0), ("gamma", math.nan)])
def test_params_reject_non_positive_constants(field, bad):
    with pytest.raises(ValueError, match=field):
        OffPolicyParams(**{field: bad})


@pytest.mark.parametrize("value, gamma", [("p_div_p_0.1", 0.1), ("p_div_p_0.5", 0.5), ("p_div_p_2", 2.0)])
def test_parse_reshape_reads_gamma(value, gamma):
    assert parse_reshape(value) == ("p_div_p", pytest.approx(gamma))


@pytest.mark.parametrize("value", ["no_reshape", "logp", "p_logp", "square_root", "pow"])
def test_parse_reshape_accepts_the_originals_named_reshapes(value):
    assert parse_reshape(value) == (value, OffPolicyParams.gamma)


@pytest.mark.parametrize("value", ["", "p_div_q", "p_div_p", "p_div_p_", "p_div_p_abc", "p_div_p_ 0.1", "p_div_p_inf"])
def test_parse_reshape_rejects_malformed_strings_listing_accepted_forms(value):
    with pytest.raises(ValueError, match="accepted forms: 'no_reshape', 'logp'.* or 'p_div_p_<gamma>'"):
        parse_reshape(value)


# g(p) of the original's off_policy_reshape table (hpt_spec §2.3), at p = 0.25 and 0.64, w = 0.1, k = 0.5
@pytest.mark.parametrize(
    "reshape, g, dg_dlogp",
    [
        ("no_reshape", [0.25, 0.64], [0.25, 0.64]),
        ("logp", [0.1 * math.log(0.25), 0.1 * math.log(0.64)], [0.1, 0.1]),
        ("p_logp", [0.25 + 0.1 * math.log(0.25), 0.64 + 0.1 * math.log(0.64)], [0.35, 0.74]),
        ("square_root", [0.5, 0.8], [0.25, 0.4]),
        ("pow", [0.5, 0.8], [0.25, 0.4]),
    ],
)
def test_shaped_loss_applies_the_originals_reshapes(reshape, g, dg_dlogp):
    log_prob = _log_prob([[0.25, 0.64]])
    inputs = OffPolicyInputs(advantages_B_T=_t([[2.0, 2.0]]))
    loss = build_off_policy_loss("shaped")(log_prob, inputs, OffPolicyParams(reshape=reshape))
    assert torch.allclose(loss, -2.0 * _t([g]))
    assert torch.allclose(_grad(loss, log_prob), -2.0 * _t([dg_dlogp]))


def test_shaped_loss_clamps_g_with_no_gradient_beyond_the_clamp():
    log_prob = _log_prob([[0.1, 0.5, 0.9]])
    inputs = OffPolicyInputs(advantages_B_T=_t([[1.0, 1.0, 1.0]]))
    params = OffPolicyParams(reshape="no_reshape", min_clip=0.2, max_clip=0.8)
    loss = build_off_policy_loss("shaped")(log_prob, inputs, params)
    assert torch.allclose(loss, _t([[-0.2, -0.5, -0.8]]))
    assert torch.allclose(_grad(loss, log_prob), _t([[0.0, -0.5, 0.0]]))


def test_clamps_in_the_wrong_order_are_rejected():
    with pytest.raises(ValueError, match="off_policy_min_clip=0.9 is above off_policy_max_clip=0.1"):
        OffPolicyParams(min_clip=0.9, max_clip=0.1)


@pytest.mark.parametrize("old, new", [("importance", "clipped_old_ratio"), ("chord", "phi_nll"),
                                      ("srft", "entropy_weighted_nll")])
def test_renamed_losses_fail_naming_their_new_name(old, new):
    with pytest.raises(ValueError, match=f"renamed '{new}'"):
        build_off_policy_loss(old)

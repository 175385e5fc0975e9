"""The engine-vs-trainer cross-check: family → trainer overrides, and the curve comparison by hand."""

import math

import pytest

from benchmarks.learning.cross_check import compare, method_overrides


def test_switch_variant_becomes_sft_warmup_and_orig_sets_the_original_scripts_loss():
    assert method_overrides("sft_grpo", "switch50") == ("trainer.unify_strategy=no", "trainer.sft_warmup_steps=50")
    assert method_overrides("hpt_switch_orig", "") == (
        "trainer.unify_strategy=switch", "trainer.switch_gate=0",
        "actor_rollout_ref.actor.loss_normalization=original",
        "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm")


def test_a_family_the_trainer_cannot_run_as_is_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="--family"):
        method_overrides("chord", "")


def test_compare_counts_points_inside_the_seeds_range_and_inside_it_widened_by_one_standard_error():
    engine = [{0: 0.25, 15: 0.30, 30: 0.40}, {0: 0.25, 15: 0.34, 30: 0.50}]
    trainer = {0: 0.25, 15: 0.36, 30: 0.58}
    result = compare(trainer, engine, eval_prompts=100)
    # step 15: range [0.30, 0.34], s.e. sqrt(0.32 * 0.68 / 100) = 0.0466 -> 0.36 outside, inside widened
    # step 30: range [0.40, 0.50], s.e. sqrt(0.45 * 0.55 / 100) = 0.0497 -> 0.58 outside both
    assert [p["within"] for p in result["points"]] == [True, False, False]
    assert [p["within_noise"] for p in result["points"]] == [True, True, False]
    assert result["steps"] == 2 and result["within"] == 0 and result["within_noise"] == 1
    assert result["points"][1]["noise"] == pytest.approx(math.sqrt(0.32 * 0.68 / 100))
    assert result["mean_abs_diff"] == pytest.approx((0.04 + 0.13) / 2)

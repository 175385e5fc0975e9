"""The whole-loss inside verl's real TrainingWorker (FSDP2 on gloo, one process, no Ray)."""

import pytest
import torch

from hpt import metrics as M
from hpt.trainer.engine import HPTFSDPEngineWithLMHead
from tests.integration.engine_harness import RESPONSE_LEN, ROWS, make_batch, make_worker, old_log_probs, train


@pytest.fixture(scope="module")
def worker_and_config(tiny_dir):
    return make_worker(tiny_dir / "model", "actor_rollout_ref.actor.optim.lr=0",
                       "actor_rollout_ref.actor.sft_loss_coef=0.5")


def test_engine_is_the_counting_engine(worker_and_config):
    worker, _ = worker_and_config
    assert isinstance(worker.engine, HPTFSDPEngineWithLMHead)


def test_loss_terms_match_hand_computation_and_do_not_depend_on_micro_batches(worker_and_config):
    worker, config = worker_and_config
    batch = make_batch()
    old = old_log_probs(worker, batch)
    response_mask = batch.batch["response_mask"].bool()
    prefix = batch.batch["prefix_mask"]
    advantages = torch.linspace(-1.0, 1.0, ROWS)[:, None].expand(ROWS, RESPONSE_LEN) * response_mask
    batch.batch["old_log_probs"] = old
    batch.batch["advantages"] = advantages.contiguous()

    one = train(worker, batch, micro_batch_size=ROWS)
    four = train(worker, batch, micro_batch_size=2)

    # lr=0 keeps the weights at old_log_probs' values: ratio 1, so the vanilla RL term is -mean(A) on
    # on-policy tokens and the SFT term is the mean NLL of the demonstration tokens.
    on = response_mask & ~prefix
    expected_rl = -(advantages * on).sum() / on.sum()
    expected_sft = -(old * prefix).sum() / prefix.sum()
    for metrics in (one, four):
        assert metrics[M.LOSS_SFT] == pytest.approx(expected_sft.item(), rel=1e-3)
        assert metrics[M.LOSS_RL] == pytest.approx(expected_rl.item(), abs=1e-3)
        assert metrics["loss"] == pytest.approx((expected_rl + config.sft_loss_coef * expected_sft).item(), rel=1e-3)
    assert four["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)


def test_original_normalization_sums_the_micro_batches_token_means_in_the_real_engine(tiny_dir):
    """``loss_normalization=original`` in verl's engine: each term a token mean per micro-batch, summed
    (the original code's packing dependence); the trainer's method name rides along as a string."""
    worker, config = make_worker(tiny_dir / "model", "actor_rollout_ref.actor.optim.lr=0",
                                 "actor_rollout_ref.actor.sft_loss_coef=0.5",
                                 "actor_rollout_ref.actor.loss_normalization=original")
    batch = make_batch()
    batch.meta_info.update(hpt_method="switch", hpt_phi=False)
    old = old_log_probs(worker, batch)
    response_mask = batch.batch["response_mask"].bool()
    prefix = batch.batch["prefix_mask"]
    advantages = torch.linspace(-1.0, 1.0, ROWS)[:, None].expand(ROWS, RESPONSE_LEN) * response_mask
    batch.batch["old_log_probs"] = old
    batch.batch["advantages"] = advantages.contiguous()

    one = train(worker, batch, micro_batch_size=ROWS)
    four = train(worker, batch, micro_batch_size=2)

    def per_micro_batch(size: int) -> tuple[float, float]:
        rl = sft = 0.0
        for start in range(0, ROWS, size):
            rows = slice(start, start + size)
            on, demo = response_mask[rows] & ~prefix[rows], prefix[rows]
            if on.any():
                rl += (-(advantages[rows] * on).sum() / on.sum()).item()
            if demo.any():
                sft += (-(old[rows] * demo).sum() / demo.sum()).item()
        return rl, sft

    for metrics, size in ((one, ROWS), (four, 2)):
        rl, sft = per_micro_batch(size)
        assert metrics[M.LOSS_RL] == pytest.approx(rl, abs=1e-3)
        assert metrics[M.LOSS_SFT] == pytest.approx(sft, rel=1e-3)
        assert metrics["loss"] == pytest.approx(rl + config.sft_loss_coef * sft, rel=1e-3, abs=1e-3)
    assert four["grad_norm"] != pytest.approx(one["grad_norm"], rel=1e-3)

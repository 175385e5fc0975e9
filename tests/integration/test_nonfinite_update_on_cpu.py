"""A non-finite loss skips the optimizer update, is counted in ``hpt/update/skipped_nonfinite`` and logged."""

import logging

import pytest
import torch

from hpt import metrics as M
from tests.integration.engine_harness import RESPONSE_LEN, ROWS, make_batch, make_worker, old_log_probs, train


def _weights(worker) -> dict[str, torch.Tensor]:
    return {name: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
            for name, p in worker.engine.module.named_parameters()}


@pytest.fixture(scope="module")
def worker(tiny_dir):
    worker, _ = make_worker(tiny_dir / "model", "actor_rollout_ref.actor.optim.lr=1e-2")
    return worker


def _batch(worker, advantage: float):
    batch = make_batch()
    batch.batch["old_log_probs"] = old_log_probs(worker, batch)
    batch.batch["advantages"] = torch.full((ROWS, RESPONSE_LEN), advantage) * batch.batch["response_mask"]
    return batch


def test_nan_loss_skips_the_update_and_counts_it(worker, caplog):
    before = _weights(worker)
    with caplog.at_level(logging.WARNING, logger="hpt.trainer.engine"):
        metrics = train(worker, _batch(worker, float("nan")), micro_batch_size=ROWS)
    assert not torch.isfinite(torch.tensor(metrics["grad_norm"]))
    assert metrics[M.UPDATE_SKIPPED_NONFINITE] == 1.0
    assert "update was skipped" in caplog.text
    after = _weights(worker)
    assert all(torch.equal(before[name], after[name]) for name in before), "a non-finite step changed the weights"
    assert all(torch.isfinite(t).all() for t in after.values())


def test_finite_loss_updates_and_counts_nothing(worker):
    before = _weights(worker)
    metrics = train(worker, _batch(worker, 1.0), micro_batch_size=ROWS)
    assert metrics[M.UPDATE_SKIPPED_NONFINITE] == 0.0
    after = _weights(worker)
    assert any(not torch.equal(before[name], after[name]) for name in before)

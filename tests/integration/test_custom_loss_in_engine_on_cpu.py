"""A seed-style custom loss file (``examples/custom_losses/static_weighting.py``) inside verl's real worker.

The file is loaded through ``policy_loss.loss_mode=custom`` and ``custom_loss_path`` exactly as in a
run, so this checks the whole contract path: hpt's counting engine, ``hpt_actor_loss`` filling
``global_batch_info``, verl's registry, the custom loss's return value as the training loss, and its
metric names through the worker and the trainer's renaming.
"""

from pathlib import Path

import pytest
import torch

from hpt import metrics as M
from hpt.trainer.custom_contract import load_custom_loss
from hpt.trainer.ray_trainer import _logged_name
from tests.integration.engine_harness import RESPONSE_LEN, ROWS, make_batch, make_worker, old_log_probs, train

STATIC = Path(__file__).resolve().parents[2] / "examples" / "custom_losses" / "static_weighting.py"
ALPHA = 0.5  # static_weighting.ALPHA, checked against the file below


@pytest.fixture(scope="module")
def worker_and_config(tiny_dir):
    # another test may have registered a different "custom" loss in this process: import the file afresh
    load_custom_loss.cache_clear()
    return make_worker(
        tiny_dir / "model",
        "actor_rollout_ref.actor.optim.lr=0",
        "actor_rollout_ref.actor.policy_loss.loss_mode=custom",
        f"actor_rollout_ref.actor.custom_loss_path={STATIC}",
    )


def _batch_with_advantages(worker):
    batch = make_batch(global_step=3, total_steps=10)
    old = old_log_probs(worker, batch)
    response_mask = batch.batch["response_mask"].bool()
    advantages = torch.linspace(-1.0, 1.0, ROWS)[:, None].expand(ROWS, RESPONSE_LEN) * response_mask
    batch.batch["old_log_probs"] = old
    batch.batch["advantages"] = advantages.contiguous()
    return batch, old, advantages


def test_static_custom_loss_trains_matches_hand_computation_and_ignores_micro_batching(worker_and_config):
    worker, _ = worker_and_config
    assert f"ALPHA = {ALPHA}" in STATIC.read_text()
    batch, old, advantages = _batch_with_advantages(worker)
    metrics = train(worker, batch, micro_batch_size=ROWS)

    # lr=0 keeps the weights at old_log_probs' values: ratio 1, so PPO's clipped surrogate is -mean(A) over
    # the rollout tokens and the contract's sft_loss is the mean NLL of the demonstration tokens.
    prefix = batch.batch["prefix_mask"]
    rollout = batch.batch["response_mask"].bool() & ~prefix
    expected_rl = (-(advantages * rollout).sum() / rollout.sum()).item()
    expected_sft = (-(old * prefix).sum() / prefix.sum()).item()
    expected = ALPHA * expected_sft + (1 - ALPHA) * expected_rl

    assert metrics["loss"] == pytest.approx(expected, rel=1e-3)
    assert metrics["grad_norm"] > 0 and torch.isfinite(torch.tensor(metrics["grad_norm"]))
    assert metrics[M.LOSS_RL] == pytest.approx(expected, rel=1e-3)  # custom mode: the whole custom loss
    assert metrics[M.LOSS_SFT] == pytest.approx(expected_sft, rel=1e-3)
    # one micro-batch: the custom loss's own per-micro-batch values are the mini-batch values
    assert metrics[M.CUSTOM_PREFIX + "sft_loss"] == pytest.approx(expected_sft, rel=1e-3)
    assert metrics[M.CUSTOM_PREFIX + "rl_loss"] == pytest.approx(expected_rl, abs=1e-4)
    assert metrics[M.CUSTOM_PREFIX + "sft_weight"] == ALPHA
    assert metrics[M.CUSTOM_PREFIX + "rl_weight"] == 1 - ALPHA
    assert "actor/pg_loss" not in metrics

    # both terms are global means, so four micro-batches give the same loss and gradient
    four = train(worker, batch, micro_batch_size=2)
    assert four["loss"] == pytest.approx(metrics["loss"], rel=1e-4)
    assert four["grad_norm"] == pytest.approx(metrics["grad_norm"], rel=1e-4)


def test_custom_metric_names_reach_the_logger_unprefixed(worker_and_config):
    worker, _ = worker_and_config
    batch, _, _ = _batch_with_advantages(worker)
    metrics = train(worker, batch, micro_batch_size=ROWS)
    custom = {key for key in metrics if key.startswith(M.CUSTOM_PREFIX)}
    assert {M.CUSTOM_PREFIX + name for name in ("sft_weight", "rl_weight", "sft_loss", "rl_loss")} <= custom
    # the trainer sees the worker's keys with verl's "actor/" prefix and logs them under the loss's own names
    assert _logged_name("actor/" + M.CUSTOM_PREFIX + "sft_weight") == "sft_weight"
    assert {_logged_name("actor/" + key) for key in custom} >= {"sft_weight", "rl_weight", "sft_loss", "rl_loss"}

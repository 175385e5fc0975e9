"""The whole-loss inside verl's real TrainingWorker (FSDP2 on gloo, one process, no Ray)."""

import os
from functools import partial

import pytest
import torch
from hydra import compose, initialize_config_module
from verl import DataProto
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.engine_workers import TrainingWorker, TrainingWorkerConfig
from verl.workers.utils.padding import left_right_2_no_padding, no_padding_2_padding

from hpt import metrics as M
from hpt.config import resolvers
from hpt.trainer.actor_loss import hpt_actor_loss
from hpt.trainer.engine import HPTFSDPEngineWithLMHead

ROWS, PROMPT_LEN, RESPONSE_LEN = 8, 6, 10
DEMO_ROWS = [1, 4, 6]


@pytest.fixture(scope="module")
def worker_and_config(tiny_dir):
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517", "RANK": "0", "WORLD_SIZE": "1",
                       "LOCAL_RANK": "0"}.items():
        os.environ.setdefault(key, value)
    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        cfg = compose("hpt_trainer_cpu", overrides=[
            f"actor_rollout_ref.model.path={tiny_dir / 'model'}",
            "actor_rollout_ref.actor.ppo_mini_batch_size=2",
            "actor_rollout_ref.actor.optim.lr=0",
            "actor_rollout_ref.actor.sft_loss_coef=0.5",
        ])
    model_config = omega_conf_to_dataclass(cfg.actor_rollout_ref.model)
    actor_config = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    actor_config.model_config = model_config
    worker_config = TrainingWorkerConfig(
        model_type="language_model", model_config=model_config, engine_config=actor_config.engine,
        optimizer_config=actor_config.optim, checkpoint_config=actor_config.checkpoint,
    )
    worker_config.engine_config.use_dynamic_bsz = False
    worker_config.engine_config.micro_batch_size_per_gpu = ROWS
    worker_config.engine_config.infer_micro_batch_size_per_gpu = ROWS
    worker = TrainingWorker(config=worker_config)
    worker.reset()
    worker.set_loss_fn(partial(hpt_actor_loss, config=actor_config))
    return worker, actor_config


def _batch() -> DataProto:
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(3, 21, (ROWS, PROMPT_LEN), generator=g)
    prompt_mask = torch.ones_like(prompts)
    prompt_mask[0, :2] = 0
    prompts = prompts * prompt_mask
    lengths = torch.tensor([10, 7, 3, 9, 5, 8, 2, 6])
    response_mask = (torch.arange(RESPONSE_LEN)[None] < lengths[:, None]).long()
    responses = torch.randint(3, 21, (ROWS, RESPONSE_LEN), generator=g) * response_mask
    attention = torch.cat([prompt_mask, response_mask], dim=1)
    prefix = torch.zeros(ROWS, RESPONSE_LEN, dtype=torch.bool)
    prefix[DEMO_ROWS] = response_mask[DEMO_ROWS].bool()
    batch = DataProto.from_single_dict({
        "prompts": prompts, "responses": responses, "input_ids": torch.cat([prompts, responses], 1),
        "attention_mask": attention, "position_ids": (attention.cumsum(1) - 1).clamp(min=0),
        "response_mask": response_mask, "prefix_mask": prefix,
    })
    batch.meta_info["temperature"] = 1.0
    return batch


def _old_log_probs(worker, batch: DataProto) -> torch.Tensor:
    td = left_right_2_no_padding(batch.to_tensordict())
    tu.assign_non_tensor(td, calculate_entropy=False, compute_loss=False)
    out = worker.infer_batch(td)
    return no_padding_2_padding(tu.get(out, "log_probs"), td).float()


def _train(worker, batch: DataProto, micro_batch_size: int) -> dict:
    td = left_right_2_no_padding(batch.to_tensordict())
    tu.assign_non_tensor(td, calculate_entropy=False, global_batch_size=ROWS, mini_batch_size=ROWS, epochs=1,
                         seed=0, dataloader_kwargs={"shuffle": False}, compute_loss=True,
                         micro_batch_size_per_gpu=micro_batch_size)
    metrics = tu.get(worker.train_mini_batch(td), "metrics")
    return {key: float(value[0] if isinstance(value, list) else value) for key, value in metrics.items()}


def test_engine_is_the_counting_engine(worker_and_config):
    worker, _ = worker_and_config
    assert isinstance(worker.engine, HPTFSDPEngineWithLMHead)


def test_loss_terms_match_hand_computation_and_do_not_depend_on_micro_batches(worker_and_config):
    worker, config = worker_and_config
    batch = _batch()
    old = _old_log_probs(worker, batch)
    response_mask = batch.batch["response_mask"].bool()
    prefix = batch.batch["prefix_mask"]
    advantages = torch.linspace(-1.0, 1.0, ROWS)[:, None].expand(ROWS, RESPONSE_LEN) * response_mask
    batch.batch["old_log_probs"] = old
    batch.batch["advantages"] = advantages.contiguous()

    one = _train(worker, batch, micro_batch_size=ROWS)
    four = _train(worker, batch, micro_batch_size=2)

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

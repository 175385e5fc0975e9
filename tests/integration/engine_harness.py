"""verl's real TrainingWorker on CPU (FSDP2 on gloo, one process, no Ray) with hpt's loss installed.

Shared by the in-engine loss tests, so that they build the worker and the batch exactly the way the
trainer hands them to verl: left-padded prompts, right-padded responses, ``prefix_mask`` on the
demonstration rows, the three per-row weights and the step counters as non-tensor data.
"""

import os
from functools import partial
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from verl import DataProto
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.engine_workers import TrainingWorker, TrainingWorkerConfig
from verl.workers.utils.padding import left_right_2_no_padding, no_padding_2_padding

from hpt.config import resolvers
from hpt.trainer.actor_loss import hpt_actor_loss
from hpt.trainer.engine import WEIGHT_KEYS

ROWS, PROMPT_LEN, RESPONSE_LEN = 8, 6, 10
DEMO_ROWS = (1, 4, 6)
RESPONSE_LENGTHS = (10, 7, 3, 9, 5, 8, 2, 6)


def make_worker(model_dir: Path, *overrides: str):
    """A single-rank TrainingWorker on the tiny model with ``hpt_actor_loss`` installed, and its actor config.

    Every micro-batch holds all ``ROWS`` rows unless a test asks ``train`` for smaller ones.
    """
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517", "RANK": "0", "WORLD_SIZE": "1",
                       "LOCAL_RANK": "0"}.items():
        os.environ.setdefault(key, value)
    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        cfg = compose("hpt_trainer_cpu", overrides=[
            f"actor_rollout_ref.model.path={model_dir}",
            "actor_rollout_ref.actor.ppo_mini_batch_size=2",
            *overrides,
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


def make_batch(demo_rows=DEMO_ROWS, global_step: int = 1, total_steps: int = 1) -> DataProto:
    """``ROWS`` rows of random tokens: rollouts (weights RL/SFT/off = 1/0/0) and demonstrations (0/1/0).

    The step counters ride in ``meta_info``, as ``HPTRayTrainer._update_actor`` sends them.
    """
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(3, 21, (ROWS, PROMPT_LEN), generator=g)
    prompt_mask = torch.ones_like(prompts)
    prompt_mask[0, :2] = 0
    prompts = prompts * prompt_mask
    lengths = torch.tensor(RESPONSE_LENGTHS)
    response_mask = (torch.arange(RESPONSE_LEN)[None] < lengths[:, None]).long()
    responses = torch.randint(3, 21, (ROWS, RESPONSE_LEN), generator=g) * response_mask
    attention = torch.cat([prompt_mask, response_mask], dim=1)
    demo = torch.zeros(ROWS, dtype=torch.bool)
    demo[list(demo_rows)] = True
    prefix = response_mask.bool() & demo[:, None]
    weights = (~demo).float(), demo.float(), torch.zeros(ROWS)
    batch = DataProto.from_single_dict({
        "prompts": prompts, "responses": responses, "input_ids": torch.cat([prompts, responses], 1),
        "attention_mask": attention, "position_ids": (attention.cumsum(1) - 1).clamp(min=0),
        "response_mask": response_mask, "prefix_mask": prefix,
        **dict(zip(WEIGHT_KEYS, weights, strict=True)),
    })
    batch.meta_info.update(temperature=1.0, hpt_global_step=global_step, hpt_total_steps=total_steps)
    return batch


def old_log_probs(worker, batch: DataProto, max_tokens: int | None = None) -> torch.Tensor:
    """The current policy's response log-probs, padded ``(rows, RESPONSE_LEN)``; ``max_tokens``: dynamic batching."""
    td = left_right_2_no_padding(batch.to_tensordict())
    tu.assign_non_tensor(td, calculate_entropy=False, compute_loss=False)
    if max_tokens is not None:
        tu.assign_non_tensor(td, use_dynamic_bsz=True, max_token_len_per_gpu=max_tokens)
    out = worker.infer_batch(td)
    return no_padding_2_padding(tu.get(out, "log_probs"), td).float()


def train(worker, batch: DataProto, micro_batch_size: int, max_tokens: int | None = None) -> dict[str, float]:
    """One optimizer step on ``ROWS`` rows (over all ranks) as a single mini-batch; the worker's metrics as floats.

    ``max_tokens`` switches to verl's dynamic batching: micro-batches of at most that many tokens per rank.
    """
    td = left_right_2_no_padding(batch.to_tensordict())
    tu.assign_non_tensor(td, calculate_entropy=False, global_batch_size=ROWS, mini_batch_size=ROWS, epochs=1,
                         seed=0, dataloader_kwargs={"shuffle": False}, compute_loss=True,
                         micro_batch_size_per_gpu=micro_batch_size)
    if max_tokens is not None:
        tu.assign_non_tensor(td, use_dynamic_bsz=True, max_token_len_per_gpu=max_tokens)
    metrics = tu.get(worker.train_mini_batch(td), "metrics")
    return {key: float(value[0] if isinstance(value, list) else value) for key, value in metrics.items()}

"""One data-parallel rank of the hybrid loss in verl's TrainingWorker: ``python -m tests.integration.dp_rank``.

Run once per rank by ``test_hybrid_loss_data_parallel_on_cpu`` (gloo on CPU). The rank trains one SGD step
(lr 1, no weight decay, no clipping, so the weight change is minus the gradient) on its contiguous
share of ``engine_harness.make_batch``'s rows, with verl's dynamic batching, and saves the gradient.
"""

import argparse
import os
from pathlib import Path

import torch

from tests.integration.engine_harness import RESPONSE_LEN, ROWS, make_batch, make_worker, old_log_probs, train

MAX_TOKENS = 40  # a row is at most 16 tokens: dynamic batching packs 2-3 rows per micro-batch


def _params(worker) -> dict[str, torch.Tensor]:
    return {name: p.full_tensor().detach().clone() if hasattr(p, "full_tensor") else p.detach().clone()
            for name, p in worker.engine.module.named_parameters()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    worker, _ = make_worker(
        args.model, "actor_rollout_ref.actor.optim.optimizer=SGD", "actor_rollout_ref.actor.optim.lr=1.0",
        "actor_rollout_ref.actor.optim.weight_decay=0", "actor_rollout_ref.actor.optim.clip_grad=1e9",
    )
    full = make_batch()
    advantages = torch.linspace(-1.0, 1.0, ROWS)[:, None].expand(ROWS, RESPONSE_LEN) * full.batch["response_mask"]
    full.batch["advantages"] = advantages.contiguous()
    share = ROWS // world
    batch = full[rank * share:(rank + 1) * share]
    batch.meta_info = dict(full.meta_info)
    batch.batch["old_log_probs"] = old_log_probs(worker, batch, max_tokens=MAX_TOKENS)
    before = _params(worker)
    metrics = train(worker, batch, micro_batch_size=share, max_tokens=MAX_TOKENS)
    after = _params(worker)
    if rank == 0:
        grads = {name: before[name] - after[name] for name in before}  # SGD with lr 1: the gradient
        torch.save({"grads": grads, "metrics": metrics}, args.out)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()

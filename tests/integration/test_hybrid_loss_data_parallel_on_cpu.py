"""DP > 1 with dynamic batching: the hybrid loss's gradient over 2 gloo ranks equals the 1-rank gradient.

Each rank sees half the rows and packs them into micro-batches by token count, so neither the per-rank
nor the per-micro-batch composition matches the single rank's; the global per-term counts must make
the gradient the same anyway.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hpt import metrics as M

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(model: Path, out: Path, world: int) -> dict:
    port = str(_free_port())
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port, VERL_PLATFORM="cpu", OMP_NUM_THREADS="1")
        command = [sys.executable, "-m", "tests.integration.dp_rank", "--model", str(model), "--out", str(out)]
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [proc.communicate(timeout=600)[0] for proc in procs]
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, f"rank failed:\n{log[-4000:]}"
    return torch.load(out)


def test_two_ranks_with_dynamic_batching_give_the_one_rank_gradient(tiny_dir, tmp_path):
    one = _run(tiny_dir / "model", tmp_path / "one.pt", world=1)
    two = _run(tiny_dir / "model", tmp_path / "two.pt", world=2)
    assert one["grads"].keys() == two["grads"].keys()
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in one["grads"].values()))
    assert norm > 1e-3, "the step produced no gradient to compare"
    for name, grad in one["grads"].items():
        torch.testing.assert_close(two["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")
    for key in (M.LOSS_RL, M.LOSS_SFT, "grad_norm"):
        assert two["metrics"][key] == pytest.approx(one["metrics"][key], rel=1e-4)

"""End to end with rollout selection on: the real ``python -m hpt.main`` on 32 prompts (2 steps an
epoch) for 5 steps, so the second and third epochs route predicted all-fail prompts to their
demonstration and defer solved ones; then a resume from step 5's checkpoint restores the memory."""

import json
from pathlib import Path

import pytest
import torch

from tests.integration.trainer_run import run_trainer
from hpt import metrics as M

pytestmark = pytest.mark.slow  # runs the real trainer (minutes)

STEPS = 5
SELECTION = ["trainer.rollout_selection.enable=true", "data.train_max_samples=32", "data.seed=1",  # the same 32 prompts
             "trainer.test_freq=-1"]


def _train(tiny: Path, out: Path, steps: int, *overrides: str) -> str:
    return run_trainer(
        tiny, out, f"trainer.total_training_steps={steps}", "trainer.val_before_train=false",
        f"trainer.default_local_dir={out / 'ckpt'}", *SELECTION, *overrides,
        metrics=f"metrics_{steps}.jsonl", log=f"train_{steps}.log",
    )


def _steps(path: Path) -> list[dict]:
    return [json.loads(line)["data"] for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def run_dir(warm_tiny_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("selection")
    _train(warm_tiny_dir, out, STEPS, f"trainer.save_freq={STEPS}")
    return out


def test_selection_routes_defers_and_logs_its_metrics(run_dir):
    steps = _steps(run_dir / f"metrics_{STEPS}.jsonl")
    assert len(steps) == STEPS
    for s in steps:
        assert s[M.SELECTION_GENERATED] + s[M.SELECTION_ROUTED] == 16  # the configured prompts per step
        assert s[M.ROLLOUT_TOKENS] > 0 and 0 <= s[M.ROLLOUT_NO_GRAD_SHARE] <= 1
        assert s[M.BATCH_ROWS] % 16 == 0
        assert torch.isfinite(torch.tensor([s[M.LOSS_SFT], s[M.LOSS_RL]])).all()
    first_epoch, later = steps[:2], steps[2:]
    assert all(s[M.SELECTION_ROUTED] == 0 and s[M.SELECTION_PROBES] == 0 for s in first_epoch)  # memory empty
    assert sum(s[M.SELECTION_ROUTED] + s[M.SELECTION_DEFERRED] for s in later) > 0, "nothing was skipped"
    assert all(s[M.SELECTION_MEMORY] == 32 for s in later)
    assert all(s[M.SELECTION_MISPREDICTIONS] <= s[M.SELECTION_PROBES] for s in steps)


def test_resume_restores_the_memory_and_continues(run_dir, warm_tiny_dir):
    state = torch.load(run_dir / "ckpt" / f"global_step_{STEPS}" / "hpt_state.pt", weights_only=True)
    assert len(state["selection"]["memory"]["counts"]) == 32
    _train(warm_tiny_dir, run_dir, STEPS + 1)
    resumed = _steps(run_dir / f"metrics_{STEPS + 1}.jsonl")
    assert len(resumed) == 1 and resumed[0][M.SELECTION_MEMORY] == 32  # not an empty memory

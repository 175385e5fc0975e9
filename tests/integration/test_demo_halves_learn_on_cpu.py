"""Each half of the demo learns on its own: GRPO alone and SFT alone raise held-out accuracy.

The demo (``exp_scripts/debug.sh``) trains HPT switch mode; if one half did harm and the other carried
the hybrid, its rising curve would hide it. So the real ``python -m hpt.main`` runs the demo's
configuration (the CPU overlay's defaults, the warm-started tiny model, 512 held-out prompts) with
``trainer.unify_strategy=no`` (GRPO on every prompt) and ``=sft`` (every prompt on its demonstration)
for fewer steps than the demo, and greedy held-out accuracy must rise by a margin well above the
noise of 512 prompts (one standard error is about 2 points).
"""

import json
from pathlib import Path

import pytest

from tests.integration.trainer_run import run_trainer
from hpt.toy.build_tiny import RECOMMENDED_WARM_START_STEPS
from hpt.toy.build_tiny import main as build_tiny

VAL_ACC = "val-core/hpt/arithmetic/acc/mean@1"
STEPS = 40
MIN_RISE = 0.04  # measured at 40 steps: GRPO alone 0.316 -> 0.393, SFT alone 0.316 -> 0.453 (README)


@pytest.fixture(scope="module")
def demo_tiny_dir(tmp_path_factory) -> Path:
    """The demo's assets: build_tiny's defaults with the demo's held-out size and warm start."""
    out = tmp_path_factory.mktemp("demo_tiny")
    build_tiny(["--out", str(out), "--test-size", "512", "--warm-start-steps", str(RECOMMENDED_WARM_START_STEPS)])
    return out


def _validation_accuracies(tiny: Path, out: Path, strategy: str) -> list[float]:
    run_trainer(
        tiny, out, f"trainer.unify_strategy={strategy}", f"trainer.total_training_steps={STEPS}",
        f"trainer.test_freq={STEPS}", "trainer.save_freq=-1", f"trainer.default_local_dir={out / 'ckpt'}",
        timeout=1800,
    )
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["data"][VAL_ACC] for line in lines if VAL_ACC in line]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["no", "sft"], ids=["grpo_alone", "sft_alone"])
def test_each_half_of_the_demo_raises_held_out_accuracy(demo_tiny_dir, tmp_path, strategy):
    accuracies = _validation_accuracies(demo_tiny_dir, tmp_path, strategy)
    assert len(accuracies) == 2, f"expected a validation before training and at step {STEPS}, got {accuracies}"
    before, after = accuracies
    assert after >= before + MIN_RISE, f"{strategy}: held-out accuracy {before:.3f} -> {after:.3f}"

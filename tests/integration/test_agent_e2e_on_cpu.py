"""End to end: HPT switch with verl's tool agent loop on the agent toy (``python -m hpt.toy.build_agent``).

A warm-started tool-capable tiny model answers fact questions with a BM25 ``search`` tool; a few steps of
``unify_strategy=switch`` train groups whose rollouts all fail on their demonstrated trajectories
(replayed like a rollout: tool results attended, not trained) and the others with GRPO, both with tool calls.
"""

import json
import os
from pathlib import Path

import pytest

from hpt import metrics as M
from hpt.toy.build_agent import main as build_agent
from tests.integration.trainer_run import run_trainer

STEPS = 3
# A short warm start (150 steps) on the 128 training questions: few sampled successes, but with 96 rollouts
# some group has one (RL) and most have none (SFT); 300 steps if this ever stops finding an RL group.
BUILD = "--entities 40 --train-size 128 --val-size 8 --test-size 8 --warm-start-steps 150 --report-prompts 8".split()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    agent = tmp_path_factory.mktemp("agent")
    build_agent(["--out", str(agent), *BUILD])
    out = tmp_path_factory.mktemp("agent_e2e")
    saved = os.environ.get("PYTHONPATH")  # Ray workers import the tool class (hpt.tools.search) from this tree
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parents[2]), saved]))
    try:
        _train(agent, out)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    return out


def _train(agent: Path, out: Path) -> None:
    run_trainer(
        agent,
        out,
        f"trainer.total_training_steps={STEPS}",
        "trainer.val_before_train=false",
        f"trainer.test_freq={STEPS}",
        "trainer.unify_strategy=switch",
        "data.max_prompt_length=128",
        "data.max_response_length=256",
        "data.train_batch_size=8",
        "actor_rollout_ref.actor.ppo_mini_batch_size=8",
        "actor_rollout_ref.rollout.n=4",
        f"actor_rollout_ref.rollout.multi_turn.tool_config_path={agent / 'tools' / 'search.yaml'}",
        "actor_rollout_ref.rollout.multi_turn.max_assistant_turns=3",
        "actor_rollout_ref.rollout.multi_turn.format=hermes",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=16",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16",
        timeout=1200,
    )


def _steps(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["data"] for line in lines if line.strip()]


@pytest.mark.slow
def test_switch_trains_sft_and_rl_groups_with_tool_calls(run_dir):
    steps = [s for s in _steps(run_dir) if M.GATE_SFT_FRAC in s]
    assert len(steps) == STEPS
    assert sum(s[M.AGENT_DEMO_TOOL_ROWS] for s in steps) > 0, "no demonstration with tool calls was trained"
    assert sum(s[M.AGENT_RL_TOOL_ROWS] for s in steps) > 0, "no rollout with tool calls was trained by GRPO"
    for s in steps:
        assert 0.0 <= s[M.AGENT_TOOL_CALL_SHARE] <= 1.0 and s[M.AGENT_TURNS] >= 2
        assert s[M.BATCH_DEMO_TOKENS] >= 0 and s[M.AGENT_TOOL_ERRORS] >= 0
    assert any(key.startswith("val-core/") for key in steps[-1])

"""Multi-turn tool rollouts vs single-turn ones: step time per generated token, and the tool's share.

    python -m benchmarks.agent [--steps 6 --warmup 2 --out benchmarks/agent/results.json --agent-dir .hpt_agent]

Two runs of the real CPU trainer (GRPO, ``unify_strategy=no``, same shape) on the agent toy
(``python -m hpt.toy.build_agent``, warm-started so that it calls the search tool): the tool-agent rows
as built, and the same prompts with ``agent_name=single_turn_agent`` (no tools: one generated answer).
The two generate different numbers of tokens, so the ratio is taken per generated token (verl's step
time ÷ ``hpt/rollout/generated_tokens``): multi-turn ÷ single-turn at equal generated tokens. The tool's
share is verl's per-trajectory tool time (``agent_loop/tool_calls``) over the trajectory's total
(generation + tools + scoring), medians over the steps after the warm-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from benchmarks.speed.step_time import Shape, run_training
from hpt.report.metrics_log import read_metrics_log

SHAPE = Shape(prompts=8, samples=4, response_length=256)
MULTI_TURN = [
    "data.max_prompt_length=128",
    "actor_rollout_ref.rollout.multi_turn.max_assistant_turns=3",
    "actor_rollout_ref.rollout.multi_turn.format=hermes",
    "trainer.unify_strategy=no",
    "actor_rollout_ref.actor.ppo_mini_batch_size=8",
]
AGENT_LOOP = "timing_s/agent_loop/{}/mean"
ROOT = Path(__file__).resolve().parents[2]
# a toy built for the benchmark alone: enough prompts for the steps, a short competence report
SMALL_TOY = "--entities 40 --train-size 128 --val-size 8 --test-size 8 --report-prompts 8".split()


def _toy(root: Path, single_turn: bool) -> Path:
    """A run directory in ``run_training``'s layout: ``model`` (the warm start) and ``data``."""
    out = root / ("single" if single_turn else "multi")
    (out / "data").mkdir(parents=True)
    (out / "model").symlink_to(root / "agent" / "model_warm")
    for split in ("train", "test"):
        frame = pd.read_parquet(root / "agent" / "data" / f"{split}.parquet")
        if single_turn:  # GRPO needs no demonstration; a trajectory on a single-turn row is refused at start-up
            frame["agent_name"] = "single_turn_agent"
            infos = frame["extra_info"]
            frame["extra_info"] = [{k: v for k, v in info.items() if k != "target_turns"} for info in infos]
        frame.to_parquet(out / "data" / f"{split}.parquet")
    return out


def _medians(log: Path, warmup: int) -> dict[str, float]:
    steps = [data for step, data in read_metrics_log(log).steps.items() if step > warmup and "timing_s/step" in data]
    if not steps:
        raise ValueError(f"no step after the {warmup} warm-up steps in {log}; run more steps")
    keys = [
        "timing_s/step",
        "timing_s/gen",
        "hpt/rollout/generated_tokens",
        *(AGENT_LOOP.format(part) for part in ("generate_sequences", "tool_calls", "compute_score")),
    ]
    return {key: statistics.median(float(step.get(key, 0.0)) for step in steps) for key in keys}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.agent", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results.json")
    parser.add_argument("--agent-dir", type=Path, help="an agent toy already built (default: build one)")
    args = parser.parse_args(argv)
    # the trainer runs in a scratch directory; its Ray workers import the tool class (hpt.tools.search) from here
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        if args.agent_dir:
            (root / "agent").symlink_to(args.agent_dir.resolve())
        else:
            build = [sys.executable, "-m", "hpt.toy.build_agent", "--out", str(root / "agent"), *SMALL_TOY]
            subprocess.run(build, check=True)
        tools = f"actor_rollout_ref.rollout.multi_turn.tool_config_path={root / 'agent' / 'tools' / 'search.yaml'}"
        runs = {}
        for name, single in (("multi_turn", False), ("single_turn", True)):
            log = root / f"{name}.jsonl"
            run_training(_toy(root, single), SHAPE, args.steps, [*MULTI_TURN, tools], log)
            runs[name] = _medians(log, args.warmup)
    per_token = {name: m["timing_s/step"] / max(m["hpt/rollout/generated_tokens"], 1.0) for name, m in runs.items()}
    multi = runs["multi_turn"]
    trajectory = sum(multi[AGENT_LOOP.format(p)] for p in ("generate_sequences", "tool_calls", "compute_score"))
    result = {
        "shape": dataclasses.asdict(SHAPE),
        "steps": args.steps,
        "warmup": args.warmup,
        "medians": runs,
        "step_s_per_generated_token": per_token,
        "multi_over_single_at_equal_tokens": per_token["multi_turn"] / per_token["single_turn"],
        "tool_share_of_trajectory": multi[AGENT_LOOP.format("tool_calls")] / trajectory if trajectory else 0.0,
    }
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "medians"}, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()

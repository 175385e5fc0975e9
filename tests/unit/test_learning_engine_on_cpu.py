"""The in-process engine and the benchmark built on it: determinism, method switches, resume, refusals, tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from benchmarks.learning import engine_report as report
from benchmarks.learning.engine_methods import FAMILIES
from benchmarks.learning.regime import Regime, RegimeSpec, check_profile, skill_of
from benchmarks.learning.sweep import Budget, RunSpec, execute, load_result, settings_of
from hpt.toy.arithmetic import make_rows, write_parquet
from hpt.toy.engine import MethodConfig, RunConfig, train
from hpt.toy.tiny_model import save_tiny_model

TIMINGS = ("timing_s/gen", "timing_s/step")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """A random tiny model and a few arithmetic prompts (the engine runs; nothing needs to be learned)."""
    out = tmp_path_factory.mktemp("engine")
    save_tiny_model(out / "model", seed=0)
    return out / "model", make_rows(16, seed=0, split="train", max_operand=5, max_ops=1)


def _train(toy, method: MethodConfig, steps: int = 2, seed: int = 0) -> list[dict]:
    model_dir, rows = toy
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    run = RunConfig(steps=steps, prompts_per_step=4, n=2, lr=1e-3, max_new_tokens=12, seed=seed, eval_every=1)
    return train(model, tokenizer, rows, {"val": rows[:4]}, run, method)


def _without_timings(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in TIMINGS} for m in history]


def test_a_seed_fixes_the_whole_run(toy):
    first = _train(toy, MethodConfig("luffy"))
    again = _train(toy, MethodConfig("luffy"))
    other = _train(toy, MethodConfig("luffy"), seed=1)
    assert _without_timings(first) == _without_timings(again)
    assert _without_timings(first) != _without_timings(other)
    assert first[0] == {"step": 0, "val/acc": first[0]["val/acc"]}  # the evaluation before training
    assert all("val/acc" in m for m in first)


def test_sft_warmup_generates_nothing_then_grpo_trains_rollouts(toy):
    history = _train(toy, MethodConfig("no", sft_warmup_steps=1))
    warm, rl = history[1], history[2]
    assert warm["hpt/gate/sft_frac"] == 1 and warm["hpt/rollout/generated_tokens"] == 0 and warm["hpt/loss/sft"] > 0
    assert rl["hpt/gate/rl_frac"] == 1 and rl["hpt/rollout/generated_tokens"] > 0 and rl["hpt/loss/sft"] == 0


def _regime(tmp_path: Path, model: Path) -> Regime:
    rows = make_rows(8, seed=0, split="train", max_operand=5, max_ops=1)
    for name in ("train", "val", "test"):
        write_parquet(rows, tmp_path / f"{name}.parquet")
    return Regime(model, tmp_path / "train.parquet", tmp_path / "test.parquet", 12, {},
                  val_file=tmp_path / "val.parquet", name="toy")


def test_a_finished_run_is_reused_only_with_its_settings_and_a_crash_is_recorded(toy, tmp_path):
    regime = _regime(tmp_path, toy[0])
    budget = Budget(steps=1, prompts_per_step=2, n=2, eval_every=1, eval_size=4)
    spec = RunSpec("toy", "hpt_switch", "", 1e-3, 0)
    record = execute(spec, regime, budget, tmp_path / "out")
    assert load_result(spec, tmp_path / "out", settings_of(spec, regime, budget)) == json.loads(
        spec.path(tmp_path / "out").read_text())
    assert [m["step"] for m in record["history"]] == [0, 1]
    longer = Budget(steps=2, prompts_per_step=2, n=2, eval_every=1, eval_size=4)
    assert load_result(spec, tmp_path / "out", settings_of(spec, regime, longer)) is None

    broken = Regime(tmp_path / "no_model", regime.train_file, regime.test_file, 12, {}, val_file=regime.val_file,
                    name="toy")
    crash = RunSpec("toy", "grpo", "", 1e-3, 0)
    with pytest.raises(OSError):
        execute(crash, broken, budget, tmp_path / "out")
    assert not crash.path(tmp_path / "out").exists()
    assert "Traceback" in json.loads(crash.path(tmp_path / "out").with_suffix(".failed.json").read_text())["traceback"]


def _skills(**pass_mixed) -> dict:
    return {skill: {"pass_at_1_t1": p, "mixed_share": m, "zero_share": 1 - m, "all_share": 0.0, "prompts": 10}
            for skill, (p, m) in pass_mixed.items()}


def test_the_knowledge_gap_regime_refuses_a_base_without_its_profile(tmp_path):
    spec = RegimeSpec(name="gap", style="steps", base_max_ops=2)

    def regime(skills):
        return Regime(tmp_path, tmp_path, tmp_path, 10, {"mixed_share": 0.5}, skills=skills, name="gap")

    check_profile(regime(_skills(**{"ops=1": (0.6, 0.4), "ops=2": (0.3, 0.5), "ops=3": (0.02, 0.05)})), spec)
    with pytest.raises(RuntimeError, match="solves 40% of the unseen skill ops=3.*Lower RegimeSpec.base_max_ops"):
        check_profile(regime(_skills(**{"ops=1": (0.6, 0.4), "ops=2": (0.3, 0.5), "ops=3": (0.4, 0.5)})), spec)
    with pytest.raises(RuntimeError, match="mixed groups on only 5% of the seen skills"):
        check_profile(regime(_skills(**{"ops=1": (1.0, 0.05), "ops=2": (0.0, 0.05), "ops=3": (0.0, 0.0)})), spec)
    assert skill_of({"prompt": [{"content": "Q12+7-3=?"}]}) == "ops=2"


def _record(val: list[float], test: list[float], tokens: int = 10) -> dict:
    history = [{"step": 0, "val/acc": val[0], "test/acc": test[0]}]
    history += [{"step": 5 * i, "val/acc": v, "test/acc": t, "hpt/rollout/generated_tokens": tokens,
                 "timing_s/step": 0.5} for i, (v, t) in enumerate(zip(val[1:], test[1:], strict=True), start=1)]
    return {"history": history, "wall_seconds": 1.0}


def test_the_setting_is_chosen_on_validation_and_reported_on_test_with_missing_seeds_named(tmp_path):
    hpt = FAMILIES["hpt_switch"]
    results = {
        RunSpec("r", "hpt_switch", "", 1e-4, 0): _record([0.1, 0.2, 0.3], [0.1, 0.9, 0.9]),  # best test, worse val
        RunSpec("r", "hpt_switch", "", 3e-4, 0): _record([0.1, 0.4, 0.5], [0.1, 0.3, 0.5]),
        RunSpec("r", "hpt_switch", "", 3e-4, 1): _record([0.1, 0.4, 0.5], [0.1, 0.5, 0.7]),
        RunSpec("r", "hpt_switch", "", 3e-4, 2): None,  # crashed
    }
    assert report.choose(results, "r", "hpt_switch").lr == 3e-4
    row = report.family_row(results, "r", hpt, [0, 1, 2], target=0.4)
    assert row["chosen"] == "lr0.0003" and row["seeds"] == [0, 1] and row["missing"] == [2]
    assert row["final"][0] == pytest.approx(0.6) and row["final"][1] == pytest.approx(0.1414, abs=1e-3)
    assert row["steps_to_target"] == 5 and row["half_step"] == 5
    assert row["auc"] == pytest.approx(((0.1 + 0.4) / 2 * 5 + (0.4 + 0.6) / 2 * 5) / 10)
    assert row["rollout_tokens"] == 20
    table = report.markdown_table([row, report.family_row(results, "r", FAMILIES["grpo"], [0], 0.4)], 0.1, 0.4)
    assert "(missing [2])" in table and "| GRPO | no finished run |" in table
    report.plot(tmp_path / "r.png", "r", [row])
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_the_projection_scales_measured_seconds_per_step_to_the_full_plan():
    results = {RunSpec("r", "sft", "", 1e-3, 0): {"wall_seconds": 10.0},  # 1 s per step over 10 steps
               RunSpec("r", "grpo", "", 1e-3, 0): {"wall_seconds": 30.0},  # 3 s per step
               RunSpec("r", "grpo", "", 3e-4, 0): None}
    families = [FAMILIES["sft"], FAMILIES["grpo"], FAMILIES["sft_grpo"]]  # sft_grpo: unmeasured, 2 candidates
    minutes = report.projected_minutes(results, 10, families, steps=100, lrs=2, seeds=3, regimes=3, jobs=2)
    runs_seconds = (1 * 2 + 2) * 100 * 1.0 + (1 * 2 + 2) * 100 * 3.0 + (2 * 2 + 2) * 100 * 2.0
    assert minutes == pytest.approx(runs_seconds * 3 / 2 / 60)
    assert report.projected_minutes({}, 10, families, 100, 2, 3, 3, 2) is None

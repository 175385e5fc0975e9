"""The learning benchmark's bookkeeping, by hand: run reuse, curves from a log, steps to target, table rows."""

import json
import subprocess

import pytest

from benchmarks.learning import runs
from benchmarks.learning.methods import METHODS, resolve
from benchmarks.learning.regime import Regime
from benchmarks.learning.runs import Budget, RunResult
from benchmarks.learning.summarise import VAL_ACC, RunCurves, first_reaching, load_curves, markdown_table, method_row
from hpt.metrics import GATE_SFT_FRAC, REWARD_MEAN


def _log(path, steps):
    path.write_text("".join(json.dumps({"step": step, "data": data}) + "\n" for step, data in steps))
    return path


def test_curves_are_read_by_step_from_the_metrics_log(tmp_path):
    log = _log(tmp_path / "a.jsonl", [
        (0, {VAL_ACC: 0.5}),
        (1, {"timing_s/step": 2.0, GATE_SFT_FRAC: 1.0, REWARD_MEAN: 0.4}),
        (2, {"timing_s/step": 3.0, GATE_SFT_FRAC: 0.0, REWARD_MEAN: 0.5, VAL_ACC: 0.6}),
    ])
    curves = load_curves(RunResult(log, 30.0))
    assert curves.val == {0: 0.5, 2: 0.6}
    assert curves.sft_frac == {1: 1.0, 2: 0.0}
    assert curves.reward == {1: 0.4, 2: 0.5}
    assert curves.step_seconds == {1: 2.0, 2: 3.0}
    assert curves.wall_seconds == 30.0


def test_a_run_without_validation_is_an_error(tmp_path):
    log = _log(tmp_path / "a.jsonl", [(1, {"timing_s/step": 2.0})])
    with pytest.raises(ValueError, match="did validation run"):
        load_curves(RunResult(log, 1.0))


def test_first_reaching_sums_training_time_up_to_that_validation():
    curves = RunCurves(val={0: 0.4, 5: 0.55, 10: 0.7}, step_seconds={s: 2.0 for s in range(1, 11)})
    assert first_reaching(curves, 0.5) == (5, 10.0)
    assert first_reaching(curves, 0.7) == (10, 20.0)
    assert first_reaching(curves, 0.71) is None


def test_method_row_averages_seeds_and_counts_who_reached_the_target():
    runs = {
        0: RunCurves(val={0: 0.4, 10: 0.6}, step_seconds={5: 1.0, 10: 3.0}, sft_frac={10: 0.2}, wall_seconds=60.0),
        1: RunCurves(val={0: 0.4, 10: 0.5}, step_seconds={5: 1.0, 10: 1.0}, sft_frac={10: 0.4}, wall_seconds=40.0),
    }
    row = method_row(METHODS["hpt_switch"], runs, target=0.55)
    assert row["final_acc_per_seed"] == [0.6, 0.5]
    assert row["final_acc_mean"] == pytest.approx(0.55)
    assert row["final_acc_std"] == pytest.approx(0.0707107, abs=1e-6)  # sample sd of 0.6 and 0.5
    assert row["reached_target"] == "1/2"
    assert row["steps_to_target_mean"] == 10
    assert row["train_seconds_to_target_mean"] == 4.0
    assert row["train_seconds_mean"] == 3.0
    assert row["wall_seconds_mean"] == 50.0
    assert row["last_step_sft_frac_mean"] == pytest.approx(0.3)
    table = markdown_table([row], base_acc=0.4, target=0.55)
    assert "| base (step 0) | 0.400 |" in table
    assert "| HPT switch (gate 0) | **0.550** ± 0.071 | 0.600 / 0.500 | 1/2 | 10 | 4 | 3 | 50 |" in table


def test_every_issue_method_is_there_and_unknown_names_list_them():
    assert {"sft", "grpo", "sft_grpo", "luffy", "hpt_switch", "hpt_soft", "mix_cosine"} == set(METHODS)
    assert METHODS["sft_grpo"].overrides_for(7) == ("trainer.unify_strategy=no", "trainer.sft_warmup_steps=7")
    assert METHODS["grpo"].overrides_for(7) == ("trainer.unify_strategy=no",)
    with pytest.raises(ValueError, match="valid: sft, grpo"):
        resolve(["hpt", "sft"])


def test_a_finished_run_is_reused_only_when_its_overrides_are_the_same(tmp_path, monkeypatch):
    regime = Regime(tmp_path / "base", tmp_path / "train.parquet", tmp_path / "test.parquet", 66, {})
    launched = []

    def fake_trainer(command, **kwargs):
        launched.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(runs.subprocess, "run", fake_trainer)
    budget = Budget(steps=4, train_batch_size=8, test_freq=2, rollout_n=4, switch_step=2)
    first = runs.run_method(tmp_path, regime, budget, METHODS["sft_grpo"], seed=0)
    assert not first.reused and len(launched) == 1
    assert "trainer.sft_warmup_steps=2" in launched[0] and "trainer.total_training_steps=4" in launched[0]
    again = runs.run_method(tmp_path, regime, budget, METHODS["sft_grpo"], seed=0)
    assert again.reused and len(launched) == 1
    longer = Budget(steps=6, train_batch_size=8, test_freq=2, rollout_n=4, switch_step=3)
    rerun = runs.run_method(tmp_path, regime, longer, METHODS["sft_grpo"], seed=0)
    assert not rerun.reused and len(launched) == 2 and "trainer.sft_warmup_steps=3" in launched[1]

"""kill -9 and resume: a resumed run follows the uninterrupted run's trajectory exactly.

One configuration, run three ways with the real ``python -m hpt.main`` (CPU overlay, tiny model):
- A trains to the end, saving every step;
- B is SIGKILLed (whole process tree) at a seeded random moment after its first checkpoint, then
  resumed with ``trainer.resume_mode=auto``;
- C is SIGKILLed while it writes step 2's checkpoint (hpt's state written, verl's model and tracker
  not yet: ``HPT_TEST_PAUSE_IN_CHECKPOINT``), then resumed: it must load step 1, mid-epoch.

Switch mode with ``remove_sfted_data`` (the prompt history shapes later epochs, so it must survive the
kill), a separate SFT stream and a linear lambda schedule, on a 32-prompt subset: 2 steps per full
epoch and ``total_epochs=3``, so the run is 6 steps long while its epochs shrink. A also checks that
such a run ends where it says (its last step, validation and checkpoint happen; lambda reaches the
end of its schedule).

Compared between runs: every step's rollout dump (sampled prompts, responses, scores, and the rows the
gate kept or added: its decisions), the gate and batch metrics exactly, the losses and other training
metrics to 1e-6, and the final weights to 1e-6.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hpt import metrics as M

pytestmark = pytest.mark.slow

STEPS = 6  # 32 prompts / 16 per batch = 2 steps per full epoch, x total_epochs=3
KILL_SEED = 14
TIMEOUT_S = 1200


def _command(tiny: Path, out: Path) -> list[str]:
    stream = tiny / "sft_stream" / "sft_stream.parquet"
    return [
        sys.executable, "-m", "hpt.main", "--config-name", "hpt_trainer_cpu",
        f"actor_rollout_ref.model.path={tiny / 'model_warm'}",
        f"data.train_files={tiny / 'data' / 'train.parquet'}",
        f"data.val_files={tiny / 'data' / 'test.parquet'}",
        "data.train_max_samples=32", "data.seed=7",
        "trainer.total_training_steps=null", "trainer.total_epochs=3",
        "trainer.val_before_train=false", "trainer.test_freq=3", "trainer.save_freq=1",
        "trainer.logger=[console,file]", "trainer.remove_sfted_data=true",
        "trainer.lambda_schedule.name=linear",
        f"data.sft_stream.train_files=[{stream}]", "data.sft_stream.batch_size=4",
        f"trainer.default_local_dir={out / 'ckpt'}",
        f"trainer.rollout_data_dir={out / 'rollouts'}",
    ]


def _start(tiny: Path, out: Path, attempt: str, **env: str) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ, VERL_FILE_LOGGER_PATH=str(out / f"metrics_{attempt}.jsonl"), VERL_PLATFORM="cpu")
    environment.update(env)
    log = open(out / f"train_{attempt}.log", "w")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(_command(tiny, out), cwd=out, env=environment, stdout=log, stderr=subprocess.STDOUT)


def _finish(process: subprocess.Popen, out: Path, attempt: str) -> None:
    returncode = process.wait(timeout=TIMEOUT_S)
    tail = (out / f"train_{attempt}.log").read_text()[-4000:]
    assert returncode == 0, f"run {attempt} failed; log tail:\n{tail}"


def _descendants(pid: int) -> list[int]:
    """Every live process under ``pid`` (Ray's raylet, GCS and workers are the trainer's descendants)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the run and everything it started, as a machine failure would."""
    victims = [process.pid, *_descendants(process.pid)]
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=60)
    deadline = time.time() + 30
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in victims[1:]):
        time.sleep(0.5)


def _wait_for(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.time() + TIMEOUT_S
    while not condition():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _steps(out: Path, attempt: str) -> dict[int, dict]:
    path = out / f"metrics_{attempt}.jsonl"
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip().endswith("}")]
    return {r["step"]: r["data"] for r in records}


def _tracker(out: Path) -> int | None:
    tracker = out / "ckpt" / "latest_checkpointed_iteration.txt"
    return int(tracker.read_text()) if tracker.exists() and tracker.read_text().strip() else None


def _resumed_from(out: Path, attempt: str) -> int:
    """The step verl says it resumed from (its log line ``Resuming from <dir>/global_step_N``)."""
    (line,) = [line for line in (out / f"train_{attempt}.log").read_text().splitlines() if "Resuming from" in line]
    assert str(out / "ckpt") in line
    return int(line.rsplit("global_step_", 1)[1])


def _weights(out: Path) -> dict[str, torch.Tensor]:
    (shard,) = (out / "ckpt" / f"global_step_{STEPS}" / "actor").glob("model_world_size_*_rank_0.pt")
    state = torch.load(shard, weights_only=False, map_location="cpu")
    return {name: (t.full_tensor() if hasattr(t, "full_tensor") else t).detach() for name, t in state.items()}


def _rollouts(out: Path, step: int) -> list[dict]:
    return [json.loads(line) for line in (out / "rollouts" / f"{step}.jsonl").read_text().splitlines()]


EXACT = ("hpt/gate/", "hpt/batch/", "hpt/history/")
CLOSE = ("hpt/loss/", "actor/", "critic/", "response_length/", "val-core/", "val-aux/")
MACHINE = ("actor/perf/",)  # memory in use: a property of the machine, not of the trajectory


def _assert_same_step(expected: dict, actual: dict, step: int) -> None:
    assert {M.LOSS_SFT, M.LOSS_RL, M.GATE_SFT_FRAC, "actor/grad_norm"} <= expected.keys()
    for key, value in expected.items():
        if key.startswith(MACHINE):
            continue
        if key.startswith(EXACT):
            assert actual[key] == value, f"step {step}: {key} {actual[key]} != {value}"
        elif key.startswith(CLOSE) and isinstance(value, int | float):
            assert actual[key] == pytest.approx(value, abs=1e-6, rel=1e-6), f"step {step}: {key}"


def _assert_same_trajectory(
    reference: Path, steps: dict[int, dict], run: Path, unlogged: frozenset[int] = frozenset()
) -> None:
    """``unlogged``: a step whose checkpoint was saved but whose metrics line (and rollout dump) the kill cut off."""
    expected = _steps(reference, "a")
    assert sorted(steps) == [step for step in range(1, STEPS + 1) if step not in unlogged]
    for step in range(1, STEPS + 1):
        if step in unlogged and not (run / "rollouts" / f"{step}.jsonl").exists():
            continue  # its effect is in the checkpoint the resumed run started from, compared via the final weights
        if step not in unlogged:
            _assert_same_step(expected[step], steps[step], step)
        assert _rollouts(run, step) == _rollouts(reference, step), f"step {step}: rollouts or gate decisions differ"
    reference_weights, weights = _weights(reference), _weights(run)
    assert reference_weights.keys() == weights.keys()
    for name, tensor in reference_weights.items():
        torch.testing.assert_close(weights[name], tensor, atol=1e-6, rtol=0, msg=f"final weight {name}")


@pytest.fixture(scope="module")
def run_a(warm_tiny_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run_a")
    _finish(_start(warm_tiny_dir, out, "a"), out, "a")
    return out


def test_a_history_run_ends_where_it_says(run_a):
    steps = _steps(run_a, "a")
    assert sorted(steps) == list(range(1, STEPS + 1)), "the run did not train its total_epochs x full-epoch steps"
    assert _tracker(run_a) == STEPS and (run_a / "ckpt" / f"global_step_{STEPS}" / "actor").is_dir()
    assert any(key.startswith("val-core/") for key in steps[STEPS]), "no validation at the last step"
    assert steps[1][M.GATE_LAMBDA] == 1.0 and steps[STEPS][M.GATE_LAMBDA] == 0.0  # linear 1 -> 0 reaches its end
    assert max(s[M.HISTORY_EXCLUDED] for s in steps.values()) > 0, "no prompt was removed: epochs did not shrink"
    assert steps[STEPS]["training/epoch"] >= 3, "the shrunken epochs fitted in total_epochs; nothing to honour"


def test_a_run_killed_at_a_random_moment_resumes_to_the_same_trajectory(run_a, warm_tiny_dir, tmp_path):
    chooser = random.Random(KILL_SEED)
    kill_after_step, extra_s = chooser.choice([2, 3, 4]), chooser.uniform(0.0, 3.0)
    first = _start(warm_tiny_dir, tmp_path, "b1")
    try:
        _wait_for(lambda: _tracker(tmp_path) is not None and kill_after_step in _steps(tmp_path, "b1"), first,
                  f"step {kill_after_step} after a checkpoint")
        time.sleep(extra_s)
        assert first.poll() is None, "the run finished before it could be killed"
    finally:
        _kill_tree(first)
    resumed_from = _tracker(tmp_path)
    assert resumed_from is not None and resumed_from < STEPS

    _finish(_start(warm_tiny_dir, tmp_path, "b2"), tmp_path, "b2")
    assert _resumed_from(tmp_path, "b2") == resumed_from
    killed = _steps(tmp_path, "b1")
    steps = {**killed, **_steps(tmp_path, "b2")}  # steps after the checkpoint: the resumed run's
    # verl saves a step's checkpoint before it dumps its rollouts and logs its metrics: a kill in between (more
    # likely on a loaded machine) leaves that step checkpointed but unlogged, and the resumed run starts after it
    unlogged = frozenset() if resumed_from in killed else frozenset({resumed_from})
    _assert_same_trajectory(run_a, steps, tmp_path, unlogged)


def test_a_run_killed_while_writing_a_checkpoint_resumes_from_the_previous_one(run_a, warm_tiny_dir, tmp_path):
    first = _start(warm_tiny_dir, tmp_path, "c1", HPT_TEST_PAUSE_IN_CHECKPOINT="2")
    try:
        _wait_for((tmp_path / "ckpt" / "paused_in_checkpoint_2").exists, first, "step 2's checkpoint write")
    finally:
        _kill_tree(first)
    assert _tracker(tmp_path) == 1
    assert (tmp_path / "ckpt" / "global_step_2" / "hpt_state.pt").exists()  # part of step 2 is on disk
    assert not (tmp_path / "ckpt" / "global_step_2" / "actor").exists()

    _finish(_start(warm_tiny_dir, tmp_path, "c2"), tmp_path, "c2")
    assert _resumed_from(tmp_path, "c2") == 1
    steps = {**_steps(tmp_path, "c1"), **_steps(tmp_path, "c2")}
    _assert_same_trajectory(run_a, steps, tmp_path)

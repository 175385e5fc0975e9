"""End to end: a gate, a demonstration loss and a verifier defined in the user's own file, chosen by name.

The file is listed in ``hpt.imports``; the gate runs in the task runner, the loss in the actor worker and
the verifier in the reward workers, all Ray processes that only know the file through ``HPT_IMPORTS``.
Each records the process it ran in, so the test sees that every one of them was really used.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from hpt import metrics as M

pytestmark = pytest.mark.slow

USER_FILE = textwrap.dedent(
    """
    import os

    from hpt.core.gates import Mode, Route, register_gate
    from hpt.core.offpolicy import register_off_policy_loss
    from hpt.rewards import arithmetic
    from hpt.rewards.registry import register_verifier

    MARKERS = {markers!r}


    def _mark(kind):
        with open(os.path.join(MARKERS, f"{{kind}}.{{os.getpid()}}"), "w"):
            pass


    @register_gate("user_all_sft")
    def user_all_sft(outcome, config):
        _mark("gate")
        return Route(Mode.SFT, rollout_weight=0.0, sft_weight=1.0)


    @register_off_policy_loss("user_nll")
    def user_nll(log_prob, inputs, params):
        _mark("loss")
        return -log_prob


    def user_verifier(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
        _mark("verifier")
        return arithmetic.compute_score("hpt/arithmetic", solution_str, ground_truth, extra_info)


    register_verifier("user/arith", user_verifier)
    """
)


def _relabelled(source: Path, out: Path) -> Path:
    frame = pd.read_parquet(source)
    frame["data_source"] = "user/arith"
    frame.to_parquet(out)
    return out


def test_user_gate_loss_and_verifier_run_in_the_ray_workers(tiny_dir: Path, tmp_path: Path):
    markers = tmp_path / "markers"
    markers.mkdir()
    user_file = tmp_path / "my_extensions.py"
    user_file.write_text(USER_FILE.format(markers=str(markers)))
    train = _relabelled(tiny_dir / "data" / "train.parquet", tmp_path / "train.parquet")
    val = _relabelled(tiny_dir / "data" / "test.parquet", tmp_path / "test.parquet")
    env = dict(os.environ, VERL_FILE_LOGGER_PATH=str(tmp_path / "metrics.jsonl"), VERL_PLATFORM="cpu")
    env.pop("HPT_IMPORTS", None)  # only the config names the file
    command = [
        sys.executable, "-m", "hpt.main", "--config-name", "hpt_trainer_cpu",
        f"hpt.imports=[{user_file}]",
        f"actor_rollout_ref.model.path={tiny_dir / 'model'}",
        f"data.train_files={train}", f"data.val_files={val}",
        "reward.custom_reward_function.path=${hpt_path:rewards/dispatch.py}",
        "trainer.unify_strategy=user_all_sft", "actor_rollout_ref.actor.offline_loss_type=user_nll",
        "trainer.total_training_steps=1", "trainer.val_before_train=false", "trainer.test_freq=-1",
        "trainer.save_freq=-1", "trainer.logger=[console,file]",
    ]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"training failed; log tail:\n{log[-4000:]}"

    steps = [json.loads(line)["data"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if line]
    assert len(steps) == 1
    assert steps[0][M.GATE_SFT_FRAC] == 1.0  # the user's gate decided
    assert steps[0][M.LOSS_SFT] > 0  # the user's loss (NLL) was the SFT term
    ran_in = {kind: {p.suffix for p in markers.glob(f"{kind}.*")} for kind in ("gate", "loss", "verifier")}
    assert all(ran_in.values()), f"not every extension ran: {ran_in}"
    assert ran_in["gate"].isdisjoint(ran_in["loss"]), "gate and loss should run in different Ray processes"

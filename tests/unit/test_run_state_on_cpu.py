"""hpt's run state in verl's checkpoint: saved atomically, refused when it belongs to other settings."""

import pytest
import torch
from omegaconf import OmegaConf

from hpt.trainer import run_state
from hpt.trainer.run_state import RunStateError


def _config(**trainer):
    return OmegaConf.create(
        {
            "trainer": {"remove_sfted_data": True, "skip_solved_prompts": False, "resume_mode": "auto",
                        "resume_from_path": None, "default_local_dir": "ckpt", **trainer},
            "data": {"shuffle": True, "seed": 1, "sft_stream": {"train_files": None}},
        }
    )


def test_saved_state_loads_back_with_the_same_settings(tmp_path):
    fingerprint = run_state.fingerprint(_config(), train_rows=32)
    state = {"global_step": 4, "fingerprint": fingerprint, "history": {"sfted": [1, 2]}, "g": torch.arange(3)}
    run_state.save_run_state(tmp_path / "global_step_4", state)
    loaded = run_state.load_run_state(tmp_path / "global_step_4", fingerprint)
    assert loaded["history"] == {"sfted": [1, 2]} and torch.equal(loaded["g"], torch.arange(3))
    assert [p.name for p in (tmp_path / "global_step_4").iterdir()] == [run_state.STATE_FILE]  # no temp file left


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"trainer": {"remove_sfted_data": False}}, "remove_sfted_data: saved True, now False"),
        ({"data": {"sft_stream": {"train_files": "s.parquet", "batch_size": 8, "shuffle": True, "seed": 1}}},
         "data.sft_stream"),
    ],
)
def test_a_checkpoint_of_other_settings_is_refused_naming_them(tmp_path, change, named):
    run_state.save_run_state(tmp_path, {"global_step": 2, "fingerprint": run_state.fingerprint(_config(), 32)})
    other = OmegaConf.merge(_config(), change)
    with pytest.raises(RunStateError, match="other settings") as error:
        run_state.load_run_state(tmp_path, run_state.fingerprint(other, 32))
    assert named in str(error.value)
    with pytest.raises(RunStateError, match="train_rows: saved 32, now 40"):
        run_state.load_run_state(tmp_path, run_state.fingerprint(_config(), 40))


def test_a_checkpoint_without_hpt_state_is_refused(tmp_path):
    with pytest.raises(RunStateError, match="no hpt_state.pt"):
        run_state.load_run_state(tmp_path, run_state.fingerprint(_config(), 32))


def test_checkpoint_to_resume_follows_verl_and_fails_loudly_on_a_broken_tracker(tmp_path):
    root = tmp_path / "ckpt"
    config = _config(default_local_dir=str(root)).trainer
    assert run_state.checkpoint_to_resume(config) is None  # nothing saved yet: a fresh start
    assert run_state.checkpoint_to_resume(_config(default_local_dir=str(root), resume_mode="disable").trainer) is None
    root.mkdir()
    (root / "global_step_2").mkdir()
    tracker = root / "latest_checkpointed_iteration.txt"
    tracker.write_text("2")
    assert run_state.checkpoint_to_resume(config) == root / "global_step_2"
    tracker.write_text("")  # killed between verl's truncate and write
    with pytest.raises(RunStateError, match="does not hold a step number"):
        run_state.checkpoint_to_resume(config)
    tracker.write_text("4")
    with pytest.raises(RunStateError, match="does not exist"):
        run_state.checkpoint_to_resume(config)
    chosen = _config(resume_mode="resume_path", resume_from_path=str(root / "global_step_2")).trainer
    assert run_state.checkpoint_to_resume(chosen) == root / "global_step_2"

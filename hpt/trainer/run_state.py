"""hpt's own run state inside verl's checkpoint: ``global_step_N/hpt_state.pt``.

verl's checkpoint holds the model, optimizer, LR scheduler, its RNG states and the dataloader
(``data.pt``, which with hpt's sampler includes the epoch's order, position and generator state).
This file adds what only hpt knows: the per-prompt history (``remove_sfted_data``,
``skip_solved_prompts``), the separate SFT stream's order, position and generator, and the rollout
selection's pass-rate memory and exploration generator (its prompt buffer is in ``data.pt``). The
lambda schedules keep no state (they are functions of the step, the run's length and the batch's
pass rate), so the run's length is recorded only to warn when a resumed run changes it.

The file is written atomically and before verl's tracker (``latest_checkpointed_iteration.txt``)
names the step, so a run killed at any moment resumes from a checkpoint that has it. A checkpoint
written with other state-shaping settings (the ``fingerprint``) is refused before anything loads.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import io
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from verl.utils.checkpoint.checkpoint_manager import get_checkpoint_tracker_filename

from hpt.atomic import write_atomically

logger = logging.getLogger(__name__)

STATE_FILE = "hpt_state.pt"
FORMAT = 1
PAUSE_ENV = "HPT_TEST_PAUSE_IN_CHECKPOINT"  # fault injection for the crash test, see pause_if_requested


class RunStateError(RuntimeError):
    """A checkpoint hpt cannot resume from; the message says why and what to do."""


def fingerprint(config: DictConfig, train_rows: int) -> dict[str, Any]:
    """The settings that shape hpt's saved state: resuming under other values would misread it."""
    stream = config.data.get("sft_stream") or {}
    files = stream.get("train_files")
    selection = bool(OmegaConf.select(config, "trainer.rollout_selection.enable", default=False)) and not bool(
        OmegaConf.select(config, "trainer.rollout_selection.resume_without_memory", default=False)
    )
    return {
        # present only when on (and a memory is required), so checkpoints written without it resume as before
        **({"rollout_selection": True} if selection else {}),
        "remove_sfted_data": bool(config.trainer.get("remove_sfted_data", False)),
        "skip_solved_prompts": bool(config.trainer.get("skip_solved_prompts", False)),
        "train_rows": int(train_rows),
        "data.shuffle": bool(config.data.get("shuffle", True)),
        "data.seed": config.data.get("seed"),
        "data.sft_stream": None
        if files is None
        else {
            "train_files": [files] if isinstance(files, str) else [str(f) for f in files],
            "batch_size": int(stream.get("batch_size")),
            "shuffle": bool(stream.get("shuffle")),
            "seed": int(stream.get("seed")),
        },
    }


def step_dir(trainer_config: DictConfig, step: int) -> Path:
    """``global_step_N`` under ``trainer.default_local_dir``, where verl writes the same step."""
    return Path(os.path.join(trainer_config.default_local_dir, f"global_step_{step}"))


def save_run_state(directory: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``directory/hpt_state.pt`` atomically (temp file, fsync, rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)

    write_atomically(directory / STATE_FILE, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def load_run_state(directory: Path, expected_fingerprint: dict[str, Any]) -> dict[str, Any]:
    """Read and check ``directory/hpt_state.pt``; refuse a missing file or another run's settings."""
    path = directory / STATE_FILE
    if not path.is_file():
        raise RunStateError(
            f"{directory} has no {STATE_FILE}: it was not written by this version of hpt, so the prompt "
            "history and SFT-stream position cannot be restored. Resume from a checkpoint hpt wrote, or start "
            "a new run (trainer.resume_mode=disable, or another trainer.default_local_dir) from its weights "
            "(actor_rollout_ref.model.path=<that checkpoint's actor/huggingface>)"
        )
    state = torch.load(path, weights_only=True)
    if state.get("format") != FORMAT:
        raise RunStateError(f"{path} has format {state.get('format')!r}; this hpt reads format {FORMAT}")
    saved = state["fingerprint"]
    changed = {key: (saved.get(key), value) for key, value in expected_fingerprint.items() if saved.get(key) != value}
    if changed:
        details = "; ".join(f"{key}: saved {old!r}, now {new!r}" for key, (old, new) in changed.items())
        raise RunStateError(
            f"{directory} was written by a run with other settings that shape hpt's saved state ({details}). "
            "Resume with the settings it was written with, or start a new run "
            "(trainer.resume_mode=disable, or another trainer.default_local_dir)"
        )
    return state


def checkpoint_to_resume(trainer_config: DictConfig) -> Path | None:
    """The ``global_step_N`` directory verl's ``_load_checkpoint`` will load, or None for a fresh start.

    Same rules as verl (``resume_mode`` auto / resume_path / disable), plus two loud failures where
    verl would crash on an unreadable tracker or silently start over when the tracker names a step
    whose directory is gone.
    """
    mode = trainer_config.resume_mode
    if mode == "disable":
        return None
    if mode == "resume_path":
        path = Path(str(trainer_config.resume_from_path))
        return path if path.is_absolute() else Path.cwd() / path
    root = Path(str(trainer_config.default_local_dir))
    root = root if root.is_absolute() else Path.cwd() / root
    tracker = Path(get_checkpoint_tracker_filename(str(root)))
    if not tracker.exists():
        return None
    text = tracker.read_text().strip()
    if not text.isdigit():
        raise RunStateError(
            f"{tracker} does not hold a step number ({text!r}): the run was killed while writing it. Write the "
            f"step of the newest complete global_step_N directory into it, or resume with "
            "trainer.resume_mode=resume_path trainer.resume_from_path=<that directory>"
        )
    directory = root / f"global_step_{int(text)}"
    if not directory.is_dir():
        raise RunStateError(
            f"{tracker} names step {text} but {directory} does not exist; restore it, point the tracker at an "
            "existing global_step_N, or start over with trainer.resume_mode=disable"
        )
    return directory


def pause_if_requested(directory: Path, step: int) -> None:
    """Test hook: with ``HPT_TEST_PAUSE_IN_CHECKPOINT=N``, stop inside step N's checkpoint write.

    Called after hpt's state is written and before verl writes the model and names the step in its
    tracker; it creates ``<default_local_dir>/paused_in_checkpoint_N`` and waits to be killed, so a
    test can SIGKILL the run at exactly that point.
    """
    if os.environ.get(PAUSE_ENV) != str(step):
        return
    (directory.parent / f"paused_in_checkpoint_{step}").touch()
    logger.warning("%s=%d: paused inside the checkpoint write, waiting to be killed", PAUSE_ENV, step)
    while True:
        time.sleep(60)

"""Start-up checks that need both the trainer's strategy and the actor's loss keys.

A published method (CHORD, SRFT) fixes parts of the loss itself, so a key that would change them is
refused rather than silently overridden, and a method that trains on demonstrations refuses to start
when the data has none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEMO_KEY = "extra_info.target"  # where a prompt's demonstration lives (hpt.trainer.batch.demonstration_target)


def check_method_settings(config: Any, strategy: str) -> None:
    """Raise a ValueError saying what to change when the strategy and the actor's keys disagree."""
    actor = config.actor_rollout_ref.actor
    if strategy in ("chord", "srft") and str(actor.get("offline_loss_type", "nll")) != "nll":
        raise ValueError(
            f"trainer.unify_strategy={strategy} defines the SFT token loss itself, so "
            f"actor_rollout_ref.actor.offline_loss_type={actor.offline_loss_type} would be ignored; set it to nll "
            "(CHORD-phi: trainer.chord.enable_phi_function=true)"
        )
    if strategy == "srft":
        if not (actor.get("calculate_entropy", False) or float(actor.get("entropy_coeff", 0.0)) != 0.0):
            raise ValueError(
                "trainer.unify_strategy=srft weights by the policy's entropy: set "
                "actor_rollout_ref.actor.calculate_entropy=true"
            )
        if actor.policy_loss.get("loss_mode", "vanilla") == "custom":
            raise ValueError(
                "trainer.unify_strategy=srft replaces the rollout loss, so policy_loss.loss_mode=custom would be "
                "ignored; use another strategy for a custom loss"
            )
    if strategy in ("chord", "srft"):
        _check_demonstrations(config, strategy)
    _check_rollout_correction(config, strategy)


def _trains_demonstrations(config: Any, strategy: str) -> bool:
    """Whether demonstration rows can reach the batch: a gate, SFT warm-up, an SFT stream or routed prompts."""
    trainer = config.trainer
    stream = config.data.get("sft_stream") or {}
    selection = trainer.get("rollout_selection") or {}
    return (
        strategy != "no"
        or int(trainer.get("sft_warmup_steps", 0) or 0) > 0
        or bool(stream.get("train_files"))
        or bool(selection.get("enable", False))
    )


def _check_rollout_correction(config: Any, strategy: str) -> None:
    """Refuse verl's rollout correction where demonstration rows are trained.

    Demonstration rows were never sampled by the rollout, so their ``rollout_log_probs`` are zeros:
    verl's rejection sampling would drop their tokens from ``response_mask``, its importance weights
    would be computed from them, and ``bypass_mode`` would take their old log-probs from them.
    """
    correction = config.algorithm.get("rollout_correction") or {}
    active = [
        key for key in ("rollout_is", "rollout_rs") if correction.get(key) is not None
    ] + (["bypass_mode"] if correction.get("bypass_mode", False) else [])
    if active and _trains_demonstrations(config, strategy):
        keys = ", ".join(f"algorithm.rollout_correction.{key}" for key in active)
        raise ValueError(
            f"{keys} would act on demonstration rows, which have no rollout log-probs (hpt trains them with "
            f"trainer.unify_strategy={strategy}, SFT warm-up, an SFT stream or rollout selection); unset "
            "them, or train GRPO alone (trainer.unify_strategy=no without those)"
        )


def _check_demonstrations(config: Any, strategy: str) -> None:
    """CHORD needs expert rows (the SFT stream or the prompts' own); SRFT needs the prompts' own."""
    data = config.data
    stream = data.get("sft_stream") or {}
    if strategy == "chord" and stream.get("train_files"):
        return
    files = data.get("train_files")
    files = [files] if isinstance(files, str) else [str(f) for f in (files or [])]
    for name in files:
        path = Path(name.removeprefix("file://")).expanduser()
        if ("://" in name and not name.startswith("file://")) or path.suffix != ".parquet" or not path.is_file():
            continue  # remote or non-parquet files are checked when verl loads them
        if not has_demonstration_column(path):
            source = "data.sft_stream.train_files or " if strategy == "chord" else ""
            raise ValueError(
                f"trainer.unify_strategy={strategy} trains on demonstrations, but {name} has no {DEMO_KEY} "
                f"column; add the demonstrations there ({source}prepare the data with a demonstration, "
                "e.g. python -m hpt.data.prepare openr1)"
            )


def has_demonstration_column(path: Path) -> bool:
    """Whether a parquet file's ``extra_info`` struct has a ``target`` (or multi-turn ``target_turns``) field
    (schema only, no rows read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    if "extra_info" not in schema.names:
        return False
    field_type = schema.field("extra_info").type
    return pa.types.is_struct(field_type) and any(
        field_type.get_field_index(name) >= 0 for name in ("target", "target_turns")
    )

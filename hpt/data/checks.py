"""Start-up checks of the data files: readable parquet, usable demonstrations, unique prompt ids.

Each failure here would otherwise show up late (verl reads the files inside the Ray task runner) or
not at all: a demonstration that is not a string is treated as missing and its group silently
trains on rollouts only; duplicate ``extra_info.index`` values make the prompt history merge
different prompts. Remote paths, missing files (verl and the SFT stream name those) and non-parquet
files are left to verl.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

logger = logging.getLogger(__name__)

DEMO_FIELD, TURNS_FIELD, INDEX_FIELD = "target", "target_turns", "index"


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


def local_parquets(files: Any) -> list[Path]:
    if files is None:
        return []
    names = [files] if isinstance(files, str) else [str(f) for f in files]
    paths = [Path(n.removeprefix("file://")).expanduser() for n in names
             if n.endswith(".parquet") and ("://" not in n or n.startswith("file://"))]
    return [path for path in paths if path.exists()]


def check_readable(path: Path) -> None:
    """A clear error for a truncated or non-parquet file (a half-copied file fails here, not in Ray)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).metadata
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(
            f"cannot read {path} as parquet ({exc}); the file is truncated or not parquet. Re-create it "
            "(e.g. re-run `python -m hpt.data.prepare ...`) or copy it again"
        ) from None
    if metadata.num_rows == 0:
        raise ValueError(f"{path} has no rows; point the config at a file with data")


def extra_info_field(path: Path, field: str) -> list[Any] | None:
    """``extra_info.<field>`` of every row (None where absent), or None when the file has no ``extra_info``."""
    import pyarrow.parquet as pq

    if "extra_info" not in pq.read_schema(path).names:
        return None
    infos = pq.read_table(path, columns=["extra_info"]).column("extra_info").to_pylist()
    return [info.get(field) if isinstance(info, dict) else None for info in infos]


def check_demonstrations(path: Path) -> tuple[int, int]:
    """Raise on a non-string demonstration; return (and log) how many rows lack one, and the row count."""
    targets = extra_info_field(path, DEMO_FIELD)
    if targets is None:
        targets = [None] * _rows(path)
    bad = [(row, type(t).__name__) for row, t in enumerate(targets) if t is not None and not isinstance(t, str)]
    if bad:
        examples = ", ".join(f"row {row}: {kind}" for row, kind in bad[:3])
        raise ValueError(
            f"{path}: extra_info.{DEMO_FIELD} must be the demonstration text (a string), found {len(bad)} other "
            f"value(s) ({examples}); convert them to text, or leave them empty to train those prompts on rollouts only"
        )
    turns = extra_info_field(path, TURNS_FIELD) or [None] * len(targets)
    missing = sum(1 for t, m in zip(targets, turns, strict=True) if _blank(t) and _blank(m))
    if missing:
        logger.warning(
            "%s: %d of %d rows have no demonstration (missing or empty extra_info.%s and .%s); a group the gate "
            "sends to its demonstration trains on its rollouts instead, counted each step in "
            "hpt/gate/missing_demo_groups",
            path, missing, len(targets), DEMO_FIELD, TURNS_FIELD,
        )
    return missing, len(targets)


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


HISTORY_OPTIONS = "trainer.remove_sfted_data / trainer.skip_solved_prompts"


def check_unique_index(paths: list[Path], options: str = HISTORY_OPTIONS) -> None:
    """The prompt history and the rollout selection need ``extra_info.index`` on every training row, once."""
    keys = [key for path in paths for key in (extra_info_field(path, INDEX_FIELD) or [None])]
    absent = sum(1 for key in keys if key is None)
    repeated = [key for key, count in Counter(k for k in keys if k is not None).items() if count > 1]
    if absent or repeated:
        found = f"{absent} row(s) without one" if absent else f"repeated values, e.g. {repeated[:3]}"
        raise ValueError(
            f"{options} identify prompts by extra_info.{INDEX_FIELD}, "
            f"which must be present and unique across data.train_files; found {found} in "
            f"{', '.join(str(p) for p in paths)}. Add a unique index or turn the option(s) off"
        )


def check_readable_files(config: Any) -> None:
    """Every configured local parquet file (train, validation, SFT stream) opens as parquet."""
    data = config.data
    for key in ("train_files", "val_files", "sft_stream.train_files"):
        for path in local_parquets(OmegaConf.select(data, key)):
            check_readable(path)


def check_training_rows(config: Any) -> None:
    """Demonstrations and prompt ids of the local training files (``ValueError`` on the first problem)."""
    train = local_parquets(config.data.get("train_files"))
    trainer = config.trainer
    uses_demos = str(trainer.get("unify_strategy")) != "no" or int(trainer.get("sft_warmup_steps", 0) or 0) > 0
    history = bool(trainer.get("remove_sfted_data", False)) or bool(trainer.get("skip_solved_prompts", False))
    if uses_demos and train:
        counts = [check_demonstrations(path) for path in train]
        if sum(missing for missing, _ in counts) == sum(rows for _, rows in counts):
            raise ValueError(
                f"no row of data.train_files has a demonstration in extra_info.{DEMO_FIELD} or .{TURNS_FIELD}, so no "
                "prompt can be "
                f"trained on one (trainer.unify_strategy={trainer.get('unify_strategy')!r}); add demonstrations, "
                "or set trainer.unify_strategy=no for plain GRPO"
            )
    if history and train:
        check_unique_index(train)
    if bool(OmegaConf.select(trainer, "rollout_selection.enable", default=False)) and train:
        check_unique_index(train, "trainer.rollout_selection")

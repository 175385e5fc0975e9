"""Start-up check: every ``data_source`` in the training and validation files has a verifier.

Without it, a validation file of an unsupported source would only fail at the first validation (after
the models are loaded), or, with a permissive reward, be scored 0 throughout and look like a model that
never learns. The check runs only when the configured reward function is hpt's dispatcher: a user's
own function may well know sources that hpt's registry does not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DISPATCHER_FILES = ("dispatch.py", "registry.py")
DISPATCHER_MODULES = ("hpt.rewards.dispatch", "hpt.rewards.registry")


def reward_function_config(config: Any) -> Mapping[str, Any] | None:
    """The custom reward block verl 0.9.1 will use: a non-empty legacy top-level one replaces ``reward``'s."""
    legacy = config.get("custom_reward_function")
    if legacy is not None and any(value is not None for value in legacy.values()):
        return legacy
    reward = config.get("reward")
    return reward.get("custom_reward_function") if reward is not None else None


def uses_hpt_dispatcher(config: Any) -> bool:
    """Whether verl will call ``hpt.rewards.registry.compute_score`` (by file path or ``pkg://`` module)."""
    block = reward_function_config(config)
    if not block or not block.get("path") or block.get("name", "compute_score") != "compute_score":
        return False
    path = str(block.get("path"))
    if path.startswith("pkg://"):
        return path[len("pkg://") :].replace("/", ".") in DISPATCHER_MODULES
    path = path.removeprefix("file://")
    package = Path(__file__).resolve().parent
    try:
        resolved = Path(path).expanduser().resolve()
    except OSError:
        return False
    return any(resolved == package / name for name in DISPATCHER_FILES)


def _as_list(files: Any) -> list[str]:
    if files is None:
        return []
    if isinstance(files, str):
        return [files]
    return [str(f) for f in files]


def _local_parquet_files(files: Iterable[str]) -> list[Path]:
    """Local ``.parquet`` files among ``files``; remote (``hdfs://``…), JSON and missing files are left to verl."""
    local = []
    for name in files:
        if "://" in name and not name.startswith("file://"):
            logger.info("start-up data_source check skips remote file %s", name)
            continue
        path = Path(name.removeprefix("file://")).expanduser()
        if path.suffix != ".parquet" or not path.is_file():
            logger.info("start-up data_source check skips %s (not a local parquet file)", name)
            continue
        local.append(path)
    return local


def data_sources(path: Path, column: str = "data_source") -> set[str]:
    """The distinct values of ``column`` in one parquet file (only that column is read)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    if column not in names:
        raise ValueError(
            f"{path} has no {column!r} column (columns: {', '.join(names)}); verl routes each row's reward by it"
        )
    return {str(value) for value in pq.read_table(path, columns=[column]).column(column).unique().to_pylist()}


def check_reward_options(options: Mapping[str, Any]) -> None:
    """Fail on a bad value of a math-verifier option in ``reward_kwargs``; unknown names are only logged."""
    from hpt.rewards import math as math_verifier
    from hpt.rewards.options import OPTIONS
    from hpt.rewards.registry import TIMEOUT_OPTION

    options = dict(options)
    timeout_s = options.pop(TIMEOUT_OPTION, None)
    if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                                  or not timeout_s > 0):
        raise ValueError(f"reward_kwargs.{TIMEOUT_OPTION} must be a positive number of seconds, got {timeout_s!r}")
    math_verifier.check_options(**{key: value for key, value in options.items() if key in OPTIONS})
    if set(options) - set(OPTIONS):
        math_verifier.warn_unknown_options(options)


def check_data_sources(config: Any) -> None:
    """Raise a ValueError listing the ``data_source`` values of local train/val files that no verifier knows.

    A no-op unless the reward is hpt's dispatcher. Also checks the dispatcher's ``reward_kwargs``.
    """
    if not uses_hpt_dispatcher(config):
        return
    from hpt.rewards.registry import has_verifier, unknown_source_message

    block = reward_function_config(config) or {}
    check_reward_options(dict(block.get("reward_kwargs") or {}))
    data = config.get("data") or {}
    column = str(data.get("reward_fn_key") or "data_source")
    missing: dict[str, list[str]] = {}
    for key in ("train_files", "val_files"):
        for path in _local_parquet_files(_as_list(data.get(key))):
            for source in sorted(data_sources(path, column)):
                if not has_verifier(source):
                    missing.setdefault(source, []).append(f"data.{key} {path}")
    if missing:
        where = "; ".join(f"{source!r} in {', '.join(files)}" for source, files in missing.items())
        raise ValueError(f"{unknown_source_message(sorted(missing))} (found: {where})")

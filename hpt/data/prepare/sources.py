"""Reading a raw dataset (a Hugging Face Hub name or a local file) and checking its columns.

A local ``.json`` / ``.jsonl`` / ``.parquet`` file is read directly (no ``datasets`` cache, no network),
which is how the tests and offline machines use the preparers; anything else goes to
``datasets.load_dataset``. Column checks happen before any row is converted, so a wrong file fails
with the missing column's name instead of a ``KeyError`` half-way through.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet")


class PrepareError(ValueError):
    """A problem with the input or the options that the user has to fix; the message says how."""


class MissingColumnsError(PrepareError):
    """The source lacks a column the dataset's preparer reads."""


@dataclass(frozen=True)
class LoadedSource:
    """Column names and the raw rows (dicts) of one split, at most ``limit`` of them."""

    columns: tuple[str, ...]
    rows: Iterable[dict[str, Any]]


@dataclass(frozen=True)
class Columns:
    """The source's column names, with checks whose errors name the dataset and the source."""

    names: tuple[str, ...]
    dataset: str
    source: str

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def _missing(self, what: str, needs: str) -> MissingColumnsError:
        return MissingColumnsError(
            f"{self.dataset}: the source {self.source!r} has no column {what} (its columns: "
            f"{', '.join(self.names) or 'none'}); {self.dataset} reads {needs}. Pass --source with data in "
            f"the {self.dataset} dataset's shape."
        )

    def require(self, *names: str) -> None:
        """Fail unless every one of ``names`` is a column."""
        missing = [name for name in names if name not in self.names]
        if missing:
            raise self._missing(" or ".join(repr(name) for name in missing), ", ".join(names))

    def pick(self, *alternatives: str, required: bool = True) -> str | None:
        """The first of ``alternatives`` that is a column (datasets differ in capitalisation)."""
        for name in alternatives:
            if name in self.names:
                return name
        if required:
            raise self._missing("/".join(repr(name) for name in alternatives), " or ".join(alternatives))
        return None


def as_text(value: Any) -> str | None:
    """A cell as stripped text, or None when it is missing, NaN or blank.

    Integral numbers become digits without a decimal point ("204", not "204.0"), because answers such
    as AIME's are stored as numbers by some copies of a dataset and compared as strings by verifiers.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _read_json(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        rows = json.loads(text)
    else:  # JSON Lines (also accepted under a .json name, as the Hub's loader does)
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise PrepareError(f"{path}: line {number} is not valid JSON ({exc}); fix or remove it") from exc
    bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if bad is not None:
        raise PrepareError(f"{path}: record {bad} is not a JSON object; each record must map column names to values")
    return rows


def _read_local(path: Path, limit: int | None) -> LoadedSource:
    if not path.is_file():
        raise PrepareError(f"no such file: {path}; pass an existing .json/.jsonl/.parquet file or a Hub dataset name")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if limit is not None:
            table = table.slice(0, limit)
        return LoadedSource(tuple(table.column_names), table.to_pylist())
    rows = _read_json(path)[:limit]
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return LoadedSource(tuple(names), rows)


def _read_hub(source: str, split: str, config: str | None, limit: int | None) -> LoadedSource:
    try:
        import datasets

        dataset = datasets.load_dataset(source, config, split=split)
    except Exception as exc:  # network, unknown name or split: all need the same advice
        raise PrepareError(
            f"could not load {source!r} (config {config!r}, split {split!r}) with datasets.load_dataset: "
            f"{type(exc).__name__}: {exc}. Check the name and --split, or, without network access, download "
            "the data elsewhere and pass --source FILE (.parquet, .json or .jsonl)."
        ) from exc
    if limit is not None and limit < len(dataset):
        dataset = dataset.select(range(limit))
    return LoadedSource(tuple(dataset.column_names), dataset)


def load_source(source: str, split: str, config: str | None = None, limit: int | None = None) -> LoadedSource:
    """Rows of ``source``: a local data file, a local dataset directory, or a Hub dataset name."""
    path = Path(source).expanduser()
    if path.suffix in LOCAL_SUFFIXES:
        return _read_local(path, limit)
    return _read_hub(str(path) if path.is_dir() else source, split, config, limit)

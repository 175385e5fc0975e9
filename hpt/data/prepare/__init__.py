"""Preparers that turn public math datasets into hpt's verl parquet; ``python -m hpt.data.prepare``.

Each dataset has one module mapping a raw row to an ``Example`` or a ``Skip`` (``core`` does the
rest). Output rows: ``data_source``, ``prompt`` (chat messages from ``hpt.data.templates``),
``ability="math"``, ``reward_model={"style": "rule", "ground_truth": answer}``, and ``extra_info``
with a file-unique ``index``, ``split``, ``target`` (the demonstration or None), ``source_row`` (row
number in the source) and the dataset's useful fields.

    from hpt.data.prepare import prepare
    report = prepare("gsm8k", "val/gsm8k.parquet", source="gsm8k_test.jsonl")
    print(report.summary())
"""

from __future__ import annotations

import os
from typing import Any

from hpt.data.prepare import aime2024, deepmath, gsm8k, math500, metamathqa, openr1
from hpt.data.prepare.core import DatasetSpec, PrepareOptions, PrepareReport, prepare_dataset
from hpt.data.prepare.sources import MissingColumnsError, PrepareError

DATASETS: dict[str, DatasetSpec] = {
    module.SPEC.name: module.SPEC for module in (deepmath, metamathqa, gsm8k, math500, aime2024, openr1)
}

__all__ = ["DATASETS", "MissingColumnsError", "PrepareError", "PrepareOptions", "PrepareReport", "prepare"]


def prepare(name: str, out: str | os.PathLike[str], options: PrepareOptions | None = None,
            **settings: Any) -> PrepareReport:
    """Prepare dataset ``name`` into ``out``; options as a ``PrepareOptions`` or as keyword settings."""
    if name not in DATASETS:
        raise PrepareError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    if options is not None and settings:
        raise TypeError("pass either a PrepareOptions or keyword settings, not both")
    try:
        options = options or PrepareOptions(**settings)
    except TypeError as exc:
        raise PrepareError(f"{exc}; valid settings: {sorted(PrepareOptions.__dataclass_fields__)}") from exc
    return prepare_dataset(DATASETS[name], out, options)

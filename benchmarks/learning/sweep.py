"""Run method candidates × learning rates × seeds on the in-process engine, crash-safe and resumable.

Every run is one call of ``hpt.toy.engine.train`` in a worker process (one thread each: the tiny model
does not gain from a second) and leaves ``<run>.json`` (settings, per-step history, wall time), written
atomically. A rerun skips every run whose file holds the same settings and reruns the others; a run
that raised leaves ``<run>.failed.json`` with its traceback, is reported, and is retried next time:
a crashed run is never silently averaged.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.learning.engine_methods import FAMILIES
from benchmarks.learning.regime import Regime
from hpt.atomic import write_atomically
from hpt.toy.engine import RunConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Budget:
    """What every method gets: the same steps, batch, rollouts and evaluation cadence."""

    steps: int
    prompts_per_step: int
    n: int
    eval_every: int
    eval_size: int  # prompts of the validation and of the test split


@dataclass(frozen=True)
class RunSpec:
    """One run: a family's candidate at one learning rate and seed, in one regime."""

    regime: str
    family: str
    variant: str
    lr: float
    seed: int

    @property
    def candidate(self) -> str:
        """The tuned setting (variant and lr), the unit chosen on validation."""
        return f"{self.variant + '_' if self.variant else ''}lr{self.lr:g}"

    def path(self, out: Path) -> Path:
        return out / "runs" / self.regime / f"{self.family}_{self.candidate}_s{self.seed}.json"


def settings_of(spec: RunSpec, regime: Regime, budget: Budget) -> dict[str, Any]:
    """Everything a run's result depends on: a finished run with other settings is run again."""
    method = FAMILIES[spec.family].candidates(budget.steps)[spec.variant]
    run = RunConfig(steps=budget.steps, prompts_per_step=budget.prompts_per_step, n=budget.n, lr=spec.lr,
                    max_new_tokens=regime.max_response_length, seed=spec.seed, eval_every=budget.eval_every)
    return json.loads(json.dumps({"spec": asdict(spec), "run": asdict(run), "method": asdict(method),
                                  "eval_size": budget.eval_size, "eval_per_skill": True,
                                  "base_model": str(regime.base_model), "train_file": str(regime.train_file)},
                                 default=str))


def load_result(spec: RunSpec, out: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The finished run's record, or None when it has not run with these settings."""
    path = spec.path(out)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record["settings"] == settings else None


def _read(path: Path | None, size: int) -> list[dict[str, Any]]:
    import pandas as pd

    return pd.read_parquet(path).to_dict("records")[:size]


def eval_splits(regime: Regime, size: int) -> dict[str, list[dict[str, Any]]]:
    """Validation, test, and the test split per skill (``test_ops=3``: did the method learn the unseen skill?)."""
    from benchmarks.learning.regime import skill_of

    test = _read(regime.test_file, size)
    by_skill = {f"test_{skill}": [row for row in test if skill_of(row) == skill]
                for skill in sorted({skill_of(row) for row in test})}
    return {"val": _read(regime.val_file, size), "test": test, **by_skill}


def execute(spec: RunSpec, regime: Regime, budget: Budget, out: Path) -> dict[str, Any]:
    """Train one run in this process and write its record atomically (a failure leaves ``.failed.json``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from hpt.toy.engine import train

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    settings = settings_of(spec, regime, budget)
    path = spec.path(out)
    failed = path.with_suffix(".failed.json")
    start = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(regime.base_model)
        model = AutoModelForCausalLM.from_pretrained(regime.base_model, dtype=torch.float32)
        splits = eval_splits(regime, budget.eval_size)
        method = FAMILIES[spec.family].candidates(budget.steps)[spec.variant]
        run = RunConfig(**settings["run"])
        history = train(model, tokenizer, _read(regime.train_file, 10**9), splits, run, method)
    except Exception:
        write_atomically(failed, lambda tmp: tmp.write_text(json.dumps(
            {"settings": settings, "traceback": traceback.format_exc()}, indent=1)))
        raise
    record = {"settings": settings, "history": history, "wall_seconds": time.perf_counter() - start}
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(record) + "\n"))
    failed.unlink(missing_ok=True)
    return record


def run_all(specs: list[RunSpec], regimes: dict[str, Regime], budget: Budget, out: Path,
            jobs: int, settings: Callable = settings_of,
            run: Callable = execute) -> dict[RunSpec, dict[str, Any] | None]:
    """Every spec's record (None for a run that failed), running only those not finished before.

    ``settings`` and ``run`` replace ``settings_of`` and ``execute`` for other kinds of runs (specs with
    ``regime`` and ``path(out)``, module-level functions: they go to worker processes).
    """
    results: dict[RunSpec, dict[str, Any] | None] = {}
    todo = []
    for spec in specs:
        record = load_result(spec, out, settings(spec, regimes[spec.regime], budget))
        if record is None:
            todo.append(spec)
        else:
            results[spec] = record
    logger.info("%d run(s) finished before, %d to run on %d process(es)", len(results), len(todo), jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {spec: pool.submit(run, spec, regimes[spec.regime], budget, out) for spec in todo}
        for spec, future in futures.items():
            try:
                results[spec] = future.result()
                logger.info("finished %s in %.0f s", spec.path(out).name, results[spec]["wall_seconds"])
            except Exception as error:  # recorded in .failed.json; the summary reports the hole
                logger.error("run %s failed: %s (see %s)", spec.path(out).name, error,
                             spec.path(out).with_suffix(".failed.json"))
                results[spec] = None
    return results

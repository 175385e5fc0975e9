"""Pure helpers every part of the systems benchmark shares: medians, verl's step logs, the machine.

Timings on a shared 2-core machine are noisy, so every number is a median over repeats, kept with
its raw samples; the machine description (load average included) says how far to trust them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from hpt.report.metrics_log import read_metrics_log

ROOT = Path(__file__).resolve().parents[2]
# What the benchmark keeps of each step verl logs: its stage timings (seconds) and the batch's size.
STEP_KEYS = (
    "timing_s/step", "timing_s/gen", "timing_s/reward", "timing_s/old_log_prob", "timing_s/adv",
    "timing_s/update_actor", "timing_s/update_weights", "response_length/mean", "perf/total_num_tokens",
)
TRAIN_PART = "train_part"  # step minus generation: where hpt adds work
PACKAGES = ("torch", "transformers", "verl", "ray")


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median, extremes and count of repeated timings."""
    if not samples:
        raise ValueError("no samples to summarise")
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def read_steps(log_path: Path) -> list[dict[str, float]]:
    """The ``STEP_KEYS`` of every training step in a verl file-logger log, plus ``train_part``.

    Parsing is ``hpt report``'s (``hpt.report.metrics_log``); a validation-only line (step 0) is no step.
    """
    steps = []
    for step, data in read_metrics_log(log_path).steps.items():
        if "timing_s/step" not in data:
            continue
        record = {"step": step, **{key: data[key] for key in STEP_KEYS if key in data}}
        record[TRAIN_PART] = record["timing_s/step"] - record["timing_s/gen"]
        steps.append(record)
    return steps


def steady_medians(runs: Iterable[Sequence[dict[str, float]]], warmup: int) -> dict[str, float]:
    """Per key, the median over the steps after ``warmup`` of every run (the first steps pay for start-up)."""
    steady = [step for steps in runs for step in steps if step["step"] > warmup]
    if not steady:
        raise ValueError(f"no step after the {warmup} warm-up steps was logged; run more steps")
    keys = [key for key in steady[0] if key != "step"]
    return {key: statistics.median(step[key] for step in steady) for key in keys}


def cpu_model(cpuinfo: str) -> str | None:
    """The first ``model name`` of a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "model name":
            return value.strip()
    return None


def mem_total_gib(meminfo: str) -> float | None:
    """``MemTotal`` of a /proc/meminfo text, in GiB."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return None


def _read(path: str) -> str:
    return Path(path).read_text() if Path(path).exists() else ""


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def load_average() -> list[float] | None:
    """1/5/15-minute load averages: other work on the machine while the benchmark ran."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_description() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, memory, package versions, commit and date."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": cpu_model(_read("/proc/cpuinfo")) or platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "ram_gib": mem_total_gib(_read("/proc/meminfo")),
        "load_average": load_average(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{package: _version(package) for package in PACKAGES},
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def part_parser(doc: str, with_tiny_dir: bool = True, **int_options: int) -> argparse.ArgumentParser:
    """A part's own command line: ``--name`` integer options with their defaults, ``--tiny-dir``, ``--out``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, default in int_options.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    if with_tiny_dir:
        parser.add_argument("--tiny-dir", type=Path, default=ROOT / ".hpt_tiny")
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    return parser


def emit(name: str, result: dict[str, Any], out: Path | None) -> dict[str, Any]:
    """A part's command-line result: printed as JSON with the machine, and written to ``out`` if given."""
    result = {"benchmark": name, **result, "machine": machine_description()}
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")
    return result

"""The systems benchmark in one run: what hpt costs on top of verl, and how the CPU step time scales.

Parts: (a) ``step``: HPT step ÷ verl's GRPO step on the same batch (target <= 1.05); (b) ``loss``: hybrid
loss forward+backward ÷ verl's vanilla loss on the same tensors (<= 1.3); (c) ``rollout``: the ``hf``
rollout server's tokens/s ÷ one batched ``generate`` over the same prompts (>= 0.8); (d) ``scaling``:
step time against prompts per step, samples per prompt and response length; (e) ``verifier``: the math
verifier's time per answer in both modes against the verifier before issue 16 (<= 2x). Every number is a median
of repeats, kept with its raw samples in ``results.json`` beside ``results.md`` (tables) and
``scaling.png``, in ``--out`` (``results.json`` is rewritten after every part, so a failure keeps the
parts before it).

Budget on a quiet 2-core machine: about 12-15 minutes, mostly the 10 trainer runs of (a) and (d) (each
pays ~35 s of Ray and model start-up, then 8-10 steps of 2-5 s); keep it under 20. ``--quick``: a
smoke run of the same code with 3 trainer runs of 3 steps and few repeats (~3-4 minutes): its numbers
mean nothing. Usage: ``python -m benchmarks.speed [--quick] [--out DIR] [--parts step,loss,rollout,scaling,verifier]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.speed import hpt_vs_grpo, loss_overhead, report, rollout_throughput, scaling, verifier
from benchmarks.speed.common import ROOT, load_average, machine_description
from benchmarks.speed.step_time import Shape, build_tiny

PARTS = ("step", "loss", "rollout", "scaling", "verifier")
logger = logging.getLogger("benchmarks.speed")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much of each part to run."""

    steps: int = 10  # (a) steps per trainer run, of which the first ``warmup`` are dropped
    warmup: int = 3
    rounds: int = 2  # (a) GRPO/HPT run pairs, alternating
    loss_rows: int = 64  # (b) one micro-batch: rows x response tokens
    loss_length: int = 1024
    loss_repeats: int = 30
    rollout_repeats: int = 20  # (c) rounds
    rollout_threads: int = 1  # (c) torch threads of server and direct call alike (the CPU overlay's)
    scaling_steps: int = 8  # (d) steps per run, of which the first ``scaling_warmup`` are dropped
    scaling_warmup: int = 2
    grid: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=lambda: dict(scaling.FULL_GRID))


QUICK = Settings(steps=3, warmup=1, rounds=1, loss_length=256, loss_repeats=5, rollout_repeats=3, scaling_steps=3,
                 scaling_warmup=1, grid={"prompts": (8, 16), "samples": (4,), "response_length": (32,)})


def run(settings: Settings, parts: list[str], tiny_dir: Path, out: Path, quick: bool) -> dict[str, Any]:
    """Every requested part in turn; ``results.json`` is saved after each."""
    started = time.perf_counter()
    results: dict[str, Any] = {"benchmark": "speed", "quick": quick, "settings": dataclasses.asdict(settings),
                               "machine": machine_description()}

    def save(name: str, value: dict[str, Any]) -> None:
        results[name] = value
        results["duration_s"] = time.perf_counter() - started
        results["load_average_after"] = load_average()
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")

    if "verifier" in parts:
        logger.info("(e) math verifier time per answer")
        save("verifier", verifier.measure(25 if quick else 100))
    if "loss" in parts:
        logger.info("(b) hybrid loss vs verl's loss")
        save("loss", loss_overhead.measure(settings.loss_rows, settings.loss_length, settings.loss_repeats))
    if "rollout" in parts:
        logger.info("(c) rollout server vs one batched generate")
        save("rollout", rollout_throughput.measure(tiny_dir, Shape(), settings.rollout_repeats,
                                                   settings.rollout_threads))
    with tempfile.TemporaryDirectory() as scratch:
        known = {}
        if "step" in parts:
            logger.info("(a) HPT vs GRPO step: %d trainer runs", 2 * settings.rounds)
            save("hpt_vs_grpo", hpt_vs_grpo.measure(tiny_dir, Shape(), settings.steps, settings.warmup,
                                                    settings.rounds, Path(scratch)))
            known[Shape()] = results["hpt_vs_grpo"]["median_s"][hpt_vs_grpo.HPT]
        if "scaling" in parts:
            logger.info("(d) step time by batch shape: %s", settings.grid)
            save("scaling", scaling.measure(tiny_dir, Shape(), settings.grid, settings.scaling_steps,
                                            settings.scaling_warmup, Path(scratch), known))
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (~3-4 min); its numbers mean nothing")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "speed" / "results",
                        help="where results.json, results.md and scaling.png go (default: %(default)s)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--tiny-dir", type=Path, default=ROOT / ".hpt_tiny")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {PARTS}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(QUICK if args.quick else Settings(), parts, build_tiny(args.tiny_dir), args.out, args.quick)
    text = report.markdown(results)
    (args.out / "results.md").write_text(text)
    if "scaling" in results:
        report.plot_scaling(results["scaling"], args.out / "scaling.png")
    print(text)
    logger.info("wrote %s", ", ".join(str(path) for path in sorted(args.out.iterdir())))
    return results


if __name__ == "__main__":
    main()

"""The systems benchmark's results as markdown tables (``results.md``) and the scaling plot (``scaling.png``).

Tables are small and ready to paste into a README: one row per headline ratio with its target, the
step-time-by-shape table, and one line describing the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: the benchmark runs without a display
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.speed.common import TRAIN_PART  # noqa: E402
from benchmarks.speed.scaling import AXES  # noqa: E402

AXIS_LABELS = {"prompts": "prompts per step", "samples": "samples per prompt", "response_length": "max response tokens"}
CURVES = {"timing_s/step": "whole step", "timing_s/gen": "generation", TRAIN_PART: "training part"}


def axis_points(scaling: dict[str, Any], axis: str) -> list[tuple[int, dict[str, float]]]:
    """(value, medians) of the points that differ from the base on ``axis`` only (the base included), by value."""
    base = scaling["base"]
    others = [name for name in AXES if name != axis]
    points = [(point["shape"][axis], point["median_s"]) for point in scaling["points"]
              if all(point["shape"][name] == base[name] for name in others)]
    return sorted(points, key=lambda item: item[0])


def _met(value: float, target: float, at_most: bool) -> str:
    return "yes" if (value <= target if at_most else value >= target) else "no"


def _step_rows(part: dict[str, Any]) -> list[list[str]]:
    grpo, hpt = part["median_s"]["verl_grpo"], part["median_s"]["hpt_no_gate"]
    shape = "x".join(str(value) for value in part["shape"].values())
    steady = part["rounds"] * (part["steps_per_run"] - part["warmup"])
    return [
        [f"(a) HPT step ÷ verl GRPO step ({shape})", f"{part['ratio_step']:.3f}", f"≤ {part['target_ratio']}",
         _met(part["ratio_step"], part["target_ratio"], True),
         f"{hpt['timing_s/step']:.2f} s vs {grpo['timing_s/step']:.2f} s, {steady} steps each"],
        ["(a) … training part only (step − generation)", f"{part['ratio_train_part']:.3f}", "", "",
         f"{hpt[TRAIN_PART]:.2f} s vs {grpo[TRAIN_PART]:.2f} s"],
    ]


def _loss_rows(part: dict[str, Any]) -> list[list[str]]:
    ms = {name: value * 1e3 for name, value in part["median_s"].items()}
    ratio, target = part["ratio_rl_plus_nll_over_vanilla"], part["target_ratio"]
    rows = [
        ["(b) hybrid loss ÷ verl vanilla loss, fwd+bwd (RL + SFT terms)", f"{ratio:.3f}", f"≤ {target}",
         _met(ratio, target, True),
         f"{ms['hpt_switch_nll_global']:.2f} ms vs {ms['verl_vanilla']:.2f} ms, {part['rows']} rows x "
         f"{part['response_length']} tokens, {part['repeats']} repeats"],
    ]
    for name, value in part["ratios_over_vanilla"].items():
        if name != "switch_nll_global":
            rows.append([f"(b) … {name}", f"{value:.3f}", f"≤ {target}", _met(value, target, True),
                         f"{ms['hpt_' + name]:.2f} ms"])
    return rows


def _rollout_rows(part: dict[str, Any]) -> list[list[str]]:
    rates = {name: value["tokens_per_s"] for name, value in part["median"].items()}
    ratio, target, shape = part["ratio_tokens_per_s"], part["target_ratio"], part["shape"]
    return [
        [f"(c) rollout server ÷ one batched generate ({shape['prompts']}x{shape['samples']} requests, "
         f"≤{shape['max_new_tokens']} tokens)", f"{ratio:.3f}", f"≥ {target}", _met(ratio, target, False),
         f"{rates['server']:.0f} vs {rates['direct_generate']:.0f} tokens/s, {part['repeats']} rounds"],
        ["(c) … the server's engine without Ray", f"{part['ratio_engine_without_ray']:.3f}", "", "",
         f"{rates['engine_without_ray']:.0f} tokens/s"],
    ]


def _verifier_rows(part: dict[str, Any]) -> list[list[str]]:
    before, target = part["before_median_ms"]["model_like"], part["target_median_ms"] / part["before_median_ms"][
        "model_like"]
    rows = []
    for mode in ("lenient", "strict"):
        run = part["runs"][f"model_like_{mode}"]
        ratio = run["median_ms"] / before
        rows.append([f"(e) math verifier per answer, {mode} ÷ before issue 16 ({run['calls']} model-like answers)",
                     f"{ratio:.2f}", f"≤ {target:g}", _met(ratio, target, True) if run["max_ms"] < part[
                         "timeout_s"] * 1e3 else "no", f"{run['median_ms']:.3f} ms vs {before:.3f} ms; p90 "
                     f"{run['p90_ms']:.1f} ms, max {run['max_ms']:.0f} ms (deadline {part['timeout_s']:g} s)"])
    cases = part["runs"]["math_verify_cases_lenient"]
    rows.append(["(e) … Math-Verify's 276 cases, lenient ÷ before (which read few of them)",
                 f"{cases['median_ms'] / part['before_median_ms']['math_verify_cases']:.0f}", "", "",
                 f"{cases['median_ms']:.2f} ms vs {part['before_median_ms']['math_verify_cases']:.3f} ms (before: "
                 f"most answers not read); max {cases['max_ms']:.0f} ms"])
    return rows


RATIO_ROWS = {"hpt_vs_grpo": _step_rows, "loss": _loss_rows, "rollout": _rollout_rows, "verifier": _verifier_rows}


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def _scaling_rows(scaling: dict[str, Any]) -> list[list[str]]:
    rows = []
    for axis in AXES:
        for value, medians in axis_points(scaling, axis):
            shape = {**scaling["base"], axis: value}
            rows.append([AXIS_LABELS[axis], *(str(shape[name]) for name in AXES),
                         *(f"{medians[key]:.2f}" for key in CURVES),
                         f"{medians.get('response_length/mean', float('nan')):.1f}"])
    return rows


def machine_line(machine: dict[str, Any], load_after: list[float] | None) -> str:
    """One sentence: CPU, cores, memory, versions, commit, date and the load around the run."""
    commit = (machine.get("git_commit") or "unknown")[:10]
    if machine.get("git_dirty"):
        commit += " (uncommitted changes)"
    load = machine.get("load_average")
    load_text = f"1-min load average {load[0]:.2f} at the start" if load else "load unknown"
    if load_after:
        load_text += f", {load_after[0]:.2f} at the end"
    ram = f"{machine['ram_gib']:.1f} GiB" if machine.get("ram_gib") else "unknown"
    return (f"{machine['cpu_model']}, {machine['cpus_usable']} of {machine['cpus']} CPUs usable, {ram} RAM; "
            f"torch {machine['torch']}, transformers {machine['transformers']}, verl {machine['verl']}, "
            f"ray {machine['ray']}, Python {machine['python']}; commit {commit}; {machine['date_utc']}; {load_text}.")


def markdown(results: dict[str, Any]) -> str:
    """results.md: the ratio table, the scaling table, the machine."""
    parts = ["### Ratios (medians of repeated runs)" + (" — QUICK SMOKE RUN, not a measurement" if results["quick"]
                                                         else ""),
             _table(["measure", "ratio", "target", "met", "medians"],
                    [row for name, rows in RATIO_ROWS.items() if name in results for row in rows(results[name])])]
    if "scaling" in results:
        scaling = results["scaling"]
        parts += ["### Step time by batch shape (d): hpt, every rollout trained; median of steady steps, seconds",
                  _table(["varied", "prompts", "samples", "max resp.", *CURVES.values(), "mean resp. tokens"],
                         _scaling_rows(scaling))]
    parts += [f"Machine: {machine_line(results['machine'], results.get('load_average_after'))} "
              f"Whole run: {results['duration_s'] / 60:.1f} min."]
    verifier_machine = results.get("verifier", {}).get("machine")
    if verifier_machine and verifier_machine.get("git_commit") != results["machine"].get("git_commit"):
        parts += [f"(e) measured separately: {machine_line(verifier_machine, None)}"]
    return "\n\n".join(parts) + "\n"


def plot_scaling(scaling: dict[str, Any], path: Path) -> None:
    """scaling.png: one panel per axis, step / generation / training-part seconds against the axis value."""
    figure, panels = plt.subplots(1, len(AXES), figsize=(4 * len(AXES), 3.4), sharey=True)
    for panel, axis in zip(panels, AXES, strict=True):
        points = axis_points(scaling, axis)
        values = [value for value, _ in points]
        for key, label in CURVES.items():
            panel.plot(values, [medians[key] for _, medians in points], marker="o", label=label)
        panel.set_xlabel(AXIS_LABELS[axis])
        panel.set_xticks(values)
        panel.grid(alpha=0.3)
    panels[0].set_ylabel("median seconds per step")
    panels[0].legend()
    base = scaling["base"]
    figure.suptitle(f"hpt CPU trainer step time (base {base['prompts']} prompts x {base['samples']} samples "
                    f"x {base['response_length']} tokens)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


"""Per-answer time of the math verifier (hpt.rewards' dispatcher), against the verifier before issue 16.

Workload (a), model-like, generated from a seed so every run and every version of the verifier scores
the same 400 responses: 100 prompts x 4 responses, each a worked solution of 8-40 sentences with
inline math (500-2,500 characters) ending in one of the answer forms models write: a boxed integer
(30 %), GSM8K's ``#### n`` (15 %), a boxed fraction or decimal (20 %), a boxed expression that needs
the symbolic check (20 %), "The final answer is $x$. I hope it is correct." (10 %), or no answer
(5 %); about half the answers are right. It runs in both modes (lenient reads every format, strict
only the last box). Workload (b): Math-Verify's 276 test cases (``tests/data/math_verify_cases.jsonl``),
lenient, as written: every gold different, most answers symbolic, so nearly every call parses LaTeX.

Each call is timed once, in one thread, after a warm-up call (the first builds math-verify's LaTeX
parser); a prompt's reference is parsed for its first response and reused for the next three, as in
training. Target: the median of (a) within 2x of the verifier before issue 16 on the same workload
(``BEFORE_MEDIAN_MS``, measured at commit d25b988 on the 2-core benchmark machine), and no call near
the verifier's deadline (5 s). Usage: ``python -m benchmarks.speed.verifier [--prompts 100]``.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections import defaultdict
from typing import Any

from benchmarks.speed.common import ROOT, emit, machine_description, part_parser, summary

# Medians of the verifier at d25b988 (before issue 16) on these workloads, same machine and method. It read
# only a box, "The answer is" or "####", so on (b) it gave up early on most cases (119/276 right).
BEFORE_MEDIAN_MS = {"model_like": 0.057, "math_verify_cases": 0.020}
TARGET_FACTOR = 2.0
TIMEOUT_S = 5.0  # the verifier's default deadline (reward_kwargs.timeout_s)
CASES_FILE = ROOT / "tests" / "data" / "math_verify_cases.jsonl"
DATA_SOURCE = "HuggingFaceH4/MATH-500"
RESPONSES_PER_PROMPT = 4
KINDS = (("integer_boxed", 30), ("gsm8k", 15), ("fraction_boxed", 20), ("symbolic_boxed", 20),
         ("final_answer_phrase", 10), ("no_answer", 5))
_SENTENCES = (
    "We compute ${a} \\times {b} = {c}$, so the product is known.",
    "Adding the two parts gives ${a} + {b} = {d}$ in total.",
    "Since $\\frac{{{a}}}{{{b}}}$ is already in lowest terms, we keep it as it is.",
    "Let $x_{{{a}}}$ denote the number of items after step {b}.",
    "Then the remaining amount is ${d} - {a} = {b}$, which we carry forward.",
    "Squaring both sides, $y^2 = {c}$ and hence $y = \\sqrt{{{c}}}$ for positive $y$.",
    "The area of the rectangle is {a} by {b}, that is {c} square units.",
    "Each of the {a} boxes holds {b} apples, and we need to count them all.",
)


def _filler(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(8, 40)):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        sentences.append(rng.choice(_SENTENCES).format(a=a, b=b, c=a * b, d=a + b))
    return " ".join(sentences)


def _symbolic(rng: random.Random) -> tuple[str, str, str]:
    """(gold, an equal answer written differently, a wrong answer)."""
    k, m = rng.randint(2, 9), rng.randint(2, 9)
    options = [
        (f"{k}\\sqrt{{{m if m not in (4, 9) else m + 1}}}", None, f"{k + 1}\\sqrt{{{m}}}"),
        (f"\\frac{{\\pi}}{{{k}}}", f"\\frac{{2\\pi}}{{{2 * k}}}", f"\\frac{{\\pi}}{{{k + 1}}}"),
        (f"x^2 + {2 * k}x + {k * k}", f"(x+{k})^2", f"(x+{k + 1})^2"),
        (f"({-k}, {m}]", f"({-k},{m}]", f"[{-k}, {m}]"),
        (f"\\{{{k}, {k + m}\\}}", f"\\{{{k + m}, {k}\\}}", f"\\{{{k}, {k + m + 1}\\}}"),
    ]
    gold, same, wrong = rng.choice(options)
    if same is None:  # k sqrt(m) == sqrt(k^2 m)
        root = m if m not in (4, 9) else m + 1
        same = f"\\sqrt{{{k * k * root}}}"
    return gold, same, wrong


def _answer_and_text(kind: str, rng: random.Random) -> tuple[str, list[str]]:
    """A reference answer and RESPONSES_PER_PROMPT responses to it."""
    if kind in ("integer_boxed", "gsm8k", "final_answer_phrase", "no_answer"):
        gold_value = rng.randint(0, 20000)
        gold = str(gold_value)
        candidates = [str(gold_value), str(gold_value + rng.randint(1, 50))]
    elif kind == "fraction_boxed":
        num, den = rng.randint(1, 50), rng.choice([2, 4, 5, 8, 10])
        gold = f"\\frac{{{num}}}{{{den}}}"
        candidates = [f"{num / den:g}", f"\\frac{{{num + 1}}}{{{den}}}", f"\\dfrac{{{num}}}{{{den}}}"]
    else:
        gold, same, wrong = _symbolic(rng)
        candidates = [same, wrong, gold]
    responses = []
    for _ in range(RESPONSES_PER_PROMPT):
        answer = rng.choice(candidates)
        body = _filler(rng)
        if kind == "gsm8k":
            shown = f"{int(answer):,}" if answer.isdigit() and rng.random() < 0.3 else answer
            responses.append(f"{body}\n#### {shown}")
        elif kind == "final_answer_phrase":
            responses.append(f"{body}\nFinal Answer: The final answer is ${answer}$. I hope it is correct.")
        elif kind == "no_answer":
            responses.append(body)
        else:
            responses.append(f"{body} Therefore, the answer is $\\boxed{{{answer}}}$.")
    return gold, responses


def workload(prompts: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(kind, gold, response) for ``prompts`` prompts, kinds drawn with the KINDS weights."""
    rng = random.Random(seed)
    names, weights = zip(*KINDS, strict=True)
    items = []
    for _ in range(prompts):
        kind = rng.choices(names, weights)[0]
        gold, responses = _answer_and_text(kind, rng)
        items.extend((kind, gold, response) for response in responses)
    return items


def _timed(calls: list[tuple[str, str, str]], **options: Any) -> dict[str, Any]:
    """Time every dispatcher call on (kind, gold, response) triples: medians overall and by kind."""
    from hpt.rewards.registry import compute_score

    compute_score(DATA_SOURCE, "so the answer is $\\boxed{\\frac{1}{2}}$", "0.5", None, **options)  # warm-up
    times_by_kind: dict[str, list[float]] = defaultdict(list)
    correct = 0
    for kind, gold, response in calls:
        start = time.perf_counter()
        result = compute_score(DATA_SOURCE, response, gold, None, **options)
        times_by_kind[kind].append(time.perf_counter() - start)
        correct += result["acc"] == 1.0
    times = [t for samples in times_by_kind.values() for t in samples]
    return {
        "calls": len(calls), "options": options, "scored_correct": correct,
        "median_ms": statistics.median(times) * 1e3, "p90_ms": sorted(times)[int(0.9 * len(times))] * 1e3,
        "max_ms": max(times) * 1e3, "mean_ms": statistics.fmean(times) * 1e3,
        "median_ms_by_kind": {kind: statistics.median(samples) * 1e3 for kind, samples in times_by_kind.items()},
        "samples_s": summary(times),
    }


def math_verify_cases() -> list[tuple[str, str, str]]:
    """Math-Verify's test cases as (file, gold, prediction)."""
    cases = [json.loads(line) for line in CASES_FILE.read_text().splitlines() if line.strip()]
    return [(case["id"].split("::")[0], case["gold"], case["prediction"]) for case in cases]


def measure(prompts: int = 100, seed: int = 0) -> dict[str, Any]:
    """Workload (a) in both modes and (b) in lenient mode, with the target check."""
    model_like = workload(prompts, seed)
    runs = {"model_like_lenient": _timed(model_like, mode="lenient"),
            "model_like_strict": _timed(model_like, mode="strict"),
            "math_verify_cases_lenient": _timed(math_verify_cases(), mode="lenient")}
    limit_ms = TARGET_FACTOR * BEFORE_MEDIAN_MS["model_like"]
    met = all(runs[name]["median_ms"] <= limit_ms for name in ("model_like_lenient", "model_like_strict")) and all(
        run["max_ms"] < TIMEOUT_S * 1e3 for run in runs.values())
    return {"runs": runs, "before_median_ms": BEFORE_MEDIAN_MS, "target_median_ms": limit_ms,
            "timeout_s": TIMEOUT_S, "met": met, "machine": machine_description()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = part_parser(__doc__, with_tiny_dir=False, prompts=100, seed=0).parse_args(argv)
    return emit("verifier", measure(args.prompts, args.seed), args.out)


if __name__ == "__main__":
    main()

"""Conformance tier: Math-Verify 0.9.0's own test cases (``tests/data/math_verify_cases.jsonl``) through hpt.

Every case runs through the dispatcher verl calls, in lenient mode (MATH-500's default), the gold as the
row's ground truth and the prediction as the response, exactly as written in the case. A case whose
original test passes Math-Verify options gets the same options through ``extra_info["verifier"]``.
The exceptions are listed below and in ``tests/data/README.md``, each with its reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hpt.rewards.registry import compute_score

DATA = Path(__file__).resolve().parents[1] / "data" / "math_verify_cases.jsonl"
CASES: list[dict[str, Any]] = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
SOURCE = "HuggingFaceH4/MATH-500"  # lenient by default
# Math-Verify's option -> hpt's. boxed_match_priority=50 (parse()'s own default, used by test_yujianll) has no
# hpt counterpart: hpt always reads boxes first (priority 0), which none of those cases depends on.
HPT_OPTION = {"float_rounding": "float_rounding", "strict": "strict_comparison",
              "allow_set_relation_comp": "allow_set_relation_comp", "match_types": "extraction_targets"}
# Cases where hpt is right and the expected verdict is wrong.
HPT_RIGHT = {
    "test_yujianll.py::test_string_extraction[9]": (
        "1 - 1/e is not 1 + 1/e. Math-Verify's unit stripping deletes the upright \\mathrm{e} and then reads "
        "both sides as 1; hpt reads \\mathrm{e} as e first and tells them apart"),
}
# Cases Math-Verify itself fails with the case's own options; hpt fails them for the same reason.
SHARED_FAILURES = {
    "test_all.py::test_latex_notation_math[2]": (
        "with LaTeX extraction only (the case's option), Math-Verify's LaTeX parser cannot read '28 \\%' in the "
        "gold's 'final answer is $28 \\%$', so the gold is a bare string; Math-Verify fails this case too. "
        "It passes with the default extraction (LaTeX + expressions)"),
}
# Math-Verify 0.9.0's own score on these 276 cases with one fixed configuration (its test helper's defaults:
# LaTeX with boxes first + expressions, float_rounding 6, strict, no set-relation comparison), measured
# with its parse/verify; the 8 misses need a per-case option or are its own failure above.
MATH_VERIFY_FIXED_SCORE = 268


def _options(case: dict[str, Any]) -> dict[str, Any]:
    return {HPT_OPTION[name]: value for name, value in case["options"].items() if name in HPT_OPTION}


def _verdict(case: dict[str, Any], options: dict[str, Any]) -> int:
    result = compute_score(SOURCE, case["prediction"], case["gold"], {"index": 0, "verifier": options})
    assert set(result) == {"score", "acc", "pred", "reason"}
    return int(result["acc"])


def _marks(case_id: str) -> list[pytest.MarkDecorator]:
    if case_id in HPT_RIGHT:
        return [pytest.mark.xfail(strict=True, reason="hpt right, case wrong: " + HPT_RIGHT[case_id])]
    if case_id in SHARED_FAILURES:
        return [pytest.mark.xfail(strict=True, reason="Math-Verify fails it too: " + SHARED_FAILURES[case_id])]
    return []


def test_the_data_holds_every_case_of_the_six_files() -> None:
    assert len(CASES) == 276
    assert {case["id"].split("::")[0] for case in CASES} == {
        "test_all.py", "test_boxed.py", "test_numina_cases.py", "test_open_thoughts.py", "test_strict.py",
        "test_yujianll.py"}
    assert len({case["id"] for case in CASES}) == len(CASES)
    assert set(HPT_RIGHT) | set(SHARED_FAILURES) <= {case["id"] for case in CASES}
    assert all(set(case["options"]) <= {*HPT_OPTION, "boxed_match_priority"} for case in CASES)


@pytest.mark.parametrize("case", [pytest.param(case, id=case["id"], marks=_marks(case["id"])) for case in CASES])
def test_case_with_its_own_options(case: dict[str, Any]) -> None:
    assert _verdict(case, _options(case)) == case["expected"]


def test_one_fixed_configuration_scores_at_least_math_verify_itself() -> None:
    """Lenient defaults, no per-case option: hpt's score, counting the cases where hpt is right, is at
    least Math-Verify's own with one configuration; every miss is a case with an option, or listed."""
    misses = [case["id"] for case in CASES if _verdict(case, {}) != case["expected"]]
    unexplained = [case_id for case_id in misses
                   if case_id not in HPT_RIGHT and not next(c for c in CASES if c["id"] == case_id)["options"]]
    assert unexplained == []
    assert len(CASES) - len(set(misses) - set(HPT_RIGHT)) >= MATH_VERIFY_FIXED_SCORE

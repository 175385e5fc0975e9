"""The math verifier: answer extraction, equivalence verdicts, options, deadlines and thread safety."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from hpt.rewards import equivalence
from hpt.rewards import math as math_verifier
from hpt.rewards.registry import compute_score

SOURCE = "HuggingFaceH4/MATH-500"

# (response, ground truth, expected verdict: 1 = correct, 0 = not)
CASES: list[tuple[str, object, int]] = [
    # plain and boxed
    ("\\boxed{42}", "42", 1),
    ("so the result is $\\boxed{12}$.", "12", 1),
    ("\\fbox{8}", "8", 1),
    ("\\boxed{43}", "42", 0),
    ("\\boxed{42}", 42, 1),  # numeric ground truth
    # fractions and their spellings
    ("The final result is \\boxed{\\frac{1}{2}}.", "0.5", 1),
    ("\\boxed{0.5}", "\\frac{1}{2}", 1),
    ("\\boxed{1/2}", "\\frac{1}{2}", 1),
    ("\\boxed{\\dfrac{1}{2}}", "\\frac12", 1),
    ("\\boxed{\\tfrac{3}{4}}", "0.75", 1),
    ("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", 1),
    ("\\boxed{ \\frac { 1 } { 2 } }", "1/2", 1),
    ("\\boxed{\\frac{1}{3}}", "0.333", 0),  # 0.1 % off: beyond the 1e-6 tolerance
    ("\\boxed{0.3333333}", "\\frac{1}{3}", 1),  # within 1e-6
    # nested braces
    ("\\boxed{\\frac{\\sqrt{2}}{\\sqrt{8}}}", "\\frac{1}{2}", 1),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{1}{2}\\sqrt{3}", 1),
    ("\\boxed{\\frac{\\sqrt{3}}{3}}", "\\frac{\\sqrt{3}}{2}", 0),
    # negative numbers
    ("\\boxed{-7}", "-7", 1),
    ("\\boxed{7}", "-7", 0),
    ("\\boxed{-\\frac{3}{4}}", "-0.75", 1),
    ("\\boxed{\\frac{-3}{4}}", "-\\frac{3}{4}", 1),
    ("\\boxed{-3/4}", "-\\frac34", 1),
    ("\\boxed{\\frac{3}{4}}", "-\\frac{3}{4}", 0),
    ("\\boxed{-0}", "0", 1),
    ("\\boxed{0.0000001}", "0", 1),  # Math-Verify's rule: equal after rounding to float_rounding=6 places
    ("\\boxed{0.000001}", "0", 0),
    # thousands separators and decimals
    ("\\boxed{1,000}", "1000", 1),
    ("\\boxed{1000}", "1,000", 1),
    ("\\boxed{1{,}000{,}000}", "1000000", 1),
    ("\\boxed{12}", "1,2", 0),  # "1,2" is a pair, not a thousands separator
    ("\\boxed{3.50}", "3.5", 1),
    ("\\boxed{3.5}", "3.50", 1),
    ("\\boxed{3.51}", "3.5", 0),
    ("\\boxed{1e3}", "1000", 1),
    ("\\boxed{\\$5.00}", "5", 1),  # currency sign
    # percentages: "50%" is the number 50, not 0.5
    ("\\boxed{50\\%}", "50", 1),
    ("\\boxed{50}", "50\\%", 1),
    ("\\boxed{10\\%}", "0.1", 0),
    # units and degrees
    ("\\boxed{5\\text{ cm}}", "5", 1),
    ("\\boxed{5 \\text{cm}^{2}}", "5", 1),
    ("\\boxed{6\\text{ cm}}", "5", 0),
    ("\\boxed{90^\\circ}", "90", 1),
    ("\\boxed{90^{\\circ}}", "90", 1),
    ("\\boxed{45}", "45^\\circ", 1),
    ("\\boxed{30^\\circ}", "45^\\circ", 0),
    # LaTeX spacing and delimiters
    ("\\boxed{\\left( 1, 2 \\right)}", "(1,2)", 1),
    ("\\boxed{2\\!\\sqrt{3}}", "2\\sqrt{3}", 1),
    ("\\boxed{2\\,\\sqrt{3}}", "\\sqrt{12}", 1),  # symbolic: math-verify
    ("\\boxed{2^{10}}", "1024", 1),
    # intervals, sets, tuples, matrices, expressions, text
    ("\\boxed{(1,2]}", "(1,2]", 1),
    ("\\boxed{(1,2)}", "(1,2]", 0),
    ("\\boxed{[-1, \\infty)}", "[-1,\\infty)", 1),
    ("\\boxed{\\{2, 1\\}}", "\\{1,2\\}", 1),
    ("\\boxed{3, 1, 2}", "1,2,3", 1),
    ("\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", 1),
    ("\\boxed{x + 1}", "1 + x", 1),
    ("\\boxed{x=5}", "5", 1),
    ("\\boxed{\\pi}", "\\pi", 1),
    ("\\boxed{3.14}", "\\pi", 0),
    ("\\boxed{\\infty}", "\\infty", 1),
    ("\\boxed{\\text{Monday}}", "\\text{Monday}", 1),
    ("\\boxed{\\text{Tuesday}}", "\\text{Monday}", 0),
    # several boxes (lenient): read together, as Math-Verify reads them; strict mode reads the last one
    ("First \\boxed{3}, then corrected: \\boxed{4}", "\\{3, 4\\}", 1),
    ("First \\boxed{3}, then corrected: \\boxed{4}", "4", 0),
    ("\\boxed{1}, \\boxed{2}, \\boxed{3}", "\\{1,2,3\\}", 1),
    ("\\boxed{32, 349}", "32349", 0),  # a list, not a thousands separator
    # no answer, or a malformed one
    ("I think it is 41", "42", 0),
    ("", "42", 0),
    ("\\boxed{}", "42", 0),
    ("\\boxed{4", "4", 0),  # cut inside the box
    # GSM8K's ####
    ("She pays 18 dollars.\n#### 18", "18", 1),
    ("#### 1,234", "1234", 1),
    ("#### 17", "18", 0),
    # final-answer phrases, bounded to the answer (lenient)
    ("The final answer is $34$. I hope it is correct.", "34", 1),
    ("Answer: $9$", "9", 1),
    ("The final answer is $12,000,023$. I hope it is correct. <|im_start|>user 7", "12000023", 1),
    ("The answer is: 42", "42", 1),
    ("The answer is $\\frac{2}{3}$.", "\\frac{2}{3}", 1),
    ("So the final answer is 7.", "7", 1),
    ("The answer is: 41", "42", 0),
    ("The answer is 3. Wait, no: \\boxed{5}", "5", 1),  # auto prefers the box
    # a <think> block (not required by default): only what follows it is read
    ("<think>maybe 3</think> It is \\boxed{4}", "4", 1),
    ("<think>\\boxed{4}</think> so \\boxed{3}", "4", 0),
    # ground truth given as a whole solution
    ("\\boxed{18}", "She pays 18 dollars.\n#### 18", 1),
    # answers whose evaluation would hold the GIL for seconds: refused quickly, not hung on
    ("\\boxed{2^{2^{30}}}", "4", 0),
    ("\\boxed{10^{10^{10}}}", "5", 0),
]


def _verdict(response: str, ground_truth: object) -> int:
    result = compute_score(SOURCE, response, ground_truth, {"index": 0})
    assert set(result) == {"score", "acc", "pred", "reason"}
    assert result["score"] == result["acc"]  # format_score is 0 by default
    return int(result["acc"])


def test_the_table_is_large_and_covers_both_verdicts() -> None:
    assert len(CASES) >= 50
    assert {expected for *_, expected in CASES} == {0, 1}


@pytest.mark.parametrize(("response", "ground_truth", "expected"), CASES)
def test_verdicts(response: str, ground_truth: object, expected: int) -> None:
    assert _verdict(response, ground_truth) == expected


def test_verdicts_are_the_same_from_many_threads_at_once() -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(lambda case: _verdict(case[0], case[1]), CASES * 2))
    assert verdicts == [expected for *_, expected in CASES] * 2


def test_pred_is_the_extracted_answer_or_empty() -> None:
    assert compute_score(SOURCE, "so $\\boxed{\\frac{1}{2}}$", "0.5")["pred"] == "\\frac{1}{2}"
    assert compute_score(SOURCE, "no answer here", "0.5")["pred"] == ""
    long = compute_score(SOURCE, "\\boxed{" + "1" * 2000 + "}", "1")
    assert long["acc"] == 0.0 and len(long["pred"]) == math_verifier.MAX_PRED_CHARS


@pytest.mark.parametrize(
    ("answer_format", "response", "expected"),
    [
        ("boxed", "\\boxed{42}", 1),
        ("boxed", "The answer is 42", 0),
        ("boxed", "I think it is 42", 0),
        ("boxed", "First \\boxed{3}, then corrected: \\boxed{42}", 1),  # the last box only
        ("boxed", "\\boxed{42}, \\boxed{3}", 0),
        ("answer_is", "The answer is 42", 1),
        ("answer_is", "\\boxed{42}", 0),
        ("answer_is", "The answer is \\boxed{42}.", 1),
        ("answer_is", "The answer is 42. I hope it is correct. <|im_start|>user", 1),
        ("gsm8k", "#### 42", 1),
        ("gsm8k", "\\boxed{42}", 0),
        (None, "#### 42", 0),  # strict's default format is the box
    ],
)
def test_strict_mode_reads_only_the_requested_format(answer_format: str | None, response: str, expected: int) -> None:
    result = compute_score(SOURCE, response, "42", mode="strict", answer_format=answer_format)
    assert result["acc"] == expected
    if not expected:
        assert result["reason"] in ("no_answer", "")


def test_lenient_mode_reads_every_format() -> None:
    for response in ("#### 42", "The answer is 42", "\\boxed{42}", "I think it is 42"):
        assert compute_score(SOURCE, response, "42", mode="lenient")["acc"] == 1.0, response


@pytest.mark.parametrize(
    ("response", "opened_in_prompt", "expected_score"),
    [
        ("<think>6*7 is 42</think>\nSo \\boxed{42}", False, 1.0),
        ("  <think>\n6*7</think>The answer is 42", False, 1.0),
        ("<think>6*7 is 42</think>\nSo \\boxed{41}", False, 0.0),
        ("\\boxed{42}", False, 0.0),  # no think block
        ("<think>6*7 is 42 \\boxed{42}", False, 0.0),  # never closed: cut mid-thought
        ("6*7</think> \\boxed{42}", False, 0.0),  # not opened
        ("<think>a</think><think>b</think>\\boxed{42}", False, 0.0),  # two blocks
        ("Sure. <think>a</think>\\boxed{42}", False, 0.0),  # text before the block
        ("<think>\\boxed{42}</think> I am not sure", False, 0.0),  # answer only inside the thoughts
        ("6*7 is 42</think>\\boxed{42}", True, 1.0),  # template opened <think> in the prompt
        ("<think>6*7</think>\\boxed{42}", True, 0.0),
    ],
)
def test_require_think(response: str, opened_in_prompt: bool, expected_score: float) -> None:
    result = compute_score(SOURCE, response, "42", require_think=True, think_opened_in_prompt=opened_in_prompt)
    assert result["score"] == expected_score


def test_format_score_rewards_a_well_formed_wrong_answer_but_not_accuracy() -> None:
    wrong = compute_score(SOURCE, "<think>x</think>\\boxed{41}", "42", require_think=True, format_score=0.1)
    assert wrong == {"score": 0.1, "acc": 0.0, "pred": "41", "reason": ""}
    assert compute_score(SOURCE, "no box", "42", format_score=0.1, mode="strict")["score"] == 0.0
    assert compute_score(SOURCE, "\\boxed{41}", "42", require_think=True, format_score=0.1)["score"] == 0.0
    assert compute_score(SOURCE, "\\boxed{42}", "42", format_score=0.1)["score"] == 1.0


@pytest.mark.parametrize(
    ("option", "value"),
    [("answer_format", "latex"), ("answer_format", "auto"), ("timeout_s", 0), ("timeout_s", -1.0),
     ("format_score", 1.0), ("format_score", -0.1), ("require_think", "yes"), ("mode", "loose"),
     ("float_rounding", -1), ("float_rounding", 2.5), ("decimal_comma", "no"), ("extraction_targets", ["tex"]),
     ("strict_comparison", 1), ("allow_set_relation_comp", "true")],
)
def test_bad_options_are_refused(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        compute_score(SOURCE, "\\boxed{1}", "1", **{option: value})


@pytest.mark.parametrize(
    ("ground_truth", "reason"),
    [(None, "gold_missing"), ("", "gold_missing"), ("   ", "gold_missing"), ("$ $", "gold_missing"),
     (float("nan"), "gold_missing"), (["1", "2"], "gold_missing"), (True, "gold_missing"),
     ("\\boxed{}", "gold_unparsable"), ("\\frac{1}{2", "gold_unparsable"), ("She pays.\n####", "gold_unparsable")],
)
def test_unusable_ground_truth_scores_0_with_its_reason(ground_truth: object, reason: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Not an exception: verl's reward worker would die with the run. Counted and logged once instead."""
    before = math_verifier.reason_counts().get(reason, 0)
    result = compute_score("aime2024", "\\boxed{1}", ground_truth)
    assert result == {"score": 0.0, "acc": 0.0, "pred": "", "reason": reason}
    assert math_verifier.reason_counts()[reason] == before + 1


def test_unknown_options_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=math_verifier.__name__)
    for _ in range(3):
        compute_score(SOURCE, "\\boxed{1}", "1", requre_think_typo=True)
    assert sum("requre_think_typo" in record.getMessage() for record in caplog.records) == 1


@pytest.fixture
def slow_sympy(monkeypatch: pytest.MonkeyPatch):
    """Replace the symbolic check by one that blocks until the test ends, with fresh timeout state."""
    release = threading.Event()

    def blocked(gold, pred, settings) -> tuple[bool, str, str]:
        release.wait(30)
        return True, "", ""

    monkeypatch.setattr(equivalence, "sympy_equal", blocked)
    monkeypatch.setattr(equivalence, "_timeouts", 0)
    monkeypatch.setattr(equivalence, "_abandoned", [])
    monkeypatch.setattr(equivalence, "_saturation_logged", False)
    yield
    release.set()


def test_a_slow_check_times_out_as_not_equal_and_warns_once(slow_sympy, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=equivalence.__name__)
    start = time.monotonic()
    for _ in range(2):  # \sqrt{12} vs 2\sqrt{3} needs the symbolic check
        result = compute_score(SOURCE, "\\boxed{2\\sqrt{3}}", "\\sqrt{12}", timeout_s=0.2)
        assert (result["acc"], result["reason"]) == (0.0, "timeout")
    assert time.monotonic() - start < 2.0
    assert equivalence.timeout_count() == 2
    assert sum("exceeded" in record.getMessage() for record in caplog.records) == 1


def test_timeouts_work_from_worker_threads(slow_sympy) -> None:
    """verl calls the reward from executor threads, where signal-based timeouts cannot work."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        start = time.monotonic()
        results = list(pool.map(lambda _: compute_score(SOURCE, "\\boxed{2\\sqrt{3}}", "\\sqrt{12}", timeout_s=0.2),
                                range(4)))
    assert time.monotonic() - start < 2.0
    assert [r["acc"] for r in results] == [0.0] * 4
    # cheap checks do not need sympy and still pass while it is stuck
    assert compute_score(SOURCE, "\\boxed{0.5}", "\\frac{1}{2}", timeout_s=0.2)["acc"] == 1.0


def test_sympy_is_skipped_while_too_many_checks_are_stuck(slow_sympy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(equivalence, "MAX_ABANDONED", 1)
    compute_score(SOURCE, "\\boxed{2\\sqrt{3}}", "\\sqrt{12}", timeout_s=0.2)  # times out, stays running
    start = time.monotonic()
    result = compute_score(SOURCE, "\\boxed{2\\sqrt{3}}", "\\sqrt{12}", timeout_s=5.0)
    assert (result["acc"], result["reason"]) == (0.0, "busy")
    assert time.monotonic() - start < 1.0  # did not wait for a deadline: sympy was not started
    assert equivalence.timeout_count() == 1


@pytest.mark.parametrize(
    ("answer", "refused"),
    [("2^{10}", False), ("x^{2}+y^{2}", False), ("e^{-x^2}", False), ("\\frac{1}{2}^{3}", False),
     ("2^{2^{30}}", True), ("10**10**10", True), ("(2^{30})^{2^{30}}", True), ("2^{3000000000}", True),
     ("1000000!", True), ("2^{30 \\cdot 10^{8}}", True)],
)
def test_huge_powers_are_kept_away_from_sympy(answer: str, refused: bool) -> None:
    assert equivalence.too_large_to_evaluate(answer) is refused

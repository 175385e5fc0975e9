"""The math verifier's two modes, its options' paths (reward_kwargs, extra_info), malformed input, and
the shortcuts that skip sympy giving Math-Verify's own verdicts."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np
import pytest

from hpt.rewards import equivalence as eq
from hpt.rewards import math as math_verifier
from hpt.rewards.equivalence import Answer, Settings
from hpt.rewards.extract import answer_is
from hpt.rewards.registry import compute_score

LENIENT_SOURCE, STRICT_SOURCE = "HuggingFaceH4/MATH-500", "zwhe99/DeepMath-103K"


# --- modes ----------------------------------------------------------------------------------------


def test_each_source_has_its_stated_default_mode() -> None:
    unboxed = "The final answer is $34$. I hope it is correct."
    assert compute_score(LENIENT_SOURCE, unboxed, "34")["acc"] == 1.0
    assert compute_score(STRICT_SOURCE, unboxed, "34") == {"score": 0.0, "acc": 0.0, "pred": "", "reason": "no_answer"}
    for source, mode in math_verifier.SOURCE_MODES.items():
        assert compute_score(source, unboxed, "34")["acc"] == (1.0 if mode == "lenient" else 0.0), source
    assert compute_score("math_dapo", unboxed, "34")["acc"] == 1.0  # other sources: lenient


def test_mode_from_reward_kwargs_and_from_the_row_which_wins() -> None:
    unboxed = "Answer: $9$"
    assert compute_score(LENIENT_SOURCE, unboxed, "9", mode="strict")["acc"] == 0.0
    assert compute_score(STRICT_SOURCE, unboxed, "9", mode="lenient")["acc"] == 1.0
    row = {"index": 3, "verifier": {"mode": "lenient"}}
    assert compute_score(STRICT_SOURCE, unboxed, "9", row, mode="strict")["acc"] == 1.0


def test_strict_reads_the_last_box_where_lenient_reads_the_boxes_together() -> None:
    text = "The roots are \\boxed{1}, \\boxed{2}, \\boxed{3}"
    assert compute_score(LENIENT_SOURCE, text, "\\{1,2,3\\}")["acc"] == 1.0
    assert compute_score(LENIENT_SOURCE, text, "3")["acc"] == 0.0
    assert compute_score(STRICT_SOURCE, text, "3")["acc"] == 1.0


def test_final_answer_phrases_stop_at_the_answer() -> None:
    tail = " I hope it is correct. <|im_start|>user\nNext question: 5"
    assert compute_score(LENIENT_SOURCE, "The final answer is $12{,}000{,}023$." + tail, "12000023")["acc"] == 1.0
    assert answer_is("The answer is 12,000,023. I hope it is correct. <|im_start|>user") == "12,000,023"
    assert answer_is("So the answer is: 3.5\nDone.") == "3.5"
    assert answer_is("The answer is $\\frac{2}{3}$.") == "$\\frac{2}{3}$"
    assert answer_is("no phrase here") is None


# --- options through reward_kwargs and extra_info ------------------------------------------------

OPTION_CASES = [
    # (option, value, response, gold): 0 with the default, 1 with the option
    ("float_rounding", 2, "\\boxed{0.33}", "\\frac{1}{3}"),
    ("decimal_comma", True, "\\boxed{1.5}", "1,5"),
    ("allow_set_relation_comp", True, "$-2 \\le x \\le 7$", "$x \\in [-2,7]$"),
    ("strict_comparison", False, "$f(y)$", "$f(x)$"),
]


@pytest.mark.parametrize(("option", "value", "response", "gold"), OPTION_CASES)
def test_comparison_options_reach_the_verdict_from_both_places(option: str, value: object, response: str,
                                                               gold: str) -> None:
    assert compute_score(LENIENT_SOURCE, response, gold)["acc"] == 0.0
    assert compute_score(LENIENT_SOURCE, response, gold, **{option: value})["acc"] == 1.0
    assert compute_score(LENIENT_SOURCE, response, gold, {"verifier": {option: value}})["acc"] == 1.0


def test_extraction_targets_limit_what_lenient_mode_reads() -> None:
    response = "Answer $ \n 9 \n $"  # an inline formula cannot span lines: only the expression reader finds 9
    assert compute_score(LENIENT_SOURCE, response, "$9$")["acc"] == 1.0
    assert compute_score(LENIENT_SOURCE, response, "$9$", extraction_targets=["latex"])["acc"] == 0.0


def test_row_options_read_from_parquet_keep_working() -> None:
    """pyarrow hands nested extra_info numbers back as numpy scalars and lists as arrays."""
    row = {"verifier": {"float_rounding": np.int64(2), "extraction_targets": np.array(["latex", "expr"]),
                        "mode": None}}
    assert compute_score(LENIENT_SOURCE, "\\boxed{0.33}", "\\frac{1}{3}", row)["acc"] == 1.0


@pytest.mark.parametrize("extra_info", [{"verifier": "strict"}, {"verifier": {"float_rounding": 99}}])
def test_bad_row_options_are_refused_naming_the_key(extra_info: dict) -> None:
    with pytest.raises(ValueError, match="verifier"):
        compute_score(LENIENT_SOURCE, "\\boxed{1}", "1", extra_info)


# --- malformed input: 0 with a counted reason, never an exception --------------------------------

MALFORMED = [
    # (response, gold, reason)
    ("so $\\boxed{\\frac{1}{2}$", "\\frac{1}{2}", "unclosed_answer"),
    ("the answer is \\boxed{}", "2", "empty_answer"),
    ("\\boxed{ }", "2", "empty_answer"),
    ("\\boxed{2}", "\\frac{1}{2", "gold_unparsable"),
    ("\\boxed{2}", "\\boxed{}", "gold_unparsable"),
    ("\\boxed{2}", "2^{2^{40}}", "gold_unparsable"),
    ("\\boxed{2^{2^{30}}}", "2", "too_large"),
    ("We get 9^{9^{9^{9}}} which is huge", "2", "too_large"),
    ("\\boxed{" + "x+" * 600 + "1}", "2", "too_long"),
    ("\\[" * 5000, "2", "degenerate_text"),  # a repetition loop Math-Verify would rescan quadratically
    (None, "2", "no_answer"),
    ("", "2", "no_answer"),
]


@pytest.mark.parametrize(("response", "gold", "reason"), MALFORMED)
@pytest.mark.parametrize("mode", ["lenient", "strict"])
def test_malformed_input_scores_0_with_a_counted_reason(response, gold, reason, mode) -> None:
    if mode == "strict" and reason in ("too_large", "degenerate_text") and "boxed" not in response:
        reason = "no_answer"  # strict mode never reads an unboxed text
    before = math_verifier.reason_counts().get(reason, 0)
    start = time.monotonic()
    result = compute_score(LENIENT_SOURCE, response, gold, mode=mode, format_score=0.1)
    assert time.monotonic() - start < 2.0
    assert result == {"score": 0.0, "acc": 0.0, "pred": result["pred"], "reason": reason}
    assert math_verifier.reason_counts()[reason] == before + 1


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [("\\boxed{\u22125}", "-5", 1), ("\\boxed{5}", "\u22125", 0),  # the Unicode minus sign is a minus
     ("\\boxed{\\text{\\textbf{Monday}}}", "\\text{Monday}", 1), ("\\boxed{\\text{\\text{\\text{x}}}}", "y", 0),
     ("\\boxed{2\\mathrm{e}}", "2e", 1), ("\\boxed{2\\mathrm{e}}", "2", 0)],
)
def test_odd_spellings_get_a_verdict_not_an_error(response: str, gold: str, expected: int) -> None:
    result = compute_score(LENIENT_SOURCE, response, gold)
    assert (result["acc"], result["reason"]) == (expected, "")


def test_an_unexpected_error_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(eq, "quick_verdict", broken)
    result = compute_score(LENIENT_SOURCE, "\\boxed{1}", "1")
    assert result == {"score": 0.0, "acc": 0.0, "pred": "", "reason": "error"}


def test_malformed_input_from_many_threads_at_once() -> None:
    """verl calls the reward from executor threads: no input may raise there."""
    calls = [(r, g) for r, g, _ in MALFORMED] * 3
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda c: compute_score(LENIENT_SOURCE, c[0], c[1]), calls))
    assert [r["reason"] for r in results] == [reason for _, _, reason in MALFORMED] * 3


def test_a_boxed_percentage_is_read_as_its_number() -> None:
    """hpt's addition: Math-Verify reads ``\\boxed{12\\%}`` as a bare string (and ``$12\\%$`` as 12)."""
    assert compute_score(LENIENT_SOURCE, "so it is \\boxed{12\\%}", "12")["acc"] == 1.0
    assert compute_score(STRICT_SOURCE, "so it is \\boxed{12\\%}", "12\\%")["acc"] == 1.0
    assert compute_score(STRICT_SOURCE, "so it is \\boxed{13\\%}", "12\\%")["acc"] == 0.0


# --- shortcuts give Math-Verify's verdict ----------------------------------------------------------


def _math_verify_verdict(gold: str, pred: str, settings: Settings) -> bool:
    eq.load_math_verify()
    return eq.sympy_equal(Answer("bare", gold), Answer("bare", pred), settings)[0]


def _numbers(rng: random.Random) -> str:
    value = Fraction(rng.randint(-40, 40), rng.choice([1, 2, 3, 4, 7, 8]))
    form = rng.randrange(5)
    if form == 0:
        return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    if form == 1:
        sign = "-" if value < 0 else ""
        return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"
    places = rng.choice([0, 1, 2, 5, 6, 7, 9])
    text = f"{float(value):.{places}f}"
    return text if "." in text else text + ".0"


def test_the_numeric_shortcut_agrees_with_math_verify() -> None:
    rng = random.Random(0)
    decided = 0
    for _ in range(250):
        gold, pred = _numbers(rng), _numbers(rng)
        for rounding in (6, 2):
            quick = eq.quick_verdict(Answer("bare", gold), Answer("bare", pred), rounding)
            if quick is not None:
                decided += 1
                assert quick == _math_verify_verdict(gold, pred, Settings(float_rounding=rounding)), (gold, pred)
    assert decided > 400


@pytest.mark.parametrize(
    ("gold", "pred"),
    [("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"), ("2\\sqrt{3}", "2\\,\\sqrt{3}"),
     ("\\frac{1}{2}", "\\dfrac{1}{2}"), ("x^2 + 1", "x^{2}+1")],
)
def test_layout_only_differences_are_equal_as_math_verify_says(gold: str, pred: str) -> None:
    if eq.quick_verdict(Answer("bare", gold), Answer("bare", pred)) is not None:
        assert eq.quick_verdict(Answer("bare", gold), Answer("bare", pred)) is True
    assert _math_verify_verdict(gold, pred, Settings()) is True
    assert compute_score(LENIENT_SOURCE, f"\\boxed{{{pred}}}", gold)["acc"] == 1.0


def test_a_thin_space_thousands_separator_is_layout() -> None:
    """Math-Verify reads ``1\\,000`` as 1·0 = 0; LaTeX renders it as a thousand, and so does hpt."""
    assert _math_verify_verdict("1000", "1\\,000", Settings()) is False
    assert compute_score(LENIENT_SOURCE, "\\boxed{1\\,000}", "1000")["acc"] == 1.0
    assert compute_score(LENIENT_SOURCE, "\\boxed{1\\,000}", "0")["acc"] == 0.0


@pytest.mark.parametrize(
    ("answer", "gold"),
    [("2\\sqrt{3}", "\\sqrt{12}"), ("\\frac{\\pi}{4}", "\\frac{2\\pi}{8}"), ("(x+1)^2", "x^2+2x+1"),
     ("(1, 2]", "(1,2]"), ("\\{3, 1\\}", "\\{1,3\\}"), ("x = 5", "5"), ("1{,}000", "1000"),
     ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"), ("3", "4")],
)
def test_reading_one_closing_box_directly_gives_math_verifys_reading(answer: str, gold: str) -> None:
    """Lenient mode reads a lone final box's content without scanning the text; Math-Verify's full reading
    of the same text gives the same verdict."""
    text = f"We simplify $a^2 = 4$ and $b = \\frac{{3}}{{2}}$, so the answer is $\\boxed{{{answer}}}$."
    eq.load_math_verify()
    full = eq.sympy_equal(Answer("bare", gold), Answer("text", text), Settings())[0]
    assert compute_score(LENIENT_SOURCE, text, gold)["acc"] == float(full)


def test_training_step_logs_the_share_of_rollouts_without_a_verdict_by_reason() -> None:
    from hpt.trainer.ray_trainer import no_verdict_shares

    responses = ["\\boxed{2}", "\\boxed{3}", "\\boxed{", "no box", "\\boxed{}", "no box either", "\\boxed{2}", "x"]
    reasons = np.array([compute_score(STRICT_SOURCE, r, "2")["reason"] for r in responses], dtype=object)
    assert no_verdict_shares(reasons) == {"hpt/reward/no_verdict/empty_answer": 1 / 8,
                                          "hpt/reward/no_verdict/no_answer": 3 / 8,
                                          "hpt/reward/no_verdict/unclosed_answer": 1 / 8}
    assert no_verdict_shares(None) == {} and no_verdict_shares(np.array(["", ""], dtype=object)) == {}

"""The math verifier's options: names, checks, and where each value comes from.

A row's options are, from the most specific: the row's ``extra_info["verifier"]`` (a dict written into
the data, e.g. ``{"float_rounding": 2}`` for answers given to two decimals), then verl's
``reward.custom_reward_function.reward_kwargs`` (the whole run), then the defaults below; ``mode``
defaults to the row's data source's (``hpt.rewards.math.SOURCE_MODES``). A bad value raises a
ValueError naming the option: it is a configuration error, caught at start-up for ``reward_kwargs``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from hpt.rewards.equivalence import TARGETS, Settings

MODES = ("lenient", "strict")
ANSWER_FORMATS = ("boxed", "gsm8k", "answer_is")  # what strict mode may require
EXTRA_INFO_KEY = "verifier"


@dataclasses.dataclass(frozen=True)
class VerifierOptions:
    """Every option of the math verifier, with its default (see the README's verifier section)."""

    mode: str = "lenient"
    answer_format: str | None = None  # the format strict mode requires (None = "boxed"); lenient reads all
    require_think: bool = False
    think_opened_in_prompt: bool = False
    timeout_s: float = 5.0
    format_score: float = 0.0
    float_rounding: int = 6
    numeric_precision: int = 15
    strict_comparison: bool = True
    allow_set_relation_comp: bool = False
    decimal_comma: bool = False
    extraction_targets: tuple[str, ...] = TARGETS

    def settings(self) -> Settings:
        """What ``hpt.rewards.equivalence`` needs to read and compare answers."""
        return Settings(self.float_rounding, self.numeric_precision, self.strict_comparison,
                        self.allow_set_relation_comp, self.decimal_comma, self.extraction_targets)


OPTIONS = tuple(field.name for field in dataclasses.fields(VerifierOptions))
_BOOLS = ("require_think", "think_opened_in_prompt", "strict_comparison", "allow_set_relation_comp", "decimal_comma")


def _where(name: str) -> str:
    return f"reward_kwargs.{name} (or extra_info.{EXTRA_INFO_KEY}.{name})"


def _check_number(name: str, value: Any, low: float, high: float, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        what = "an integer" if integer else "a number"
        raise ValueError(f"{_where(name)} must be {what} in [{low}, {high}], got {value!r}")


def _plain(value: Any) -> Any:
    """A numpy scalar (how parquet hands back extra_info numbers) as its Python value."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) and hasattr(
        value, "dtype") and getattr(value, "shape", None) == () else value


def build(values: Mapping[str, Any]) -> VerifierOptions:
    """``VerifierOptions`` from known option names (unset = None = default); a ValueError on a bad value."""
    known = {key: _plain(value) for key, value in values.items() if key in OPTIONS and value is not None}
    if "extraction_targets" in known:
        targets = known["extraction_targets"]
        targets = (targets,) if isinstance(targets, str) else tuple(targets) if hasattr(targets, "__iter__") else ()
        if not targets or not set(targets) <= set(TARGETS):
            raise ValueError(f"{_where('extraction_targets')} must be a non-empty list of {list(TARGETS)}, "
                             f"got {known['extraction_targets']!r}")
        known["extraction_targets"] = tuple(dict.fromkeys(targets))
    options = VerifierOptions(**known)
    if options.mode not in MODES:
        raise ValueError(f"{_where('mode')} must be one of {MODES}, got {options.mode!r}")
    if options.answer_format is not None:
        if options.answer_format not in ANSWER_FORMATS:
            hint = "; 'auto' (every format) is now mode=lenient" if options.answer_format == "auto" else ""
            raise ValueError(f"{_where('answer_format')} must be one of {ANSWER_FORMATS} (the format strict mode "
                             f"requires), got {options.answer_format!r}{hint}")
    for name in _BOOLS:
        if not isinstance(getattr(options, name), bool):
            raise ValueError(f"{_where(name)} must be true or false, got {getattr(options, name)!r}")
    if isinstance(options.timeout_s, bool) or not isinstance(options.timeout_s, (int, float)) or not (
        0 < options.timeout_s < math.inf
    ):
        raise ValueError(f"{_where('timeout_s')} must be a positive number of seconds, got {options.timeout_s!r}")
    if isinstance(options.format_score, bool) or not isinstance(options.format_score, (int, float)) or not (
        0 <= options.format_score < 1
    ):
        raise ValueError(f"{_where('format_score')} must be in [0, 1) (below the reward of a correct answer), "
                         f"got {options.format_score!r}")
    _check_number("float_rounding", options.float_rounding, 0, 15, integer=True)
    _check_number("numeric_precision", options.numeric_precision, 1, 100, integer=True)
    return options


def row_options(extra_info: Any) -> dict[str, Any]:
    """The row's own options, ``extra_info["verifier"]``: a dict, or nothing."""
    if not isinstance(extra_info, Mapping):
        return {}
    own = extra_info.get(EXTRA_INFO_KEY)
    if own is None:
        return {}
    if not isinstance(own, Mapping):
        raise ValueError(f"extra_info.{EXTRA_INFO_KEY} must be a dict of verifier options, got {own!r}")
    return dict(own)


def resolve(default_mode: str, run_options: Mapping[str, Any], extra_info: Any) -> VerifierOptions:
    """The row's options: extra_info's over reward_kwargs' over the defaults (mode: the data source's)."""
    merged = {"mode": default_mode, **{k: v for k, v in run_options.items() if v is not None}}
    merged.update({k: v for k, v in row_options(extra_info).items() if v is not None})
    return build(merged)

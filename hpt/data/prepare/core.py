"""The preparers' common core: options, the per-row contract, demonstration limits, the report, writing.

A dataset module binds the source's columns to a converter that maps one raw row to an ``Example``
(question, ground truth, optional demonstration, extra fields) or a ``Skip`` with a reason. This
module does the rest the same way for every dataset: prompt templating, the demonstration length
limit, ``extra_info`` (a file-unique ``index``, ``split``, ``target``, the source row), the counts,
and the atomic parquet write. Rows are never dropped silently: every skip is counted by reason, and
the first few of each reason are logged with their row number.

Demonstration length: ``max_demo_tokens`` is meant to be the trainer's ``data.max_response_length``.
A demonstration fits when its tokens plus the EOS the trainer appends fit. A longer one is dropped or,
with ``long_demos="truncate"``, cut to its first ``max_demo_tokens`` tokens: the trainer then has no
room for EOS and trains it as an unfinished response (like a rollout that hit the length limit), so
the model never learns to stop in the middle of a cut demonstration. Truncated rows are counted.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from hpt.toy.arithmetic import write_parquet
from hpt.data.prepare.sources import Columns, PrepareError, load_source
from hpt.data.templates import DEFAULT_TEMPLATE, PromptTemplate, get_template
from hpt.rewards.extract import last_boxed

logger = logging.getLogger(__name__)

# skip reasons (row not written)
MISSING_QUESTION = "missing_question"
MISSING_ANSWER = "missing_answer"
UNPARSABLE_ANSWER = "unparsable_answer"
MISSING_DEMO = "missing_demonstration"
DEMO_WITHOUT_BOX = "demonstration_without_boxed_answer"
DEMO_TOO_LONG = "demonstration_too_long"
DIFFICULTY_OUT_OF_RANGE = "difficulty_out_of_range"
MISSING_DIFFICULTY = "missing_difficulty"
# changes to written rows
DEMO_TRUNCATED = "demonstration_truncated"
BOXED_ANSWER_ADDED = "boxed_answer_added"

LONG_DEMO_POLICIES = ("drop", "truncate")
MISSING_BOX_POLICIES = ("add", "drop", "keep")
DEMO_OPTIONS = ("max_demo_tokens", "tokenizer", "long_demos", "missing_box")
LOGGED_EXAMPLES = 3


@dataclass(frozen=True)
class Example:
    """One convertible raw row; ``notes`` name the changes made to it (e.g. ``boxed_answer_added``)."""

    question: str
    ground_truth: str
    target: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skip:
    """Why a raw row is not written; ``detail`` goes to the log."""

    reason: str
    detail: str = ""


Converter = Callable[[dict[str, Any]], "Example | Skip"]


@dataclass(frozen=True)
class Binding:
    """A converter bound to the source's columns and the options, and what the rows are labelled."""

    data_source: str
    convert: Converter
    has_demonstrations: bool
    split_label: str | None = None  # overrides the loaded split name in extra_info.split


@dataclass
class PrepareOptions:
    """Every preparer option; dataset-specific ones are rejected for datasets that ignore them."""

    source: str | None = None  # Hub name or local file; None = the dataset's default Hub name
    split: str | None = None  # None = the dataset's default split
    limit: int | None = None  # read at most this many raw rows
    template: str = DEFAULT_TEMPLATE
    max_demo_tokens: int | None = None
    tokenizer: Any = None  # a tokenizer object, or a path/name for AutoTokenizer
    long_demos: str | None = None  # "drop" or "truncate"; required with max_demo_tokens
    missing_box: str = "add"  # demonstration without \boxed{}: add the answer, drop the row, keep as is
    solution: str = "1"  # deepmath: "1", "2", "3" or "shortest"
    min_difficulty: float | None = None  # deepmath
    max_difficulty: float | None = None  # deepmath
    mode: str = "paired"  # metamathqa: "paired" (RL prompts) or "sft" (SFT-stream rows)


DEFAULTS = {f.name: f.default for f in fields(PrepareOptions)}
DATASET_SPECIFIC = ("solution", "min_difficulty", "max_difficulty", "mode")


@dataclass(frozen=True)
class DatasetSpec:
    """A preparer: its CLI name, Hub defaults, and how it binds columns to a converter."""

    name: str
    default_source: str
    default_split: str
    bind: Callable[[Columns, PrepareOptions], Binding]
    hub_config: str | None = None
    options: tuple[str, ...] = ()  # the dataset-specific options it reads
    description: str = ""


@dataclass
class PrepareReport:
    """What a preparer read, wrote, skipped (by reason) and changed; ``summary()`` is the CLI report."""

    dataset: str
    data_source: str
    source: str
    split: str
    out: str
    template: str
    rows_read: int = 0
    rows_written: int = 0
    skipped: Counter = field(default_factory=Counter)
    changed: Counter = field(default_factory=Counter)
    skipped_rows: dict[str, list[int]] = field(default_factory=dict)  # first few source rows per reason
    overrides: tuple[str, ...] = ()

    def skip(self, row: int, skip: Skip) -> None:
        """Count a skipped row; log and remember the first few of each reason."""
        self.skipped[skip.reason] += 1
        rows = self.skipped_rows.setdefault(skip.reason, [])
        if len(rows) < LOGGED_EXAMPLES:
            rows.append(row)
            logger.warning("%s: skipping source row %d (%s%s)", self.dataset, row, skip.reason,
                           f": {skip.detail}" if skip.detail else "")

    def summary(self) -> str:
        """Rows read/written, every skip reason and change with its count, and required trainer overrides."""
        def counts(counter: Counter) -> str:
            return ", ".join(f"{reason} {n}" for reason, n in sorted(counter.items())) or "none"

        lines = [
            f"{self.dataset} -> {self.out}: read {self.rows_read}, wrote {self.rows_written} "
            f"(data_source {self.data_source}, source {self.source}, split {self.split}, template {self.template})",
            f"  skipped {sum(self.skipped.values())}: {counts(self.skipped)}",
            f"  changed: {counts(self.changed)}",
        ]
        lines += [f"  train with: {override}" for override in self.overrides]
        return "\n".join(lines)


def _check_options(spec: DatasetSpec, options: PrepareOptions) -> None:
    for name in DATASET_SPECIFIC:
        if name not in spec.options and getattr(options, name) != DEFAULTS[name]:
            raise PrepareError(f"option {name} does not apply to dataset {spec.name}; leave it out")
    if options.limit is not None and options.limit < 1:
        raise PrepareError(f"limit must be >= 1, got {options.limit}")
    if options.missing_box not in MISSING_BOX_POLICIES:
        raise PrepareError(f"missing_box must be one of {MISSING_BOX_POLICIES}, got {options.missing_box!r}")
    limit_given = options.max_demo_tokens is not None
    if not limit_given and (options.tokenizer is not None or options.long_demos is not None):
        raise PrepareError("tokenizer and long_demos only apply with max_demo_tokens; set it or leave them out")
    if limit_given:
        if options.max_demo_tokens < 2:
            raise PrepareError(f"max_demo_tokens must be >= 2 (a token plus EOS), got {options.max_demo_tokens}")
        if options.tokenizer is None:
            raise PrepareError("max_demo_tokens needs a tokenizer (the trained model's, e.g. --tokenizer MODEL_DIR)")
        if options.long_demos not in LONG_DEMO_POLICIES:
            raise PrepareError(
                f"max_demo_tokens needs an explicit long_demos policy, one of {LONG_DEMO_POLICIES} "
                f"(--long-demos drop|truncate), got {options.long_demos!r}"
            )


def _check_demo_options(spec: DatasetSpec, options: PrepareOptions, binding: Binding) -> None:
    if binding.has_demonstrations:
        return
    given = [name for name in DEMO_OPTIONS if getattr(options, name) != DEFAULTS[name]]
    if given:
        raise PrepareError(f"{spec.name} has no demonstrations, so {', '.join(given)} does not apply; leave it out")


def load_tokenizer(tokenizer: Any) -> Any:
    """A tokenizer object as is, or ``AutoTokenizer.from_pretrained(tokenizer)`` with a clear error."""
    if not isinstance(tokenizer, str | os.PathLike):
        return tokenizer
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(tokenizer))
    except Exception as exc:  # missing dir, bad files, no network for a Hub name
        raise PrepareError(
            f"could not load a tokenizer from {str(tokenizer)!r} ({type(exc).__name__}: {exc}); pass the trained "
            "model's directory (or any directory with its tokenizer files) to --tokenizer"
        ) from exc


class DemoLimit:
    """Applies ``max_demo_tokens`` (EOS included) by dropping or truncating long demonstrations."""

    def __init__(self, max_tokens: int, tokenizer: Any, policy: str) -> None:
        self.max_tokens = max_tokens
        self.tokenizer = load_tokenizer(tokenizer)
        self.policy = policy

    def apply(self, text: str) -> tuple[str | None, str | None]:
        """``(text, None)`` when it fits, ``(None, None)`` when dropped, ``(cut_text, DEMO_TRUNCATED)``."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) + 1 <= self.max_tokens:
            return text, None
        if self.policy == "drop":
            return None, None
        return self._truncate(text, ids), DEMO_TRUNCATED

    def _truncate(self, text: str, ids: list[int]) -> str:
        if getattr(self.tokenizer, "is_fast", False):  # cut the original text at a token boundary
            offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            return text[: offsets[self.max_tokens - 1][1]]
        return self.tokenizer.decode(ids[: self.max_tokens])


def ensure_boxed(demonstration: str, answer: str, policy: str) -> tuple[str | None, tuple[str, ...]]:
    """Make a demonstration end in a ``\\boxed{}`` answer, per ``missing_box``.

    ``add`` appends the dataset's verified answer in a box, so SFT teaches the answer format the
    verifier reads (the reasoning itself is untouched); ``drop`` returns None (the row is skipped);
    ``keep`` leaves it as it is. A demonstration that already has a box is never changed.
    """
    if policy == "keep" or last_boxed(demonstration) is not None:
        return demonstration, ()
    if policy == "drop":
        return None, ()
    return f"{demonstration.rstrip()}\n\nThe final answer is $\\boxed{{{answer}}}$.", (BOXED_ANSWER_ADDED,)


def _row(binding: Binding, template: PromptTemplate, example: Example, target: str | None,
         index: int, split: str, source_row: int) -> dict[str, Any]:
    clash = {"index", "split", "target", "source_row"} & set(example.extra)
    if clash:
        raise AssertionError(f"extra fields {sorted(clash)} would overwrite extra_info keys")
    return {
        "data_source": binding.data_source,
        "prompt": template.messages(example.question),
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": example.ground_truth},
        "extra_info": {"index": index, "split": split, "target": target, "source_row": source_row, **example.extra},
    }


def prepare_dataset(spec: DatasetSpec, out: str | os.PathLike[str], options: PrepareOptions) -> PrepareReport:
    """Convert ``spec``'s source into verl parquet at ``out`` and return the report.

    Raises ``PrepareError`` (a ``ValueError``) for bad options or input, including a missing column
    (named with the dataset) and a run in which every row was skipped (the message holds the report).
    """
    _check_options(spec, options)
    try:
        template = get_template(options.template)
    except ValueError as exc:
        raise PrepareError(str(exc)) from None
    source = options.source or spec.default_source
    split = options.split or spec.default_split
    loaded = load_source(str(source), split, spec.hub_config, options.limit)
    binding = spec.bind(Columns(loaded.columns, spec.name, str(source)), options)
    _check_demo_options(spec, options, binding)
    limit = DemoLimit(options.max_demo_tokens, options.tokenizer, options.long_demos) \
        if options.max_demo_tokens is not None else None
    label = binding.split_label or split
    report = PrepareReport(spec.name, binding.data_source, str(source), label, str(out), template.name,
                           overrides=template.overrides)
    rows: list[dict[str, Any]] = []
    for position, raw in enumerate(loaded.rows):
        report.rows_read += 1
        example = binding.convert(raw)
        if isinstance(example, Skip):
            report.skip(position, example)
            continue
        target, change = example.target, None
        if limit is not None and target is not None:
            target, change = limit.apply(target)
            if target is None:
                report.skip(position, Skip(DEMO_TOO_LONG, f"over {limit.max_tokens} tokens with EOS"))
                continue
        report.changed.update(example.notes + ((change,) if change else ()))
        rows.append(_row(binding, template, example, target, len(rows), label, position))
    report.rows_written = len(rows)
    if not rows:
        raise PrepareError(f"no rows left to write, nothing written to {out}:\n{report.summary()}")
    write_parquet(rows, out)
    logger.debug("%s", report.summary())
    return report

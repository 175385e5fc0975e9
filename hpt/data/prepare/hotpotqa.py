"""HotpotQA (local files) → search-agent rows with demonstrated trajectories, plus the corpus to index.

    python -m hpt.data.prepare hotpotqa --source hotpot_train.json --out train.parquet [--corpus-out corpus.jsonl]
        [--max-demo-tokens 1024 --tokenizer MODEL_DIR] [--limit N]

Reads HotpotQA's own json (``_id``, ``question``, ``answer``, ``supporting_facts`` = [[title, sentence
index], ...], ``context`` = [[title, [sentences]], ...]) or the Hub's column layout (``context`` =
``{title: [...], sentences: [[...]]}``, ``supporting_facts`` = ``{title: [...], sent_id: [...]}``).

Every context paragraph becomes one corpus document ``"<title>: <sentences joined>"`` (deduplicated by
text, in ``--corpus-out``, default ``<out>.corpus.jsonl``; index it with ``python -m
hpt.tools.build_index``). The demonstration searches each supporting paragraph's title in the order the
supporting facts first name it, reads that paragraph as the tool's answer, and ends with
``<answer>ANSWER</answer>`` (scored by ``hpt.rewards.qa``). The observation is the gold paragraph: at
training time BM25 may rank another paragraph first for the same query (demonstrations are
off-policy). Rows whose trajectory fails ``hpt.data.trajectories`` (or whose supporting title has no
paragraph) are skipped with their row and reason.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpt.atomic import write_atomically
from hpt.data.prepare.core import load_tokenizer
from hpt.data.prepare.sources import PrepareError, as_text, load_source
from hpt.data.trajectories import trajectory_problem
from hpt.toy.arithmetic import write_parquet
from hpt.tools.schemas import SEARCH_SCHEMA

logger = logging.getLogger(__name__)

DATA_SOURCE = "hotpotqa"
AGENT_NAME = "tool_agent"
TOOL_NAME = SEARCH_SCHEMA["function"]["name"]
INSTRUCTION = (
    "Answer the question. Use the search tool to look up what you need, then give the final answer as "
    "<answer>...</answer>."
)
MISSING_FIELD, MISSING_PARAGRAPH = "missing_field", "supporting_paragraph_missing"
LOGGED_EXAMPLES = 3


def _pairs(value: Any, keys: tuple[str, str]) -> list[tuple[Any, Any]]:
    """HotpotQA's [[a, b], ...] or the Hub's {keys[0]: [...], keys[1]: [...]} as a list of pairs."""
    if isinstance(value, dict):
        return list(zip(value.get(keys[0]) or [], value.get(keys[1]) or [], strict=False))
    return [(pair[0], pair[1]) for pair in value or [] if len(pair) == 2]


def paragraphs(raw: dict[str, Any]) -> dict[str, str]:
    """Title → corpus document text of every context paragraph of one example."""
    docs = {}
    for title, sentences in _pairs(raw.get("context"), ("title", "sentences")):
        text = "".join(sentences) if not isinstance(sentences, str) else sentences
        if title and text.strip():
            docs[str(title)] = f"{title}: {' '.join(text.split())}"
    return docs


def search_call(query: str) -> str:
    """The hermes call text of one search, as the template renders it (json.dumps' default separators)."""
    return f"<tool_call>{json.dumps({'name': TOOL_NAME, 'arguments': {'query': query}})}</tool_call>"


def demonstration(raw: dict[str, Any], docs: dict[str, str]) -> list[dict[str, str]] | str:
    """The search → observation → … → answer trajectory, or the skip reason."""
    answer = as_text(raw.get("answer"))
    titles = list(dict.fromkeys(str(t) for t, _ in _pairs(raw.get("supporting_facts"), ("title", "sent_id"))))
    if answer is None or not titles or as_text(raw.get("question")) is None:
        return f"{MISSING_FIELD}: needs question, answer and supporting_facts"
    turns: list[dict[str, str]] = []
    for title in titles:
        if title not in docs:
            return f"{MISSING_PARAGRAPH}: no context paragraph titled {title!r}"
        turns += [{"role": "assistant", "content": search_call(title)}, {"role": "tool", "content": docs[title]}]
    return [*turns, {"role": "assistant", "content": f"<answer>{answer}</answer>"}]


@dataclass
class HotpotReport:
    """Rows read/written, skips by reason (first rows logged), corpus size."""

    out: str
    corpus_out: str
    rows_read: int = 0
    rows_written: int = 0
    documents: int = 0
    skipped: Counter = field(default_factory=Counter)
    skipped_rows: dict[str, list[int]] = field(default_factory=dict)

    def skip(self, row: int, problem: str) -> None:
        reason = problem.split(":", 1)[0]
        self.skipped[reason] += 1
        rows = self.skipped_rows.setdefault(reason, [])
        if len(rows) < LOGGED_EXAMPLES:
            rows.append(row)
            logger.warning("hotpotqa: skipping source row %d (%s)", row, problem)

    def summary(self) -> str:
        skips = ", ".join(f"{reason} {n} (rows {self.skipped_rows[reason]}...)" for reason, n in self.skipped.items())
        return (
            f"hotpotqa -> {self.out}: read {self.rows_read}, wrote {self.rows_written} (data_source {DATA_SOURCE}, "
            f"agent_name {AGENT_NAME})\n  skipped {sum(self.skipped.values())}: {skips or 'none'}\n"
            f"  corpus: {self.documents} documents -> {self.corpus_out}; index it with: python -m "
            f"hpt.tools.build_index --corpus {self.corpus_out} --out INDEX_DIR"
        )


def _row(raw: dict[str, Any], turns: list[dict[str, str]], index: int, split: str, position: int) -> dict[str, Any]:
    question = as_text(raw["question"])
    return {
        "data_source": DATA_SOURCE,
        "agent_name": AGENT_NAME,
        "prompt": [{"role": "user", "content": f"{INSTRUCTION}\nQuestion: {question}"}],
        "ability": "qa",
        "reward_model": {"style": "rule", "ground_truth": as_text(raw["answer"])},
        "extra_info": {
            "index": index,
            "split": split,
            "source_row": position,
            "id": str(raw.get("_id", raw.get("id", ""))),
            "type": str(raw.get("type", "")),
            "level": str(raw.get("level", "")),
            "target_turns": json.dumps(turns),
        },
    }


def prepare_hotpotqa(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    corpus_out: str | os.PathLike[str] | None = None,
    budget: tuple[Any, int] | None = None,
    limit: int | None = None,
    split: str = "train",
) -> HotpotReport:
    """Write the rows to ``out`` and every context paragraph to ``corpus_out``; ``budget`` = (tokenizer, tokens)."""
    corpus_out = Path(corpus_out) if corpus_out else Path(f"{out}.corpus.jsonl")
    loaded = load_source(str(source), split, None, limit)
    tokenizer_budget = (load_tokenizer(budget[0]), budget[1], [SEARCH_SCHEMA]) if budget else None
    report, rows, corpus = HotpotReport(str(out), str(corpus_out)), [], {}
    for position, raw in enumerate(loaded.rows):
        report.rows_read += 1
        docs = paragraphs(raw)
        corpus.update(dict.fromkeys(docs.values()))  # deduplicated by text: every observation is a document
        turns = demonstration(raw, docs)
        if isinstance(turns, list):
            prompt = [{"role": "user", "content": f"{INSTRUCTION}\nQuestion: {as_text(raw['question'])}"}]
            problem = trajectory_problem(turns, {TOOL_NAME}, tokenizer_budget, prompt)
            turns = problem if problem is not None else turns
        if isinstance(turns, str):
            report.skip(position, turns)
            continue
        rows.append(_row(raw, turns, len(rows), split, position))
    report.rows_written, report.documents = len(rows), len(corpus)
    if not rows:
        raise PrepareError(f"no rows left to write, nothing written to {out}:\n{report.summary()}")
    write_parquet(rows, out)
    lines = "".join(json.dumps({"id": i, "contents": text}) + "\n" for i, text in enumerate(corpus))
    write_atomically(corpus_out, lambda tmp: tmp.write_text(lines))
    return report

"""SlideVQA-shaped document QA → hpt's verl parquet with page images; ``python -m hpt.data.prepare slidevqa``.

Input, as the SlideVQA release lays it out: a QA file (``annotations/qa/{split}.jsonl``, one JSON
object per line with ``deck_name``, ``qa_id``, ``question``, ``answer``, ``evidence_pages`` (1-based)
and ``reasoning_type``/``answer_type``) and a directory of slide images, one folder per deck, each
file name ending in its page number before an optional size suffix (``...-3-1024.jpg`` or
``slide_3.jpg``). Each question becomes one prompt with its evidence pages as images (the oracle-page
setting; retrieval over the deck is the tool-use task that follows the multi-turn work) and the answer
as ground truth and demonstration (``<answer>...</answer>``, scored by ``hpt.rewards.docqa``).
Images are stored by path (absolute), checked on the way (missing or unreadable pages skip the row,
counted in the report); ``--max-pixels`` is written into each image so the processor bounds its tokens.

    python -m hpt.data.prepare slidevqa --qa annotations/qa/train.jsonl --images images/train --out train.parquet
        [--max-pages 4 --max-pixels 802816 --limit N]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpt.data.images import ImageBounds, row_image_problem
from hpt.toy.arithmetic import write_parquet

DATA_SOURCE = "slidevqa"
PROMPT = (
    "Answer the question using the slide image(s). Give a short answer inside <answer></answer>.\n"
    "{images}\nQuestion: {question}"
)
_PAGE = re.compile(r"(\d+)(?:[-_]\d+)?\.(?:jpe?g|png)$", re.IGNORECASE)


def deck_pages(deck_dir: Path) -> dict[int, Path]:
    """Page number → image file for one deck folder (page = the number before an optional ``-<size>``)."""
    pages = {}
    for path in deck_dir.iterdir() if deck_dir.is_dir() else ():
        match = _PAGE.search(path.name)
        if match:
            pages[int(match.group(1))] = path.resolve()
    return pages


def convert(raw: dict[str, Any], images_dir: Path, max_pages: int, max_pixels: int) -> dict[str, Any] | str:
    """One QA record → a row (without ``extra_info.index``), or the reason it is skipped."""
    question, answer = str(raw.get("question") or "").strip(), str(raw.get("answer") or "").strip()
    if not question or not answer:
        return "missing_question_or_answer"
    evidence = [int(p) for p in raw.get("evidence_pages") or []]
    if not evidence:
        return "no_evidence_pages"
    if len(evidence) > max_pages:
        return "too_many_pages"
    pages = deck_pages(images_dir / str(raw.get("deck_name", "")))
    if any(page not in pages for page in evidence):
        return "missing_page_image"
    images = [{"path": str(pages[page]), "max_pixels": max_pixels} for page in evidence]
    if row_image_problem(images, ImageBounds(max_pixels=max_pixels)) is not None:
        return "unreadable_page_image"
    return {
        "data_source": DATA_SOURCE,
        "prompt": [{"role": "user", "content": PROMPT.format(images="<image>" * len(images), question=question)}],
        "images": images,
        "ability": "document_qa",
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {
            "qa_id": str(raw.get("qa_id", "")),
            "deck_name": str(raw.get("deck_name", "")),
            "evidence_pages": evidence,
            "target": f"<answer>{answer}</answer>",
        },
    }


def prepare_slidevqa(
    qa_file: Path, images_dir: Path, out: Path, max_pages: int = 4, max_pixels: int = 1024 * 28 * 28,
    limit: int | None = None,
) -> tuple[int, Counter]:
    """Write the parquet; return (rows written, skipped rows by reason). No row left is an error."""
    rows, skipped = [], Counter()
    with qa_file.open() as lines:
        for number, line in enumerate(lines):
            if limit is not None and number >= limit:
                break
            if not line.strip():
                continue
            row = convert(json.loads(line), images_dir, max_pages, max_pixels)
            if isinstance(row, str):
                skipped[row] += 1
                continue
            row["extra_info"] = {"index": len(rows), "split": qa_file.stem, **row["extra_info"]}
            rows.append(row)
    if not rows:
        raise ValueError(f"no usable rows in {qa_file} with images under {images_dir} (skipped: {dict(skipped)})")
    write_parquet(rows, out)
    return len(rows), skipped


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: prepare, print what was written and skipped."""
    parser = argparse.ArgumentParser(prog="python -m hpt.data.prepare slidevqa", description=__doc__.split("\n")[0])
    parser.add_argument("--qa", type=Path, required=True, help="SlideVQA QA jsonl (annotations/qa/<split>.jsonl)")
    parser.add_argument("--images", type=Path, required=True, help="directory with one image folder per deck")
    parser.add_argument("--out", type=Path, required=True, help="output parquet file")
    parser.add_argument("--max-pages", type=int, default=4, help="skip questions with more evidence pages")
    parser.add_argument("--max-pixels", type=int, default=1024 * 28 * 28, help="per-image pixel bound (tokens x 784)")
    parser.add_argument("--limit", type=int, help="read at most N QA lines")
    args = parser.parse_args(argv)
    try:
        written, skipped = prepare_slidevqa(args.qa, args.images, args.out, args.max_pages, args.max_pixels, args.limit)
    except (OSError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"{parser.prog}: wrote {written} rows to {args.out}; skipped {dict(skipped) or 'none'}")
    return 0

"""Build the BM25 search index of a jsonl corpus once, to disk.

python -m hpt.tools.build_index --corpus CORPUS.jsonl --out INDEX_DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point: index the corpus and print one summary line."""
    parser = argparse.ArgumentParser(prog="python -m hpt.tools.build_index", description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help='jsonl, one document per line under "contents"')
    parser.add_argument("--out", type=Path, required=True, help="index directory (replaced atomically)")
    args = parser.parse_args(argv)
    from hpt.tools.index import build_index

    start = time.perf_counter()
    try:
        count = build_index(args.corpus, args.out)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"build_index: error: {err}")
    print(f"build_index: {count} documents from {args.corpus} -> {args.out} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()

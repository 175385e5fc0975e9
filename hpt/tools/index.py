"""A BM25 index over a corpus file (library ``bm25s``): built once to disk, loaded once per process, searched
under a lock.

No verl here: the index is shared by the ``search`` tool (in verl's agent-loop workers), the retrieval
server and the toy's warm-start evaluation. verl runs every tool call of a batch concurrently, and a
lazily built shared index raced on the first batch (agent-loop probe, trap 5), so an index is loaded
completely before it is published and every search holds the index's lock.

The corpus is jsonl, one document per line with its text under ``contents`` (or ``text``) and an
optional ``id``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

MANIFEST = "hpt_index.json"
TEXT_KEYS = ("contents", "text")
FORMAT = 1
NO_RESULTS = "no results"


class IndexMissingError(FileNotFoundError):
    """No index at the configured path; the message names the command that builds it."""


def build_command(index_dir: str | os.PathLike[str], corpus: str | os.PathLike[str] = "CORPUS.jsonl") -> str:
    """The command line that builds ``index_dir``, quoted in every missing-index error."""
    return f"python -m hpt.tools.build_index --corpus {corpus} --out {index_dir}"


def read_corpus(path: str | os.PathLike[str]) -> list[str]:
    """The documents of a jsonl corpus; a bad line is an error naming the line, never skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} does not exist")
    documents = []
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number} is not JSON ({err})") from err
            text = next((record[key] for key in TEXT_KEYS if isinstance(record, dict) and key in record), None)
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{path}:{number} has no non-empty text under {' or '.join(TEXT_KEYS)}")
            documents.append(text)
    if not documents:
        raise ValueError(f"corpus file {path} has no documents")
    return documents


def _tokenize(texts: list[str]):
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", show_progress=False, return_ids=False)


def write_index(corpus: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> int:
    """Index ``corpus`` into the existing directory ``out_dir``; return the number of documents."""
    import bm25s

    documents = read_corpus(corpus)
    out_dir = Path(out_dir)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(documents, stopwords="en", show_progress=False), show_progress=False)
    retriever.save(out_dir, show_progress=False)
    (out_dir / "documents.json").write_text(json.dumps(documents))
    manifest = {"format": FORMAT, "documents": len(documents), "corpus": str(Path(corpus).resolve())}
    (out_dir / MANIFEST).write_text(json.dumps(manifest) + "\n")
    return len(documents)


def build_index(corpus: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> int:
    """Index ``corpus`` into ``out_dir``, replaced atomically (readers never see half an index)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-building-", dir=out_dir.parent))
    old = out_dir.with_name(f".{out_dir.name}-old-{tmp.name}")
    try:
        count = write_index(corpus, tmp)
        tmp.chmod(0o755)
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return count


@dataclass
class SearchIndex:
    """A loaded BM25 index and its documents; ``search`` is safe to call from many threads."""

    retriever: object
    documents: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def search(self, query: str, top_k: int = 1) -> list[str]:
        """The ``top_k`` best documents with a positive score, best first (none when no query term is indexed)."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        tokens = _tokenize([query])
        k = min(top_k, len(self.documents))
        with self.lock:
            ids, scores = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [self.documents[int(i)] for i, score in zip(ids[0], scores[0], strict=True) if score > 0]


def load_index(index_dir: str | os.PathLike[str]) -> SearchIndex:
    """Load an index built by ``build_index``; a missing or foreign directory raises with the build command."""
    import bm25s

    index_dir = Path(index_dir)
    manifest = index_dir / MANIFEST
    if not manifest.is_file():
        raise IndexMissingError(
            f"no search index at {index_dir} ({MANIFEST} missing); build it with: {build_command(index_dir)}"
        )
    if json.loads(manifest.read_text()).get("format") != FORMAT:
        raise IndexMissingError(
            f"{index_dir} holds an index of another format; rebuild it with: {build_command(index_dir)}"
        )
    retriever = bm25s.BM25.load(index_dir, show_progress=False)
    documents = json.loads((index_dir / "documents.json").read_text())
    return SearchIndex(retriever=retriever, documents=documents)


_loaded: dict[Path, SearchIndex] = {}
_loading = threading.Lock()


def shared_index(index_dir: str | os.PathLike[str]) -> SearchIndex:
    """This process's one copy of the index at ``index_dir``, loaded on first use under a lock."""
    key = Path(index_dir).resolve()
    with _loading:
        if key not in _loaded:
            _loaded[key] = load_index(key)
            logger.info("loaded search index %s (%d documents)", key, len(_loaded[key].documents))
        return _loaded[key]


def search_observation(parameters: object, search: Callable[[str], list[str]]) -> tuple[str, bool]:
    """What the model reads after calling ``search`` with ``parameters``, and whether the call failed.

    Shared by the verl tool and the toy's in-process rollouts so both answer a call identically: the
    documents joined by newlines, ``no results``, or ``search error: <type>: <message>`` for bad
    arguments and any exception of the backend (never raised: a failing tool must not kill a step).
    """
    query = parameters.get("query") if isinstance(parameters, dict) else None
    try:
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"search needs a non-empty string argument 'query', got {parameters!r}")
        return "\n".join(search(query)) or NO_RESULTS, False
    except Exception as err:  # noqa: BLE001 - any failure becomes an observation, never a dead step
        logger.warning("search failed: %s: %s", type(err).__name__, err)
        return f"search error: {type(err).__name__}: {err}", True

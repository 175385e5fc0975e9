"""Visual retrieval: the ``search`` tool over a corpus of page images, retrieving on the pages' text.

The corpus is the text corpus of ``hpt.tools.index`` (jsonl, the page's text under ``contents``) with one
more key per line, ``image``: the page's image file (absolute, or relative to the corpus file). The BM25
index is built from the text as for the text search tool (``python -m hpt.tools.build_index``); the tool
finds the corpus files in the index's manifest and answers a query with the best page's **image**
(``ToolResponse(image=[...])``), which verl's tool agent loop places in the conversation as an image part
of the tool message and adds to the rollout's images. Every page image is checked when the tool is built
(start-up), so a missing or unreadable page is reported with its corpus line, not in the middle of a run.

    tools:
      - class_name: hpt.tools.pages.PageSearchTool
        config: {type: native, index_dir: /abs/index}
        tool_schema: <hpt.tools.schemas.PAGE_SEARCH_SCHEMA>
"""

import verl  # noqa: F401  (first: a Ray worker may import this module before anything else)

import json
import os
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from hpt.tools.index import MANIFEST, search_observation
from hpt.tools.schemas import PAGE_SEARCH_SCHEMA
from hpt.tools.search import SearchTool

IMAGE_KEY = "image"


class PageCorpusError(ValueError):
    """A page corpus line without a usable image; the message names the file and line."""


def read_page_images(corpus: str | os.PathLike[str]) -> dict[str, Path]:
    """Page text -> image path for a page corpus; every image must open (checked here, once)."""
    corpus = Path(corpus)
    pages: dict[str, Path] = {}
    for number, line in enumerate(corpus.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise PageCorpusError(f"{corpus}:{number} is not JSON ({err})") from err
        value = record.get(IMAGE_KEY) if isinstance(record, dict) else None
        if not isinstance(value, str) or not value:
            raise PageCorpusError(f"{corpus}:{number} has no {IMAGE_KEY!r} (the page's image file)")
        path = Path(value) if os.path.isabs(value) else corpus.parent / value
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, UnidentifiedImageError) as err:
            raise PageCorpusError(
                f"{corpus}:{number}: page image {path} cannot be read ({type(err).__name__}: {err}); "
                "rebuild the page corpus (python -m hpt.toy.build_vrag for the toy) or fix the path"
            ) from err
        pages[record.get("contents", record.get("text"))] = path
    return pages


def corpus_files(index_dir: str | os.PathLike[str]) -> list[Path]:
    """The corpus files an index was built from (its manifest)."""
    manifest = Path(index_dir) / MANIFEST
    return [Path(p) for p in json.loads(manifest.read_text())["corpus"]] if manifest.is_file() else []


def open_page(path: Path) -> Image.Image:
    """A page as a loaded RGB image (no open file handle: tools run on many threads)."""
    with Image.open(path) as image:
        return image.convert("RGB")


class PageSearchTool(SearchTool):
    """``search(query)``: the image of the best-matching page (``top_k`` images), or a text observation
    (``no results``, ``search error: ...``)."""

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None):
        schema = tool_schema or OpenAIFunctionToolSchema.model_validate(PAGE_SEARCH_SCHEMA)
        if config.get("retrieval_url"):
            raise ValueError("the page search tool reads its page images locally: give index_dir, not retrieval_url")
        super().__init__(config, schema)
        self.pages: dict[str, Path] = {}
        for corpus in corpus_files(config["index_dir"]):
            self.pages.update(read_page_images(corpus))
        missing = [doc for doc in self.index.documents if doc not in self.pages]
        if missing:
            raise PageCorpusError(
                f"{len(missing)} indexed page(s) of {config['index_dir']} have no image (first: {missing[0][:60]!r}); "
                "rebuild the index from the page corpus"
            )

    def observe(self, parameters: Any) -> tuple[ToolResponse, bool]:
        found: list[str] = []

        def search(query: str) -> list[str]:
            found.extend(self._search(query))
            return found

        text, error = search_observation(parameters, search)
        if error or not found:
            return ToolResponse(text=text), error
        return ToolResponse(image=[open_page(self.pages[doc]) for doc in found]), False

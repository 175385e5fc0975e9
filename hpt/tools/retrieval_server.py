"""An HTTP retrieval server over one BM25 index, so many rollout workers share one copy of it.

    python -m hpt.tools.retrieval_server --index INDEX_DIR [--host 0.0.0.0 --port 8000]

``POST /search`` with ``{"query": str, "top_k": int}`` answers ``{"documents": [str, ...]}`` (best first);
``GET /health`` answers ``{"documents": N}`` once the index is loaded. The search tool calls it when
its config sets ``retrieval_url`` instead of ``index_dir``. Start it with
``exp_scripts/retrieval_server.sh``. The index is loaded before the server accepts connections, so a
missing index stops the server at once with the command that builds it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from hpt.tools.index import IndexMissingError, SearchIndex, load_index

logger = logging.getLogger(__name__)

MAX_TOP_K = 100


class SearchRequest(BaseModel):
    """One query."""

    query: str
    top_k: int = Field(default=1, ge=1, le=MAX_TOP_K)


def create_app(index: SearchIndex) -> FastAPI:
    """The FastAPI app serving ``index`` (searches run in FastAPI's thread pool; the index locks itself)."""
    app = FastAPI(title="hpt retrieval server")

    @app.get("/health")
    def health() -> dict[str, int]:
        return {"documents": len(index.documents)}

    @app.post("/search")
    def search(request: SearchRequest) -> dict[str, list[str]]:
        if not request.query.strip():
            raise HTTPException(status_code=422, detail="query must not be empty")
        return {"documents": index.search(request.query, request.top_k)}

    return app


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point: load the index, then serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m hpt.tools.retrieval_server", description=__doc__.split("\n")[0])
    parser.add_argument("--index", required=True, help="index directory built by python -m hpt.tools.build_index")
    parser.add_argument("--host", default=os.environ.get("HPT_RETRIEVAL_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("HPT_RETRIEVAL_PORT", "8000")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        index = load_index(args.index)
    except IndexMissingError as err:
        sys.exit(f"retrieval_server: error: {err}")
    import uvicorn

    logger.info("serving %d documents from %s on %s:%d", len(index.documents), args.index, args.host, args.port)
    uvicorn.run(create_app(index), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

"""The BM25 search tool: the right fact on top, failures as counted observations, the same answers over HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hpt.tools import search as search_module
from hpt.tools.build_index import main as build_index_main
from hpt.tools.index import IndexMissingError, build_index, load_index, read_corpus
from hpt.tools.search import CALLS_FIELD, ERRORS_FIELD, SearchTool

FACTS = ["zorbex moons 4", "zorbex lakes 2", "kalitu moons 7", "kalitu roads 1", "pomire hills 9"]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search")
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "contents": text}) + "\n" for i, text in enumerate(FACTS)))
    build_index_main(["--corpus", str(corpus), "--out", str(root / "index")])
    return root / "index"


def _execute(tool: SearchTool, parameters, agent_data=None):
    response, reward, metrics = asyncio.run(tool.execute("id", parameters, agent_data=agent_data))
    return response.text, reward, metrics


def test_top_hit_is_the_fact_that_matches_entity_and_attribute(index_dir: Path) -> None:
    index = load_index(index_dir)
    for fact in FACTS:
        query = fact.rsplit(" ", 1)[0]
        assert index.search(query, top_k=1) == [fact]
    assert set(index.search("kalitu", top_k=5)) == {"kalitu moons 7", "kalitu roads 1"}
    assert index.search("nothing known", top_k=3) == [], "documents scoring 0 are not results"
    assert len(index.search("moons", top_k=50)) == 2, "top_k beyond the corpus returns every match"


def test_missing_index_names_the_command_that_builds_it(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match="python -m hpt.tools.build_index --corpus"):
        load_index(tmp_path / "nowhere")
    with pytest.raises(IndexMissingError, match="build_index"):
        SearchTool({"type": "native", "index_dir": str(tmp_path / "nowhere")}, None)


def test_a_corpus_line_without_text_is_an_error_naming_the_line(tmp_path: Path) -> None:
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"contents": "fine"}\n{"title": "no text"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_corpus(corpus)
    with pytest.raises(FileNotFoundError):
        build_index(tmp_path / "absent.jsonl", tmp_path / "index")


def test_tool_answers_with_the_fact_and_counts_calls_per_trajectory(index_dir: Path) -> None:
    tool = SearchTool({"type": "native", "index_dir": str(index_dir)}, None)
    assert tool.name == "search"
    agent_data = SimpleNamespace(extra_fields={})
    before = search_module.call_counts()
    assert _execute(tool, {"query": "kalitu roads"}, agent_data) == ("kalitu roads 1", 0.0, {"search_error": 0})
    assert _execute(tool, {"query": "unknown words"}, agent_data)[0] == "no results"
    assert agent_data.extra_fields == {CALLS_FIELD: 2, ERRORS_FIELD: 0}
    after = search_module.call_counts()
    assert (after["calls"] - before["calls"], after["errors"] - before["errors"]) == (2, 0)


def test_bad_arguments_and_a_raising_backend_become_counted_error_observations(index_dir: Path) -> None:
    tool = SearchTool({"type": "native", "index_dir": str(index_dir), "top_k": 2}, None)
    agent_data = SimpleNamespace(extra_fields={})
    before = search_module.call_counts()
    text, _, metrics = _execute(tool, {"q": "zorbex"}, agent_data)
    assert text.startswith("search error: ValueError") and "'query'" in text and metrics == {"search_error": 1}

    def broken(query: str, top_k: int = 1) -> list[str]:
        raise RuntimeError("disk gone")

    tool.index = SimpleNamespace(search=broken)
    assert _execute(tool, {"query": "zorbex"}, agent_data)[0] == "search error: RuntimeError: disk gone"
    assert agent_data.extra_fields == {CALLS_FIELD: 2, ERRORS_FIELD: 2}
    assert search_module.call_counts()["errors"] - before["errors"] == 2


def test_config_needs_exactly_one_backend(index_dir: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of index_dir"):
        SearchTool({"type": "native"}, None)
    with pytest.raises(ValueError, match="exactly one of index_dir"):
        SearchTool({"type": "native", "index_dir": str(index_dir), "retrieval_url": "http://x"}, None)


def test_tool_config_yaml_loads_through_verls_registry(index_dir: Path, tmp_path: Path) -> None:
    from verl.tools.tool_registry import initialize_tools_from_config

    config = tmp_path / "tools.yaml"
    config.write_text(
        "tools:\n"
        "  - class_name: hpt.tools.search.SearchTool\n"
        f"    config: {{type: native, index_dir: {index_dir}, top_k: 1}}\n"
    )
    (tool,) = initialize_tools_from_config(str(config))
    assert isinstance(tool, SearchTool) and tool.name == "search"
    assert tool.tool_schema.function.parameters.required == ["query"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_remote_mode_returns_what_the_local_index_returns(index_dir: Path) -> None:
    import uvicorn

    from hpt.tools.retrieval_server import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(load_index(index_dir)), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        remote = SearchTool({"type": "native", "retrieval_url": f"http://127.0.0.1:{port}", "top_k": 2}, None)
        local = SearchTool({"type": "native", "index_dir": str(index_dir), "top_k": 2}, None)
        for query in ("zorbex moons", "pomire", "nothing known"):
            assert _execute(remote, {"query": query}) == _execute(local, {"query": query})
        assert _execute(remote, {"query": "  "})[0].startswith("search error: ValueError")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    text, _, metrics = _execute(remote, {"query": "zorbex"})
    assert text.startswith("search error: URLError") and metrics == {"search_error": 1}, "server gone: an observation"

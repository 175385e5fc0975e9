"""The ``search`` tool for verl's tool agent loop: BM25 over a local index, or a shared retrieval server.

Listed in a tool config yaml (``actor_rollout_ref.rollout.multi_turn.tool_config_path``)::

    tools:
      - class_name: hpt.tools.search.SearchTool
        config: {type: native, index_dir: /abs/index, top_k: 1}   # or retrieval_url: http://host:8000
        tool_schema: {type: function, function: {name: search, description: ..., parameters: {...}}}

With ``index_dir`` every agent-loop worker loads the index once (``hpt.tools.index.shared_index``, under
a lock, when the tool is constructed, so a missing index fails at start-up with the command that builds
it); with ``retrieval_url`` the workers share one ``hpt.tools.retrieval_server``. A search that fails
(bad arguments, server down, any exception) answers the model with an error observation instead of
raising: verl would otherwise turn it into its own error text, uncounted. Every call and every failure
is counted per process (``call_counts``) and per trajectory in ``agent_data.extra_fields``
(``hpt_tool_calls``, ``hpt_tool_errors``), which verl copies into the batch's non-tensor data.
"""

import verl  # noqa: F401  (first: a Ray worker may import this module before anything else)

import asyncio
import json
import threading
import urllib.request
from typing import Any

from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from hpt.tools.index import search_observation, shared_index
from hpt.tools.schemas import SEARCH_SCHEMA

CALLS_FIELD, ERRORS_FIELD = "hpt_tool_calls", "hpt_tool_errors"  # per-trajectory counts in agent_data.extra_fields
_counts = {"calls": 0, "errors": 0}
_counts_lock = threading.Lock()


def call_counts() -> dict[str, int]:
    """This process's search calls and failed calls so far."""
    with _counts_lock:
        return dict(_counts)


def _count(error: bool) -> None:
    with _counts_lock:
        _counts["calls"] += 1
        _counts["errors"] += int(error)


def search_remote(url: str, query: str, top_k: int, timeout_s: float) -> list[str]:
    """POST one query to a retrieval server (``hpt.tools.retrieval_server``); its documents, best first."""
    body = json.dumps({"query": query, "top_k": top_k}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/search", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return list(json.loads(response.read())["documents"])


class SearchTool(BaseTool):
    """``search(query)``: the ``top_k`` BM25 documents joined by newlines, or an error observation."""

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None):
        schema = tool_schema or OpenAIFunctionToolSchema.model_validate(SEARCH_SCHEMA)
        super().__init__(config, schema)
        self.top_k = int(config.get("top_k", 1))
        self.timeout_s = float(config.get("timeout_s", 30.0))
        self.url = config.get("retrieval_url")
        index_dir = config.get("index_dir")
        if bool(self.url) == bool(index_dir):
            raise ValueError(
                "the search tool's config needs exactly one of index_dir (a local index) or retrieval_url "
                f"(a running hpt.tools.retrieval_server); got index_dir={index_dir!r}, retrieval_url={self.url!r}"
            )
        self.index = shared_index(index_dir) if index_dir else None

    def _search(self, query: str) -> list[str]:
        if self.index is not None:
            return self.index.search(query, self.top_k)
        return search_remote(self.url, query, self.top_k, self.timeout_s)

    def observe(self, parameters: Any) -> tuple[ToolResponse, bool]:
        """What the model reads after one call (the documents as text), and whether the call failed."""
        text, error = search_observation(parameters, self._search)
        return ToolResponse(text=text), error

    async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs) -> tuple[ToolResponse, float, dict]:
        """Run one search; never raises (a failure is an observation the model reads and a counted error)."""
        response, error = await asyncio.to_thread(self.observe, parameters)
        record_call(kwargs.get("agent_data"), error)
        return response, 0.0, {"search_error": int(error)}


def record_call(agent_data: Any, error: bool) -> None:
    """Count one call of an hpt tool in this process and, when verl passes it, in the trajectory's extra fields."""
    _count(error)
    if agent_data is not None:
        fields = agent_data.extra_fields
        fields[CALLS_FIELD] = fields.get(CALLS_FIELD, 0) + 1
        fields[ERRORS_FIELD] = fields.get(ERRORS_FIELD, 0) + int(error)

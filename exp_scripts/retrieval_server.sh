#!/usr/bin/env bash
# Start the BM25 retrieval server that every rollout worker's search tool calls (tool config
# `retrieval_url: http://HOST:PORT`), so a multi-GPU run holds one copy of the index.
#
#   INDEX_DIR=/data/hotpotqa_index bash exp_scripts/retrieval_server.sh          # port 8000
#   CORPUS=/data/corpus.jsonl INDEX_DIR=/data/index PORT=8100 bash exp_scripts/retrieval_server.sh
#
# With CORPUS set and no index at INDEX_DIR yet, the index is built first (python -m hpt.tools.build_index).
# The server runs in the foreground; stop it with Ctrl-C (or run it under nohup / a job scheduler).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${INDEX_DIR:?set INDEX_DIR to the index directory (build one with: python -m hpt.tools.build_index --corpus CORPUS.jsonl --out INDEX_DIR)}"
HOST="${HOST:-0.0.0.0}"
PORT="${PORT:-8000}"
PYTHON="${PYTHON:-python}"
if [[ ! -f "$INDEX_DIR/hpt_index.json" && -n "${CORPUS:-}" ]]; then
  "$PYTHON" -m hpt.tools.build_index --corpus "$CORPUS" --out "$INDEX_DIR"
fi
echo "retrieval server on http://$HOST:$PORT (index $INDEX_DIR); tool config: retrieval_url: http://<this host>:$PORT"
exec "$PYTHON" -m hpt.tools.retrieval_server --index "$INDEX_DIR" --host "$HOST" --port "$PORT"

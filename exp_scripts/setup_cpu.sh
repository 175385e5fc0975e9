#!/usr/bin/env bash
# Source me: creates (or reuses) the CPU virtualenv at $HPT_VENV (default .venv) and installs hpt.
# torch==2.13.0 is installed first and kept by a constraint file, so resolving verl never replaces it.
# HPT_TORCH_INDEX_URL: the index pip takes torch from. On an ordinary Linux x86_64 machine PyPI's
# torch is the multi-GB CUDA build; HPT_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu gets
# PyTorch's CPU-only wheel instead. Unset: pip's configured index (as in CI).
set -euo pipefail
HPT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HPT_VENV="${HPT_VENV:-$HPT_ROOT/.venv}"
if [ ! -x "$HPT_VENV/bin/python" ]; then
  python3 -m venv "$HPT_VENV"
fi
# shellcheck disable=SC1091
. "$HPT_VENV/bin/activate"
stamp="$HPT_VENV/.hpt-installed"
if [ ! -f "$stamp" ] || [ "$HPT_ROOT/pyproject.toml" -nt "$stamp" ]; then
  echo "hpt: installing into $HPT_VENV (torch CPU build, verl 0.9.1, hpt) ..."
  python -m pip install -q --upgrade pip
  torch_index=()
  if [ -n "${HPT_TORCH_INDEX_URL:-}" ]; then torch_index=(--index-url "$HPT_TORCH_INDEX_URL"); fi
  python -m pip install -q -c "$HPT_ROOT/constraints/cpu.txt" ${torch_index[@]+"${torch_index[@]}"} torch==2.13.0
  python -m pip install -q -c "$HPT_ROOT/constraints/cpu.txt" -e "$HPT_ROOT[test]"
  touch "$stamp"
fi
export VERL_PLATFORM=cpu TOKENIZERS_PARALLELISM=false WANDB_MODE=disabled HF_HUB_OFFLINE=1

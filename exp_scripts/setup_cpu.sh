#!/usr/bin/env bash
# Source me: creates (or reuses) the CPU virtualenv at $HPT_VENV (default .venv) and installs hpt.
# torch==2.13.0 (CPU build) is installed first and kept by a constraint file, so pip never pulls
# a CUDA build of torch while resolving verl.
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
  python -m pip install -q -c "$HPT_ROOT/constraints/cpu.txt" torch==2.13.0
  python -m pip install -q -c "$HPT_ROOT/constraints/cpu.txt" -e "$HPT_ROOT[test]"
  touch "$stamp"
fi
export VERL_PLATFORM=cpu TOKENIZERS_PARALLELISM=false WANDB_MODE=disabled HF_HUB_OFFLINE=1

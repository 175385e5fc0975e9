#!/usr/bin/env bash
# The test command: set up the CPU environment if needed, then lint and run the whole suite.
# Extra arguments go to pytest (e.g. `bash exp_scripts/test.sh -m "not slow"`).
set -euo pipefail
cd "$(dirname "$0")/.."
. exp_scripts/setup_cpu.sh
ruff check hpt tests benchmarks examples
python -m pytest "$@"

#!/usr/bin/env bash
# The test command: install what is needed, then run the test suite (long runs are behind -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest -q -ra "$@"

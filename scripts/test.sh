#!/usr/bin/env bash
# The test command: install what is needed, then run the test suite (long runs are behind -m slow).
# Two pytest-xdist workers: the suite waits on i-PI, sockets and process starts much of the time, so one
# process used ~1.2 of the 2 cores (2026-12-07: 1406 s serial; 807 s with two workers and faster process starts).
# Arguments go to pytest and come last, so `-n 0` runs it in one process again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest -q -ra -n 2 "$@"

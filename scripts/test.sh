#!/usr/bin/env bash
# Set up from the lock (failing when it disagrees with pyproject.toml), then run the linter and
# the whole test suite. Needs PostgreSQL on localhost:5432 and Redis on localhost:6379.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/python -m pytest -q "$@"

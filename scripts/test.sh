#!/usr/bin/env bash
# Set up, then run the linter and the whole test suite. Needs PostgreSQL on localhost:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest -q "$@"

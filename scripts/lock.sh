#!/usr/bin/env bash
# Refresh requirements.lock from pyproject.toml: every dependency of segue[all] and the dev
# tools, pinned with hashes. Run after changing a dependency in pyproject.toml, then commit
# both files (`scripts/test.sh` fails while they disagree).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-check
.venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --no-emit-find-links --upgrade \
    --extra all --extra dev --output-file requirements.lock pyproject.toml
.venv/bin/python scripts/check_lock.py --stamp

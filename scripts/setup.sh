#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install segue with every extra and the development tools,
# exactly as pinned (with hashes) in requirements.lock. Idempotent. Fails first when the lock
# and pyproject.toml disagree (refresh with `bash scripts/lock.sh`); `--no-check` skips that,
# for lock.sh itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip packaging
if [ "${1:-}" != "--no-check" ]; then
    .venv/bin/python scripts/check_lock.py
fi
.venv/bin/python -m pip install --quiet --require-hashes -r requirements.lock
.venv/bin/python -m pip install --quiet --no-deps -e .
# The web app's browser tests drive Debian's chromium (Playwright's own browser download does
# not work offline). Installed when missing and apt-get can; the tests skip with the reason
# when it is still absent.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
        && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
        || echo "setup: could not install chromium; the browser tests will skip" >&2
fi

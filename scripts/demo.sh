#!/usr/bin/env bash
# Set up, then run the main job end to end on embedded defaults (no servers): build a synthetic
# world, import it, train, evaluate, print the results table and sample recommendations.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/segue --data-dir "${SEGUE_DATA_DIR:-segue-data/demo}" demo "$@"

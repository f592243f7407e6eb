#!/usr/bin/env bash
# Set up, then run the main job end to end on embedded defaults (no servers): build a synthetic
# world, import it, train, evaluate, print the results table and sample recommendations, and
# say how to open the web app on it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
data="${SEGUE_DATA_DIR:-segue-data/demo}"
.venv/bin/segue --data-dir "$data" demo "$@"
echo "The web app on this world: .venv/bin/segue --data-dir $data serve, then open" \
  "http://127.0.0.1:8000/ (the admin console: http://127.0.0.1:8000/admin)"

#!/usr/bin/env bash
# The core install alone (`pip install .`, no extras) in a fresh virtual environment: builds a
# synthetic world, trains ALS, serves a list and the web app over HTTP, persists an event
# through the stream worker (Redis on localhost:6379), and `segue ask` says which extra to
# install. Exits non-zero on the first thing that does not hold. CI runs it after the test
# suite.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="$(mktemp -d /tmp/segue-core.XXXXXX)"
PREFIX="segue-core-$$:"
cleanup() {
    [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
    redis-cli --scan --pattern "${PREFIX}*" | xargs -r redis-cli del >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet . 2>&1 | grep -v "^WARNING: Location" || true
SEGUE="$WORK/venv/bin/segue"
export SEGUE_DATA_DIR="$WORK/data" SEGUE_REDIS_URL=redis://localhost:6379/0 SEGUE_REDIS_PREFIX="$PREFIX"
for module in torch transformers pyspark metaflow matplotlib soundfile; do
    if "$WORK/venv/bin/python" -c "import $module" 2>/dev/null; then
        echo "core install: $module is installed without its extra" >&2
        exit 1
    fi
done
"$SEGUE" synth --users 300 --tracks 500 --events 20000 --seed 1 >/dev/null
"$SEGUE" train --models als >/dev/null
USER_ID="$("$WORK/venv/bin/python" -c "
from segue.config import load_settings
from segue.store import open_store
print(next(iter(open_store(load_settings().resolved_database_url).iter_users())).id)")"
PORT="$("$WORK/venv/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")"
"$SEGUE" serve --model als --port "$PORT" >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 60); do
    curl -sf "http://127.0.0.1:$PORT/v1/health" >/dev/null && break
    sleep 0.5
done
curl -sf "http://127.0.0.1:$PORT/v1/users/$USER_ID/recommendations?k=3" | grep -q '"item_id"'
# the web app's pages and assets come with the package (package data), not from the checkout
PAGE="$(curl -sf "http://127.0.0.1:$PORT/")"
grep -q '/web/static/listener.js' <<<"$PAGE"
STYLE="$(curl -sf "http://127.0.0.1:$PORT/web/static/app.css")"
grep -q 'prefers-color-scheme' <<<"$STYLE"
printf 'user_id,item_id,timestamp,type\n%s,trk-000001,2024-05-02T10:00:00Z,play\n' "$USER_ID" \
    >"$WORK/live.csv"
kill "$SERVER"; SERVER=""
"$SEGUE" publish "$WORK/live.csv" >/dev/null
"$SEGUE" worker --once | grep -q "persisted 1"
if ASK="$("$SEGUE" ask "play queen" 2>&1)"; then
    echo "core install: segue ask ran without the nlu extra" >&2
    exit 1
fi
echo "$ASK" | grep -q "install segue\[nlu\] to use segue ask"
echo "core install: synth, train als, serve (API and web app), worker and the ask hint hold"

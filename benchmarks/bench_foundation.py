"""Foundation benchmarks: import throughput and peak memory; synthetic-world generation time.

Each case runs in its own process so that its peak RSS is its own. Prints one table; record the
figures with date and machine in docs/benchmarks.md. Not a test.

    .venv/bin/python benchmarks/bench_foundation.py                  # the default set
    .venv/bin/python benchmarks/bench_foundation.py --cases gen-1M lastfm-sqlite
    .venv/bin/python benchmarks/bench_foundation.py --case gen-10M   # one case, JSON out
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LASTFM = ROOT.parent / "shared" / "datasets" / "lastfm-2k"
PG_ADMIN = os.environ.get(
    "SEGUE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@localhost:5432/test"
)

# events -> (users, tracks) for generated worlds
WORLDS = {
    "1M": (1_000_000, 20_000, 10_000),
    "10M": (10_000_000, 100_000, 50_000),
    "50M": (50_000_000, 500_000, 100_000),
}
DEFAULT_CASES = [
    "lastfm-sqlite",
    "lastfm-postgres",
    "gen-1M",
    "gen-10M",
    "gen-50M",
    "world-10M-sqlite",
    "world-10M-postgres",
]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _params(size: str):
    from segue.data.synth import SynthParams

    events, users, tracks = WORLDS[size]
    return SynthParams(seed=7, n_users=users, n_tracks=tracks, n_events=events)


def case_lastfm(backend: str, url: str) -> dict:
    from segue.data.sources.lastfm import read_lastfm_2k
    from segue.store import open_store

    started = time.perf_counter()
    batch = read_lastfm_2k(LASTFM)
    parsed = time.perf_counter()
    rows = sum(batch.counts().values())
    with open_store(url) as store:
        store.ingest(batch)
    done = time.perf_counter()
    return {
        "case": f"lastfm-{backend}",
        "rows": rows,
        "parse_s": parsed - started,
        "ingest_s": done - parsed,
        "rows_per_s": rows / (done - started),
    }


def case_generate(size: str) -> dict:
    from segue.data.synth import generate_world

    params = _params(size)
    started = time.perf_counter()
    world = generate_world(params)
    events = sum(len(chunk) for chunk in world.iter_event_chunks(chunk_size=1_000_000))
    elapsed = time.perf_counter() - started
    return {
        "case": f"gen-{size}",
        "rows": events,
        "total_s": elapsed,
        "rows_per_s": events / elapsed,
    }


def case_world(size: str, backend: str, url: str) -> dict:
    from segue.jobs.ingest import load_synthetic_world
    from segue.store import open_store

    started = time.perf_counter()
    with open_store(url) as store:
        report = load_synthetic_world(store, _params(size))
    elapsed = time.perf_counter() - started
    return {
        "case": f"world-{size}-{backend}",
        "rows": report.events_inserted,
        "total_s": elapsed,
        "rows_per_s": report.events_inserted / elapsed,
    }


def run_case(name: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        backend = "postgres" if name.endswith("postgres") else "sqlite"
        pg_name = None
        if backend == "postgres":
            import sqlalchemy as sa

            pg_name = f"segue_bench_{uuid.uuid4().hex[:10]}"
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{pg_name}"'))
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
        else:
            url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        try:
            if name.startswith("lastfm"):
                result = case_lastfm(backend, url)
            elif name.startswith("gen-"):
                result = case_generate(name.removeprefix("gen-"))
            elif name.startswith("world-"):
                result = case_world(name.split("-")[1], backend, url)
            else:
                raise SystemExit(f"unknown case {name!r}; known: {DEFAULT_CASES}")
        finally:
            if pg_name:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--case", help="run one case in this process and print JSON")
    parser.add_argument("--cases", nargs="*", default=DEFAULT_CASES)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return
    print(f"{'case':<22}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak MiB':>10}")
    for name in args.cases:
        out = subprocess.run(
            [sys.executable, __file__, "--case", name], capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            print(f"{name:<22} FAILED: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        seconds = r.get("total_s", r.get("parse_s", 0) + r.get("ingest_s", 0))
        print(
            f"{r['case']:<22}{r['rows']:>12,}{seconds:>10.1f}{r['rows_per_s']:>12,.0f}"
            f"{r['peak_rss_mib']:>10,.0f}"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()

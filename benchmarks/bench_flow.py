"""The whole daily flow, timed: Last.fm 2K or a synthetic world, in a fresh data directory.

Runs ``segue flow run`` (Metaflow, local datastore) from ingestion to a promoted registry
version, then prints the wall time, each step's duration (from Metaflow's run records), the
chosen model's NDCG@10 and the batch rows. Record the figures in docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_flow.py --lastfm
    .venv/bin/python benchmarks/bench_flow.py --synth-events 10000000 --synth-users 100000 \
        --synth-tracks 50000 --models als
    .venv/bin/python benchmarks/bench_flow.py --synth-events 10000000 --synth-users 100000 \
        --synth-tracks 50000 --models als --nba-impressions 400000
    .venv/bin/python benchmarks/bench_flow.py --as-is --data-dir DIR --models pipeline

With ``--nba-impressions N`` the world comes from ``segue nba simulate`` (N logged messages)
and a click model is trained (``segue nba train``) before the flow, timed apart as the
previous days' work; the flow then runs on that store (``--ingest none``) and its batch step
computes the NBA campaign inputs too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LASTFM = ROOT.parent / "shared" / "datasets" / "lastfm-2k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lastfm", action="store_true", help="Ingest Last.fm 2K.")
    parser.add_argument(
        "--as-is",
        action="store_true",
        help="Ingest nothing: the --data-dir's store already holds the world (e.g. a copy of "
        "bench_serving.py's 1M-user one, /tmp/segue-bench-serving/segue.sqlite).",
    )
    parser.add_argument("--synth-events", type=int, default=0)
    parser.add_argument("--synth-users", type=int, default=20_000)
    parser.add_argument("--synth-tracks", type=int, default=20_000)
    parser.add_argument("--models", default="als,itemknn")
    parser.add_argument("--engine", default="in-process")
    parser.add_argument("--data-dir", type=Path, default=None, help="Default: a temp folder.")
    parser.add_argument(
        "--nba-impressions", type=int, default=0, help="Simulate N messages, train a click model."
    )
    args = parser.parse_args()
    if not args.lastfm and not args.synth_events and not args.as_is:
        parser.error("give --lastfm, --synth-events N or --as-is")
    if args.as_is and args.data_dir is None:
        parser.error("--as-is reads the world of --data-dir's store; give --data-dir")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="segue-bench-flow-")) / "data"
    flow = ["flow", "run", "--date", "2026-11-30", "--models", args.models,
            "--engine", args.engine]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGUE_", "METAFLOW_"))}

    def segue(*command: str) -> int:
        cli = [sys.executable, "-m", "segue.cli.main", "--data-dir", str(data_dir), *command]
        return subprocess.run(cli, env=env, check=False).returncode

    if args.nba_impressions:
        if args.lastfm:
            parser.error("--nba-impressions simulates its own world; drop --lastfm")
        started = time.perf_counter()
        world = ["--users", str(args.synth_users), "--tracks", str(args.synth_tracks),
                 "--events", str(args.synth_events)]  # fmt: skip
        if segue("nba", "simulate", *world, "--impressions", str(args.nba_impressions)):
            sys.exit("nba simulate failed")
        if segue("nba", "train"):
            sys.exit("nba train failed")
        print(f"before the flow (simulate world + messages, train the click model): "
              f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        flow += ["--ingest", "none"]
    elif args.as_is:
        flow += ["--ingest", "none"]
    elif args.lastfm:
        flow += ["--ingest", "lastfm", "--lastfm-dir", str(LASTFM)]
    else:
        flow += ["--ingest", "synthetic", "--synth-events", str(args.synth_events),
                 "--synth-users", str(args.synth_users),
                 "--synth-tracks", str(args.synth_tracks)]  # fmt: skip
    print(f"load before: {os.getloadavg()}")
    started = time.perf_counter()
    code = segue(*flow)
    wall = time.perf_counter() - started
    print(f"load after: {os.getloadavg()}")
    print(f"exit {code}; wall {wall:.1f} s ({wall / 60:.2f} min); data dir {data_dir}")
    if code != 0:
        sys.exit(code)
    _print_steps(data_dir)


def _print_steps(data_dir: Path) -> None:
    from segue.batch.runs import list_runs, metaflow_root
    from segue.config import Settings

    run = list_runs(Settings(data_dir=data_dir), limit=1)[0]
    print(f"run {run.run_id}: {run.metrics}")
    from metaflow import Flow, metadata, namespace

    metadata(f"local@{metaflow_root(Settings(data_dir=data_dir))}")
    namespace(None)
    for step in reversed(list(Flow("DailyFlow")[run.run_id])):
        spans = [(t.created_at, t.finished_at) for t in step]
        first = min(s for s, _ in spans)
        last = max(e for _, e in spans if e is not None)
        print(f"  {step.id:<8} {(last - first).total_seconds():7.1f} s  ({len(spans)} task(s))")


if __name__ == "__main__":
    main()

"""Spark ALS (local mode) versus the in-process ALS on the same synthetic world and split.

Both fit on the identical random 8:1:1 split (seed 0) through segue's evaluation runner and
are scored by the same metric code, so NDCG@10 is comparable. Prints per engine: fit time,
NDCG@10, recall@10, peak memory (in-process: this Python process's peak RSS after the fit;
Spark: the peak RSS of the JVM, read from /proc), and the Spark batch scoring of every user.
Record the figures in docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_spark.py --events 1000000 --users 20000 --tracks 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import tempfile
import time
from pathlib import Path


def _jvm_peak_mb(spark) -> float:
    """VmHWM of the JVM that pyspark launched (0 if it cannot be read)."""
    try:
        pid = spark.sparkContext._gateway.proc.pid
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    except (AttributeError, OSError, ValueError):
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--tracks", type=int, default=20_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--memory", default="4g")
    args = parser.parse_args()

    from segue.batch.daily import candidate
    from segue.data.synth import SynthParams
    from segue.dataset.from_store import load_interactions
    from segue.eval import RandomProtocol, evaluate
    from segue.jobs.ingest import load_synthetic_world
    from segue.models.spark_als import SparkConfig, spark_session
    from segue.store import open_store

    work = Path(tempfile.mkdtemp(prefix="segue-bench-spark-"))
    print(f"load before: {os.getloadavg()}")
    started = time.perf_counter()
    store = open_store(f"sqlite:///{work / 'segue.sqlite'}")
    params = SynthParams(seed=7, n_users=args.users, n_tracks=args.tracks, n_events=args.events)
    load_synthetic_world(store, params)
    data = load_interactions(store)
    print(f"world: {data} in {time.perf_counter() - started:.1f} s")
    protocol = RandomProtocol((0.8, 0.1, 0.1))

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    local = evaluate(data, [candidate("als", "in-process")], protocol, seeds=[0], k=10).runs[0]
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"in-process: fit {local.fit_seconds:.1f} s, {local.metrics}", flush=True)

    config = SparkConfig(master=args.master, driver_memory=args.memory,
                         executor_memory=args.memory, work_dir=str(work / "spark"))  # fmt: skip
    t = time.perf_counter()
    spark = spark_session(config)
    session_s = time.perf_counter() - t
    remote = evaluate(data, [candidate("als", "spark", config)], protocol, seeds=[0], k=10).runs[0]
    jvm_mb = _jvm_peak_mb(spark)
    print(f"spark: session {session_s:.1f} s, fit {remote.fit_seconds:.1f} s, {remote.metrics}, "
          f"JVM peak {jvm_mb:.0f} MiB; load {os.getloadavg()}", flush=True)  # fmt: skip

    # Spark's batch scoring of every user (fit on everything, then recommendForAllUsers)
    from segue.batch.daily import DayPlan, batch_recommendations, train_candidate
    from segue.registry.trained import load_trained

    plan = DayPlan(dt.date(2026, 11, 30), ("als",), engine="spark", k=10)
    t = time.perf_counter()
    train_candidate(data, "als", plan, work / "models", spark=config)
    fit_all_s = time.perf_counter() - t
    print(f"spark fit on all data {fit_all_s:.1f} s", flush=True)
    t = time.perf_counter()
    trained = load_trained(work / "models", "als")
    recs = work / "recs.parquet"
    rows = batch_recommendations(trained, work / "models", plan, recs, spark=config)
    batch_s = time.perf_counter() - t
    jvm_mb = max(jvm_mb, _jvm_peak_mb(spark))
    print(f"load after: {os.getloadavg()}")

    print(f"\n{'engine':<22} {'fit s':>8} {'NDCG@10':>8} {'R@10':>7} {'peak MB':>9}")
    for label, run, peak, note in (
        ("in-process (implicit)", local, rss_after, f"process; {rss_before:.0f} before the fit"),
        (f"spark {args.master}", remote, jvm_mb, f"JVM; session start {session_s:.1f} s"),
    ):
        m = run.metrics
        print(f"{label:<22} {run.fit_seconds:8.1f} {m['ndcg']:8.4f} {m['recall']:7.4f} "
              f"{peak:9.0f}  ({note})")  # fmt: skip
    print(f"spark fit on all data {fit_all_s:.1f} s; batch top-10 for every user: {rows:,} rows "
          f"in {batch_s:.1f} s")  # fmt: skip
    spark.stop()


if __name__ == "__main__":
    main()

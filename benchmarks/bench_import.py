"""Importing any log: a generated headerless, tab-separated ratings file of N rows (MovieLens'
u.data shape: user, item, rating, epoch seconds) streamed into a fresh SQLite store through
``segue.jobs.ingest.import_table``, users and items created from the events.

Prints rows/s and the peak resident memory of the process (``resource.getrusage``), the two
bars of issue 18 (>= 100k rows/s, <= 500 MB for 3M rows). Run:

    .venv/bin/python benchmarks/bench_import.py --rows 3000000
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from segue.data.sources.tabular import ReadOptions
from segue.jobs.ingest import import_table
from segue.store import open_store


def write_log(
    path: Path, rows: int, users: int, items: int, seed: int = 0, repeat_ids: bool = False
) -> None:
    """A made-up ratings log, written in blocks so the generator itself stays small.

    ``repeat_ids`` adds a fifth column, an event id that the second half of the file repeats
    from the first (row n has ``e{n mod rows/2}``): the worst case for a bulk load that must
    keep the first of each id without its unique index.
    """
    rng = random.Random(seed)
    ts = 880_000_000
    half = max(rows // 2, 1)
    with path.open("w") as out:
        block: list[str] = []
        for n in range(rows):
            ts += rng.randint(0, 20)
            event_id = f"\te{n % half}" if repeat_ids else ""
            block.append(
                f"{rng.randint(1, users)}\t{rng.randint(1, items)}\t{rng.randint(1, 5)}\t{ts}"
                f"{event_id}\n"
            )
            if len(block) == 100_000:
                out.writelines(block)
                block.clear()
        out.writelines(block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--users", type=int, default=70_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument(
        "--repeat-ids",
        action="store_true",
        help="an event-id column whose second half repeats the first (half the rows stored)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = folder / "ratings.data"
        write_log(log, args.rows, args.users, args.items, repeat_ids=args.repeat_ids)
        size = log.stat().st_size
        store = open_store(f"sqlite:///{folder / 'segue.sqlite'}")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        mapping = {"user_id": "user", "item_id": "item", "rating": "rating", "timestamp": "ts"}
        columns: tuple[str, ...] = ("user", "item", "rating", "ts")
        if args.repeat_ids:
            mapping["event_id"] = "id"
            columns += ("id",)
        result = import_table(
            store,
            log,
            "events",
            mapping,
            defaults={"type": "play"},
            options=ReadOptions(columns=columns),
        )
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        inserted = result.report.inserted.get("events", 0)
        skipped = result.report.ignored.get("events", 0)
        print(
            f"rows={result.rows:,} file={size / 1e6:.0f} MB inserted={inserted:,} "
            f"skipped={skipped:,} stored={store.count('events'):,} "
            f"users={result.created_users:,} items={result.created_items:,} "
            f"seconds={seconds:.1f} rows/s={result.rows / seconds:,.0f} "
            f"peak_rss_mib={peak:.0f} (before import {before:.0f})"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()

"""The daily run's online-metrics step: the last 30 days' figures per day and arm, written
where ``segue serve`` exposes them to Prometheus; and the exposure log by day, as Parquet
(``<data_dir>/exposures/date=YYYY-MM-DD/exposures.parquet``, the layout of the batch lists),
for analyses that should not query the serving store.

Recomputed whole every day rather than appended, because the late figures of a day (D7, D30,
churn) only become known weeks after it: ``<data_dir>/online/metrics.jsonl`` holds every row
of the window, ``<data_dir>/online/latest.json`` the rows of its last day with exposures, each
written to a temporary file and renamed so a scrape never reads half a file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from segue.jobs.listening import DAY_MS, day_start_ms
from segue.jobs.online_metrics import OnlineRow, online_metrics
from segue.store import Store

WINDOW_DAYS = 30


def online_folder(data_dir: Path) -> Path:
    return Path(data_dir) / "online"


def write_online_metrics(store: Store, data_dir: Path, day: dt.date) -> dict[str, Any]:
    """Figures for the ``WINDOW_DAYS`` days up to ``day``; a summary for the run's record."""
    rows = online_metrics(store, day - dt.timedelta(days=WINDOW_DAYS - 1), day)
    folder = online_folder(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _replace(folder / "metrics.jsonl", "".join(json.dumps(_record(r)) + "\n" for r in rows))
    last = max((r.day for r in rows), default=None)
    latest = [_record(r) for r in rows if r.day == last]
    _replace(folder / "latest.json", json.dumps({"day": last and last.isoformat(), "rows": latest}))
    exposures = write_exposure_days(store, data_dir, day)
    return {
        "rows": len(rows),
        "latest_day": last and last.isoformat(),
        "arms": len(latest),
        "exposures_exported": exposures,
    }


def write_exposure_days(store: Store, data_dir: Path, day: dt.date, days: int = 2) -> int:
    """The exposure log of ``day`` and the ``days − 1`` before it, one Parquet partition per
    day, rewritten whole (a day's late writes land on the next run); the rows written."""
    written = 0
    for back in range(days):
        when = day - dt.timedelta(days=back)
        start = day_start_ms(when)
        path = Path(data_dir) / "exposures" / f"date={when.isoformat()}" / "exposures.parquet"
        written += store.export_parquet("exposures", path, (start, start + DAY_MS))
    return written


def read_latest(data_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``latest.json``; none when the daily run has not written it."""
    path = online_folder(data_dir) / "latest.json"
    if not path.exists():
        return []
    return list(json.loads(path.read_text(encoding="utf-8"))["rows"])


def _record(row: OnlineRow) -> dict[str, Any]:
    return {**asdict(row), "day": row.day.isoformat()}


def _replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)

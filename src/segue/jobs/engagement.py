"""Engagement, retention, churn, novelty and diversity of the listeners served lists.

:mod:`segue.jobs.online_metrics` measures what a list led to in the next half hour; this
module measures the listeners who were shown lists — what an A/B test on a recommender is
really for. The population of a (day, arm) cell is every listener shown a list by that arm
that day (a listener's arm for a day is the arm of their first list that day), so every
figure compares like with like across arms:

* **sessions per listener** and **session minutes**: that day's plays and skips (Focus Mode
  left out) cut into sessions at gaps of more than ``session_gap_s``; a session lasts from
  its first event to the end of its last play;
* **D1 / D7 / D30 retention**: the share of the cell's listeners who played anything on day
  d+1 / d+7 / d+30 — ``None`` while that day is past the last day the log has;
* **churn**: the share with no play or skip on any of the ``churn_days`` days after d (the
  complement of rolling retention over that window), ``None`` until the window has passed;
* **novelty**: mean self-information, −log2 of an item's share of the plays in the 28 days
  before the list's day (add-one smoothed), over the items shown — higher is less familiar;
* **diversity**: mean share of distinct artists in a list (an item without an artist counts
  as its own), 1.0 when no artist repeats.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from segue.jobs.listening import DAY_MS, day_start_ms, play_events
from segue.store import Store

RETENTION_DAYS = (1, 7, 30)
POPULARITY_DAYS = 28


@dataclass(frozen=True)
class Engagement:
    """One (day, arm) cell; see the module docstring for each figure."""

    sessions_per_listener: float
    session_minutes: float
    retention: dict[int, float | None]
    churn: float | None
    novelty: float
    diversity: float


def engagement(
    store: Store,
    lists: pd.DataFrame,
    *,
    session_gap_s: int = 1_800,
    churn_days: int = 14,
) -> dict[tuple[dt.date, str], Engagement]:
    """Figures per (day, arm) for ``lists``, the table of
    :func:`segue.jobs.online_metrics.attributed_lists` with its ``items`` column kept."""
    if lists.empty:
        return {}
    first_day = min(lists["day"])
    last_day = max(lists["day"])
    start_ms = day_start_ms(first_day) - POPULARITY_DAYS * DAY_MS
    end_ms = day_start_ms(last_day) + (max(max(RETENTION_DAYS), churn_days) + 1) * DAY_MS
    events = _activity(store, start_ms, end_ms)
    horizon = events["day"].max() if not events.empty else last_day
    cohorts = (
        lists.sort_values("ts_ms")
        .drop_duplicates(["day", "user_id"])[["day", "user_id", "arm"]]
        .reset_index(drop=True)
    )
    active = set(zip(events["user_id"], events["day"], strict=True))
    sessions = _sessions(events, session_gap_s * 1000)
    novelty = _novelty(lists, events)
    diversity = _diversity(store, lists)
    out: dict[tuple[dt.date, str], Engagement] = {}
    for (day, arm), cell in cohorts.groupby(["day", "arm"], sort=True):
        users = cell["user_id"].tolist()
        retention: dict[int, float | None] = {}
        for n in RETENTION_DAYS:
            later = day + dt.timedelta(days=n)
            retention[n] = (
                None if later > horizon else float(np.mean([(u, later) in active for u in users]))
            )
        churn = None
        if day + dt.timedelta(days=churn_days) <= horizon:
            window = [day + dt.timedelta(days=n) for n in range(1, churn_days + 1)]
            churn = float(np.mean([not any((u, d) in active for d in window) for u in users]))
        mine = sessions[(sessions["day"] == day) & sessions["user_id"].isin(users)]
        out[day, str(arm)] = Engagement(
            sessions_per_listener=float(len(mine) / len(users)),
            session_minutes=float(mine["minutes"].mean()) if len(mine) else 0.0,
            retention=retention,
            churn=churn,
            novelty=float(novelty.get((day, arm), 0.0)),
            diversity=float(diversity.get((day, arm), 1.0)),
        )
    return out


def _activity(store: Store, start_ms: int, end_ms: int) -> pd.DataFrame:
    """Plays and skips (not Focus Mode) in ``[start_ms, end_ms)``, with their UTC day."""
    events = play_events(store, start_ms, end_ms).rename(columns={"event_ts": "ts_ms"})
    events["play"] = ~events["skip"]
    events["day"] = pd.to_datetime(events["ts_ms"], unit="ms", utc=True).dt.date
    return events


def _sessions(events: pd.DataFrame, gap_ms: int) -> pd.DataFrame:
    """One row per session: ``user_id``, ``day`` (of its first event), ``minutes``."""
    if events.empty:
        return pd.DataFrame({"user_id": [], "day": [], "minutes": []})
    ordered = events.sort_values(["user_id", "ts_ms"], kind="stable")
    users = ordered["user_id"].to_numpy()
    ts = ordered["ts_ms"].to_numpy()
    new = np.ones(len(ordered), dtype=bool)
    new[1:] = (users[1:] != users[:-1]) | (ts[1:] - ts[:-1] > gap_ms)
    session = np.cumsum(new)
    ends = ts + ordered["ms_played"].to_numpy()
    frame = pd.DataFrame(
        {"session": session, "user_id": users, "day": ordered["day"].to_numpy(),
         "start": ts, "end": ends}
    )  # fmt: skip
    grouped = frame.groupby("session").agg(
        user_id=("user_id", "first"), day=("day", "first"), start=("start", "min"),
        end=("end", "max"),
    )  # fmt: skip
    grouped["minutes"] = (grouped["end"] - grouped["start"]) / 60_000
    return grouped[["user_id", "day", "minutes"]].reset_index(drop=True)


def _novelty(lists: pd.DataFrame, events: pd.DataFrame) -> dict[tuple[dt.date, str], float]:
    plays = events[events["play"]]
    out: dict[tuple[dt.date, str], float] = {}
    for day, shown in lists.groupby("day", sort=True):
        since = day - dt.timedelta(days=POPULARITY_DAYS)
        before = plays[(plays["day"] >= since) & (plays["day"] < day)]
        counts = before["item_id"].value_counts()
        total = float(counts.sum())
        items = shown.explode("items")
        seen = items["items"].map(counts).fillna(0.0).to_numpy(np.float64)
        catalogue = len(counts) + items["items"].nunique()
        info = -np.log2((seen + 1.0) / (total + catalogue))
        for arm, values in pd.Series(info, index=items["arm"].to_numpy()).groupby(level=0):
            out[day, str(arm)] = float(values.mean())
    return out


def _diversity(store: Store, lists: pd.DataFrame) -> dict[tuple[dt.date, str], float]:
    columns = store.table_columns("items", ["id", "artist_id"])
    artist = dict(zip(columns["id"], columns["artist_id"], strict=True))
    share = [
        len({artist.get(item) or f"item:{item}" for item in items}) / len(items) if items else 1.0
        for items in lists["items"]
    ]
    frame = pd.DataFrame({"day": lists["day"], "arm": lists["arm"], "share": share})
    return {
        (day, str(arm)): float(v) for (day, arm), v in frame.groupby(["day", "arm"])["share"].mean()
        .items()
    }  # fmt: skip

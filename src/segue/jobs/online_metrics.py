"""Online metrics from the exposure log and the events that followed: ``segue metrics online``.

A served list (an exposure) *led to* a play when the same listener played one of its items
within ``window_s`` after it was shown — the attribution every streaming service's
"click-through" for lists means, since a listener does not click a list, they play from it.
Per day (UTC) and per serving arm (model, version, and each experiment's variant):

* **lists** shown and **listeners** shown one;
* **CTR**: the share of lists that led to a play;
* **conversion**: the share of lists that led to a play of at least ``conversion_ms``;
* **skip rate**: skips among the plays and skips the lists led to;
* **minutes**: listening the lists led to, per listener;
* and, of the listeners shown lists, sessions, D1/D7/D30 retention, churn, and the novelty and
  diversity of what they were shown (:mod:`segue.jobs.engagement`).

Only listening the log can attribute is counted: plays from elsewhere in the app are not a
list's doing. The events are read once for the range plus the window, as one columnar log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from segue.errors import SegueError
from segue.jobs.engagement import engagement
from segue.jobs.listening import DAY_MS, day_start_ms, play_events
from segue.store import Store


@dataclass(frozen=True)
class OnlineRow:
    day: dt.date
    arm: str
    lists: int
    listeners: int
    ctr: float
    conversion: float
    skip_rate: float
    minutes_per_listener: float
    sessions_per_listener: float = 0.0
    session_minutes: float = 0.0
    d1: float | None = None
    d7: float | None = None
    d30: float | None = None
    churn: float | None = None
    novelty: float = 0.0
    diversity: float = 1.0


def online_metrics(
    store: Store,
    start: dt.date,
    end: dt.date,
    *,
    window_s: int = 1_800,
    conversion_ms: int = 30_000,
    session_gap_s: int = 1_800,
    churn_days: int = 14,
) -> list[OnlineRow]:
    """Rows for the days ``start`` to ``end`` inclusive; see the module docstring."""
    table = lists_on_days(store, start, end, window_s=window_s, conversion_ms=conversion_ms)
    if table.empty:
        return []
    if churn_days <= 0 or session_gap_s <= 0:
        raise SegueError("the churn window and the session gap must be positive")
    cells = engagement(store, table, session_gap_s=session_gap_s, churn_days=churn_days)
    rows = []
    for (day, arm), group in table.groupby(["day", "arm"], sort=True):
        plays, skips = group["played"].sum(), group["skips"].sum()
        listeners = group["user_id"].nunique()
        cell = cells[day, str(arm)]
        rows.append(
            OnlineRow(
                day=day,
                arm=str(arm),
                lists=len(group),
                listeners=int(listeners),
                ctr=float((group["played"] > 0).mean()),
                conversion=float((group["converted"] > 0).mean()),
                skip_rate=float(skips / (plays + skips)) if plays + skips else 0.0,
                minutes_per_listener=float(group["ms"].sum() / 60_000 / listeners),
                sessions_per_listener=cell.sessions_per_listener,
                session_minutes=cell.session_minutes,
                d1=cell.retention[1],
                d7=cell.retention[7],
                d30=cell.retention[30],
                churn=cell.churn,
                novelty=cell.novelty,
                diversity=cell.diversity,
            )
        )
    return rows


def lists_on_days(
    store: Store, start: dt.date, end: dt.date, *, window_s: int, conversion_ms: int
) -> pd.DataFrame:
    """:func:`attributed_lists` for the UTC days ``start`` to ``end`` inclusive, the range
    and window checked first (one line naming what is wrong)."""
    if end < start:
        raise SegueError(f"--to ({end}) is before --from ({start})")
    if window_s <= 0:
        raise SegueError(f"the attribution window must be positive, got {window_s} s")
    return attributed_lists(
        store,
        day_start_ms(start),
        day_start_ms(end) + DAY_MS,
        window_ms=window_s * 1000,
        conversion_ms=conversion_ms,
    )


def attributed_lists(
    store: Store, start_ms: int, end_ms: int, *, window_ms: int, conversion_ms: int
) -> pd.DataFrame:
    """One row per list served in ``[start_ms, end_ms)``, indexed by request id: ``user_id``,
    ``ts_ms``, ``day``, ``arm``, ``experiments`` (dict), ``items`` (as shown), ``path``,
    ``served_us`` (how long serving took; NaN where not logged), ``context``,
    ``propensities``, and what it led to within ``window_ms``: ``played`` (plays of its
    items), ``played_items`` (which), ``converted`` (of them, at least ``conversion_ms``
    long), ``skips``, ``ms`` (milliseconds listened)."""
    shown = store.exposures_between(start_ms, end_ms)
    if not shown:
        return pd.DataFrame()
    events = play_events(store, start_ms, end_ms + window_ms)
    lists = pd.DataFrame(
        {
            "request_id": [e.request_id for e in shown],
            "user_id": [e.user_id for e in shown],
            "ts_ms": [e.ts_ms for e in shown],
            "arm": [_arm(e.model, e.version, e.experiments) for e in shown],
            "experiments": [e.experiments for e in shown],
            "path": [e.path for e in shown],
            "context": [e.context for e in shown],
            "propensities": [e.propensities for e in shown],
            "served_us": [float(e.context.get("served_us", "nan")) for e in shown],
            "items": [list(e.items) for e in shown],
        }
    )
    lists["day"] = pd.to_datetime(lists["ts_ms"], unit="ms", utc=True).dt.date
    pairs = lists[["request_id", "user_id", "ts_ms", "items"]].explode("items")
    joined = pairs.rename(columns={"items": "item_id"}).merge(
        events, on=["user_id", "item_id"], how="inner"
    )
    after = joined[
        (joined["event_ts"] >= joined["ts_ms"]) & (joined["event_ts"] < joined["ts_ms"] + window_ms)
    ]
    played = after[~after["skip"]]
    per_list = pd.DataFrame(
        {
            "played_items": played.groupby("request_id")["item_id"].agg(frozenset),
            "played": played.groupby("request_id").size(),
            "converted": played[played["ms_played"] >= conversion_ms].groupby("request_id").size(),
            "skips": after[after["skip"]].groupby("request_id").size(),
            "ms": played.groupby("request_id")["ms_played"].sum(),
        }
    )
    table = lists.set_index("request_id").join(per_list)
    for column in ("played", "converted", "skips", "ms"):
        table[column] = table[column].fillna(0)
    table["played_items"] = [
        x if isinstance(x, frozenset) else frozenset() for x in table["played_items"]
    ]
    return table


def _arm(model: str, version: str, experiments: dict[str, str]) -> str:
    variants = ",".join(f"{k}={v}" for k, v in sorted(experiments.items()))
    return f"{model}@{version}" + (f" [{variants}]" if variants else "")

"""Listening as the online metrics read it: days in UTC and the plays and skips of a range
as one frame (shared by :mod:`segue.jobs.online_metrics` and :mod:`segue.jobs.engagement`)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from segue.data.model import EVENT_CODES, EventType
from segue.store import Store

DAY_MS = 86_400_000


def day_start_ms(day: dt.date) -> int:
    """Epoch milliseconds of the day's midnight, UTC."""
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)


def play_events(store: Store, start_ms: int, end_ms: int) -> pd.DataFrame:
    """Plays and skips in ``[start_ms, end_ms)`` (Focus Mode left out) as a frame: ``user_id``,
    ``item_id``, ``event_ts``, ``skip``, ``ms_played``."""
    log = store.interactions(
        [EventType.PLAY, EventType.SKIP], include_focus=False, start_ms=start_ms, end_ms=end_ms
    )
    return pd.DataFrame(
        {
            "user_id": np.asarray(log.user_ids)[log.user].astype(str),
            "item_id": np.asarray(log.item_ids)[log.item].astype(str),
            "event_ts": log.ts_ms,
            "skip": log.type == EVENT_CODES[EventType.SKIP],
            "ms_played": np.nan_to_num(log.ms_played.astype(np.float64)),
        }
    )

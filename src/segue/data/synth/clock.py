"""Local time for every user: UTC offsets per time zone and day, and the listening curves.

Sessions are placed in the user's *local* day and hour, then moved to UTC with the offset of
their zone on that day (taken at local noon, so daylight-saving changes apply from the day they
happen; the hour around a switch is the only place this is approximate).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np

from segue.data.synth.tables import HOURLY_PROFILE, WEEKDAY_PROFILE

HOUR_MS = 3_600_000


def utc_offsets_ms(timezones: tuple[str, ...], start: dt.date, n_days: int) -> np.ndarray:
    """``(len(timezones), n_days)`` UTC offsets in ms (local = UTC + offset)."""
    out = np.empty((len(timezones), n_days), dtype=np.int64)
    for i, name in enumerate(timezones):
        zone = ZoneInfo(name)
        for d in range(n_days):
            noon = dt.datetime.combine(start + dt.timedelta(days=d), dt.time(12), tzinfo=zone)
            offset = noon.utcoffset()
            assert offset is not None
            out[i, d] = int(offset.total_seconds() * 1000)
    return out


def hour_cdf() -> np.ndarray:
    """Cumulative :data:`HOURLY_PROFILE`, for drawing session-start hours."""
    cdf = np.cumsum(HOURLY_PROFILE)
    return cdf / cdf[-1]


def weekday_acceptance(start: dt.date, n_days: int) -> np.ndarray:
    """Per day of the period, the weekday weight over the largest weight (rejection sampling)."""
    weekday = (start.weekday() + np.arange(n_days)) % 7
    return WEEKDAY_PROFILE[weekday] / WEEKDAY_PROFILE.max()

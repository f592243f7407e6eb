"""The part of a listener's local day a play or a request happens in: their context.

Listening follows the day (calm mornings, energetic evenings), and what suits a listener at
7 in the morning is not what suits them at 11 at night, so the staged recommender reads the
daypart of each play and of each request. Four parts of six local hours each; the local hour
comes from the listener's time zone, with the offset of the day the instant falls on
(daylight-saving time included). An unknown zone or time gives :data:`UNKNOWN`.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np

DAYPARTS = ("night", "morning", "afternoon", "evening")  # local [0, 6), [6, 12), [12, 18), [18, 24)
HOURS_PER_DAYPART = 24 // len(DAYPARTS)
UNKNOWN = -1
_MS_PER_DAY = 86_400_000
#: Instants outside (the epoch, the last day a datetime holds) are unknown times: the stores'
#: "no timestamp" markers (-1 ms, the smallest int64), never a listening hour.
_LAST_DAY = (dt.date(9999, 12, 30) - dt.date(1970, 1, 1)).days


def daypart_of_hour(hour: np.ndarray | int) -> np.ndarray:
    """Each local hour's (0-23) daypart index into :data:`DAYPARTS`."""
    return (np.asarray(hour, dtype=np.int64) % 24 // HOURS_PER_DAYPART).astype(np.int8)


def local_dayparts(utc_days: np.ndarray, zones: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The daypart of each instant (``utc_days``: days since the epoch, UTC, as
    ``Interactions.pair_times`` gives them) in its listener's zone (``zones``: an index into
    ``names``, -1 unknown); :data:`UNKNOWN` where the zone or the instant is not known (not
    finite, or a "no timestamp" marker outside the epoch and the year 9999)."""
    utc_days = np.asarray(utc_days, dtype=np.float64)
    zones = np.asarray(zones, dtype=np.int64)
    out = np.full(len(utc_days), UNKNOWN, dtype=np.int8)
    known = (zones >= 0) & np.isfinite(utc_days) & (utc_days > 0) & (utc_days < _LAST_DAY)
    for z in np.unique(zones[known]):
        at = np.flatnonzero(known & (zones == z))
        day = np.floor(utc_days[at]).astype(np.int64)
        distinct, which = np.unique(day, return_inverse=True)
        zone = ZoneInfo(names[int(z)])
        offsets = np.array([_offset_hours(zone, int(d)) for d in distinct])
        hours = np.floor(utc_days[at] * 24.0 + offsets[which]).astype(np.int64)
        out[at] = daypart_of_hour(hours)
    return out


def daypart_now(timezone: str | None, now_ms: int) -> int:
    """The daypart of the instant ``now_ms`` (ms since the epoch) in ``timezone``, or
    :data:`UNKNOWN` without one: a served request's context."""
    if not timezone:
        return UNKNOWN
    return int(local_dayparts(np.array([now_ms / _MS_PER_DAY]), np.array([0]), (timezone,))[0])


def _offset_hours(zone: ZoneInfo, day: int) -> float:
    """The zone's UTC offset in hours at noon UTC of the day (``day`` since the epoch)."""
    noon = dt.datetime(1970, 1, 1, 12, tzinfo=dt.UTC) + dt.timedelta(days=day)
    offset = noon.astimezone(zone).utcoffset()
    return 0.0 if offset is None else offset.total_seconds() / 3600.0

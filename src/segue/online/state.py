"""Online feature store: the per-user and per-item state the next recommendation request reads.

Why a separate store: the offline models are retrained hourly or daily, but a skip, a like or a
play must change the very next request (no more of the artist just skipped, "trending now").
This module keeps that fast state; :func:`open_state` picks the in-process implementation
(default, no servers) or :class:`~segue.online.redis_state.RedisState` when a Redis URL is set.
Both implementations follow the same semantics, documented here once:

* **Focus Mode** events (``event.focus``) change nothing at all, not even the seen-id set.
* **Idempotency**: an event id applied for a user is remembered for a bounded window (the last
  ``SEEN_MAX_IDS`` ids or ``SEEN_TTL_S`` seconds, whichever is shorter), so a redelivered
  event is not counted twice. Redeliveries older than that window are applied again.
* **Sessions** are in event time: a session ends after ``session_timeout_ms`` (default 30
  minutes) without events. An event starts a new session, resetting the skip/like counters,
  when the user has no session, when its timestamp is more than the timeout after the session's
  last event, or when it carries a ``session_id`` different from the current one. Without a
  ``session_id`` the session is named ``"<user_id>@<started_ms>"``.
* **Recent plays** are ``play`` events, newest *delivered* first, at most ``RECENT_PLAYS_MAX``.
* **Skips/likes** are ``skip``/``like`` events counted per artist (``artist_of``) and per genre
  (``genres_of``) within the current session; items missing from the maps only count nowhere.
* **Batch lists** are each user's published top list per registry name, with the version that
  made it (:class:`BatchList`); a publish overwrites them user by user, so a reader checks the
  version against the production one before trusting a list.
* **Item counters** are per-minute buckets of ``play`` events (weighted by ``event.count``):
  "last hour" is the 60 minute-buckets ending with the bucket of ``now_ms`` (inclusive), "last
  day" the 1,440 such buckets; buckets after ``now_ms`` are not counted.

Events are applied in the order given; the event bus delivers each user's events in order.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from segue.data.model import Event, EventType, to_epoch_ms
from segue.errors import SegueError

#: Default gap (event time) after which a listening session has ended.
SESSION_TIMEOUT_MS = 30 * 60 * 1000
#: Length of each user's recent-plays list.
RECENT_PLAYS_MAX = 200
#: Idempotency window: how many applied event ids per user, and for how long, are remembered.
SEEN_MAX_IDS = 1000
SEEN_TTL_S = 24 * 3600
MINUTE_MS = 60_000
HOUR_MINUTES = 60
DAY_MINUTES = 24 * 60


class StateUnavailable(SegueError):
    """The online state server (Redis) cannot be reached."""


@dataclass
class SessionState:
    """The user's current listening session and what they skipped or liked in it."""

    session_id: str
    started_ms: int
    last_ms: int
    skips_by_artist: dict[str, int] = field(default_factory=dict)
    skips_by_genre: dict[str, int] = field(default_factory=dict)
    likes_by_artist: dict[str, int] = field(default_factory=dict)
    likes_by_genre: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchList:
    """A user's published top list: the registry entry and version that made it, best first."""

    name: str
    version: str
    items: list[str]
    scores: list[float]


#: What :meth:`OnlineState.set_batch_lists` takes per user: (user_id, item ids, scores).
BatchRow = tuple[str, Sequence[str], Sequence[float]]


def minute_of(ms: int) -> int:
    """The per-minute bucket of an epoch-milliseconds timestamp."""
    return ms // MINUTE_MS


def window_counts(buckets: Mapping[int, int], now_ms: int) -> tuple[int, int]:
    """(last hour, last day) play counts from minute buckets, as defined in the module doc."""
    now_m = minute_of(now_ms)
    hour = day = 0
    for minute, count in buckets.items():
        age = now_m - minute
        if 0 <= age < DAY_MINUTES:
            day += count
            if age < HOUR_MINUTES:
                hour += count
    return hour, day


def check_vector(vector: np.ndarray) -> np.ndarray:
    """A 1-D float32 copy of ``vector``; anything else is a caller bug worth a clear message."""
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim != 1:
        raise ValueError(f"user vector must be 1-D, got shape {arr.shape}")
    return arr.copy()


class OnlineState(ABC):
    """Fast per-user and per-item state; see the module docstring for the exact semantics."""

    def __init__(self, *, session_timeout_ms: int = SESSION_TIMEOUT_MS) -> None:
        if session_timeout_ms <= 0:
            raise ValueError(f"session_timeout_ms must be positive, got {session_timeout_ms}")
        self.session_timeout_ms = session_timeout_ms

    @property
    def degraded(self) -> bool:
        """True while this state answers from a fallback (a Redis state whose Redis is away):
        answers must say so, as ``/v1/ready`` does."""
        return False

    @abstractmethod
    def apply(
        self,
        events: Sequence[Event],
        *,
        artist_of: Mapping[str, str] | None = None,
        genres_of: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        """Update the state from ``events``; returns how many were applied (not focus/duplicate)."""

    @abstractmethod
    def recent_plays(self, user_id: str, n: int = 50) -> list[str]:
        """The user's last ``n`` played item ids, newest first."""

    @abstractmethod
    def session(self, user_id: str, now_ms: int | None = None) -> SessionState | None:
        """The user's session, or None if there is none (or it has ended by ``now_ms``)."""

    @abstractmethod
    def last_context(self, user_id: str) -> dict[str, object]:
        """Latest non-empty ``device``/``surface``, newest event's ``timestamp_ms``; {} if none."""

    @abstractmethod
    def set_vector(self, user_id: str, vector: np.ndarray) -> None:
        """Store the user's fold-in vector (float32)."""

    @abstractmethod
    def get_vector(self, user_id: str) -> np.ndarray | None:
        """The stored user vector, or None."""

    @abstractmethod
    def item_counts(self, item_ids: Sequence[str], now_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """(plays in the last hour, plays in the last day) per item, as int64 arrays."""

    @abstractmethod
    def set_onboarding(self, user_id: str, items: Sequence[str], genres: Sequence[str]) -> None:
        """Remember a new listener's onboarding picks (item ids) and genres, replacing any."""

    @abstractmethod
    def onboarding(self, user_id: str) -> tuple[list[str], list[str]]:
        """The user's onboarding (item ids, genres); two empty lists if none."""

    def set_batch_lists(self, name: str, version: str, rows: Iterable[BatchRow]) -> int:
        """Store each user's published top list of ``name`` made by ``version`` (replacing the
        user's previous one); returns how many users. Not abstract, so that wrappers of the
        state written before batch lists existed keep working; they answer that they hold none.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no batch lists")

    def batch_list(self, user_id: str, name: str) -> BatchList | None:
        """The user's latest published top list of ``name``, or None."""
        raise NotImplementedError(f"{type(self).__name__} keeps no batch lists")

    def forget_user(self, user_id: str) -> int:
        """Erase everything held about the listener (plays, session, context, vector,
        onboarding, batch lists, the seen-id window; in Redis also their messages still on the
        streams); returns how many keys or entries went. Item counters carry no id and stay.
        Not abstract, like the batch lists: wrappers written before erasure existed say so."""
        raise NotImplementedError(f"{type(self).__name__} cannot forget a listener")

    def export_user(self, user_id: str) -> dict[str, object]:
        """What the state holds about the listener, JSON-ready (see :func:`user_export`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot export a listener")

    def for_request(
        self, user_id: str, n: int, now_ms: int | None = None
    ) -> tuple[list[str], SessionState | None, tuple[list[str], list[str]]]:
        """(recent plays, session, onboarding): all a recommendation request reads, at once."""
        return (
            self.recent_plays(user_id, n),
            self.session(user_id, now_ms),
            self.onboarding(user_id),
        )

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def _session_expired(self, s: SessionState, now_ms: int | None) -> bool:
        return now_ms is not None and now_ms - s.last_ms > self.session_timeout_ms


def user_export(
    plays: Sequence[str],
    session: SessionState | None,
    context: Mapping[str, object],
    vector: np.ndarray | None,
    onboarding: tuple[Sequence[str], Sequence[str]],
    batch_lists: Iterable[BatchList],
    seen_events: int,
) -> dict[str, object]:
    """The one shape of :meth:`OnlineState.export_user`, whatever the backend."""
    return {
        "recent_plays": list(plays),
        "session": None if session is None else asdict(session),
        "context": dict(context),
        "vector": None if vector is None else [float(x) for x in vector],
        "onboarding": {"items": list(onboarding[0]), "genres": list(onboarding[1])},
        "batch_lists": [asdict(b) for b in sorted(batch_lists, key=lambda b: b.name)],
        "seen_events": int(seen_events),
    }


@dataclass
class _User:
    seen: OrderedDict[str, float] = field(default_factory=OrderedDict)
    plays: list[str] = field(default_factory=list)  # newest first
    session: SessionState | None = None
    context: dict[str, object] = field(default_factory=dict)
    vector: np.ndarray | None = None
    onboarding: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))


class InProcessState(OnlineState):
    """Thread-safe dictionaries in this process: the default, lost on restart."""

    def __init__(self, *, session_timeout_ms: int = SESSION_TIMEOUT_MS) -> None:
        super().__init__(session_timeout_ms=session_timeout_ms)
        self._lock = threading.RLock()
        self._users: dict[str, _User] = defaultdict(_User)
        self._items: dict[str, dict[int, int]] = defaultdict(dict)
        self._batch: dict[tuple[str, str], BatchList] = {}

    def apply(
        self,
        events: Sequence[Event],
        *,
        artist_of: Mapping[str, str] | None = None,
        genres_of: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        artist_of = artist_of or {}
        genres_of = genres_of or {}
        applied = 0
        with self._lock:
            for event in events:
                if event.focus:
                    continue
                user = self._users[event.user_id]
                if not self._first_time(user, event.event_id):
                    continue
                self._apply_one(user, event, artist_of, genres_of)
                applied += 1
        return applied

    @staticmethod
    def _first_time(user: _User, event_id: str) -> bool:
        now = time.time()
        seen = user.seen
        while seen and next(iter(seen.values())) < now - SEEN_TTL_S:
            seen.popitem(last=False)
        if event_id in seen:
            return False
        seen[event_id] = now
        while len(seen) > SEEN_MAX_IDS:
            seen.popitem(last=False)
        return True

    def _apply_one(
        self,
        user: _User,
        event: Event,
        artist_of: Mapping[str, str],
        genres_of: Mapping[str, Sequence[str]],
    ) -> None:
        ts = to_epoch_ms(event.timestamp)
        s = user.session
        if (
            s is None
            or ts - s.last_ms > self.session_timeout_ms
            or (event.session_id and event.session_id != s.session_id)
        ):
            sid = event.session_id or f"{event.user_id}@{ts}"
            s = user.session = SessionState(sid, ts, ts)
        else:
            s.last_ms = max(s.last_ms, ts)
        if event.type in (EventType.SKIP, EventType.LIKE):
            by_artist, by_genre = (
                (s.skips_by_artist, s.skips_by_genre)
                if event.type == EventType.SKIP
                else (s.likes_by_artist, s.likes_by_genre)
            )
            artist = artist_of.get(event.item_id)
            if artist:
                by_artist[artist] = by_artist.get(artist, 0) + 1
            for genre in genres_of.get(event.item_id, ()):
                by_genre[genre] = by_genre.get(genre, 0) + 1
        if event.type == EventType.PLAY:
            user.plays.insert(0, event.item_id)
            del user.plays[RECENT_PLAYS_MAX:]
            buckets = self._items[event.item_id]
            minute = minute_of(ts)
            buckets[minute] = buckets.get(minute, 0) + event.count
            if len(buckets) > DAY_MINUTES + 1:  # forget buckets older than a day (event time)
                newest = max(buckets)
                for m in [m for m in buckets if newest - m >= DAY_MINUTES]:
                    del buckets[m]
        ctx = user.context
        if ts >= int(ctx.get("timestamp_ms", -1)):  # type: ignore[call-overload]
            ctx["timestamp_ms"] = ts
            if event.device:
                ctx["device"] = event.device
            if event.surface:
                ctx["surface"] = event.surface

    def close(self) -> None:
        """Nothing to release: the state lives and dies with this object."""

    def recent_plays(self, user_id: str, n: int = 50) -> list[str]:
        with self._lock:
            user = self._users.get(user_id)
            return list(user.plays[: max(n, 0)]) if user else []

    def session(self, user_id: str, now_ms: int | None = None) -> SessionState | None:
        with self._lock:
            user = self._users.get(user_id)
            s = user.session if user else None
            if s is None or self._session_expired(s, now_ms):
                return None
            return SessionState(
                s.session_id,
                s.started_ms,
                s.last_ms,
                dict(s.skips_by_artist),
                dict(s.skips_by_genre),
                dict(s.likes_by_artist),
                dict(s.likes_by_genre),
            )

    def last_context(self, user_id: str) -> dict[str, object]:
        with self._lock:
            user = self._users.get(user_id)
            return dict(user.context) if user else {}

    def set_vector(self, user_id: str, vector: np.ndarray) -> None:
        arr = check_vector(vector)
        with self._lock:
            self._users[user_id].vector = arr

    def get_vector(self, user_id: str) -> np.ndarray | None:
        with self._lock:
            user = self._users.get(user_id)
            return None if user is None or user.vector is None else user.vector.copy()

    def set_onboarding(self, user_id: str, items: Sequence[str], genres: Sequence[str]) -> None:
        with self._lock:
            self._users[user_id].onboarding = (list(items), list(genres))

    def onboarding(self, user_id: str) -> tuple[list[str], list[str]]:
        with self._lock:
            user = self._users.get(user_id)
            if user is None:
                return [], []
            return list(user.onboarding[0]), list(user.onboarding[1])

    def set_batch_lists(self, name: str, version: str, rows: Iterable[BatchRow]) -> int:
        lists = {
            (name, user_id): BatchList(name, version, list(items), [float(x) for x in scores])
            for user_id, items, scores in rows
        }
        with self._lock:
            self._batch.update(lists)
        return len(lists)

    def batch_list(self, user_id: str, name: str) -> BatchList | None:
        with self._lock:
            found = self._batch.get((name, user_id))
        return (
            None
            if found is None
            else BatchList(found.name, found.version, list(found.items), list(found.scores))
        )

    def forget_user(self, user_id: str) -> int:
        with self._lock:
            forgot = int(self._users.pop(user_id, None) is not None)
            for key in [k for k in self._batch if k[1] == user_id]:
                del self._batch[key]
                forgot += 1
        return forgot

    def export_user(self, user_id: str) -> dict[str, object]:
        with self._lock:
            user = self._users.get(user_id)
            lists = [b for (_, uid), b in self._batch.items() if uid == user_id]
            if user is None:
                return user_export([], None, {}, None, ([], []), lists, 0)
            return user_export(
                user.plays,
                self.session(user_id),
                user.context,
                user.vector,
                user.onboarding,
                lists,
                len(user.seen),
            )

    def item_counts(self, item_ids: Sequence[str], now_ms: int) -> tuple[np.ndarray, np.ndarray]:
        hour = np.zeros(len(item_ids), dtype=np.int64)
        day = np.zeros(len(item_ids), dtype=np.int64)
        with self._lock:
            for i, item_id in enumerate(item_ids):
                buckets = self._items.get(item_id)
                if buckets:
                    hour[i], day[i] = window_counts(buckets, now_ms)
        return hour, day

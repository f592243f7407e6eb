"""Redis implementation of the online state, shared by every API process.

Why Lua: one event touches the seen-id set, the session and its counters, the recent plays,
the context and an item counter. A server-side script applies a chunk of events atomically in
one round trip, so two processes applying the same user's events (or the same redelivered
event) cannot interleave. The script derives the keys from the prefix and the ids it is given,
which a single Redis server (or a replicated pair) allows and Redis Cluster does not.
Key layout under ``prefix`` (all with TTLs, so abandoned users disappear):

* ``u:<user>:seen``  sorted set event_id -> arrival time (s): idempotency window
* ``u:<user>:plays`` list of item ids, newest first, trimmed to ``RECENT_PLAYS_MAX``
* ``u:<user>:sess``  hash session_id / started_ms / last_ms; ``u:<user>:sess:{sa,sg,la,lg}``
  hashes of skips/likes by artist/genre in that session
* ``u:<user>:ctx``   hash device / surface / timestamp_ms;  ``u:<user>:vec`` float32 bytes
* ``u:<user>:onb``   JSON onboarding picks and genres
* ``u:<user>:batch:<name>`` JSON published top list (version, items, scores) of a registry name
* ``i:<item>:m:<hour>`` hash minute -> plays, one key per item and hour (event time), expiring
  ``ITEM_TTL_S`` after the last write, so old buckets need no clean-up pass.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from itertools import islice
from typing import TypeVar

import numpy as np
import redis

from segue.data.model import Event, to_epoch_ms
from segue.online import redis_privacy
from segue.online.redis_client import redis_client
from segue.online.state import (
    DAY_MINUTES,
    RECENT_PLAYS_MAX,
    SEEN_MAX_IDS,
    SEEN_TTL_S,
    SESSION_TIMEOUT_MS,
    BatchList,
    BatchRow,
    OnlineState,
    SessionState,
    StateUnavailable,
    check_vector,
    minute_of,
    user_export,
    window_counts,
)

#: User keys live this long after the user's last event or vector write.
USER_TTL_S = 30 * 24 * 3600
#: Events per script call when applying a batch (one Redis round trip each).
APPLY_CHUNK = 500
#: Batch lists written per pipeline round trip when publishing.
BATCH_CHUNK = 2_000
#: Item hour-buckets live a day plus the hour they cover, plus slack.
ITEM_TTL_S = 26 * 3600

T = TypeVar("T")

_APPLY = """
local prefix = ARGV[1]
local now, timeout, plays_max = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local seen_max, seen_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local user_ttl, item_ttl = tonumber(ARGV[7]), tonumber(ARGV[8])

local function apply_one(e, arrival)
  local eid, ts, etype, sid, device, surface = e[1], e[2], e[3], e[4], e[5], e[6]
  local artist, item, uid, minute, count = e[7], e[8], e[9], e[10], tonumber(e[11])
  local t = tonumber(ts)
  local u = prefix .. 'u:' .. uid .. ':'
  local seen, plays, sess, ctx = u .. 'seen', u .. 'plays', u .. 'sess', u .. 'ctx'
  local sa, sg, la, lg = u .. 'sess:sa', u .. 'sess:sg', u .. 'sess:la', u .. 'sess:lg'

  redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. (now - seen_ttl))
  if redis.call('ZADD', seen, 'NX', arrival, eid) == 0 then return 0 end
  redis.call('ZREMRANGEBYRANK', seen, 0, -(seen_max + 1))
  redis.call('EXPIRE', seen, seen_ttl)

  local cur = redis.call('HMGET', sess, 'session_id', 'last_ms')
  if (not cur[1]) or (t - tonumber(cur[2]) > timeout) or (sid ~= '' and sid ~= cur[1]) then
    if sid == '' then sid = uid .. '@' .. ts end
    redis.call('DEL', sa, sg, la, lg)
    redis.call('HSET', sess, 'session_id', sid, 'started_ms', ts, 'last_ms', ts)
  elseif t > tonumber(cur[2]) then
    redis.call('HSET', sess, 'last_ms', ts)
  end
  redis.call('EXPIRE', sess, user_ttl)

  local by_artist, by_genre = nil, nil
  if etype == 'skip' then by_artist, by_genre = sa, sg end
  if etype == 'like' then by_artist, by_genre = la, lg end
  if by_artist then
    if artist ~= '' then redis.call('HINCRBY', by_artist, artist, 1) end
    for i = 12, #e do redis.call('HINCRBY', by_genre, e[i], 1) end
    redis.call('EXPIRE', by_artist, user_ttl)
    redis.call('EXPIRE', by_genre, user_ttl)
  end

  if etype == 'play' then
    local bucket = prefix .. 'i:' .. item .. ':m:' .. math.floor(tonumber(minute) / 60)
    redis.call('LPUSH', plays, item)
    redis.call('LTRIM', plays, 0, plays_max - 1)
    redis.call('EXPIRE', plays, user_ttl)
    redis.call('HINCRBY', bucket, minute, count)
    redis.call('EXPIRE', bucket, item_ttl)
  end

  local last = redis.call('HGET', ctx, 'timestamp_ms')
  if (not last) or t >= tonumber(last) then
    redis.call('HSET', ctx, 'timestamp_ms', ts)
    if device ~= '' then redis.call('HSET', ctx, 'device', device) end
    if surface ~= '' then redis.call('HSET', ctx, 'surface', surface) end
  end
  redis.call('EXPIRE', ctx, user_ttl)
  return 1
end

local applied = 0
for i = 9, #ARGV do
  -- distinct arrival scores keep the seen-id eviction in delivery order
  applied = applied + apply_one(cjson.decode(ARGV[i]), now + (i - 9) * 1e-6)
end
return applied
"""


class RedisState(OnlineState):
    """Online state in Redis (hashes, sorted sets, lists, TTLs); semantics as in-process."""

    def __init__(
        self,
        url: str,
        prefix: str = "segue:",
        *,
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
        connect_timeout_s: float = 2.0,
        socket_timeout_s: float | None = None,
    ) -> None:
        """``socket_timeout_s`` (default: ``connect_timeout_s``) bounds every call; the
        serving processes set it to a fraction of a second, so that a stopped Redis costs a
        request no more (see :mod:`segue.online.redis_client`)."""
        super().__init__(session_timeout_ms=session_timeout_ms)
        self.url = url
        self.prefix = prefix
        timeout = connect_timeout_s if socket_timeout_s is None else socket_timeout_s
        try:
            self._r = redis_client(
                url, connect_timeout_s=connect_timeout_s, socket_timeout_s=timeout
            )
        except ValueError as exc:
            raise StateUnavailable(
                f"bad Redis URL {url!r}: {exc}; expected e.g. redis://localhost:6379/0"
            ) from exc
        self._call(self._r.ping)
        self._apply_script = self._r.register_script(_APPLY)

    def _call(self, fn: Callable[..., T], *args: object) -> T:
        try:
            return fn(*args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StateUnavailable(
                f"online state Redis at {self.url} is unreachable ({exc}); start Redis there "
                "or fix/unset SEGUE_REDIS_URL to use the in-process state"
            ) from exc

    def _u(self, user_id: str, part: str) -> str:
        return f"{self.prefix}u:{user_id}:{part}"

    def apply(
        self,
        events: Sequence[Event],
        *,
        artist_of: Mapping[str, str] | None = None,
        genres_of: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        artist_of = artist_of or {}
        genres_of = genres_of or {}
        todo = [e for e in events if not e.focus]
        if not todo:
            return 0
        # One script call per chunk of events, each event one JSON argument: packing a
        # command costs per argument in redis-py, so ~40 arguments per event made the
        # client, not Redis, the bottleneck (1,300 events/s; measured, 2 busy cores).
        head = [
            self.prefix,
            time.time(),
            self.session_timeout_ms,
            RECENT_PLAYS_MAX,
            SEEN_MAX_IDS,
            SEEN_TTL_S,
            USER_TTL_S,
            ITEM_TTL_S,
        ]
        encoded = []
        for e in todo:
            ts = to_epoch_ms(e.timestamp)
            fields = [
                e.event_id,
                str(ts),
                e.type.value,
                e.session_id or "",
                e.device or "",
                e.surface or "",
                artist_of.get(e.item_id) or "",
                e.item_id,
                e.user_id,
                str(minute_of(ts)),
                e.count,
                *genres_of.get(e.item_id, ()),
            ]
            encoded.append(json.dumps(fields))
        applied = 0
        for start in range(0, len(encoded), APPLY_CHUNK):
            # the events of one chunk are applied in order, atomically, in one round trip
            chunk = encoded[start : start + APPLY_CHUNK]
            applied += int(self._call(partial(self._apply_script, keys=[], args=[*head, *chunk])))
        return applied

    def recent_plays(self, user_id: str, n: int = 50) -> list[str]:
        if n <= 0:
            return []
        raw = self._call(self._r.lrange, self._u(user_id, "plays"), 0, n - 1)
        return [x.decode() for x in raw]

    def session(self, user_id: str, now_ms: int | None = None) -> SessionState | None:
        pipe = self._r.pipeline(transaction=True)
        self._queue_session(pipe, user_id)
        return self._session_from(self._call(pipe.execute), now_ms)

    def for_request(
        self, user_id: str, n: int, now_ms: int | None = None
    ) -> tuple[list[str], SessionState | None, tuple[list[str], list[str]]]:
        """One round trip instead of three: what a recommendation request reads."""
        pipe = self._r.pipeline(transaction=True)
        pipe.lrange(self._u(user_id, "plays"), 0, max(n, 1) - 1)
        pipe.get(self._u(user_id, "onb"))
        self._queue_session(pipe, user_id)
        plays, onboarding, *session = self._call(pipe.execute)
        recent = [x.decode() for x in plays][: max(n, 0)]
        data = json.loads(onboarding) if onboarding is not None else {"items": [], "genres": []}
        return recent, self._session_from(session, now_ms), (data["items"], data["genres"])

    def _queue_session(self, pipe: redis.client.Pipeline, user_id: str) -> None:
        pipe.hgetall(self._u(user_id, "sess"))
        for part in ("sa", "sg", "la", "lg"):
            pipe.hgetall(self._u(user_id, f"sess:{part}"))

    def _session_from(self, replies: list, now_ms: int | None) -> SessionState | None:
        head, sa, sg, la, lg = replies
        if not head:
            return None
        s = SessionState(
            head[b"session_id"].decode(),
            int(head[b"started_ms"]),
            int(head[b"last_ms"]),
            *({k.decode(): int(v) for k, v in h.items()} for h in (sa, sg, la, lg)),
        )
        return None if self._session_expired(s, now_ms) else s

    def last_context(self, user_id: str) -> dict[str, object]:
        raw = self._call(self._r.hgetall, self._u(user_id, "ctx"))
        out: dict[str, object] = {k.decode(): v.decode() for k, v in raw.items()}
        if "timestamp_ms" in out:
            out["timestamp_ms"] = int(out["timestamp_ms"])  # type: ignore[call-overload]
        return out

    def set_vector(self, user_id: str, vector: np.ndarray) -> None:
        data = check_vector(vector).astype("<f4").tobytes()
        self._call(self._r.set, self._u(user_id, "vec"), data, USER_TTL_S)

    def get_vector(self, user_id: str) -> np.ndarray | None:
        raw = self._call(self._r.get, self._u(user_id, "vec"))
        return None if raw is None else np.frombuffer(raw, dtype="<f4").astype(np.float32)

    def set_onboarding(self, user_id: str, items: Sequence[str], genres: Sequence[str]) -> None:
        data = json.dumps({"items": list(items), "genres": list(genres)})
        self._call(self._r.set, self._u(user_id, "onb"), data, USER_TTL_S)

    def onboarding(self, user_id: str) -> tuple[list[str], list[str]]:
        raw = self._call(self._r.get, self._u(user_id, "onb"))
        if raw is None:
            return [], []
        data = json.loads(raw)
        return list(data["items"]), list(data["genres"])

    def set_batch_lists(self, name: str, version: str, rows: Iterable[BatchRow]) -> int:
        # pipelined SETs in chunks: one round trip per BATCH_CHUNK users (100k users: 50)
        written = 0
        it = iter(rows)
        while chunk := list(islice(it, BATCH_CHUNK)):
            pipe = self._r.pipeline(transaction=False)
            for user_id, items, scores in chunk:
                body = {
                    "version": version,
                    "items": list(items),
                    "scores": [float(x) for x in scores],
                }
                pipe.set(self._u(user_id, f"batch:{name}"), json.dumps(body), ex=USER_TTL_S)
            self._call(pipe.execute)
            written += len(chunk)
        return written

    def batch_list(self, user_id: str, name: str) -> BatchList | None:
        raw = self._call(self._r.get, self._u(user_id, f"batch:{name}"))
        if raw is None:
            return None
        data = json.loads(raw)
        return BatchList(name, data["version"], list(data["items"]), list(data["scores"]))

    def forget_user(self, user_id: str) -> int:
        return self._call(redis_privacy.forget, self._r, self.prefix, user_id)

    def export_user(self, user_id: str) -> dict[str, object]:
        plays, head, counters, ctx, vec, onb, lists, seen = self._call(
            redis_privacy.export, self._r, self.prefix, user_id
        )
        return user_export(
            plays,
            redis_privacy.session_of(head, counters),
            redis_privacy.context_of(ctx),
            redis_privacy.vector_of(vec),
            redis_privacy.onboarding_of(onb),
            lists,
            seen,
        )

    def item_counts(self, item_ids: Sequence[str], now_ms: int) -> tuple[np.ndarray, np.ndarray]:
        now_m = minute_of(now_ms)
        hours = range((now_m - DAY_MINUTES + 1) // 60, now_m // 60 + 1)
        pipe = self._r.pipeline(transaction=False)
        for item_id in item_ids:
            for h in hours:
                pipe.hgetall(f"{self.prefix}i:{item_id}:m:{h}")
        raw = self._call(pipe.execute) if item_ids else []
        hour = np.zeros(len(item_ids), dtype=np.int64)
        day = np.zeros(len(item_ids), dtype=np.int64)
        per_item = len(hours)
        for i in range(len(item_ids)):
            buckets: dict[int, int] = {}
            for h in raw[i * per_item : (i + 1) * per_item]:
                buckets.update((int(k), int(v)) for k, v in h.items())
            hour[i], day[i] = window_counts(buckets, now_ms)
        return hour, day

    def close(self) -> None:
        self._r.close()

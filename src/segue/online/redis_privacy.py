"""One listener's keys in Redis: what :meth:`RedisState.export_user` reads and
:meth:`RedisState.forget_user` deletes.

The listener's keys are named exactly (the layout in :mod:`segue.online.redis_state`), never
matched with ``u:<id>:*``: ids may contain ``:``, and the pattern for ``a`` would also match
the keys of a listener called ``a:b``. Only their published batch lists need a ``SCAN``
(``u:<id>:batch:<name>``, one per registry name); a match counts only when the name has no
``:`` and the value is a batch list.

The event streams under the prefix (the bus's ``events`` and any other stream there, dead
letters included) still hold the listener's messages: those already stored, and those in
flight. Erasure deletes them with ``XDEL``, read in chunks of ``STREAM_CHUNK`` (a message
counts when one of its fields is JSON naming the id as ``user_id``, at any depth). A consumer
that held one of them pending gets an empty message back and acknowledges it (see
:class:`segue.online.bus.RedisStreamBus`). An event published after this pass is refused by
the worker through the store's deletion log.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import redis

from segue.online.state import BatchList, SessionState

#: The listener's keys with fixed names, under ``<prefix>u:<id>:``.
USER_PARTS = ("seen", "plays", "sess", "sess:sa", "sess:sg", "sess:la", "sess:lg", "ctx", "vec")
ONBOARDING = "onb"
#: Stream entries read per XRANGE while looking for a listener's messages.
STREAM_CHUNK = 1_000


def _key(prefix: str, user_id: str, part: str) -> str:
    return f"{prefix}u:{user_id}:{part}"


def _batch_keys(client: redis.Redis, prefix: str, user_id: str) -> list[tuple[str, bytes]]:
    """(name, key) of the listener's batch lists."""
    head = _key(prefix, user_id, "batch:")
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", head) + "*"
    found = []
    for key in client.scan_iter(match=pattern, count=1_000):
        name = key[len(head.encode()) :].decode()
        if ":" in name or client.type(key) not in (b"string", "string"):
            continue
        try:
            body = json.loads(client.get(key) or b"")
        except ValueError:
            continue
        if isinstance(body, dict) and {"version", "items", "scores"} <= body.keys():
            found.append((name, key))
    return found


def export(
    client: redis.Redis, prefix: str, user_id: str
) -> tuple[
    list[str],
    dict[bytes, bytes],
    list[dict[bytes, bytes]],
    dict[bytes, bytes],
    bytes | None,
    bytes | None,
    list[BatchList],
    int,
]:
    """The raw parts: plays, session head, its four counters, context, vector, onboarding,
    batch lists and the size of the seen-id window."""
    pipe = client.pipeline(transaction=True)
    pipe.lrange(_key(prefix, user_id, "plays"), 0, -1)
    pipe.hgetall(_key(prefix, user_id, "sess"))
    for part in ("sa", "sg", "la", "lg"):
        pipe.hgetall(_key(prefix, user_id, f"sess:{part}"))
    pipe.hgetall(_key(prefix, user_id, "ctx"))
    pipe.get(_key(prefix, user_id, "vec"))
    pipe.get(_key(prefix, user_id, ONBOARDING))
    pipe.zcard(_key(prefix, user_id, "seen"))
    plays, head, sa, sg, la, lg, ctx, vec, onb, seen = pipe.execute()
    lists = []
    for name, key in _batch_keys(client, prefix, user_id):
        raw = client.get(key)
        if raw is not None:
            body = json.loads(raw)
            lists.append(BatchList(name, body["version"], body["items"], body["scores"]))
    return [p.decode() for p in plays], head, [sa, sg, la, lg], ctx, vec, onb, lists, int(seen)


def session_of(head: dict[bytes, bytes], counters: list[dict[bytes, bytes]]) -> SessionState | None:
    if not head:
        return None
    return SessionState(
        head[b"session_id"].decode(),
        int(head[b"started_ms"]),
        int(head[b"last_ms"]),
        *({k.decode(): int(v) for k, v in h.items()} for h in counters),
    )


def context_of(raw: dict[bytes, bytes]) -> dict[str, object]:
    out: dict[str, object] = {k.decode(): v.decode() for k, v in raw.items()}
    if "timestamp_ms" in out:
        out["timestamp_ms"] = int(str(out["timestamp_ms"]))
    return out


def vector_of(raw: bytes | None) -> np.ndarray | None:
    return None if raw is None else np.frombuffer(raw, dtype="<f4").astype(np.float32)


def onboarding_of(raw: bytes | None) -> tuple[list[str], list[str]]:
    if raw is None:
        return [], []
    data = json.loads(raw)
    return list(data["items"]), list(data["genres"])


def forget(client: redis.Redis, prefix: str, user_id: str) -> int:
    """Delete the listener's keys and their messages on the streams; how many went."""
    keys = [_key(prefix, user_id, part) for part in (*USER_PARTS, ONBOARDING)]
    keys += [key.decode() for _, key in _batch_keys(client, prefix, user_id)]
    removed = int(client.delete(*keys))
    for stream in _streams(client, prefix):
        removed += _scrub_stream(client, stream, user_id)
    return removed


def _streams(client: redis.Redis, prefix: str) -> list[bytes]:
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
    return list(client.scan_iter(match=pattern, count=1_000, _type="stream"))


def _scrub_stream(client: redis.Redis, stream: bytes, user_id: str) -> int:
    """XDEL every message of ``stream`` that names ``user_id``, in chunks."""
    needle = json.dumps(user_id)[1:-1].encode()  # the id as JSON text writes it
    removed = 0
    start = "-"
    while True:
        chunk = client.xrange(stream, min=start, max="+", count=STREAM_CHUNK)
        if not chunk:
            return removed
        doomed = [
            msg_id
            for msg_id, fields in chunk
            if any(needle in value and _names(value, user_id) for value in fields.values())
        ]
        if doomed:
            removed += int(client.xdel(stream, *doomed))
        if len(chunk) < STREAM_CHUNK:
            return removed
        start = "(" + chunk[-1][0].decode()


def _names(raw: bytes, user_id: str) -> bool:
    """Whether a JSON value has ``"user_id": user_id`` anywhere inside it."""
    try:
        value = json.loads(raw)
    except ValueError:
        return False
    return _walk(value, user_id)


def _walk(value: Any, user_id: str) -> bool:
    if isinstance(value, dict):
        if value.get("user_id") == user_id:
            return True
        return any(_walk(v, user_id) for v in value.values())
    if isinstance(value, list):
        return any(_walk(v, user_id) for v in value)
    if isinstance(value, str) and value[:1] in "{[":  # JSON inside a string (a wrapped message)
        return _names(value.encode(), user_id)
    return False

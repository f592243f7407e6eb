"""One listener's data: everything the store holds about them, and its erasure.

What the store holds about a listener, and how each part is found without foreign keys or a
table scan on the hot tables:

* ``users``: their row, by the unique ``id``;
* ``events`` (plays, skips, ... and the message events of next best action: impressions,
  opens, clicks, conversions): by the ``(user_key, ts_ms)`` index;
* ``friendships`` in both directions: by the primary key ``(user_key, friend_key)`` and the
  ``friend_key`` index (revision 0006);
* ``tag_assignments``: by its primary key, which starts with ``user_key``;
* ``outbox`` (next-best-action messages, their rendered text and recipient): by the
  ``(user_id, created_ms)`` index;
* ``published`` (daily lists, mixes and campaign inputs of every registry version): the
  primary key is ``(name, version, kind, user_id)``, so the few (name, version, kind) triples
  are walked on that index (one seek each) and the listener's row of each is read by its key.

**Erasure** deletes all of these rows in one transaction; nothing is kept "anonymised",
because every one of these rows is about this listener alone (aggregate counts that carry no
id, like the online state's per-item play counters, are not touched). It then writes one row
to ``deletion_log``: a one-way hash of the id (:func:`id_hash`) and the time, no personal data.
The log lets a repeated erasure answer "already erased" instead of "unknown", and lets the
stream worker drop events that name an erased id instead of creating the listener again
(until they sign up again). The hash is unsalted SHA-256, so it can only confirm an id one
already has; ids from a small, guessable space could be found by trying them, which is why
the log holds nothing else.

``events`` has no foreign keys (revision 0004): a stream worker that looked the listener's
key up just before the erasure could still insert under that key just after it. On
PostgreSQL the erasure therefore holds ``SHARE ROW EXCLUSIVE`` on ``events`` (it waits for
inserting transactions, and inserts wait for it, for the milliseconds of one listener's
delete) and :func:`sweep` runs once more by the old key after the commit. On SQLite writers
are serialised and a transaction that read before the erasure cannot write after it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from segue.store import schema

_CHUNK = 5_000
#: Event columns in an export, in this order.
EVENT_FIELDS = ("event_id", "item_id", *schema.EVENT_DETAIL_COLUMNS)


def id_hash(user_id: str) -> str:
    """The deletion log's key for an id: SHA-256 hex of a fixed label and the id."""
    return hashlib.sha256(b"segue-erased-listener\x00" + user_id.encode("utf-8")).hexdigest()


@dataclass
class Erasure:
    """What one erasure removed, per table; ``user_key`` is None when no users row was left."""

    user_key: int | None
    removed: dict[str, int] = field(default_factory=dict)
    #: the id was in the deletion log before this call
    previously_erased: bool = False


def _user_key(conn: sa.Connection, user_id: str) -> int | None:
    users = schema.users
    key = conn.execute(sa.select(users.c.key).where(users.c.id == user_id)).scalar_one_or_none()
    return None if key is None else int(key)


# -- export --------------------------------------------------------------------------------------
def user_data(conn: sa.Connection, user_id: str) -> dict[str, Any] | None:
    """Everything but the events about ``user_id`` (None for an id the store does not know):
    profile and consents, friends both ways, tag assignments, published lists, outbox messages,
    the lists served to them (exposures) and the number of events (which
    :func:`iter_user_events` streams)."""
    users, links = schema.users, schema.friendships
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).mappings().first()
    if row is None:
        return None
    key = int(row["key"])
    profile = {k: _plain(v) for k, v in row.items() if k != "key"}
    friend = users.alias("f")
    friends = conn.execute(
        sa.select(friend.c.id)
        .select_from(links.join(friend, friend.c.key == links.c.friend_key))
        .where(links.c.user_key == key)
        .order_by(friend.c.id)
    ).scalars()
    friend_of = conn.execute(
        sa.select(friend.c.id)
        .select_from(links.join(friend, friend.c.key == links.c.user_key))
        .where(links.c.friend_key == key)
        .order_by(friend.c.id)
    ).scalars()
    ta = schema.tag_assignments
    tags = conn.execute(
        sa.select(ta.c.item_id, ta.c.tag_id, ta.c.ts_ms)
        .where(ta.c.user_key == key)
        .order_by(ta.c.ts_ms, ta.c.item_id, ta.c.tag_id)
    ).mappings()
    events = schema.events
    n_events = conn.execute(
        sa.select(sa.func.count()).select_from(events).where(events.c.user_key == key)
    ).scalar_one()
    return {
        "profile": profile,
        "friends": list(friends),
        "friend_of": list(friend_of),
        "tag_assignments": [dict(t) for t in tags],
        "event_count": int(n_events),
        "published": _published_rows(conn, user_id),
        "outbox": _outbox_rows(conn, user_id),
        "exposures": _exposure_rows(conn, user_id),
    }


def iter_user_events(conn: sa.Connection, user_id: str) -> Iterator[dict[str, Any]]:
    """The listener's events (every type, Focus-Mode ones too), oldest first, as plain dicts;
    read in chunks on the ``(user_key, ts_ms)`` index, so memory stays bounded."""
    key = _user_key(conn, user_id)
    if key is None:
        return
    e, i = schema.events, schema.items
    query = (
        sa.select(
            e.c.event_id,
            i.c.id.label("item_id"),
            *(e.c[name] for name in schema.EVENT_DETAIL_COLUMNS),
        )
        .select_from(e.join(i, i.c.key == e.c.item_key, isouter=True))
        .where(e.c.user_key == key)
        .order_by(e.c.ts_ms, e.c.key)
    )
    result = conn.execution_options(yield_per=2_000).execute(query).mappings()
    for row in result:
        out = dict(row)
        out["focus"] = bool(out["focus"])
        yield out


def _published_triples(conn: sa.Connection) -> list[tuple[str, str, str]]:
    """The distinct (name, version, kind) of ``published``, one primary-key seek each."""
    p = schema.published
    found: list[tuple[str, str, str]] = []
    query = sa.select(p.c.name, p.c.version, p.c.kind).order_by(p.c.name, p.c.version, p.c.kind)
    row = conn.execute(query.limit(1)).first()
    while row is not None:
        found.append((row[0], row[1], row[2]))
        after = sa.tuple_(p.c.name, p.c.version, p.c.kind) > sa.tuple_(*row)
        row = conn.execute(query.where(after).limit(1)).first()
    return found


def _published_rows(conn: sa.Connection, user_id: str) -> list[dict[str, Any]]:
    p = schema.published
    rows: list[dict[str, Any]] = []
    for name, version, kind in _published_triples(conn):
        row = conn.execute(
            sa.select(p.c.day, p.c.payload).where(
                p.c.name == name, p.c.version == version, p.c.kind == kind, p.c.user_id == user_id
            )
        ).first()
        if row is not None:
            rows.append(
                {
                    "name": name,
                    "version": version,
                    "kind": kind,
                    "day": _plain(row.day),
                    "payload": json.loads(row.payload),
                }
            )
    return rows


def _outbox_rows(conn: sa.Connection, user_id: str) -> list[dict[str, Any]]:
    o = schema.outbox
    query = sa.select(o).where(o.c.user_id == user_id).order_by(o.c.created_ms, o.c.key)
    rows = []
    for row in conn.execute(query).mappings():
        out = {k: _plain(v) for k, v in row.items() if k not in ("key", "claim_token")}
        out["payload"] = json.loads(out["payload"])
        rows.append(out)
    return rows


def _exposure_rows(conn: sa.Connection, user_id: str) -> list[dict[str, Any]]:
    """The lists served to the listener, as shown (see segue.store.exposures)."""
    from dataclasses import asdict

    from segue.store.exposures import between

    return [asdict(e) for e in between(conn, 0, 2**62, user_id)]


def _plain(value: Any) -> Any:
    """A JSON-ready value: dates as ISO text, the rest as stored."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# -- erasure -------------------------------------------------------------------------------------
def erase(conn: sa.Connection, user_id: str, now_ms: int) -> Erasure | None:
    """Delete every row about ``user_id`` and log the erasure, in the caller's transaction.

    None when the store has nothing about the id and never erased it (unknown). An id erased
    before (in the log) gives an :class:`Erasure` with ``previously_erased`` and whatever was
    left to remove (normally nothing), and the log's time is renewed.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
    log = schema.deletion_log
    digest = id_hash(user_id)
    logged = (
        conn.execute(sa.select(log.c.id_hash).where(log.c.id_hash == digest)).first() is not None
    )
    key = _user_key(conn, user_id)
    removed: dict[str, int] = {}
    if key is not None:
        e, links, ta = schema.events, schema.friendships, schema.tag_assignments
        users = schema.users
        removed["events"] = conn.execute(sa.delete(e).where(e.c.user_key == key)).rowcount
        removed["friendships"] = (
            conn.execute(sa.delete(links).where(links.c.user_key == key)).rowcount
            + conn.execute(sa.delete(links).where(links.c.friend_key == key)).rowcount
        )
        removed["tag_assignments"] = conn.execute(
            sa.delete(ta).where(ta.c.user_key == key)
        ).rowcount
        removed["users"] = conn.execute(sa.delete(users).where(users.c.key == key)).rowcount
    o, p, x = schema.outbox, schema.published, schema.exposures
    removed["outbox"] = conn.execute(sa.delete(o).where(o.c.user_id == user_id)).rowcount
    removed["exposures"] = conn.execute(sa.delete(x).where(x.c.user_id == user_id)).rowcount
    published = 0
    for name, version, kind in _published_triples(conn):
        published += conn.execute(
            sa.delete(p).where(
                p.c.name == name, p.c.version == version, p.c.kind == kind, p.c.user_id == user_id
            )
        ).rowcount
    removed["published"] = published
    if key is None and not logged and not any(removed.values()):
        return None
    if logged:
        conn.execute(sa.update(log).where(log.c.id_hash == digest).values(erased_ms=now_ms))
    else:
        conn.execute(sa.insert(log).values(id_hash=digest, erased_ms=now_ms))
    return Erasure(key, removed, previously_erased=logged)


def sweep(conn: sa.Connection, user_key: int) -> int:
    """Delete events still filed under an erased listener's key (see the module docstring)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
    e = schema.events
    return conn.execute(sa.delete(e).where(e.c.user_key == user_key)).rowcount


def erased_ids(conn: sa.Connection, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are in the deletion log (erased and not signed up since: callers ask
    only about ids the ``users`` table lacks)."""
    by_hash = {id_hash(i): i for i in set(ids)}
    log = schema.deletion_log
    found: set[str] = set()
    hashes = list(by_hash)
    for start in range(0, len(hashes), _CHUNK):
        chunk = hashes[start : start + _CHUNK]
        query = sa.select(log.c.id_hash).where(log.c.id_hash.in_(chunk))
        found.update(by_hash[h] for h in conn.execute(query).scalars())
    return found

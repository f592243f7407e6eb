"""The message outbox (next best action) and the message events that come back from it.

A message is written once, under its idempotency key ``message_id`` (a repeated insert is
ignored), as ``pending``. A sender *claims* due messages in one statement that marks them
``sending`` with a fresh claim token and a lease; after the channel accepted a message it marks
it ``sent`` — only if its claim token still holds. A live sender keeps its claim with
heartbeats (:func:`extend`: the lease of every message still ``sending`` under its token moves
forward), so the lease can be short — seconds, not minutes — and a sender working through a
long batch or a slow channel is never overtaken. A sender that dies between claim and mark
stops beating; its messages stay ``sending`` only until the lease runs out, then another
sender claims them again.
So no message is ever lost, and a message can reach the channel twice only when a sender died
after the channel accepted it but before the mark: that is at-least-once delivery, made
effectively exactly-once by the receiver, which gets the same idempotency key both times
(``Idempotency-Key`` header for the push gateway, ``Message-ID`` for e-mail) and drops the
repeat. A failed send goes back to ``pending`` with a later ``scheduled_ms`` until
``max_attempts``; then it is ``failed`` and stays for inspection.

Claiming on PostgreSQL uses ``FOR UPDATE SKIP LOCKED`` so that concurrent senders take
disjoint rows; SQLite serialises writers, and the single ``UPDATE`` is atomic there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from segue.data.log import UNKNOWN_MS, InteractionLog
from segue.data.model import EVENT_CODES, EventType
from segue.store import schema

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
STATUSES = (PENDING, SENDING, SENT, FAILED)
#: Message event types (what comes back from delivered messages).
MESSAGE_EVENTS: tuple[EventType, ...] = (
    EventType.IMPRESSION,
    EventType.OPEN,
    EventType.CLICK,
    EventType.CONVERSION,
)
_CHUNK = 5_000


@dataclass
class OutboxMessage:
    """One message to deliver; ``payload`` holds the rendered parts and the recipient."""

    message_id: str
    campaign: str
    user_id: str
    channel: str
    action_type: str
    item_id: str
    payload: dict[str, Any]
    scheduled_ms: int
    created_ms: int
    p_click: float = 0.0
    value: float = 0.0
    status: str = PENDING
    attempts: int = 0
    claim_token: str | None = None
    sent_ms: int | None = None
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _row(m: OutboxMessage) -> dict[str, Any]:
    return {
        "message_id": m.message_id,
        "campaign": m.campaign,
        "user_id": m.user_id,
        "channel": m.channel,
        "action_type": m.action_type,
        "item_id": m.item_id,
        "payload": json.dumps(m.payload, separators=(",", ":")),
        "status": PENDING,
        "attempts": 0,
        "created_ms": m.created_ms,
        "scheduled_ms": m.scheduled_ms,
        "p_click": float(m.p_click),
        "value": float(m.value),
    }


def _message(row: Any) -> OutboxMessage:
    return OutboxMessage(
        message_id=row.message_id,
        campaign=row.campaign,
        user_id=row.user_id,
        channel=row.channel,
        action_type=row.action_type,
        item_id=row.item_id,
        payload=json.loads(row.payload),
        scheduled_ms=int(row.scheduled_ms),
        created_ms=int(row.created_ms),
        p_click=float(row.p_click),
        value=float(row.value),
        status=row.status,
        attempts=int(row.attempts),
        claim_token=row.claim_token,
        sent_ms=None if row.sent_ms is None else int(row.sent_ms),
        last_error=row.last_error,
    )


def add(conn: sa.Connection, messages: Sequence[OutboxMessage]) -> int:
    """Insert messages whose ``message_id`` is new; returns how many were."""
    from segue.store.rows import write_rows

    total = 0
    for start in range(0, len(messages), _CHUNK):
        rows = [_row(m) for m in messages[start : start + _CHUNK]]
        total += write_rows(conn, schema.outbox, rows, ["message_id"], "skip")
    return total


def claim(
    conn: sa.Connection,
    now_ms: int,
    lease_ms: int,
    limit: int,
    channels: Sequence[str] | None = None,
) -> list[OutboxMessage]:
    """Mark up to ``limit`` due messages ``sending`` under a new claim token and return them.

    Due: ``pending`` with ``scheduled_ms <= now``, or ``sending`` whose lease ran out (its
    sender died). Oldest first.
    """
    o = schema.outbox
    token = uuid.uuid4().hex
    due = sa.or_(
        sa.and_(o.c.status == PENDING, o.c.scheduled_ms <= now_ms),
        sa.and_(o.c.status == SENDING, o.c.lease_until_ms < now_ms),
    )
    if channels is not None:
        due = sa.and_(due, o.c.channel.in_(list(channels)))
    pick = sa.select(o.c.key).where(due).order_by(o.c.key).limit(limit)
    if conn.dialect.name == "postgresql":
        # Lock the chosen rows first (a LIMIT inside UPDATE ... IN (...) is not guaranteed to
        # be evaluated once); concurrent senders skip them and take the next ones.
        keys = list(conn.execute(pick.with_for_update(skip_locked=True)).scalars())
        target = o.c.key.in_(keys)
    else:
        # SQLite: one statement, so the read and the write cannot be split by another writer.
        target = o.c.key.in_(pick.scalar_subquery())
    conn.execute(
        sa.update(o)
        .where(target, due)
        .values(
            status=SENDING,
            claim_token=token,
            lease_until_ms=now_ms + lease_ms,
            attempts=o.c.attempts + 1,
        )
    )
    query = sa.select(o).where(o.c.claim_token == token, o.c.status == SENDING).order_by(o.c.key)
    return [_message(r) for r in conn.execute(query)]


def extend(conn: sa.Connection, token: str, now_ms: int, lease_ms: int) -> int:
    """Heartbeat: the messages still ``sending`` under ``token`` are leased until
    ``now + lease``; returns how many (0 once all are marked, or another sender took over)."""
    o = schema.outbox
    result = conn.execute(
        sa.update(o)
        .where(o.c.claim_token == token, o.c.status == SENDING)
        .values(lease_until_ms=now_ms + lease_ms)
    )
    return int(result.rowcount)


def mark_sent(conn: sa.Connection, message_id: str, token: str, now_ms: int) -> bool:
    """``sent``, if the claim still holds; False when another sender has taken it over."""
    o = schema.outbox
    result = conn.execute(
        sa.update(o)
        .where(o.c.message_id == message_id, o.c.claim_token == token, o.c.status == SENDING)
        .values(status=SENT, sent_ms=now_ms, lease_until_ms=None, last_error=None)
    )
    return result.rowcount == 1


def mark_failed(
    conn: sa.Connection,
    message_id: str,
    token: str,
    error: str,
    retry_at_ms: int,
    max_attempts: int,
) -> str | None:
    """Back to ``pending`` at ``retry_at_ms``, or ``failed`` after ``max_attempts``.

    Returns the new status, or None when the claim no longer holds."""
    o = schema.outbox
    row = conn.execute(
        sa.select(o.c.attempts).where(
            o.c.message_id == message_id, o.c.claim_token == token, o.c.status == SENDING
        )
    ).first()
    if row is None:
        return None
    status = FAILED if int(row.attempts) >= max_attempts else PENDING
    conn.execute(
        sa.update(o)
        .where(o.c.message_id == message_id, o.c.claim_token == token)
        .values(
            status=status,
            scheduled_ms=retry_at_ms,
            lease_until_ms=None,
            last_error=error[:2000],
        )
    )
    return status


def counts(conn: sa.Connection, campaign: str | None = None) -> dict[str, int]:
    """Messages per status (every status present, zero or not)."""
    o = schema.outbox
    query = sa.select(o.c.status, sa.func.count()).group_by(o.c.status)
    if campaign is not None:
        query = query.where(o.c.campaign == campaign)
    found = {status: int(n) for status, n in conn.execute(query)}
    return {s: found.get(s, 0) for s in STATUSES}


def recent(
    conn: sa.Connection, since_ms: int, user_ids: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Messages created since ``since_ms`` (any status): user, channel, item, created, scheduled.

    What the frequency caps and the no-repeat rule count."""
    o = schema.outbox
    query = sa.select(
        o.c.user_id, o.c.channel, o.c.item_id, o.c.created_ms, o.c.scheduled_ms
    ).where(o.c.created_ms >= since_ms)
    rows: list[Any] = []
    if user_ids is None:
        rows = list(conn.execute(query))
    else:
        ids = list(user_ids)
        for start in range(0, len(ids), _CHUNK):
            rows += list(conn.execute(query.where(o.c.user_id.in_(ids[start : start + _CHUNK]))))
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
    return {
        "user_id": np.array(columns[0], dtype=object),
        "channel": np.array(columns[1], dtype=object),
        "item_id": np.array(columns[2], dtype=object),
        "created_ms": np.array(columns[3], dtype=np.int64),
        "scheduled_ms": np.array(columns[4], dtype=np.int64),
    }


def messages(
    conn: sa.Connection, campaign: str | None = None, status: str | None = None
) -> list[OutboxMessage]:
    o = schema.outbox
    query = sa.select(o).order_by(o.c.key)
    if campaign is not None:
        query = query.where(o.c.campaign == campaign)
    if status is not None:
        query = query.where(o.c.status == status)
    return [_message(r) for r in conn.execute(query)]


def read_message_events(
    conn: sa.Connection, start_ms: int | None = None, end_ms: int | None = None
) -> InteractionLog:
    """Impression, open, click and conversion events with their message (``session_id``),
    channel (``surface``) and action type (``source``), oldest first.

    The item vocabulary is the store's (every item, key order), like ``Store.interactions``;
    the user vocabulary is the store's too.
    """
    e, u, i = schema.events, schema.users, schema.items
    user_ids = np.array(list(conn.execute(sa.select(u.c.id).order_by(u.c.key)).scalars()), object)
    item_ids = np.array(list(conn.execute(sa.select(i.c.id).order_by(i.c.key)).scalars()), object)
    user_keys = conn.execute(sa.select(u.c.key).order_by(u.c.key)).scalars()
    item_keys = conn.execute(sa.select(i.c.key).order_by(i.c.key)).scalars()
    user_pos = {k: p for p, k in enumerate(user_keys)}
    item_pos = {k: p for p, k in enumerate(item_keys)}
    query = sa.select(
        e.c.user_key,
        e.c.item_key,
        e.c.type,
        e.c.ts_ms,
        e.c.event_id,
        e.c.session_id,
        e.c.surface,
        e.c.source,
    ).where(e.c.type.in_([t.value for t in MESSAGE_EVENTS]))
    if start_ms is not None:
        query = query.where(e.c.ts_ms >= start_ms)
    if end_ms is not None:
        query = query.where(e.c.ts_ms < end_ms)
    rows = list(conn.execute(query.order_by(e.c.ts_ms, e.c.key)))
    n = len(rows)
    cols = list(zip(*rows, strict=True)) if rows else [()] * 8
    return InteractionLog(
        user_ids=user_ids,
        item_ids=item_ids,
        user=np.array([user_pos[k] for k in cols[0]], dtype=np.int32),
        item=np.array([item_pos[k] for k in cols[1]], dtype=np.int32),
        type=np.array([EVENT_CODES[t] for t in cols[2]], dtype=np.uint8),
        ts_ms=np.array(cols[3], dtype=np.int64),
        ms_played=np.full(n, UNKNOWN_MS, dtype=np.int64),
        count=np.ones(n, dtype=np.int32),
        focus=np.zeros(n, dtype=bool),
        rating=np.full(n, np.nan),
        event_id=np.array(cols[4], dtype=object),
        session_id=np.array(cols[5], dtype=object),
        surface=np.array(cols[6], dtype=object),
        source=np.array(cols[7], dtype=object),
    )

"""One listener's events in a time range, Focus-Mode flag included (``Store.user_events``).

Why apart from :mod:`~segue.store.scan`: the scan packs millions of rows of every user for
training; per-listener surfaces (Wrapped, Discovery's never-heard rule) need a few thousand rows
of one user, with item ids and the focus flag, answered from the ``(user_key, ts_ms)`` index.
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from segue.data.log import UNKNOWN_MS, InteractionLog
from segue.data.model import EVENT_CODES
from segue.errors import StoreError
from segue.store import schema


def read_user_events(
    conn: sa.Connection, user_id: str, start_ms: int | None, end_ms: int | None
) -> InteractionLog:
    """Events of ``user_id`` with ``start_ms <= ts_ms < end_ms``, oldest first (then insertion).

    Every event is returned, Focus-Mode ones too (``log.focus`` marks them): callers decide
    what counts. An unknown user is a :class:`StoreError`.
    """
    users, events, items = schema.users, schema.events, schema.items
    key = conn.execute(sa.select(users.c.key).where(users.c.id == user_id)).scalar_one_or_none()
    if key is None:
        raise StoreError(f"unknown user {user_id!r}")
    query = (
        sa.select(
            events.c.event_id,
            items.c.id,
            events.c.type,
            events.c.ts_ms,
            events.c.ms_played,
            events.c.count,
            events.c.focus,
            events.c.rating,
            events.c.session_id,
            events.c.surface,
            events.c.source,
            events.c.device,
        )
        .select_from(events.join(items, items.c.key == events.c.item_key))
        .where(events.c.user_key == key)
        .order_by(events.c.ts_ms, events.c.key)
    )
    if start_ms is not None:
        query = query.where(events.c.ts_ms >= int(start_ms))
    if end_ms is not None:
        query = query.where(events.c.ts_ms < int(end_ms))
    rows = conn.execute(query).all()
    n = len(rows)
    columns = list(zip(*rows, strict=True)) if rows else [()] * 12
    item_ids, item = np.unique(np.array(columns[1], dtype=object), return_inverse=True)
    return InteractionLog(
        user_ids=np.array([user_id], dtype=object),
        item_ids=item_ids.astype(object),
        user=np.zeros(n, dtype=np.int32),
        item=item.reshape(-1).astype(np.int32),
        type=np.array([EVENT_CODES[t] for t in columns[2]], dtype=np.uint8),
        ts_ms=np.array(columns[3], dtype=np.int64),
        ms_played=np.array([UNKNOWN_MS if m is None else m for m in columns[4]], dtype=np.int64),
        count=np.array(columns[5], dtype=np.int32),
        focus=np.array([bool(f) for f in columns[6]], dtype=bool),
        rating=np.array([np.nan if r is None else r for r in columns[7]], dtype=np.float64),
        event_id=np.array(columns[0], dtype=object),
        session_id=np.array(columns[8], dtype=object),
        surface=np.array(columns[9], dtype=object),
        source=np.array(columns[10], dtype=object),
        device=np.array(columns[11], dtype=object),
    )

"""A listener's data on request: export everything held about them, or erase it.

Shared by ``segue users export|delete`` and ``GET|DELETE /v1/users/{id}[/export]``.

**Export** is one JSON document (:func:`export_chunks` yields it in pieces, so a listener
with millions of events never sits in memory whole): the profile and consents, friend links
both ways, tag assignments, the online state (recent plays, session, context, user vector,
onboarding, published batch lists), the published daily lists and mixes of every registry
version, the outbox messages (rendered text and recipient included), then every event, the
message events of next best action (impression, open, click, conversion; ``session_id`` is the
message) among them.

**Erasure** (:func:`delete_user`) goes store first, then online state, then the caller's
per-process user cache:

1. the store deletes every row about the listener in one transaction and writes a hash of the
   id to its deletion log (:mod:`segue.store.privacy`). Training reads the store, so the next
   trained version has them in neither its matrices nor its id maps; the version serving now
   and older registry versions keep their row until then;
2. the online state forgets their keys and, in Redis, deletes their messages still on the
   streams (:mod:`segue.online.redis_privacy`); events that arrive afterwards for the id are
   dropped by the worker and the API's intake, because the deletion log holds it;
3. the caller's user cache forgets them (other processes' caches expire within 2 s).

Deleting twice is fine: an id found only in the deletion log is "already erased", and the
store and state are swept again. An id neither in the store nor in the log is
:class:`UnknownListener`. When Redis cannot be reached, step 2 fails with
:class:`segue.online.state.StateUnavailable` after step 1 is done; running the deletion again
finishes it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from segue.errors import SegueError
from segue.online.state import OnlineState
from segue.store import Store

#: The export document's format tag.
FORMAT = "segue-user-export/1"


class UnknownListener(SegueError):
    """The store has nothing about this id and never erased it."""


@dataclass
class DeletionReport:
    """What an erasure removed: rows per store table, and keys/entries of the online state."""

    removed: dict[str, int] = field(default_factory=dict)
    online: int = 0
    #: the id had been erased before (the deletion log held it)
    previously_erased: bool = False

    @property
    def rows(self) -> int:
        return sum(self.removed.values())


def export_chunks(
    store: Store, state: OnlineState | None, user_id: str, now: dt.datetime | None = None
) -> Iterator[str]:
    """The export document as JSON text in pieces; raises :class:`UnknownListener` before the
    first piece for an id the store does not know."""
    data = store.user_data(user_id)
    if data is None:
        raise UnknownListener(_unknown(user_id, store))
    online = state.export_user(user_id) if state is not None else None
    return _pieces(store, user_id, data, online, now or dt.datetime.now(dt.UTC))


def _pieces(
    store: Store,
    user_id: str,
    data: dict[str, Any],
    online: dict[str, object] | None,
    now: dt.datetime,
) -> Iterator[str]:
    head = {
        "format": FORMAT,
        "user_id": user_id,
        "exported_at": now.isoformat(),
        **data,
        "online": online,
    }
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "events": ['
    for n, event in enumerate(store.iter_user_events(user_id)):
        yield ("," if n else "") + "\n" + json.dumps(event, ensure_ascii=False)
    yield "\n]}\n"


def export_user(
    store: Store, state: OnlineState | None, user_id: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The whole export as one object (small listeners, tests)."""
    return json.loads("".join(export_chunks(store, state, user_id, now)))


def delete_user(
    store: Store,
    state: OnlineState | None,
    user_id: str,
    *,
    forget_cached: Callable[[str], None] | None = None,
    now_ms: int | None = None,
) -> DeletionReport:
    """Erase the listener from the store, the online state and a user cache (module doc)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    erasure = store.erase_user(user_id, now_ms)
    if erasure is None:
        raise UnknownListener(_unknown(user_id, store))
    report = DeletionReport(dict(erasure.removed), previously_erased=erasure.previously_erased)
    if forget_cached is not None:
        forget_cached(user_id)
    if state is not None:
        report.online = state.forget_user(user_id)
    if forget_cached is not None:  # again: a request may have cached them meanwhile
        forget_cached(user_id)
    return report


def _unknown(user_id: str, store: Store) -> str:
    if store.erased_user_ids([user_id]):
        return f"listener {user_id!r} was erased; the store holds nothing about them any more"
    return f"unknown listener {user_id!r}: the store has no user with this id"

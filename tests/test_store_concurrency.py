"""Concurrent writers and bounded waits on the real backends.

SQLite: eight threads writing events and users at once (what an API process does while Redis
is down and every request persists its events itself) must all succeed; a deferred ``BEGIN``
that reads and then writes fails with "database is locked" here. PostgreSQL: the serving
processes' statement timeout cuts a long statement short, and the store still opens (its
migrations are not bounded).
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from segue.data.model import Event, EventType, Item, ItemKind, User
from segue.store import open_store

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
WRITERS = 8
WRITES = 60


def _item(n: int) -> Item:
    return Item(id=f"it{n}", kind=ItemKind.TRACK, title=f"Track {n}")


def test_eight_concurrent_sqlite_writers_never_fail(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'segue.sqlite'}"
    with open_store(url) as store:
        store.upsert_items([_item(n) for n in range(50)])
        store.upsert_users([User(id=f"u{n}", signup_at=T0) for n in range(20)])
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(w: int) -> None:
        # each thread its own store (own connections), as each serving process has
        with open_store(url) as s:
            start.wait()
            for n in range(WRITES):
                try:
                    if n % 10 == 9:  # a read-then-write of users now and then
                        s.upsert_users([User(id=f"w{w}-{n}", signup_at=T0)])
                        s.set_user_flags(f"u{n % 20}", focus_mode=bool(n % 2))
                    s.add_events(
                        Event(
                            event_id=f"e{w}-{n}-{k}",
                            user_id=f"u{(w + n + k) % 20}",
                            item_id=f"it{(w * n + k) % 50}",
                            type=EventType.PLAY,
                            timestamp=T0 + dt.timedelta(seconds=n),
                        )
                        for k in range(3)
                    )
                except BaseException as exc:  # collected and reported below
                    errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, f"{len(errors)} of {WRITERS * WRITES} writes failed: {errors[0]!r}"
    with open_store(url) as store:
        assert store.count("events") == WRITERS * WRITES * 3


def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """Reads keep the deferred BEGIN: a writer holding the lock does not stall them."""
    url = f"sqlite:///{tmp_path / 'segue.sqlite'}"
    with open_store(url) as store, open_store(url, busy_timeout_ms=100) as other:
        store.upsert_items([_item(1)])
        with store.transaction():
            store.upsert_items([_item(2)])  # holds the write lock until the block ends
            assert other.count("items") == 1  # a read answers at once
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                other.upsert_items([_item(3)])  # a writer waits busy_timeout_ms, then fails
        assert other.upsert_items([_item(3)]) == 1


def test_postgres_statement_timeout_bounds_serving_statements(pg_database_url: str) -> None:
    from conftest import _reset_postgres

    _reset_postgres(pg_database_url)
    with open_store(pg_database_url, statement_timeout_ms=300) as store:
        store.upsert_items([_item(1)])  # the store opened (migrations unbounded) and writes
        engine = store._engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "300ms"
            with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
                conn.exec_driver_sql("SELECT pg_sleep(2)")
    with open_store(pg_database_url) as cli_store:  # the CLI's: no limit
        engine = cli_store._engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"

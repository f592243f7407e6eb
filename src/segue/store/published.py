"""Published lists: what a daily run computed for every user, kept per registry version.

A row is one user's whole list of one kind (``top``, ``mix``, ``nba``) for one registry
version, keyed by (name, version, kind, user_id); the payload is JSON whose shape the jobs
layer owns (:mod:`segue.batch.publish`). Why this shape:

* **Serving reads one row by primary key** — the production version's list for the user — so a
  request costs one indexed lookup, and a rollback needs no copying: the registry pointer names
  another version, whose rows are still here.
* **A version's lists of a kind are replaced whole, in one transaction** (delete, then bulk
  insert): a load that fails half-way leaves the rows as they were, and reloading the same
  version is idempotent.
* **Bulk loads are one statement per chunk**: ``executemany`` on SQLite, ``COPY`` straight
  into the table on PostgreSQL (no conflicts are possible after the delete).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import sqlalchemy as sa

from segue.errors import StoreError
from segue.store import schema

_CHUNK = 5_000
_LIMITS = {"name": 100, "version": 32, "kind": 16}


@dataclass(frozen=True)
class PublishedList:
    """One user's published list of one kind; ``payload`` is its JSON text."""

    user_id: str
    day: dt.date
    payload: str


def _check(name: str, version: str, kind: str) -> None:
    for what, value in (("name", name), ("version", version), ("kind", kind)):
        if not isinstance(value, str) or not value or len(value) > _LIMITS[what]:
            raise StoreError(
                f"published lists need a {what} of 1 to {_LIMITS[what]} characters, got {value!r}"
            )


def replace(
    conn: sa.Connection, name: str, version: str, kind: str, lists: Iterable[PublishedList]
) -> int:
    """Replace every ``kind`` list of (name, version) by ``lists``; returns how many rows.

    Runs in the caller's transaction: on any error (including a user listed twice) nothing
    of this load stays.
    """
    _check(name, version, kind)
    table = schema.published
    conn.execute(
        sa.delete(table).where(
            table.c.name == name, table.c.version == version, table.c.kind == kind
        )
    )
    seen: set[str] = set()
    rows = _rows(name, version, kind, lists, seen)
    driver = conn.connection.driver_connection
    cur = driver.cursor()
    columns = "name, version, kind, user_id, day, payload"
    written = 0
    try:
        if conn.dialect.name == "sqlite":
            sql = f"INSERT INTO published ({columns}) VALUES (?, ?, ?, ?, ?, ?)"
            while chunk := list(islice(rows, _CHUNK)):
                cur.executemany(sql, [(*r[:4], r[4].isoformat(), r[5]) for r in chunk])
                written += len(chunk)
        else:
            with cur.copy(f"COPY published ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    written += 1
    finally:
        cur.close()
    return written


def _rows(
    name: str, version: str, kind: str, lists: Iterable[PublishedList], seen: set[str]
) -> Iterator[tuple[str, str, str, str, dt.date, str]]:
    for item in lists:
        if item.user_id in seen:
            raise StoreError(
                f"user {item.user_id!r} has two {kind!r} lists in {name} {version}; "
                "a version holds one list per user and kind"
            )
        seen.add(item.user_id)
        yield name, version, kind, item.user_id, item.day, item.payload


def read(
    conn: sa.Connection, name: str, version: str, kind: str, user_id: str
) -> PublishedList | None:
    table = schema.published
    row = conn.execute(
        sa.select(table.c.day, table.c.payload).where(
            table.c.name == name,
            table.c.version == version,
            table.c.kind == kind,
            table.c.user_id == user_id,
        )
    ).first()
    return None if row is None else PublishedList(user_id, row.day, row.payload)


def counts(conn: sa.Connection, name: str, version: str) -> dict[str, int]:
    """Users with a list, per kind, for one version."""
    table = schema.published
    query = (
        sa.select(table.c.kind, sa.func.count())
        .where(table.c.name == name, table.c.version == version)
        .group_by(table.c.kind)
    )
    return {kind: int(n) for kind, n in conn.execute(query)}

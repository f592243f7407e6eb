"""Writing many small records (items, users, tags, links) in one statement per batch.

SQLite takes them through ``executemany``. PostgreSQL gets them through ``COPY`` into a
temporary table and one ``INSERT ... SELECT`` / ``UPDATE ... FROM``: several times faster than
multi-row INSERTs, mostly because foreign-key checks then run inside one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import sqlalchemy as sa

Mode = Literal["skip", "upsert", "update"]


def write_rows(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    mode: Mode,
) -> int:
    """Write rows identified by the ``key`` columns; returns how many rows changed.

    ``skip`` inserts rows whose key is new (the first of repeated keys wins); ``upsert``
    inserts or overwrites; ``update`` only overwrites existing rows. Callers remove repeated
    keys before an upsert or update: PostgreSQL refuses to change one row twice in a statement.

    Existing rows should go through ``update`` rather than ``upsert``: on PostgreSQL an
    ``INSERT ... ON CONFLICT`` draws a new surrogate key from the sequence for every row,
    conflicting or not, and re-imports would otherwise burn through the 32-bit keys.
    """
    if not rows:
        return 0
    columns = list(rows[0])
    rest = [c for c in columns if c not in key]
    driver = conn.connection.driver_connection
    cur = driver.cursor()
    try:
        if conn.dialect.name == "sqlite":
            before = driver.total_changes
            cur.executemany(
                _sqlite_sql(table.name, columns, key, rest, mode),
                _sqlite_rows(table, rows, rest + list(key) if mode == "update" else columns),
            )
            return int(driver.total_changes - before)
        cur.execute(
            f"CREATE TEMP TABLE segue_rows_in ON COMMIT DROP AS SELECT {', '.join(columns)}, "
            f"0::bigint AS segue_ord FROM {table.name} WITH NO DATA"
        )
        with cur.copy(f"COPY segue_rows_in ({', '.join(columns)}, segue_ord) FROM STDIN") as copy:
            for position, row in enumerate(rows):
                copy.write_row([*(row[c] for c in columns), position])
        cur.execute(_postgres_sql(table.name, columns, key, rest, mode))
        changed = int(cur.rowcount)
        cur.execute("DROP TABLE segue_rows_in")
        return changed
    finally:
        cur.close()


def _conflict_action(key: Sequence[str], rest: list[str], mode: Mode) -> str:
    if mode == "skip" or not rest:
        return f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
    sets = ", ".join(f"{c} = excluded.{c}" for c in rest)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


def _sqlite_sql(
    table: str, columns: list[str], key: Sequence[str], rest: list[str], mode: Mode
) -> str:
    if mode == "update":
        sets = ", ".join(f"{c} = ?" for c in rest)
        match = " AND ".join(f"{c} = ?" for c in key)
        return f"UPDATE {table} SET {sets} WHERE {match}"
    marks = ", ".join("?" for _ in columns)
    action = _conflict_action(key, rest, mode)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {action}"


def _postgres_sql(
    table: str, columns: list[str], key: Sequence[str], rest: list[str], mode: Mode
) -> str:
    if mode == "update":
        sets = ", ".join(f"{c} = s.{c}" for c in rest)
        match = " AND ".join(f"t.{c} = s.{c}" for c in key)
        return f"UPDATE {table} AS t SET {sets} FROM segue_rows_in AS s WHERE {match}"
    names = ", ".join(columns)
    action = _conflict_action(key, rest, mode)
    # ORDER BY: with repeated keys the first row wins, as in the SQLite executemany.
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} FROM segue_rows_in "
        f"ORDER BY segue_ord {action}"
    )


def _sqlite_rows(table: sa.Table, rows: Sequence[dict[str, Any]], order: list[str]) -> Any:
    dates = [i for i, c in enumerate(order) if isinstance(table.c[c].type, sa.Date)]
    for row in rows:
        values = [row[c] for c in order]
        for i in dates:  # ISO text: the form SQLAlchemy's Date type stores and reads back
            if values[i] is not None:
                values[i] = values[i].isoformat()
        yield values

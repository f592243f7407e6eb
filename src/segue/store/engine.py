"""Turning a database URL into a ready SQLAlchemy engine, with errors a user can act on.

SQLite gets WAL (readers never block the writer), ``synchronous=NORMAL`` (safe with WAL, much
faster than FULL), enforced foreign keys and explicit ``BEGIN`` so that DDL and DML share one
transaction, which the stdlib driver otherwise splits. A transaction that may write opens with
``BEGIN IMMEDIATE``: it takes the write lock first, waiting up to the busy timeout for it. A
deferred ``BEGIN`` that reads and then writes cannot wait: when another writer committed
in between, SQLite refuses the upgrade at once with "database is locked" (measured: 541 of
1,200 event writes failed with 8 concurrent writers). Connections marked read-only
(:data:`READ_ONLY`, the store's reads) keep the deferred ``BEGIN``, so reads never queue
behind writers.

PostgreSQL always goes through psycopg 3, with a connect timeout, and, where asked (the serving
processes), a ``statement_timeout``, so that no request waits on the database unbounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from segue.errors import StoreError

#: Execution option of a connection that only reads: SQLite opens its transactions deferred.
READ_ONLY = "segue_read_only"
#: How long a SQLite writer waits for the write lock before "database is locked" (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: How long opening a PostgreSQL connection may take (s); libpq counts whole seconds.
PG_CONNECT_TIMEOUT_S = 10

_PG_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg"}
_SQLITE_SCHEMES = {"sqlite", "sqlite+pysqlite"}


def masked(url: URL | str) -> str:
    """The URL as it may appear in messages and logs: password replaced by ``***``."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"
    return parsed.render_as_string(hide_password=True)


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL for ``url``; PostgreSQL URLs are pointed at psycopg 3."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(
            f"{url!r} is not a database URL. Use sqlite:///path/to/segue.sqlite or "
            "postgresql://user:password@host:5432/dbname."
        ) from exc
    if parsed.drivername in _PG_SCHEMES:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in _SQLITE_SCHEMES:
        return parsed.set(drivername="sqlite+pysqlite")
    raise StoreError(
        f"unsupported database URL {masked(parsed)}: segue stores data in SQLite "
        "(sqlite:///path/to/segue.sqlite) or PostgreSQL (postgresql://user@host/dbname)."
    )


def _sqlite_on_connect(busy_timeout_ms: int) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module; the "begin" hook issues BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            f"PRAGMA busy_timeout={int(busy_timeout_ms)}",  # first: WAL may wait for a lock
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA cache_size=-65536",  # 64 MiB: keeps the event_id index hot during bulk loads
        ):
            cursor.execute(pragma)
        cursor.close()

    return on_connect


def _sqlite_on_begin(conn: sa.Connection) -> None:
    # Writers take the write lock up front (waiting up to busy_timeout); see the docstring.
    read_only = conn.get_execution_options().get(READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_engine(
    url: URL,
    *,
    busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    connect_timeout_s: float = PG_CONNECT_TIMEOUT_S,
    statement_timeout_ms: int | None = None,
) -> sa.Engine:
    """An engine for a URL from :func:`parse_url`; SQLite files get their folder created.

    ``busy_timeout_ms``: how long a SQLite writer waits for the write lock.
    ``connect_timeout_s`` and ``statement_timeout_ms`` (None: no limit): PostgreSQL's.
    """
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise StoreError(
                f"{masked(url)}: segue needs a SQLite file, e.g. sqlite:///segue-data/segue.sqlite"
            )
        path = Path(database).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder for the SQLite store {path}: {exc}"
            ) from exc
        engine = sa.create_engine(url.set(database=str(path)))
        sa.event.listen(engine, "connect", _sqlite_on_connect(busy_timeout_ms))
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    connect_args: dict[str, Any] = {"connect_timeout": max(2, round(connect_timeout_s))}
    if statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def open_error(url: URL, exc: BaseException) -> StoreError:
    """A StoreError for a failed first connection, with a hint for the likely cause."""
    original = getattr(exc, "orig", None) or exc
    detail = str(original).strip().splitlines()[0] if str(original).strip() else type(exc).__name__
    if url.get_backend_name() == "sqlite":
        hint = "Is the path a SQLite file segue may write to?"
    else:
        hint = (
            "Is the PostgreSQL server running and reachable, does the database exist, and are "
            "the user and password right? Set SEGUE_DATABASE_URL to change it."
        )
    return StoreError(f"cannot open the store at {masked(url)}: {detail}. {hint}")

"""Bringing a store's tables to the newest schema when it opens, with Alembic.

The history is ``migrations/versions/``: revision "0001" creates the tables of schema
version 1, and each later one is a step forward (see their docstrings). :func:`prepare` runs,
inside the transaction that opens the store:

* a database with none of our tables gets every revision, in order;
* a store of segue <= 4, whose version is the ``schema_version`` row of ``meta``, is stamped
  with the revision of that version (version N is "000N"), loses ``meta`` and is upgraded;
* a store at an older revision is upgraded, one at the newest is left alone;
* a store at a revision this code does not know (a newer segue's) is refused, untouched.

Everything happens in one transaction (DDL is transactional on both backends), so a failing
step leaves the database as it was; on PostgreSQL an advisory lock keeps two processes that
open the same new database from both creating its tables.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from segue.errors import StoreError
from segue.store import schema

MIGRATIONS = Path(__file__).resolve().with_name("migrations")

# Any constant: every process that prepares a PostgreSQL store takes the same lock.
_PG_LOCK = 724311001


def alembic_config(url: str | None = None, connection: sa.Connection | None = None) -> Config:
    """A Config for the store's history, run on ``connection`` or else on the store at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


@functools.cache
def _known() -> frozenset[str]:
    return frozenset(r.revision for r in _script().walk_revisions())


def head() -> str:
    """The newest revision: what :func:`prepare` brings every store to."""
    head = _script().get_current_head()
    assert head is not None, f"no revisions in {MIGRATIONS}"
    return head


def current_revision(conn: sa.Connection) -> str | None:
    """The revision Alembic recorded in the database, or None (not an Alembic-managed one)."""
    return MigrationContext.configure(conn).get_current_revision()


def prepare(conn: sa.Connection, where: str) -> int:
    """Create, adopt or upgrade the store on ``conn`` (in a transaction); its schema version.

    ``where`` names the store in messages (the password-masked URL). Raises StoreError for a
    database that has store tables but no version, a revision this segue does not know, or a
    step that fails (the caller's transaction then rolls everything back).
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
    latest = head()
    current = current_revision(conn)
    if current is None:
        current = _adopt_legacy(conn, where)
    if current is None:
        found = [name for name in schema.TABLES_BY_NAME if sa.inspect(conn).has_table(name)]
        if found:
            raise StoreError(
                f"{where} has tables {found} but no segue schema version; "
                "it is not a segue database (or was damaged). Use an empty database."
            )
    elif current not in _known():
        raise _newer(where, current, latest)
    if current != latest:
        try:
            command.upgrade(alembic_config(connection=conn), latest)
        except sa.exc.DBAPIError as exc:
            detail = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else exc
            raise StoreError(
                f"could not bring the store at {where} from schema version {current or 'none'} "
                f"to {latest}: {detail}. Nothing was changed."
            ) from exc
    return int(latest)


def _adopt_legacy(conn: sa.Connection, where: str) -> str | None:
    """Record a segue <= 4 store's ``meta`` version as its revision; None if it has none."""
    meta = schema.legacy_meta
    if not sa.inspect(conn).has_table(meta.name):
        return None
    value = conn.execute(sa.select(meta.c.value).where(meta.c.name == "schema_version")).scalar()
    if value is None:
        return None
    if not value.isdigit() or int(value) not in schema.LEGACY_VERSIONS:
        raise _newer(where, value, head())
    revision = f"{int(value):04d}"
    MigrationContext.configure(conn).stamp(_script(), revision)
    meta.drop(conn)
    return revision


def _newer(where: str, found: str, latest: str) -> StoreError:
    return StoreError(
        f"the store at {where} has schema version {found}, newer than this segue understands "
        f"({latest}). Upgrade segue to open it."
    )

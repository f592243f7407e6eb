"""Alembic's entry point for the store's revisions in ``versions/``.

segue runs them itself when a store opens (:func:`segue.store.migrate.prepare`), on the
connection of the transaction that opens it: Alembic then neither begins nor commits, so a
failing revision leaves the database as it was. Revisions are numbered "0001", "0002", ...
(the number is the store's ``schema_version``), form one line, and only go forward. To add one,
change ``segue.store.schema``, then let Alembic draft the difference against a scratch store::

    from alembic import command
    from segue.store.migrate import alembic_config
    command.revision(alembic_config("sqlite:///scratch.sqlite"), "what changed",
                     autogenerate=True, rev_id="0006")

and make it work on both SQLite and PostgreSQL (``tests/test_store_migrations.py`` checks).
"""

from __future__ import annotations

from alembic import context

from segue.store import schema
from segue.store.engine import create_engine, parse_url


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=schema.metadata,
        render_as_batch=True,  # drafts that alter a table must rebuild it on SQLite
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("segue's store migrations run on a connection, not as SQL scripts")
_connection = context.config.attributes.get("connection")
if _connection is not None:
    _run(_connection)
else:  # the Alembic commands, on the URL of alembic_config(url)
    _engine = create_engine(parse_url(context.config.get_main_option("sqlalchemy.url")))
    try:
        with _engine.begin() as _conn:
            _run(_conn)
    finally:
        _engine.dispose()

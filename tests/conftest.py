"""Shared fixtures: real SQLite and PostgreSQL stores, each test run in its own database.

PostgreSQL is expected on localhost:5432 with trust auth (every development and CI machine has
it). Override with ``SEGUE_TEST_PG_ADMIN_URL``. A run creates ``segue_test_<random>`` and drops
it at the end, so parallel runs never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get(
    "SEGUE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@localhost:5432/test"
)
DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
LASTFM_DIR = DATASETS / "lastfm-2k"
SNIPS_DIR = DATASETS / "snips"


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test run, dropped afterwards."""
    name = f"segue_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - the server is a requirement
        pytest.fail(f"PostgreSQL is required for the store tests ({PG_ADMIN_URL}): {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL for an empty database, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'segue.sqlite'}"
        return
    url = request.getfixturevalue("pg_database_url")
    _reset_postgres(url)
    yield url


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def store(database_url: str):
    """An empty store on each backend."""
    from segue.store import open_store

    s = open_store(database_url)
    try:
        yield s
    finally:
        s.close()


REDIS_URL = os.environ.get("SEGUE_TEST_REDIS_URL", "redis://localhost:6379/0")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the real Redis; every key under it is deleted after."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:  # pragma: no cover - a requirement
        pytest.fail(f"Redis is required for the online tests ({REDIS_URL}): {exc}")
    prefix = f"segue-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def lastfm_dir() -> Path:
    if not LASTFM_DIR.is_dir():
        pytest.skip(f"Last.fm 2K dataset not found at {LASTFM_DIR} (../shared/datasets)")
    return LASTFM_DIR

"""The outbox on SQLite and PostgreSQL: idempotent queueing, claims, leases, retries, and the
schema migration that brings a version-1 store forward."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from segue.store import open_store
from segue.store import schema as store_schema
from segue.store.outbox import OutboxMessage
from test_store_migrations import _old_store


def _message(n: int, channel: str = "push", scheduled_ms: int = 1_000) -> OutboxMessage:
    return OutboxMessage(
        message_id=f"m-{n}",
        campaign="c",
        user_id=f"u{n % 3}",
        channel=channel,
        action_type="play_track",
        item_id=f"trk-{n}",
        payload={"to": f"u{n % 3}", "title": f"Play {n}", "body": "b", "deep_link": "segue://x"},
        scheduled_ms=scheduled_ms,
        created_ms=500,
        p_click=0.1,
        value=1.0,
    )


def test_queueing_is_idempotent_by_message_id(store) -> None:
    assert store.outbox_add([_message(1), _message(2)]) == 2
    assert store.outbox_add([_message(2), _message(3)]) == 1
    assert store.outbox_counts() == {"pending": 3, "sending": 0, "sent": 0, "failed": 0}
    stored = {m.message_id: m for m in store.outbox_messages(campaign="c")}
    assert stored["m-2"].payload["title"] == "Play 2"
    assert stored["m-3"].user_id == "u0"


def test_claims_are_disjoint_and_respect_schedule_and_channel(store) -> None:
    store.outbox_add([_message(1), _message(2), _message(3, scheduled_ms=5_000)])
    store.outbox_add([_message(4, channel="email")])
    first = store.outbox_claim(now_ms=2_000, lease_ms=1_000, limit=1, channels=["push"])
    second = store.outbox_claim(now_ms=2_000, lease_ms=1_000, limit=10, channels=["push"])
    assert [m.message_id for m in first] == ["m-1"]
    assert [m.message_id for m in second] == ["m-2"]  # m-3 is not due yet, m-4 is e-mail
    assert first[0].claim_token != second[0].claim_token
    assert first[0].attempts == 1 and first[0].status == "sending"
    assert store.outbox_claim(now_ms=2_500, lease_ms=1_000, limit=10, channels=["push"]) == []


def test_expired_lease_is_reclaimed_and_the_old_claim_cannot_mark(store) -> None:
    store.outbox_add([_message(1)])
    (dead,) = store.outbox_claim(now_ms=2_000, lease_ms=1_000, limit=5)
    # the sender "died": nothing marks the message; the lease runs out at 3_000
    assert store.outbox_claim(now_ms=2_999, lease_ms=1_000, limit=5) == []
    (again,) = store.outbox_claim(now_ms=3_001, lease_ms=1_000, limit=5)
    assert again.message_id == dead.message_id and again.attempts == 2
    assert store.outbox_mark_sent(dead.message_id, dead.claim_token, 3_100) is False
    assert store.outbox_mark_sent(again.message_id, again.claim_token, 3_100) is True
    assert store.outbox_mark_sent(again.message_id, again.claim_token, 3_200) is False
    (sent,) = store.outbox_messages(status="sent")
    assert sent.sent_ms == 3_100
    assert store.outbox_claim(now_ms=10**9, lease_ms=1_000, limit=5) == []


def test_failures_retry_until_max_attempts(store) -> None:
    store.outbox_add([_message(1)])
    now = 2_000
    statuses = []
    for _ in range(3):
        (m,) = store.outbox_claim(now_ms=now, lease_ms=1_000, limit=5)
        statuses.append(store.outbox_mark_failed(m.message_id, m.claim_token, "boom", now + 50, 3))
        assert store.outbox_claim(now_ms=now + 10, lease_ms=1_000, limit=5) == []  # backoff
        now += 100
    assert statuses == ["pending", "pending", "failed"]
    (failed,) = store.outbox_messages(status="failed")
    assert failed.attempts == 3 and failed.last_error == "boom"
    assert store.outbox_claim(now_ms=10**9, lease_ms=1_000, limit=5) == []


def test_recent_lists_messages_since(store) -> None:
    early, late = _message(1), _message(2)
    late.created_ms = 9_000
    store.outbox_add([early, late])
    recent = store.outbox_recent(1_000)
    assert list(recent["item_id"]) == ["trk-2"]
    assert list(store.outbox_recent(0, ["u1"])["item_id"]) == ["trk-1"]


def test_version_1_store_is_migrated_to_the_outbox(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    _old_store(engine, 1, 1)  # the tables segue 1 made (tests/test_store_migrations.py)
    engine.dispose()
    with open_store(url) as store:
        assert store.schema_version == store_schema.SCHEMA_VERSION  # 2, then later ones
        assert store.outbox_add([_message(1)]) == 1
    with open_store(url) as store:  # reopening does not migrate twice
        assert store.outbox_counts()["pending"] == 1

"""The serving process's user cache (segue.serving.holder.UserCache) over a real SQLite store:
what it keeps, for how long, and which users it drops when full.

A cached user is told apart from a fresh read by changing the user in the store behind the
cache's back: the cache answers with the old flags until the entry expires or is forgotten.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from segue.data.model import User
from segue.serving.holder import UserCache
from segue.store import Store, open_store

SIGNUP = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


class Clock:
    """A clock the test moves by hand (the cache's ``timer``)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'segue.sqlite'}") as s:
        s.upsert_users(User(id=f"u{i}", signup_at=SIGNUP) for i in range(6))
        yield s


def _flag_everyone(store: Store, ids: list[str]) -> None:
    """Turn on the kids profile in the store, without telling the cache."""
    store.upsert_users(User(id=i, signup_at=SIGNUP, kids_profile=True) for i in ids)


def _kids(cache: UserCache, user_id: str) -> bool:
    user = cache.get(user_id)
    assert user is not None
    return user.kids_profile


def test_users_are_kept_for_the_ttl_and_forgotten_on_request(store: Store) -> None:
    clock = Clock()
    cache = UserCache(store, ttl_s=2.0, timer=clock)
    assert not _kids(cache, "u0") and not _kids(cache, "u1")
    _flag_everyone(store, ["u0", "u1"])
    clock.now += 1.9
    assert not _kids(cache, "u0")  # within the TTL: the cached user
    cache.forget("u0")
    assert _kids(cache, "u0")  # forgotten: read again
    clock.now += 0.1
    assert _kids(cache, "u1")  # two seconds on: expired, read again


def test_unknown_users_are_cached_as_missing(store: Store) -> None:
    clock = Clock()
    cache = UserCache(store, ttl_s=2.0, timer=clock)
    assert cache.get("newcomer") is None
    store.upsert_users([User(id="newcomer", signup_at=SIGNUP)])
    assert cache.get("newcomer") is None  # the miss is remembered
    cache.forget("newcomer")
    assert cache.get("newcomer") is not None


def test_a_full_cache_drops_the_least_recently_used_user_only(store: Store) -> None:
    clock = Clock()
    cache = UserCache(store, ttl_s=60.0, max_users=3, timer=clock)
    for user_id in ("u0", "u1", "u2"):
        cache.get(user_id)
    clock.now += 1.0
    cache.get("u0")  # u0 is used again: u1 is now the least recently used
    _flag_everyone(store, ["u0", "u1", "u2", "u3"])
    assert _kids(cache, "u3")  # a fourth user, read from the store, drops one entry
    assert not _kids(cache, "u0")  # recently used: still cached (a cleared cache would read)
    assert not _kids(cache, "u2")  # not the least recently used: still cached
    assert _kids(cache, "u1")  # the least recently used was dropped, so it is read again


def test_expired_users_make_room_before_live_ones(store: Store) -> None:
    clock = Clock()
    cache = UserCache(store, ttl_s=10.0, max_users=2, timer=clock)
    cache.get("u0")
    clock.now += 6.0
    cache.get("u1")
    clock.now += 5.0  # u0 expired, u1 has five seconds left
    _flag_everyone(store, ["u0", "u1", "u2"])
    assert _kids(cache, "u2")
    assert not _kids(cache, "u1")  # u2 took the expired entry's place


def test_zero_ttl_caches_nothing(store: Store) -> None:
    cache = UserCache(store, ttl_s=0.0, timer=Clock())  # the intake's setting
    assert not _kids(cache, "u0")
    _flag_everyone(store, ["u0"])
    assert _kids(cache, "u0")


def test_size_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="max_users"):
        UserCache(store, max_users=0)


def test_threads_share_one_small_cache(store: Store) -> None:
    cache = UserCache(store, ttl_s=60.0, max_users=3)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for n in range(300):
                user_id = f"u{(n + offset) % 6}"
                assert cache.get(user_id) is not None
                if n % 7 == 0:
                    cache.forget(user_id)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(cache._users) <= 3

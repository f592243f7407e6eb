"""Decision logic with a hand-set click model: consent, kids, holdout, quiet hours in the
user's time zone, daily caps per channel, no repeat, thresholds and the channel choice."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from segue.data.log import InteractionLog
from segue.data.model import Event, Item, ItemKind, User
from segue.errors import SegueError
from segue.nba.candidates import REASONS, Candidates
from segue.nba.clickmodel import ClickModel
from segue.nba.features import CHANNELS, Audience, CTRTable, FeatureSpace, ItemTable, Profiles
from segue.nba.policy import PolicySettings, decide, in_holdout, send_times

T0 = dt.datetime(2025, 3, 3, 12, tzinfo=dt.UTC)  # a Monday, winter time everywhere below


def _setup(users: list[User]):
    catalog = [
        Item(id="trk-1", kind=ItemKind.TRACK, title="One", genres=("rock",)),
        Item(id="book-1", kind=ItemKind.AUDIOBOOK, title="Book"),
    ]
    log = InteractionLog.from_events(
        [Event(event_id="e", user_id=users[0].id, item_id="trk-1", type="play", timestamp=T0)]
    )
    ids = np.array([i.id for i in catalog], dtype=object)
    log = replace(log, item_ids=ids, item=[0])
    log = replace(log, user_ids=np.array([u.id for u in users], dtype=object))
    items = ItemTable.from_items(catalog, ids)
    audience = Audience.from_users(users, log.user_ids)
    profiles = Profiles.build(log, items, int(T0.timestamp() * 1000))
    space = FeatureSpace(countries=audience.countries)
    names = space.names()
    coef = np.zeros(len(names))
    # a click model that only knows channels and actions: in-app > push > e-mail
    coef[names.index("channel=in_app")] = 1.0
    coef[names.index("channel=push")] = 0.5
    coef[names.index("action=start_audiobook")] = -1.0
    ctr = CTRTable.fit(np.zeros(0, object), np.zeros(0, int), np.zeros(0))
    model = ClickModel(space, ctr, coef, intercept=-2.0)
    return items, audience, profiles, model


def _user(uid: str, tz: str, push: bool = True, email: bool = True, kids: bool = False) -> User:
    return User(
        id=uid,
        signup_at=T0,
        timezone=tz,
        consent_push=push,
        consent_email=email,
        kids_profile=kids,
    )


def _cands(users: list[int], items: list[int]) -> Candidates:
    u = np.repeat(users, len(items))
    i = np.tile(items, len(users))
    return Candidates(u, i, np.zeros(len(u), int), np.full(len(u), np.nan))


_NO_RECENT = {
    k: np.zeros(0, dtype=object if k in ("user_id", "channel", "item_id") else np.int64)
    for k in ("user_id", "channel", "item_id", "created_ms", "scheduled_ms")
}


def _chosen(scored) -> dict[int, tuple[str, int]]:
    return {
        int(scored.user[r]): (CHANNELS[scored.channel[r]], int(scored.item[r]))
        for r in np.flatnonzero(scored.chosen)
    }


def test_channel_choice_consent_and_kids() -> None:
    users = [
        _user("a", "Europe/Berlin"),
        _user("b", "Europe/Berlin", push=False, email=True),
        _user("kid", "Europe/Berlin", push=False, email=False, kids=True),
    ]
    items, audience, profiles, model = _setup(users)
    now = int(T0.timestamp() * 1000)
    settings = PolicySettings(channels=("push", "email"))
    scored = decide(
        _cands([0, 1, 2], [0]), audience, items, profiles, model, now, _NO_RECENT, settings
    )
    chosen = _chosen(scored)
    # in-app is switched off here: a gets push (best of push/e-mail), b only has e-mail consent
    assert chosen == {0: ("push", 0), 1: ("email", 0)}
    assert 2 not in set(scored.user)  # kids profiles are never scored
    # p follows the model: expit(-2 + 0.5) for push of a track
    row = np.flatnonzero(scored.chosen & (scored.user == 0))[0]
    assert scored.p[row] == pytest.approx(1 / (1 + np.exp(1.5)))
    assert scored.ev[row] == pytest.approx(scored.p[row] * 1.0)


def test_value_can_beat_probability() -> None:
    """An audiobook (value 3.0) with lower p wins when p × value is higher."""
    items, audience, profiles, model = _setup([_user("a", "Europe/Berlin")])
    now = int(T0.timestamp() * 1000)
    settings = PolicySettings(channels=("in_app",))
    scored = decide(
        _cands([0], [0, 1]), audience, items, profiles, model, now, _NO_RECENT, settings
    )
    assert _chosen(scored) == {0: ("in_app", 1)}
    track, book = (np.flatnonzero(scored.item == k)[0] for k in (0, 1))
    assert scored.p[track] > scored.p[book] and scored.ev[book] > scored.ev[track]


def test_quiet_hours_follow_the_users_time_zone() -> None:
    users = [_user("tokyo", "Asia/Tokyo"), _user("ny", "America/New_York")]
    audience = _setup(users)[1]
    settings = PolicySettings()  # quiet 21:00-09:00 local
    now = int(dt.datetime(2025, 3, 3, 13, 0, tzinfo=dt.UTC).timestamp() * 1000)
    # 13:00 UTC = 22:00 in Tokyo (quiet), 08:00 in New York (quiet)
    push = CHANNELS.index("push")
    times = send_times(audience, np.array([0, 1]), np.array([push, push]), now, settings)
    tokyo = dt.datetime.fromtimestamp(times[0] / 1000, tz=ZoneInfo("Asia/Tokyo"))
    ny = dt.datetime.fromtimestamp(times[1] / 1000, tz=ZoneInfo("America/New_York"))
    assert (tokyo.day, tokyo.hour, tokyo.minute) == (4, 9, 0)  # next morning
    assert (ny.day, ny.hour, ny.minute) == (3, 9, 0)  # one hour later
    in_app = CHANNELS.index("in_app")
    assert send_times(audience, np.array([0]), np.array([in_app]), now, settings)[0] == now
    noon = int(dt.datetime(2025, 3, 3, 3, 0, tzinfo=dt.UTC).timestamp() * 1000)  # 12:00 Tokyo
    assert send_times(audience, np.array([0]), np.array([push]), noon, settings)[0] == noon


def test_caps_and_no_repeat_use_the_outbox() -> None:
    items, audience, profiles, model = _setup([_user("a", "Europe/Berlin")])
    now = int(T0.timestamp() * 1000)
    settings = PolicySettings(daily_caps={"push": 1, "email": 1, "in_app": 1}, no_repeat_days=7)

    def recent(rows: list[tuple[str, str, int, int]]) -> dict[str, np.ndarray]:
        return {
            "user_id": np.array(["a"] * len(rows), dtype=object),
            "channel": np.array([r[0] for r in rows], dtype=object),
            "item_id": np.array([r[1] for r in rows], dtype=object),
            "created_ms": np.array([r[2] for r in rows], dtype=np.int64),
            "scheduled_ms": np.array([r[3] for r in rows], dtype=np.int64),
        }

    day = 86_400_000
    run = lambda r: _chosen(  # noqa: E731
        decide(_cands([0], [0, 1]), audience, items, profiles, model, now, recent(r), settings)
    )
    assert run([]) == {0: ("in_app", 1)}
    # the book went out in-app today: in-app is capped, the book is not repeated
    assert run([("in_app", "book-1", now - 1000, now - 1000)]) == {0: ("push", 0)}
    # ... and the track went by push yesterday: e-mail is all that is left, for nothing new
    both = [("in_app", "book-1", now - 1000, now - 1000), ("push", "trk-1", now - day, now - day)]
    assert run(both) == {}
    # eight days later neither the repeat rule nor yesterday's caps apply
    old = [(c, i, t - 8 * day, s - 8 * day) for c, i, t, s in both]
    assert run(old) == {0: ("in_app", 1)}


def test_thresholds_and_holdout() -> None:
    items, audience, profiles, model = _setup([_user("a", "Europe/Berlin")])
    now = int(T0.timestamp() * 1000)
    strict = PolicySettings(min_probability=0.5)
    scored = decide(_cands([0], [0, 1]), audience, items, profiles, model, now, _NO_RECENT, strict)
    assert not scored.chosen.any() and not scored.allowed.any()
    held = decide(
        _cands([0], [0]), audience, items, profiles, model, now, _NO_RECENT, PolicySettings(),
        holdout=np.array([True]),
    )  # fmt: skip
    assert len(held) == 0
    ids = [f"usr-{k}" for k in range(20_000)]
    first, again = in_holdout(ids, "spring", 0.1), in_holdout(ids, "spring", 0.1)
    assert (first == again).all() and abs(first.mean() - 0.1) < 0.01
    assert (first != in_holdout(ids, "autumn", 0.1)).any()
    with pytest.raises(SegueError, match="quiet hours"):
        PolicySettings(quiet_start=25)
    assert REASONS[0].value == "liked_by_similar"

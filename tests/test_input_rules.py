"""One set of input rules (``segue.data.model``) for the API, the importers and the stream.

Each rule is checked on the canonical records, and through an import, which must fail at the
offending row and column; the API's 422s are in ``test_api.py`` and the stream's dead letters
in ``test_online_bus.py`` and ``test_dead_letters.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from segue.config import load_settings
from segue.data.model import (
    DEFAULT_MAX_FUTURE_S,
    MAX_MS_PLAYED,
    Event,
    Item,
    User,
    max_future_s,
    set_max_future_s,
)
from segue.data.sources import read_table
from segue.errors import RowError

NOW = dt.datetime.now(dt.UTC)
GOOD = {
    "event_id": "e1",
    "user_id": "u1",
    "item_id": "t1",
    "type": "play",
    "timestamp": NOW - dt.timedelta(hours=1),
}


@pytest.fixture(autouse=True)
def _default_limit() -> Iterator[None]:
    set_max_future_s(DEFAULT_MAX_FUTURE_S)
    yield
    set_max_future_s(DEFAULT_MAX_FUTURE_S)


def _field_of(exc: ValidationError) -> str:
    return str(exc.errors()[0]["loc"][0])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user_id", "u\x00"),
        ("user_id", "u\nv"),
        ("surface", "ho\x0bme"),
        ("item_id", "\x1b[31mred"),
        ("event_id", "x" * 201),
        ("user_id", ""),
        ("ms_played", 2**63),
        ("ms_played", MAX_MS_PLAYED + 1),
        ("ms_played", -1),
        ("count", 2**31),
        ("timestamp", dt.datetime(9999, 12, 31, tzinfo=dt.UTC)),
        ("timestamp", dt.timedelta(seconds=DEFAULT_MAX_FUTURE_S + 60)),  # from now, see below
        ("timestamp", dt.datetime(1969, 12, 31, tzinfo=dt.UTC)),
        ("session_id", "s\x00"),
        ("device", "d" * 257),
        ("rating", float("nan")),
    ],
)
def test_events_out_of_bounds_are_refused_naming_the_field(field: str, value: object) -> None:
    if isinstance(value, dt.timedelta):  # relative to the clock when the test runs, not when
        value = dt.datetime.now(dt.UTC) + value  # the module was collected minutes earlier
    with pytest.raises(ValidationError) as info:
        Event.model_validate({**GOOD, field: value})
    assert _field_of(info.value) == field


def test_events_within_bounds_pass() -> None:
    event = Event.model_validate(
        {
            **GOOD,
            "user_id": "ユーザー 7 🎧",
            "ms_played": MAX_MS_PLAYED,
            "timestamp": NOW + dt.timedelta(seconds=DEFAULT_MAX_FUTURE_S - 30),
            "session_id": "",
            "count": 2**31 - 1,
        }
    )
    assert event.ms_played == MAX_MS_PLAYED


def test_the_future_bound_is_a_setting() -> None:
    ahead = {**GOOD, "timestamp": NOW + dt.timedelta(hours=1)}
    with pytest.raises(ValidationError, match="300 s in the future"):
        Event.model_validate(ahead)
    settings = load_settings(environ={"SEGUE_MAX_FUTURE_S": "7200"}, cwd=Path("/nonexistent"))
    assert settings.max_future_s == 7200
    set_max_future_s(settings.max_future_s)
    assert max_future_s() == 7200
    assert Event.model_validate(ahead).timestamp == ahead["timestamp"]
    with pytest.raises(ValueError, match="max_future_s"):
        set_max_future_s(-1)


def test_the_new_settings_have_their_defaults() -> None:
    settings = load_settings(environ={}, cwd=Path("/nonexistent"))
    assert (settings.max_future_s, settings.dead_letter_after) == (300, 3)
    assert 0 < settings.reclaim_idle_s <= 30
    env = {"SEGUE_DEAD_LETTER_AFTER": "5", "SEGUE_RECLAIM_IDLE_S": "2.5"}
    settings = load_settings(environ=env, cwd=Path("/nonexistent"))
    assert (settings.dead_letter_after, settings.reclaim_idle_s) == (5, 2.5)


def test_users_need_a_tz_database_timezone_and_printable_ids() -> None:
    signup = NOW - dt.timedelta(days=1)
    assert User(id="u", signup_at=signup, timezone="Europe/Berlin").timezone == "Europe/Berlin"
    for field, value in [("timezone", "Mars/Olympus"), ("timezone", "../etc"), ("id", "a\x00")]:
        with pytest.raises(ValidationError) as info:
            User.model_validate({"id": "u", "signup_at": signup, field: value})
        assert _field_of(info.value) == field


def test_item_text_may_hold_any_printable_text_but_no_control_characters() -> None:
    # Last.fm's artist names hold private-use characters and ideographic spaces: still fine
    item = Item(id="a1", kind="artist", title="Glee Cast\uf800 三船\u3000浩", description="a\nb")
    assert item.title.endswith("浩")
    with pytest.raises(ValidationError, match="control characters"):
        Item(id="a2", kind="artist", title="bad\x00name")
    with pytest.raises(ValidationError, match="control characters"):
        Item(id="a3", kind="track", title="t", genres=("rock\x07",))


@pytest.mark.parametrize(
    ("cell", "column", "reason"),
    [
        ("ms=99999999999", "ms", "less than or equal to 86400000"),
        ("user=u\x01x", "user", "printable"),
        ("ts=9999-12-31T00:00:00Z", "ts", "in the future"),
    ],
)
def test_an_import_with_a_bad_row_fails_at_its_line_and_column(
    tmp_path: Path, cell: str, column: str, reason: str
) -> None:
    name, value = cell.split("=", 1)
    row = {"user": "u2", "item": "t2", "ts": "2024-05-01T10:00:00Z", "ms": "1000", name: value}
    path = tmp_path / "plays.csv"
    path.write_text(
        "user,item,type,ts,ms\n"
        "u1,t1,play,2024-05-01T09:00:00Z,500\n"
        f"{row['user']},{row['item']},play,{row['ts']},{row['ms']}\n",
        encoding="utf-8",
    )
    mapping = {"user_id": "user", "item_id": "item", "timestamp": "ts", "ms_played": "ms"}
    with pytest.raises(RowError) as info:
        read_table(path, "events", mapping)
    assert (info.value.line, info.value.column) == (3, column)
    assert reason in info.value.reason

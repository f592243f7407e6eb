"""Wrapped against numbers computed by hand, on SQLite and PostgreSQL; the page, the card, the CLI.

The fixture year of listener "w" (UTC), with tracks of 200 s (A, C) and 180 s (B), 240 s (D):

* A (artist X, rock): 5 plays of 200 s on 10 March from 10:00, 5 minutes apart → 5 streams,
  1,000 s; one more play in January 2025 (outside the year).
* B (artist Y, jazz): 3 plays of 180 s at 20:00 in July + one 10 s play (not a stream) →
  3 streams, 550 s; B was also played on 31 December 2023 (heard before the year).
* C (artist X, rock): 20 Focus-Mode plays on 1 May (the song on repeat while working).
* D (artist Y, jazz): looped overnight, 10 plays of 240 s from 01:00 on 1 June, 4 minutes
  apart → one play, 240 s, 9 loop plays excluded.
* E (episode of show S): 30 minutes on 5 November at 12:00.

Hence: streams 5 + 3 + 1 + 1 = 10; minutes (1000 + 550 + 240 + 1800) / 60 = 59.83; top
tracks A 5, B 3, D 1; top artists X 5, Y 4; genres rock 5/9, jazz 4/9; new tracks A, D of A, B,
D → 2/3; new artists X of X, Y → 1; top five artists hold 9/9 of track streams → The Loyalist.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
from pathlib import Path

import pytest
from PIL import Image

from segue.data.model import Event, EventType, Item, ItemKind, User
from segue.errors import SegueError
from segue.jobs.products import wrapped, wrapped_html, wrapped_png
from segue.products.wrapped import LOOP_MIN_PLAYS, compute_wrapped
from segue.store import Store

UTC = dt.UTC
_n = itertools.count()


def _item(item_id: str, kind: ItemKind, title: str, **kw: object) -> Item:
    return Item(id=item_id, kind=kind, title=title, **kw)


ITEMS = [
    _item("X", ItemKind.ARTIST, "Artist X"),
    _item("Y", ItemKind.ARTIST, "Artist <Y>"),
    _item("A", ItemKind.TRACK, "Song A", artist_id="X", genres=("rock",), duration_ms=200_000),
    _item("B", ItemKind.TRACK, "Song B", artist_id="Y", genres=("jazz",), duration_ms=180_000),
    _item("C", ItemKind.TRACK, "Song C", artist_id="X", genres=("rock",), duration_ms=200_000),
    _item("D", ItemKind.TRACK, "Song D", artist_id="Y", genres=("jazz",), duration_ms=240_000),
    _item("S", ItemKind.PODCAST_SHOW, "Show S"),
    _item("E", ItemKind.PODCAST_EPISODE, "Episode E", show_id="S", duration_ms=1_800_000),
]


def _plays(item: str, start: dt.datetime, n: int, every_min: float, ms: int, **kw) -> list[Event]:
    return [
        Event(
            event_id=f"w{next(_n)}",
            user_id="w",
            item_id=item,
            type=EventType.PLAY,
            timestamp=start + dt.timedelta(minutes=every_min * i),
            ms_played=ms,
            **kw,
        )
        for i in range(n)
    ]


def _events() -> list[Event]:
    t = dt.datetime
    return [
        *_plays("A", t(2024, 3, 10, 10, tzinfo=UTC), 5, 5, 200_000),
        *_plays("A", t(2025, 1, 2, 10, tzinfo=UTC), 1, 0, 200_000),
        *_plays("B", t(2024, 7, 4, 20, tzinfo=UTC), 3, 5, 180_000),
        *_plays("B", t(2024, 7, 4, 20, 30, tzinfo=UTC), 1, 0, 10_000),
        *_plays("B", t(2023, 12, 31, 23, tzinfo=UTC), 1, 0, 180_000),
        *_plays("C", t(2024, 5, 1, 14, tzinfo=UTC), 20, 3.5, 200_000, focus=True),
        *_plays("D", t(2024, 6, 1, 1, tzinfo=UTC), 10, 4, 240_000),
        *_plays("E", t(2024, 11, 5, 12, tzinfo=UTC), 1, 0, 1_800_000),
        Event(
            event_id="w-like",
            user_id="w",
            item_id="C",
            type=EventType.LIKE,
            timestamp=t(2024, 5, 1, 15, tzinfo=UTC),
        ),
    ]


@pytest.fixture
def listener(store: Store) -> Store:
    store.upsert_items(ITEMS)
    store.upsert_users([User(id="w", signup_at=dt.datetime(2023, 1, 1, tzinfo=UTC))])
    store.add_events(_events())
    return store


def test_wrapped_numbers_match_the_hand_computed_ones(listener: Store) -> None:
    w = wrapped(listener, "w", 2024)
    assert w.streams == 10
    assert w.minutes_listened == pytest.approx((1000 + 550 + 240 + 1800) / 60, abs=0.05)
    assert [(t.id, t.plays) for t in w.top_tracks] == [("A", 5), ("B", 3), ("D", 1)]
    assert w.top_tracks[0].subtitle == "Artist X"
    assert w.top_song_plays == 5
    assert [(a.id, a.plays) for a in w.top_artists] == [("X", 5), ("Y", 4)]
    assert [(g.name, g.plays) for g in w.top_genres] == [("rock", 5), ("jazz", 4)]
    assert w.top_genres[0].share == pytest.approx(5 / 9, abs=1e-4)
    assert [(p.id, p.name, p.minutes) for p in w.top_podcasts] == [("S", "Show S", 30.0)]
    hours = {h: m for h, m in enumerate(w.minutes_by_hour) if m}
    assert hours == pytest.approx({10: 1000 / 60, 20: 550 / 60, 1: 4.0, 12: 30.0}, abs=0.05)
    months = {m + 1: v for m, v in enumerate(w.minutes_by_month) if v}
    assert months == pytest.approx({3: 1000 / 60, 7: 550 / 60, 6: 4.0, 11: 30.0}, abs=0.05)
    assert w.discovery_share == pytest.approx(2 / 3, abs=1e-4)
    assert w.new_artists == 1 and w.distinct_artists == 2 and w.distinct_tracks == 3
    assert not w.first_year
    assert w.focus_plays_excluded == 20
    assert w.loop_plays_excluded == 9
    assert w.personality.name == "The Loyalist"
    assert "100%" in w.personality.description


def test_a_focus_mode_repeat_does_not_make_the_top_song(listener: Store) -> None:
    # C was played 20 times in Focus Mode, four times as often as A: A stays the top song
    w = wrapped(listener, "w", 2024)
    assert "C" not in {t.id for t in w.top_tracks}
    assert w.top_tracks[0].id == "A"


def test_a_daytime_loop_is_a_favourite_not_noise() -> None:
    user = User(id="w", signup_at=dt.datetime(2023, 1, 1, tzinfo=UTC))
    from segue.data.log import InteractionLog

    loop = _plays("D", dt.datetime(2024, 6, 1, 14, tzinfo=UTC), LOOP_MIN_PLAYS + 2, 4, 240_000)
    night = _plays("A", dt.datetime(2024, 6, 2, 2, tzinfo=UTC), LOOP_MIN_PLAYS - 1, 4, 200_000)
    log = InteractionLog.from_events(loop + night)
    w = compute_wrapped(user, 2024, log, {i.id: i for i in ITEMS}, set())
    # a daytime loop counts in full; a night run shorter than LOOP_MIN_PLAYS counts too
    assert [(t.id, t.plays) for t in w.top_tracks] == [
        ("D", LOOP_MIN_PLAYS + 2),
        ("A", LOOP_MIN_PLAYS - 1),
    ]
    assert w.loop_plays_excluded == 0 and w.first_year


def test_local_time_decides_the_year_and_the_hours(listener: Store) -> None:
    # in Tokyo (UTC+9) B's 23:00 UTC play of 31 Dec 2023 falls in 2024, at 08:00, and D's
    # 01:00 UTC loop is a 10:00 loop: a favourite on repeat, not a night of noise
    listener.upsert_users(
        [User(id="w", signup_at=dt.datetime(2023, 1, 1, tzinfo=UTC), timezone="Asia/Tokyo")]
    )
    w = wrapped(listener, "w", 2024)
    assert w.timezone == "Asia/Tokyo"
    assert [(t.id, t.plays) for t in w.top_tracks] == [("D", 10), ("A", 5), ("B", 4)]
    assert w.loop_plays_excluded == 0
    assert w.minutes_by_hour[19] == pytest.approx(1000 / 60, abs=0.05)  # 10:00 UTC
    assert w.first_year  # nothing before 2024 in Tokyo time


def test_page_and_card_render_from_the_store(listener: Store, tmp_path: Path) -> None:
    html = wrapped_html(listener, "w", 2024, tmp_path / "w.html")
    assert (tmp_path / "w.html").read_text(encoding="utf-8") == html
    assert "Song A" in html and "The Loyalist" in html
    assert "Artist &lt;Y&gt;" in html and "Artist <Y>" not in html  # titles are escaped
    assert "http://" not in html and "https://" not in html  # self-contained
    png = wrapped_png(listener, "w", 2024, tmp_path / "w.png")
    assert (tmp_path / "w.png").read_bytes() == png
    image = Image.open(io.BytesIO(png))
    assert image.size == (1080, 1920)
    # not a blank image: the card has many colours
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 100


def test_unknown_user_and_bad_year_are_clear_errors(listener: Store) -> None:
    with pytest.raises(SegueError, match="unknown user 'nobody'"):
        wrapped(listener, "nobody", 2024)
    with pytest.raises(SegueError, match="year between 1900 and 2200"):
        wrapped(listener, "w", 20245)


def test_store_user_events_reads_one_listener_in_a_range(listener: Store) -> None:
    from segue.errors import StoreError

    start = int(dt.datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
    end = int(dt.datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
    log = listener.user_events("w", start, end)
    # 5 A + 4 B + 20 C (focus) + 10 D + 1 E plays and one like, inside 2024
    assert len(log) == 41
    assert int(log.focus.sum()) == 20
    assert (log.ts_ms[:-1] <= log.ts_ms[1:]).all()
    assert log.ts_ms.min() >= start and log.ts_ms.max() < end
    assert sorted(set(log.item_ids[log.item].tolist())) == ["A", "B", "C", "D", "E"]
    assert len(listener.user_events("w")) == 43
    with pytest.raises(StoreError, match="unknown user 'nobody'"):
        listener.user_events("nobody")

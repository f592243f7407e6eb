"""Discovery Station and radio: never-heard rule, seeds, session adaptation, Focus Mode, kids."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest

import products_world as world
from segue.data.model import Event, EventType
from segue.errors import SegueError
from segue.jobs.products import product_context, station_page
from segue.online.state import InProcessState
from segue.products.stations import StationSeed
from segue.store import open_store

NOW = dt.datetime(2024, 6, 1, 20, tzinfo=dt.UTC)
HEARD = {
    world.track_id(g, a, t)
    for g, arts in (("rock", (0, 1)), ("jazz", (0,)))
    for a in arts
    for t in range(4)
}
KNOWN_ARTISTS = {"rock-a0", "rock-a1", "jazz-a0"}
_ids = itertools.count()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("stations") / "world.sqlite"
    store = open_store(f"sqlite:///{path}")
    world.build(store)
    trained, side = world.trained(store)
    yield store, trained, product_context(store, trained, side)
    store.close()


def _events(user: str, kind: EventType, items: list[str], *, focus: bool = False) -> list[Event]:
    return [
        Event(
            event_id=f"s{next(_ids)}",
            user_id=user,
            item_id=item,
            type=kind,
            timestamp=NOW + dt.timedelta(seconds=i),
            session_id="radio-1",
            focus=focus,
        )
        for i, item in enumerate(items)
    ]


def _apply(state: InProcessState, events: list[Event]) -> None:
    ids = [e.item_id for e in events]
    state.apply(events, artist_of=world.artist_of(ids), genres_of=world.genres_of(ids))


def _page(setup, state, seed="discovery", user="main", **kw):
    store, trained, ctx = setup
    now_ms = int((NOW + dt.timedelta(minutes=1)).timestamp() * 1000)
    return station_page(store, trained, state, user, seed, 10, now_ms=now_ms, context=ctx, **kw)


def _genre(item_id: str) -> str:
    return item_id.split("-")[0]


def _artist(item_id: str) -> str:
    return item_id.rsplit("-", 1)[0]


def test_discovery_never_plays_a_heard_track_or_artist(setup) -> None:
    state = InProcessState()
    page = _page(setup, state)
    ids = [t.item_id for t in page.tracks]
    assert len(ids) == 10
    assert not set(ids) & HEARD
    assert not {_artist(i) for i in ids} & KNOWN_ARTISTS
    assert len({_artist(i) for i in ids}) == 10  # one track per artist
    # a play since training (online state) counts as heard at once, artist included
    fresh = ids[0]
    _apply(state, _events("main", EventType.PLAY, [fresh]))
    after = [t.item_id for t in _page(setup, state).tracks]
    assert fresh not in after and _artist(fresh) not in {_artist(i) for i in after}
    # allowing known artists brings their unheard tracks, never the heard ones
    relaxed = [t.item_id for t in _page(setup, InProcessState(), new_artists_only=False).tracks]
    assert not set(relaxed) & HEARD
    assert {_artist(i) for i in relaxed} & KNOWN_ARTISTS


@pytest.mark.parametrize("seed", ["discovery", "genre:rock"])
def test_three_skips_of_a_genre_remove_it_from_the_next_page(setup, seed: str) -> None:
    state = InProcessState()
    first = [t.item_id for t in _page(setup, state, seed).tracks]
    rock = [i for i in first if _genre(i) == "rock"]
    assert len(rock) >= 3, first  # the listener's main taste leads the page
    _apply(state, _events("main", EventType.SKIP, rock[:2]))
    page = _page(setup, state, seed, served=first)
    assert page.skips_by_genre == {"rock": 2}
    _apply(state, _events("main", EventType.SKIP, rock[2:3]))
    page = _page(setup, state, seed, served=first)
    assert page.skips_by_genre == {"rock": 3}
    assert page.tracks and not [t for t in page.tracks if t.genre == "rock"]
    assert not {t.item_id for t in page.tracks} & set(first)  # served tracks never repeat


def test_likes_pull_a_genre_up(setup) -> None:
    state = InProcessState()
    before = [t.genre for t in _page(setup, state).tracks].count("pop")
    _apply(state, _events("main", EventType.LIKE, ["pop-a7-t0", "pop-a8-t0", "pop-a9-t0"]))
    after = [t.genre for t in _page(setup, state).tracks].count("pop")
    assert after > before


def test_focus_mode_events_change_no_station(setup) -> None:
    state = InProcessState()
    before = _page(setup, state)
    first = [t.item_id for t in before.tracks]
    focus = _events(
        "main", EventType.SKIP, [i for i in first if _genre(i) == "rock"] * 3, focus=True
    )
    focus += _events("main", EventType.PLAY, first[:3], focus=True)
    _apply(state, focus)
    after = _page(setup, state)
    assert after == before


def test_radio_seeds(setup) -> None:
    state = InProcessState()
    artist = [t.item_id for t in _page(setup, state, "artist:rock-a3").tracks]
    assert _artist(artist[0]) == "rock-a3"
    assert [_artist(i) for i in artist].count("rock-a3") == 2
    assert sum(_genre(i) == "rock" for i in artist) >= 6
    track = [t.item_id for t in _page(setup, state, "track:jazz-a4-t2").tracks]
    assert track[0] == "jazz-a4-t2"
    genre = [t.item_id for t in _page(setup, state, "genre:jazz").tracks]
    assert {_genre(i) for i in genre} == {"jazz"}
    # jazz is the acoustic, slow genre of the world: the chill station is mostly jazz
    chill = [t.item_id for t in _page(setup, state, "mood:chill").tracks]
    assert sum(_genre(i) == "jazz" for i in chill) >= 6


def test_kids_profile_station_has_no_explicit_track(setup) -> None:
    explicit = {i.id for i in world.catalog() if i.explicit}
    for seed in ("discovery", "genre:pop", "artist:pop-a2", "mood:party"):
        page = _page(setup, InProcessState(), seed, user="kid")
        assert page.tracks and not {t.item_id for t in page.tracks} & explicit


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ("jukebox", "unknown station seed 'jukebox'"),
        ("mood:angry", "unknown mood 'angry'"),
        ("genre:", "needs a value"),
        ("genre:polka", "unknown genre 'polka'"),
        ("artist:nobody", 'no artist named "nobody"'),  # an artist or track by name or id
        ("track:nothing", 'no track named "nothing"'),
    ],
)
def test_bad_seeds_are_clear_errors(setup, seed: str, message: str) -> None:
    with pytest.raises(SegueError, match=message):
        _page(setup, InProcessState(), seed)


def test_seed_text_round_trips() -> None:
    for text in ("discovery", "artist:art-1", "track:t:1", "genre:indie rock", "mood:chill"):
        assert str(StationSeed.parse(text)) == text


def test_radio_on_a_factor_model_follows_the_seed(setup) -> None:
    # ALS scores a seed by its items' mean factor vector (no fold-in per page)
    store, _, _ = setup
    als, side = world.trained(store, "als")
    ctx = product_context(store, als, side)
    now_ms = int(NOW.timestamp() * 1000)

    def page(seed: str) -> list[str]:
        result = station_page(store, als, InProcessState(), "main", seed, 10, now_ms=now_ms,
                              context=ctx)  # fmt: skip
        return [t.item_id for t in result.tracks]

    # (ALS's factors on a 42-listener world say little, so only the seed's own rules are
    # asserted: its tracks open the station, two of them at most)
    artist = page("artist:jazz-a5")
    assert _artist(artist[0]) == "jazz-a5"
    assert [_artist(i) for i in artist].count("jazz-a5") == 2
    assert page("track:pop-a4-t1")[0] == "pop-a4-t1"
    discovery = page("discovery")
    assert len(discovery) == 10 and not set(discovery) & HEARD

"""New releases for a listener (``GET /v1/users/{id}/new-releases``): the artists they play
first, then their genres, then what is new and popular; at most two tracks per artist, nothing
heard, nothing explicit for a kids profile, nothing personal without consent, Focus-Mode plays
counting for nothing, plays since training counting at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import products_world as world
from segue.data.model import Item, ItemKind, User
from segue.products.new_releases import ReleaseIndex, pick_new_releases

LATEST = dt.date(2024, 5, 20)


def _new_tracks() -> list[Item]:
    """Three new tracks for artists 0–5 of every genre, released in the 20 days up to LATEST
    (pop's odd ones explicit), and one old track each, released years ago."""
    items = []
    for g, genre in enumerate(world.GENRES):
        for a in range(6):
            for t in range(3):
                items.append(
                    Item(
                        id=f"{genre}-a{a}-new{t}",
                        kind=ItemKind.TRACK,
                        title=f"{genre} new {a}.{t}",
                        artist_id=world.artist_id(genre, a),
                        genres=(genre,),
                        release_date=LATEST - dt.timedelta(days=(a + t + g) % 20),
                        explicit=genre == "pop" and t % 2 == 1,
                    )
                )
            items.append(
                Item(
                    id=f"{genre}-a{a}-old",
                    kind=ItemKind.TRACK,
                    title=f"{genre} old {a}",
                    artist_id=world.artist_id(genre, a),
                    genres=(genre,),
                    release_date=dt.date(2019, 1, 1),
                )
            )
    return items


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from segue.api import create_app
    from segue.config import Settings
    from segue.dataset.from_store import load_interactions, load_side_info
    from segue.registry.trained import train_models
    from segue.store import open_store

    root: Path = tmp_path_factory.mktemp("new-releases")
    url = f"sqlite:///{root / 'world.sqlite'}"
    with open_store(url) as store:
        world.build(store)
        store.upsert_items(_new_tracks())
        store.upsert_users(
            User(id=u, signup_at=world.T0, consent_personalisation=False)
            for u in ("nc-rock", "nc-jazz")
        )
        store.add_events(
            world._play(90_000 + t, u, world.track_id(genre, a, t), world.T0)
            for u, genre, a in (("nc-rock", "rock", 4), ("nc-jazz", "jazz", 5))
            for t in range(4)
        )
        data = load_interactions(store)
        train_models(data, ["itemknn"], root / "models", side=load_side_info(store, data))
    app = create_app(Settings(data_dir=root, database_url=url), model="itemknn", watch_s=None)
    with TestClient(app) as c:
        yield c


def _get(client: TestClient, user: str, **params: object) -> dict:
    response = client.get(f"/v1/users/{user}/new-releases", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_artists_they_play_come_first_then_their_genres(client: TestClient) -> None:
    answer = _get(client, "main", k=12)
    assert answer["as_of"] == LATEST.isoformat(), "the catalog's newest day, not today"
    items = answer["items"]
    artists = [i["item_id"].rsplit("-", 1)[0] for i in items]
    # main plays rock 0 and 1 most (4 repeats), then jazz 0 (2): two tracks of each, in order
    assert artists[:6] == ["rock-a0"] * 2 + ["rock-a1"] * 2 + ["jazz-a0"] * 2
    assert items[0]["reason"] == "New from Rock 0, whom you play"
    # then new rock by artists they do not play (rock is most of their history)
    assert all(a.startswith("rock-") for a in artists[6:12])
    assert all(i["reason"] == "New in rock, which you play" for i in items[6:12])
    assert all("-old" not in i["item_id"] for i in items), "years-old tracks are not new"
    for a in set(artists):
        assert artists.count(a) <= 2


def test_focus_mode_plays_count_for_nothing(client: TestClient) -> None:
    """main's 60 Focus-Mode plays of a Pop 0 track do not make Pop 0 an artist they play."""
    items = _get(client, "main", k=40)["items"]
    assert not any("Pop 0" in i["reason"] for i in items)


def test_plays_since_training_count_at_once_but_not_in_focus(client: TestClient) -> None:
    track = world.track_id("jazz", 5, 0)
    focus = [
        {"user_id": "bg3", "item_id": track, "type": "play", "ms_played": 200_000, "focus": True}
    ] * 5
    before = _get(client, "bg3", k=6)["items"]
    assert client.post("/v1/events", json={"events": focus}).status_code == 202
    assert _get(client, "bg3", k=6)["items"] == before
    plays = [{**e, "focus": False} for e in focus]
    assert client.post("/v1/events", json={"events": plays}).status_code == 202
    after = _get(client, "bg3", k=6)["items"]
    assert any(i["reason"] == "New from Jazz 5, whom you play" for i in after)


def test_without_consent_everyone_gets_what_is_new_and_popular(client: TestClient) -> None:
    rock, jazz = _get(client, "nc-rock", k=10), _get(client, "nc-jazz", k=10)
    assert rock["items"] == jazz["items"]
    assert {i["reason"] for i in rock["items"]} == {"New and popular"}
    # nothing they heard is hidden either: history is not read at all
    assert len(rock["items"]) == 10


def test_a_kids_profile_gets_no_explicit_track(client: TestClient) -> None:
    items = _get(client, "kid", k=40)["items"]
    explicit = {f"pop-a{a}-new1" for a in range(6)}
    assert items and not explicit & {i["item_id"] for i in items}
    # the kid plays Pop 0 and 1 as much: their clean new tracks lead
    assert {i["item_id"] for i in items[:4]} == {f"pop-a{a}-new{t}" for a in (0, 1) for t in (0, 2)}
    adult = {i["item_id"] for i in _get(client, "bg2", k=60)["items"]}
    assert explicit & adult, "the same tracks do reach an adult"


def test_the_window_and_bad_input(client: TestClient) -> None:
    items = _get(client, "main", k=100, days=3)["items"]
    assert items and all(
        LATEST - dt.timedelta(days=3) < dt.date.fromisoformat(i["release_date"]) <= LATEST
        for i in items
    )
    assert client.get("/v1/users/nobody/new-releases").status_code == 404
    for bad in ({"k": 0}, {"k": 101}, {"days": 0}, {"days": "soon"}):
        response = client.get("/v1/users/main/new-releases", params=bad)
        assert response.status_code == 422, bad


# -- the ranking alone -------------------------------------------------------------------------
def _track(item: str, artist: str, day: int, genre: str = "rock", **kw: object) -> Item:
    return Item(
        id=item,
        kind=ItemKind.TRACK,
        title=item,
        artist_id=artist,
        genres=(genre,),
        release_date=dt.date(2024, 1, day),
        **kw,
    )


def test_ties_go_to_the_popular_then_the_newest_and_heard_tracks_are_left_out() -> None:
    index = ReleaseIndex(
        [
            Item(id="A", kind=ItemKind.ARTIST, title="Artist A"),
            _track("old", "A", 1),
            _track("x", "A", 20),
            _track("y", "B", 25),
            _track("z", "C", 25),
            _track("heard", "A", 30),
            _track("future", "A", 31),
        ]
    )
    assert index.latest == dt.date(2024, 1, 31)
    assert index.as_of(dt.date(2024, 1, 30)) == dt.date(2024, 1, 30), "today if it is earlier"
    picked = pick_new_releases(
        index,
        as_of=dt.date(2024, 1, 30),
        k=10,
        window_days=28,
        popularity={"z": 5.0},
        heard={"heard"},
    )
    # "old" (day 1) is outside the 28 days, "future" after as_of; z beats y on popularity,
    # y beats x on recency
    assert [p.item_id for p in picked] == ["z", "y", "x"]
    fan = pick_new_releases(
        index,
        as_of=dt.date(2024, 1, 30),
        k=1,
        window_days=28,
        artist_plays={"A": 3.0},
        heard={"heard"},
    )
    assert [(p.item_id, p.reason) for p in fan] == [("x", "New from Artist A, whom you play")]


def test_a_new_listeners_picks_lead_their_new_releases(client: TestClient) -> None:
    picks = [world.track_id("jazz", 4, 0), world.artist_id("pop", 5)]
    created = client.post("/v1/users", json={"id": "newcomer", "picks": picks})
    assert created.status_code in (200, 201), created.text
    items = _get(client, "newcomer", k=4)["items"]
    assert {i["reason"] for i in items} == {
        "New from Jazz 4, whom you play",
        "New from Pop 5, whom you play",
    }

"""A small hand-made music world for the listener-product tests (not a test module).

Three genres × twelve artists × six tracks with audio features; one listener ("main") who loves
two rock artists and one jazz artist and has a Focus-Mode repeat of one pop track; a kids
profile; and 40 background listeners so that item-kNN has co-listening to learn from.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from segue.data.model import AudioFeatures, Event, EventType, Item, ItemKind, User
from segue.dataset import SideInfo
from segue.registry.trained import TrainedModel
from segue.store import Store

GENRES = ("rock", "jazz", "pop")
TEMPO = {"rock": 130.0, "jazz": 90.0, "pop": 115.0}
T0 = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
FOCUS_TRACK = "pop-a0-t0"
ARTISTS = 12


def artist_id(genre: str, a: int) -> str:
    return f"{genre}-a{a}"


def track_id(genre: str, a: int, t: int) -> str:
    return f"{genre}-a{a}-t{t}"


def catalog() -> list[Item]:
    rng = np.random.default_rng(0)
    items: list[Item] = []
    for genre in GENRES:
        for a in range(ARTISTS):
            items.append(
                Item(id=artist_id(genre, a), kind=ItemKind.ARTIST, title=f"{genre.title()} {a}")
            )
            for t in range(6):
                items.append(
                    Item(
                        id=track_id(genre, a, t),
                        kind=ItemKind.TRACK,
                        title=f"{genre} song {a}.{t}",
                        artist_id=artist_id(genre, a),
                        genres=(genre,),
                        duration_ms=200_000,
                        explicit=genre == "pop" and t % 2 == 1,
                        audio=AudioFeatures(
                            tempo=TEMPO[genre] + float(rng.normal(0, 12)),
                            energy=float(np.clip(rng.normal(0.6, 0.15), 0, 1)),
                            danceability=0.5,
                            valence=0.5,
                            acousticness=0.3 if genre != "jazz" else 0.7,
                            instrumentalness=0.1,
                        ),
                    )
                )
    return items


def _play(n: int, user: str, item: str, at: dt.datetime, **kw: object) -> Event:
    return Event(
        event_id=f"e{n}-{user}-{item}",
        user_id=user,
        item_id=item,
        type=EventType.PLAY,
        timestamp=at,
        ms_played=200_000,
        **kw,
    )


def build(store: Store) -> None:
    """Write the world into ``store``."""
    store.upsert_items(catalog())
    users = [
        User(id="main", signup_at=T0 - dt.timedelta(days=30)),
        User(id="kid", signup_at=T0, kids_profile=True),
    ]
    users += [User(id=f"bg{i}", signup_at=T0) for i in range(40)]
    store.upsert_users(users)
    events: list[Event] = []
    n = 0
    rng = np.random.default_rng(1)
    for i in range(40):  # background: each listener sticks to one genre, two artists
        genre = GENRES[i % 3]
        for a in (i % ARTISTS, (i + 1) % ARTISTS):
            for t in range(6):
                if rng.random() < 0.7:
                    n += 1
                    at = T0 + dt.timedelta(hours=n)
                    events.append(_play(n, f"bg{i}", track_id(genre, a, t), at))
    # main: rock artists 0 and 1 (heavy), jazz artist 0 (lighter), tracks 0..3 of each
    for genre, artists, repeats in (("rock", (0, 1), 4), ("jazz", (0,), 2)):
        for a in artists:
            for t in range(4):
                for _ in range(repeats):
                    n += 1
                    at = T0 + dt.timedelta(hours=n)
                    events.append(_play(n, "main", track_id(genre, a, t), at))
    # main's Focus-Mode repeat of one pop track: 60 plays that must count for nothing
    for _ in range(60):
        n += 1
        at = T0 + dt.timedelta(minutes=n)
        events.append(_play(n, "main", FOCUS_TRACK, at, focus=True))
    # the kid listens to pop, including explicit tracks played on the account
    for a in (0, 1):
        for t in range(6):
            n += 1
            events.append(_play(n, "kid", track_id("pop", a, t), T0 + dt.timedelta(hours=n)))
    store.add_events(events)


def genres_of(item_ids: list[str]) -> dict[str, list[str]]:
    return {i: [i.split("-")[0]] for i in item_ids}


def artist_of(item_ids: list[str]) -> dict[str, str]:
    return {i: i.rsplit("-", 1)[0] for i in item_ids}


def trained(store: Store, model: str = "itemknn") -> tuple[TrainedModel, SideInfo]:
    """Train ``model`` on the store's interactions (Focus-Mode events left out by the store)."""
    from segue.dataset.from_store import load_interactions, load_side_info
    from segue.registry.trained import train_models

    data = load_interactions(store)
    side = load_side_info(store, data)
    return train_models(data, [model], side=side)[model], side

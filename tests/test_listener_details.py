"""Details a listener notices: genre names as titles ("R&B mix"), podcast episodes with their
show, Wrapped's genre shares within 100 %, room for the hour chart on the card, and a fix
said once."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import products_world as world
from segue.api import create_app
from segue.config import Settings
from segue.data.model import Event, EventType, Item, ItemKind, User
from segue.jobs.products import daily_mixes, wrapped
from segue.products.catalog_view import genre_label
from segue.serving.holder import ServingModel
from segue.store import Store, open_store

UTC = dt.UTC
T0 = dt.datetime(2024, 4, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("r&b", "R&B"),
        ("indie rock", "Indie rock"),
        ("hip hop", "Hip hop"),
        ("edm", "EDM"),
        ("k-pop", "K-pop"),
        ("Hip-Hop", "Hip-Hop"),  # written with capitals already: kept
        ("uk garage", "UK garage"),
    ],
)
def test_genre_names_are_written_as_titles(raw: str, shown: str) -> None:
    assert genre_label(raw) == shown


def test_an_rnb_mix_is_called_the_rnb_mix(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'segue.sqlite'}") as store:
        world.build(store)  # main loves two rock artists: make their genre r&b
        store.upsert_items(
            i.model_copy(update={"genres": ("r&b",)}) for i in world.catalog() if "rock" in i.genres
        )
        trained, side = world.trained(store)
        mixes = daily_mixes(store, trained, "main", dt.date(2024, 6, 1), side=side)
    assert "R&B mix" in [m.title for m in mixes]
    assert not any("R&b" in m.title for m in mixes)


def _event(n: int, user: str, item: str, at: dt.datetime) -> Event:
    return Event(event_id=f"d{n}", user_id=user, item_id=item, type=EventType.PLAY,
                 timestamp=at, ms_played=200_000)  # fmt: skip


def test_wrapped_genre_shares_add_up_to_at_most_100_percent(store: Store) -> None:
    store.upsert_items(
        [
            Item(id="X", kind=ItemKind.ARTIST, title="Artist X"),
            Item(id="A", kind=ItemKind.TRACK, title="A", artist_id="X", genres=("rock", "pop")),
            Item(
                id="B",
                kind=ItemKind.TRACK,
                title="B",
                artist_id="X",
                genres=("jazz", "soul", "funk"),
            ),
            Item(id="C", kind=ItemKind.TRACK, title="C", artist_id="X", genres=("rock",)),
        ]
    )
    store.upsert_users([User(id="w", signup_at=T0 - dt.timedelta(days=400))])
    n = itertools.count()
    plays = [("A", 6), ("B", 3), ("C", 1)]
    store.add_events(
        [
            _event(next(n), "w", item, T0 + dt.timedelta(hours=next(n)))
            for item, times in plays
            for _ in range(times)
        ]
    )
    w = wrapped(store, "w", 2024)
    shares = {g.name: g.share for g in w.top_genres}
    assert sum(shares.values()) <= 1.0 + 1e-6
    assert shares["rock"] == pytest.approx((6 / 2 + 1) / 10, abs=1e-4)  # A counts half
    assert shares["jazz"] == pytest.approx(1 / 10, abs=1e-4)


def test_podcast_episodes_are_shown_with_their_show(store: Store) -> None:
    store.upsert_items(
        [
            Item(id="S", kind=ItemKind.PODCAST_SHOW, title="The Signal Podcast"),
            Item(id="E1", kind=ItemKind.PODCAST_EPISODE, title="#7: Little Circuit", show_id="S"),
            Item(id="E2", kind=ItemKind.PODCAST_EPISODE, title="#8: Fire", show_id="S"),
            Item(id="X", kind=ItemKind.ARTIST, title="Artist X"),
            Item(id="T", kind=ItemKind.TRACK, title="Song", artist_id="X"),
        ]
    )
    store.upsert_users([User(id=f"u{i}", signup_at=T0) for i in range(3)])
    n = itertools.count()
    store.add_events(
        [
            _event(next(n), f"u{i}", item, T0 + dt.timedelta(minutes=next(n)))
            for i in range(3)
            for item in ("E1", "E2", "T")
        ]
    )
    trained, _side = world.trained(store, "popularity")
    model = ServingModel.build(store, trained, "test")
    shown = dict(zip(model.item_ids.tolist(), model.display_titles, strict=True))
    assert shown["E1"] == "#7: Little Circuit — The Signal Podcast"
    assert shown["T"] == "Song — Artist X"


def test_the_hour_chart_has_room_under_the_wrapped_card(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from segue.products.wrapped import compute_wrapped
    from segue.products.wrapped_render import card_figure

    with open_store(f"sqlite:///{tmp_path / 'segue.sqlite'}") as store:
        world.build(store)
        w = wrapped(store, "main", 2024)
    assert compute_wrapped is not None and w.streams > 0
    figure = card_figure(w)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    height = figure.bbox.height
    hours = figure.axes[-1].get_window_extent(renderer)
    texts = [t for t in figure.axes[0].texts if t.get_text()]
    boxes = {t.get_text(): t.get_window_extent(renderer) for t in texts}
    assert hours.height >= 0.045 * height  # a chart, not a smudge
    above = [b for b in boxes.values() if b.y0 >= hours.y1]
    assert min(b.y0 for b in above) - hours.y1 >= 0.008 * height  # its caption has air
    for (a, box_a), (b, box_b) in itertools.combinations(boxes.items(), 2):
        assert not box_a.overlaps(box_b), (a, b)
    assert not any(b.overlaps(hours) for b in boxes.values())
    assert all(figure.bbox.contains(b.x0, b.y0) and figure.bbox.contains(b.x1, b.y1)
               for b in boxes.values())  # fmt: skip


def test_a_missing_nba_model_says_the_fix_once(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'segue.sqlite'}") as store:
        world.build(store)
        world_trained, _ = world.trained(store)
    from segue.registry.trained import save_trained

    save_trained(world_trained, tmp_path / "models")
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'segue.sqlite'}")
    with TestClient(create_app(settings, model="itemknn", watch_s=None)) as client:
        answer = client.get("/v1/users/main/next-best-action")
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert detail.count("segue nba train") == 1, detail

"""Personalisation consent on every surface: two listeners without it, with different histories,
ages, genders and sessions but the same country, get the same answer; a listener with it still
gets their own. Recommendations (live path, CLI job, published list fallback), the daily batch
lists and their publication, daily mixes (online and batch), stations, Wrapped (their own year,
unchanged by consent: nothing in it is a model's suggestion) and requests in words.
The next best action has its own test in tests/test_nba_consent.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow.parquet as pq
import pytest

import products_world as world
from segue.data.model import Event, EventType, User
from segue.jobs.products import (
    daily_mixes,
    mixes_for_all_users,
    product_context,
    station_page,
    wrapped,
)
from segue.jobs.recommend import recommend_for_user
from segue.online.state import BatchList, InProcessState
from segue.products.mixes import to_mix
from segue.serving.holder import ServingModel
from segue.serving.live import LiveRequest, batch_answer, recommend_live
from segue.store import PublishedList, open_store

COUNTRY = "DE"
DAY = dt.date(2024, 6, 1)
NOW = dt.datetime(2024, 6, 1, 20, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
#: (id, consent, age band, gender, what they play: genre and artists)
LISTENERS = (
    ("nc-rock", False, "18-24", "female", "rock", (2, 3)),
    ("nc-jazz", False, "45-54", "male", "jazz", (4, 5)),
    ("c-rock", True, "18-24", "female", "rock", (2, 3)),
    ("c-jazz", True, "45-54", "male", "jazz", (4, 5)),
)
NO_CONSENT = ("nc-rock", "nc-jazz")
_ids = itertools.count()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("consent") / "world.sqlite"
    store = open_store(f"sqlite:///{path}")
    world.build(store)
    # demographics for the background, so that segments by age and gender exist in DE
    store.upsert_users(
        User(
            id=f"bg{i}",
            signup_at=world.T0,
            country=COUNTRY,
            age_band="18-24" if i % 2 else "45-54",
            gender="female" if i % 2 else "male",
        )
        for i in range(40)
    )
    store.upsert_users(
        User(
            id=uid,
            signup_at=world.T0,
            country=COUNTRY,
            age_band=age,
            gender=gender,
            consent_personalisation=consent,
        )
        for uid, consent, age, gender, _, _ in LISTENERS
    )
    events = []
    for uid, _, _, _, genre, artists in LISTENERS:
        for a in artists:
            for t in range(5):
                at = world.T0 + dt.timedelta(hours=next(_ids))
                events.append(
                    Event(
                        event_id=f"c{next(_ids)}",
                        user_id=uid,
                        item_id=world.track_id(genre, a, t),
                        type=EventType.PLAY,
                        timestamp=at,
                        ms_played=200_000,
                    )
                )
    store.add_events(events)
    trained, side = world.trained(store)
    ctx = product_context(store, trained, side)
    model = ServingModel.build(store, trained, "v1", side=side)
    yield store, trained, side, ctx, model
    store.close()


def _session(state: InProcessState, user: str, kind: EventType, items: list[str]) -> None:
    events = [
        Event(
            event_id=f"s{next(_ids)}",
            user_id=user,
            item_id=item,
            type=kind,
            timestamp=NOW + dt.timedelta(seconds=i),
            session_id=f"session-{user}",
        )
        for i, item in enumerate(items)
    ]
    state.apply(events, artist_of=world.artist_of(items), genres_of=world.genres_of(items))


def _skips_and_plays() -> InProcessState:
    """Each listener skipped three tracks of their own genre and played some of another."""
    state = InProcessState()
    for uid, _, _, _, genre, _ in LISTENERS:
        skipped = [world.track_id(genre, 6 + a, 0) for a in range(3)]
        _session(state, uid, EventType.SKIP, skipped)
        other = "pop" if genre == "rock" else "rock"
        _session(state, uid, EventType.PLAY, [world.track_id(other, 8, t) for t in range(3)])
    return state


# -- recommendations -------------------------------------------------------------------------
def test_recommendations_are_one_list_per_context(setup) -> None:
    store, _, _, _, model = setup
    state = _skips_and_plays()
    answers = {}
    for uid, *_ in LISTENERS:
        request = LiveRequest(uid, k=10, now_ms=NOW_MS, explain=True)
        answers[uid] = recommend_live(model, state, store.get_user(uid), request)
    a, b = (answers[u] for u in NO_CONSENT)
    assert a.items == b.items and a.items  # the same items, scores and reasons
    assert a.path == b.path == "non_personal"
    assert (a.session_id, a.fresh_plays, a.personal_weight) == (None, 0, 0.0)
    # the list of a new listener of the same country with no demographics at all
    anonymous = store.get_user("nc-rock").model_copy(
        update={"id": "someone", "age_band": None, "gender": None}
    )
    nobody = recommend_live(model, InProcessState(), anonymous, LiveRequest("someone", k=10))
    assert [i.item_id for i in nobody.items] == [i.item_id for i in a.items]
    # with consent: their own lists, shaped by history and session
    c_rock, c_jazz = answers["c-rock"], answers["c-jazz"]
    assert c_rock.path == c_jazz.path == "personal"
    assert [i.item_id for i in c_rock.items] != [i.item_id for i in c_jazz.items]
    assert c_rock.fresh_plays == 3 and c_rock.session_id is not None


def test_surfaces_and_request_seeds_stay_non_personal(setup) -> None:
    store, _, _, _, model = setup
    state = _skips_and_plays()
    for request in (
        LiveRequest("?", k=8, surface="discovery"),
        LiveRequest("?", k=8, surface="radio", max_per_artist=1),
        LiveRequest("?", k=8, picks=(world.track_id("pop", 3, 0),)),  # the request's own seed
        LiveRequest("?", k=8, new_item_share=0.25),
    ):
        got = [
            recommend_live(
                model, state, store.get_user(u), LiveRequest(**{**vars(request), "user_id": u})
            )
            for u in NO_CONSENT
        ]
        assert got[0].items == got[1].items and got[0].items
    # a seed named by the request still counts: it moves the list the same way for both
    seeded = recommend_live(
        model, state, store.get_user("nc-jazz"), LiveRequest("nc-jazz", k=8, picks=("pop-a3-t0",))
    )
    plain = recommend_live(model, state, store.get_user("nc-jazz"), LiveRequest("nc-jazz", k=8))
    assert seeded.items != plain.items


def test_the_cli_job_answers_the_same(setup) -> None:
    store, trained, side, _, _ = setup
    lists = {u: recommend_for_user(store, trained, u, 10, side=side) for u, *_ in LISTENERS}
    assert lists["nc-rock"] == lists["nc-jazz"]
    assert lists["c-rock"] != lists["c-jazz"]


def test_a_published_list_never_serves_a_listener_without_consent(setup) -> None:
    store, _, _, _, model = setup
    batch = BatchList("itemknn", "v1", [world.track_id("rock", 2, 5)], [1.0])
    for uid, consent, *_ in LISTENERS:
        answer = batch_answer(model, batch, store.get_user(uid), LiveRequest(uid, k=5))
        assert (answer is not None) == consent


# -- the daily batch: top lists and their publication -------------------------------------
def test_batch_lists_give_listeners_without_consent_their_context_s_list(
    setup, tmp_path: Path
) -> None:
    store, trained, side, _, model = setup
    from segue.batch.lists import batch_recommend

    path = tmp_path / "top.parquet"
    batch_recommend(trained, path, k=10, date=DAY, side=side)
    table = pq.read_table(path).to_pandas()
    lists = {u: g.sort_values("rank")["item_id"].tolist() for u, g in table.groupby("user_id")}
    assert lists["nc-rock"] == lists["nc-jazz"] and lists["nc-rock"]
    assert lists["c-rock"] != lists["c-jazz"]
    # the same list serving gives them online (both exclude nothing they played)
    online = recommend_live(
        model, InProcessState(), store.get_user("nc-rock"), LiveRequest("x", k=10)
    )
    assert lists["nc-rock"] == [i.item_id for i in online.items]


def test_published_mixes_never_serve_a_listener_without_consent(setup, tmp_path: Path) -> None:
    store, _, _, ctx, _ = setup
    from segue.batch.publish import published_mixes
    from segue.products.mixes import MixPlan

    # rows published for everyone (consent withdrawn after the run): serving refuses theirs
    plan = MixPlan(1, "rock", "Rock mix", "Rock mix", np.array([0, 1, 2]), np.zeros(3, bool))
    mix = to_mix(plan, "x", DAY, ctx.pc)
    payload = [
        {
            "number": 1,
            "title": mix.title,
            "description": mix.description,
            "cluster": mix.cluster,
            "items": [t.item_id for t in mix.tracks],
            "familiar": [0, 0, 0],
        }
    ]
    store.publish_lists(
        "itemknn",
        "v9",
        "mix",
        [PublishedList(u, DAY, json.dumps(payload)) for u, *_ in LISTENERS],
    )
    for uid, consent, *_ in LISTENERS:
        found = published_mixes(store, "itemknn", "v9", uid, DAY, ctx.pc)
        assert (found is not None) == consent


def test_the_published_lists_of_listeners_without_consent_are_non_personal(
    setup, tmp_path: Path
) -> None:
    store, trained, side, ctx, _ = setup
    from segue.batch.lifecycle import MIXES, RECOMMENDATIONS
    from segue.batch.lists import batch_recommend
    from segue.batch.publish import batch_mixes, publish_version

    artifacts = tmp_path / "artifacts"
    batch_recommend(trained, artifacts / RECOMMENDATIONS, k=10, date=DAY, side=side)
    batch_mixes(trained, artifacts / MIXES, DAY, context=ctx)

    class Version:
        name, version = "itemknn", "v7"

    Version.artifacts = artifacts  # type: ignore[attr-defined]
    report = publish_version(store, Version())  # type: ignore[arg-type]
    assert report.stored["top"] > 0 and report.stored["mix"] > 0
    for kind in ("top", "mix"):
        rows = {u: store.published_list("itemknn", "v7", kind, u) for u, *_ in LISTENERS}
        assert rows["nc-rock"].payload == rows["nc-jazz"].payload, kind
        assert rows["c-rock"].payload != rows["c-jazz"].payload, kind


# -- daily mixes -------------------------------------------------------------------------------
def _words_and_tracks(mixes) -> list[tuple]:
    return [
        (m.number, m.title, m.description, m.cluster, [(t.item_id, t.familiar) for t in m.tracks])
        for m in mixes
    ]


def test_mixes_are_editorial_without_consent(setup) -> None:
    store, trained, _, ctx, _ = setup
    mixes = {u: daily_mixes(store, trained, u, DAY, context=ctx) for u, *_ in LISTENERS}
    a, b = (_words_and_tracks(mixes[u]) for u in NO_CONSENT)
    assert a == b and a
    assert not any(t.familiar for m in mixes["nc-rock"] for t in m.tracks)
    assert all(m.user_id == "nc-rock" for m in mixes["nc-rock"])
    # with consent: built from their own history, favourites included
    assert _words_and_tracks(mixes["c-rock"]) != _words_and_tracks(mixes["c-jazz"])
    assert any(t.familiar for m in mixes["c-rock"] for t in m.tracks)
    assert mixes["c-rock"][0].cluster == "rock" and mixes["c-jazz"][0].cluster == "jazz"


def test_the_batch_makes_the_same_editorial_mixes(setup) -> None:
    store, trained, _, ctx, _ = setup
    plans: dict[str, list] = {}
    report = mixes_for_all_users(store, trained, DAY, context=ctx, sink=plans.__setitem__)
    assert report.users == len(trained.users)
    batch = {u: [to_mix(p, u, DAY, ctx.pc) for p in plans[u]] for u, *_ in LISTENERS}
    assert _words_and_tracks(batch["nc-rock"]) == _words_and_tracks(batch["nc-jazz"])
    online = daily_mixes(store, trained, "nc-rock", DAY, context=ctx)
    assert _words_and_tracks(batch["nc-rock"]) == _words_and_tracks(online)
    assert _words_and_tracks(batch["c-rock"]) != _words_and_tracks(batch["c-jazz"])


# -- stations ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", ["discovery", "genre:rock", "artist:jazz-a7", "mood:chill"])
def test_stations_ignore_history_and_skips_without_consent(setup, seed: str) -> None:
    store, trained, _, ctx, _ = setup
    state = _skips_and_plays()
    pages = {
        u: station_page(store, trained, state, u, seed, 8, now_ms=NOW_MS + 60_000, context=ctx)
        for u, *_ in LISTENERS
    }
    a, b = pages["nc-rock"], pages["nc-jazz"]
    assert a.tracks == b.tracks and a.tracks
    assert (a.session_id, a.skips_by_genre) == (None, {})
    # with consent: the session counts (three skips of their genre ban it) and so does taste
    assert pages["c-rock"].skips_by_genre == {"rock": 3}
    assert pages["c-rock"].tracks != pages["c-jazz"].tracks
    if seed == "discovery":
        heard = {world.track_id("rock", a, t) for a in (2, 3) for t in range(5)}
        assert not heard & {t.item_id for t in pages["c-rock"].tracks}


# -- Wrapped -----------------------------------------------------------------------------------
def test_wrapped_is_their_own_year_with_or_without_consent(setup) -> None:
    """Wrapped summarises the listener's own listening for them, with no model and nothing
    suggested: it is not personalisation, so consent does not change it (docs/serving.md)."""
    store, *_ = setup
    year = world.T0.year
    without = wrapped(store, "nc-rock", year)
    store.set_user_flags("nc-rock", consent_personalisation=True)
    try:
        assert wrapped(store, "nc-rock", year) == without
    finally:
        store.set_user_flags("nc-rock", consent_personalisation=False)
    assert without.top_artists and without.top_artists[0].id.startswith("rock-")
    assert wrapped(store, "nc-jazz", year) != without  # their own data, not a shared list
    fields = set(type(without).model_fields)
    assert not {f for f in fields if "recommend" in f or "suggest" in f}


# -- requests in words -------------------------------------------------------------------------
class _Tagger:
    """Tags the requests of this test as a trained tagger would (the parser is the unit here)."""

    FRAMES: ClassVar[dict[str, tuple[str, str]]] = {
        "play my favourites": ("PlayMusic", "O B-playlist_owner B-playlist"),
        "play song 4.1": ("PlayMusic", "O B-track I-track"),
        "what should i listen to": ("Recommend", "O O O O O"),
    }

    def tag(self, batch: list[list[str]]) -> list:
        from segue.nlu.tagged import Tagged

        out = []
        for words in batch:
            intent, tags = self.FRAMES[" ".join(words)]
            n = len(words)
            out.append(Tagged(tuple(words), intent, 0.99, tuple(tags.split()), (0.99,) * n, ()))
        return out


def test_requests_in_words_use_no_history_without_consent(setup) -> None:
    from segue.jobs.ask import NO_PERSONALISATION, answer_query, catalog_stats
    from segue.nlu.linking import EntityIndex
    from segue.nlu.parser import Parser

    store, trained, *_ = setup
    popularity, histories = catalog_stats(store)
    parser = Parser(  # type: ignore[arg-type]
        _Tagger(), EntityIndex(store.iter_items(), popularity), histories=histories
    )

    def ask(text: str, user: str):
        return answer_query(store, parser, text, user_id=user, trained=trained, k=5)

    for text in ("play my favourites", "play song 4.1", "what should i listen to"):
        a, b = (ask(text, u) for u in NO_CONSENT)
        assert a.understanding == b.understanding and a.queue == b.queue, text
    favourites = ask("play my favourites", "nc-jazz")
    assert favourites.queue == [] and favourites.understanding.message == NO_PERSONALISATION
    assert favourites.understanding.context.get("history_items", 0) == 0
    assert ask("what should i listen to", "nc-rock").queue  # the non-personal list
    # with consent: their favourites, their history deciding between same-named tracks
    mine = ask("play my favourites", "c-jazz")
    assert mine.queue and {q.item_id.split("-")[0] for q in mine.queue} == {"jazz"}
    assert mine.understanding.message != NO_PERSONALISATION
    linked = {u: ask("play song 4.1", u).understanding for u in ("c-jazz", "nc-jazz")}
    in_history = {
        u: {c.item_id for e in got.entities for c in e.candidates if c.in_history}
        for u, got in linked.items()
    }
    assert "jazz-a4-t1" in in_history["c-jazz"] and in_history["nc-jazz"] == set()
    recs = {u: ask("what should i listen to", u).queue for u in ("c-rock", "c-jazz")}
    assert recs["c-rock"] != recs["c-jazz"]


# -- the HTTP API ------------------------------------------------------------------------------
def test_the_api_answers_them_the_same(setup, tmp_path: Path) -> None:
    """Recommendations, mixes and stations through ``segue serve``'s app, after each listener's
    skips reached it through ``POST /v1/events``."""
    from fastapi.testclient import TestClient

    from segue.api import create_app
    from segue.config import Settings
    from segue.dataset.from_store import load_interactions, load_side_info
    from segue.registry.trained import train_models

    store = setup[0]
    data = load_interactions(store)
    train_models(data, ["itemknn"], tmp_path / "models", side=load_side_info(store, data))
    settings = Settings(data_dir=tmp_path, database_url=store.url)
    app = create_app(settings, model="itemknn", watch_s=None)
    with TestClient(app) as client:
        now = dt.datetime.now(dt.UTC)
        events = [
            {
                "user_id": uid,
                "item_id": world.track_id(genre, 6 + a, 0),
                "type": "skip",
                "timestamp": (now + dt.timedelta(seconds=a - 10)).isoformat(),
                "session_id": f"api-{uid}",
            }
            for uid, _, _, _, genre, _ in LISTENERS
            for a in range(3)
        ]
        assert client.post("/v1/events", json={"events": events}).status_code == 202

        def get(path: str, **params: object) -> dict:
            response = client.get(path, params=params)
            assert response.status_code == 200, response.text
            return response.json()

        recs = {u: get(f"/v1/users/{u}/recommendations", k=10) for u, *_ in LISTENERS}
        assert recs["nc-rock"]["items"] == recs["nc-jazz"]["items"]
        assert recs["nc-rock"]["path"] == "non_personal"
        assert recs["c-rock"]["path"] == "personal"
        assert recs["c-rock"]["items"] != recs["c-jazz"]["items"]
        mixes = {u: get(f"/v1/users/{u}/mixes", date=DAY.isoformat()) for u, *_ in LISTENERS}
        strip = [{k: v for k, v in m.items() if k != "user_id"} for m in mixes["nc-rock"]]
        assert strip == [{k: v for k, v in m.items() if k != "user_id"} for m in mixes["nc-jazz"]]
        assert mixes["c-rock"] != mixes["c-jazz"]
        pages = {u: get(f"/v1/users/{u}/station", seed="genre:rock") for u, *_ in LISTENERS}
        assert pages["nc-rock"]["tracks"] == pages["nc-jazz"]["tracks"]
        assert pages["nc-rock"]["skips_by_genre"] == {}
        assert pages["c-rock"]["skips_by_genre"] == {"rock": 3}


def test_lists_and_mixes_scored_together_are_those_made_apart(setup, tmp_path: Path) -> None:
    """The daily batch scores each listener once for their top list and their mixes'
    candidates: both files must hold exactly what batch_recommend and batch_mixes write on
    their own — kids' rule, listeners without consent (their context's list) and all."""
    _, trained, side, _, _ = setup
    from segue.batch.lists import batch_recommend
    from segue.batch.publish import batch_lists_and_mixes, batch_mixes

    apart, together = tmp_path / "apart", tmp_path / "together"
    batch_recommend(trained, apart / "top.parquet", k=7, date=DAY, side=side)
    batch_mixes(trained, apart / "mixes.parquet", DAY, side=side)
    rows, mixes = batch_lists_and_mixes(
        trained, together / "top.parquet", together / "mixes.parquet", DAY, k=7, side=side
    )

    def by_user(path: Path, key: list[str]) -> dict[str, list[dict]]:
        table = pq.read_table(path).to_pandas().sort_values(["user_id", *key])
        return {u: g.to_dict("records") for u, g in table.groupby("user_id")}

    top = by_user(together / "top.parquet", ["rank"])
    assert top == by_user(apart / "top.parquet", ["rank"])
    assert rows == sum(len(v) for v in top.values())
    assert {"kid", *NO_CONSENT} <= set(top)  # the ruled listeners are in it
    assert top["nc-rock"] == [dict(r, user_id="nc-rock") for r in top["nc-jazz"]]
    mixed = by_user(together / "mixes.parquet", ["mix", "position"])
    assert mixed == by_user(apart / "mixes.parquet", ["mix", "position"])
    assert mixes.rows == sum(len(v) for v in mixed.values()) > 0
    assert not list(together.glob("*.tmp"))
    # built in two worker processes, blocks of 3 listeners: the same files, in the same order
    workers = tmp_path / "workers"
    batch_lists_and_mixes(trained, workers / "top.parquet", workers / "mixes.parquet", DAY, k=7,
                          side=side, workers=2, batch_size=3)  # fmt: skip
    built_apart = pq.read_table(workers / "mixes.parquet")
    assert built_apart.equals(pq.read_table(together / "mixes.parquet"))
    assert by_user(workers / "top.parquet", ["rank"]) == top

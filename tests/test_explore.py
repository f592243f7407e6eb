"""The top-slot bandit in serving: the model's order until plays teach otherwise, exact
propensities for ε-uniform exploration, learning from plays and skips, consent honoured, and
off-policy estimates from serving's own exposure log that match the truth."""

from __future__ import annotations

import datetime as dt
import gc
import uuid
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from segue.api import create_app
from segue.config import Settings
from segue.data.model import Event, EventType, Item, ItemKind, User
from segue.data.synth import SynthParams
from segue.dataset.from_store import load_interactions, load_side_info
from segue.jobs.ingest import load_synthetic_world
from segue.jobs.off_policy import off_policy
from segue.registry.trained import train_models
from segue.serving.explore import MAX_EXPLORE_SHARE, ShownFeatures, SlotBandit
from segue.store import Store, open_store
from segue.store.exposures import Exposure

K = 5


def _x(rng: np.random.Generator) -> np.ndarray:
    scores = np.sort(rng.random(K))[::-1]
    return SlotBandit.features(scores, rng.integers(1, 1_000, K))


def test_untrained_it_serves_the_models_order_and_never_explores_past_the_bound() -> None:
    rng = np.random.default_rng(0)
    bandit = SlotBandit(seed=1)
    for _ in range(50):
        arranged = bandit.arrange(_x(rng), share=0.0)
        assert arranged.order == list(range(K)) and not arranged.explored
        assert arranged.propensities == (1.0, 1.0, 1.0)
    explored = np.mean([bandit.arrange(_x(rng), share=0.9).explored for _ in range(4_000)])
    assert abs(explored - MAX_EXPLORE_SHARE) < 0.02  # asked for 0.9, given the bound


def test_logged_propensities_are_the_frequencies_the_policy_shows_items_with() -> None:
    rng = np.random.default_rng(2)
    bandit = SlotBandit(seed=3)
    x = _x(rng)
    draws = [bandit.arrange(x, share=0.2) for _ in range(20_000)]
    for slot in range(3):
        shown = np.array([d.order[slot] for d in draws])
        for item in range(K):
            logged = {d.propensities[slot] for d in draws if d.order[slot] == item}
            assert len(logged) == 1  # the same item at the same slot: one probability
            assert abs(np.mean(shown == item) - logged.pop()) < 0.01


def test_it_learns_from_plays_and_skips_and_reorders() -> None:
    rng = np.random.default_rng(4)
    bandit = SlotBandit(seed=5)
    for n in range(3_000):  # listeners skip what is popular and play what is not
        x = _x(rng)
        ids = [f"t{i}" for i in range(K)]
        arranged = bandit.arrange(x, share=0.2)
        bandit.shown(f"u{n}", ids, x, arranged.order)
        first = arranged.order[0]
        kind = EventType.PLAY if x[first, 3] < 0 else EventType.SKIP
        bandit.observe([Event(event_id=f"e{n}", user_id=f"u{n}", item_id=ids[first], type=kind,
                              timestamp=dt.datetime.now(dt.UTC))])  # fmt: skip
    assert bandit.updates == 3_000
    assert bandit.weights["popularity_z"] < -0.1  # it found the pattern
    x = SlotBandit.features([5, 4, 3, 2, 1], [900, 800, 10, 700, 600])
    assert bandit.arrange(x, share=0.0).order[0] == 2  # the unpopular one goes first
    # a reaction to an item that was never shown in a top slot teaches nothing
    stray = Event(event_id="x", user_id="nobody", item_id="t0", type=EventType.PLAY,
                  timestamp=dt.datetime.now(dt.UTC))  # fmt: skip
    assert bandit.observe([stray]) == 0


def test_shown_features_wait_their_time_and_the_oldest_go_first() -> None:
    now = [0.0]
    shown = ShownFeatures(ttl_s=10.0, max_items=3, timer=lambda: now[0])
    rows = {k: np.full(4, float(n)) for n, k in enumerate(["a", "b", "c", "d"])}
    for key in ("a", "b", "c"):
        shown.put(("u", key), rows[key])
        now[0] += 1.0
    shown.put(("u", "a"), rows["a"])  # shown again: its clock starts again, now the newest
    now[0] += 1.0
    shown.put(("u", "d"), rows["d"])  # over max_items: the oldest ("b") goes
    assert len(shown) == 3 and shown.pop(("u", "b")) is None
    assert shown.pop(("u", "c")) is rows["c"] and shown.pop(("u", "c")) is None  # once
    now[0] = 13.5  # "a" was shown again at 3.0: 10.5 s ago
    assert shown.pop(("u", "a")) is None
    now[0] = 13.9  # "d" at 4.0: still waiting
    assert shown.pop(("u", "d")) is rows["d"]
    shown.put(("v", "x"), rows["a"])
    now[0] = 100.0
    shown.put(("v", "y"), rows["a"])  # expired ones are dropped as new ones come
    assert len(shown) == 1


def test_what_the_bandit_keeps_for_feedback_is_not_walked_by_the_garbage_collector() -> None:
    """A serving process keeps up to 200,000 shown items for half an hour; each object the
    collector tracks makes every full collection (the interpreter lock held) longer."""
    bandit = SlotBandit(seed=1)
    x = SlotBandit.features([3.0, 2.0, 1.0, 0.5], [10.0, 5.0, 2.0, 1.0])
    gc.collect()
    before = len(gc.get_objects())
    for n in range(5_000):
        bandit.shown(f"user-{n}", [f"t{n}", f"t{n + 1}", f"t{n + 2}", "t0"], x, [0, 1, 2, 3])
    gc.collect()  # tuples of untracked values stop being tracked in their first pass
    assert len(bandit._pending) == 15_000
    assert len(gc.get_objects()) - before < 500


def test_off_policy_estimates_from_the_log_match_what_the_policy_would_earn(
    store: Store, database_url: str
) -> None:
    rng = np.random.default_rng(6)
    day = dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC)
    store.upsert_items([Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"T{i}") for i in range(40)])
    appeal = rng.uniform(0.05, 0.6, 40)  # the chance a listener plays the item shown first
    bandit = SlotBandit(seed=7)
    shown, events, truth = [], [], []
    users = [f"u{n}" for n in range(3_000)]
    store.upsert_users([User(id=u, signup_at=day - dt.timedelta(days=3)) for u in users])
    for n, u in enumerate(users):
        ids = [f"t{i}" for i in rng.choice(40, K, replace=False)]
        x = SlotBandit.features(np.arange(K, 0, -1), rng.integers(1, 100, K))
        arranged = bandit.arrange(x, share=0.2)
        order = [ids[p] for p in arranged.order]
        truth.append(appeal[int(ids[0][1:])])  # the model's order shows ids[0] first
        at = day + dt.timedelta(seconds=n)
        shown.append(Exposure(f"r{n}", u, int(at.timestamp() * 1000), "home", "als", "v1",
                              "personal", tuple(order), {},
                              {"explored": str(int(arranged.explored)), "model_top": ids[0],
                               "greedy_top": ids[arranged.greedy[0]]},
                              arranged.propensities))  # fmt: skip
        if rng.random() < appeal[int(order[0][1:])]:
            events.append(Event(event_id=f"e{n}", user_id=u, item_id=order[0],
                                type=EventType.PLAY, ms_played=100_000,
                                timestamp=at + dt.timedelta(minutes=1)))  # fmt: skip
    store.add_exposures(shown)
    store.add_events(events)
    report = off_policy(store, day.date(), day.date())
    assert report.lists == 3_000 and 450 < report.explored < 750
    model = next(v for v in report.values if v.policy == "model order")
    true_ctr = float(np.mean(truth))
    assert abs(model.ctr_snips - true_ctr) / true_ctr < 0.10
    assert abs(model.ctr_ips - true_ctr) < 3 * model.ctr_se + 0.01

    from typer.testing import CliRunner

    from segue.cli.main import app

    env = {"SEGUE_DATABASE_URL": database_url, "SEGUE_REDIS_URL": ""}
    printed = CliRunner().invoke(app, ["metrics", "off-policy", "--from", "2026-11-02"], env=env)
    assert printed.exit_code == 0, printed.output
    assert f"3,000 lists with propensities, {report.explored:,} explored" in printed.output
    assert f"| model order | {model.matched:,} | {model.ctr_ips:.1%} ± " in printed.output
    none = CliRunner().invoke(app, ["metrics", "off-policy", "--from", "2026-10-01"], env=env)
    assert "explore_share > 0" in str(none.exception)


def test_serving_explores_within_the_share_logs_propensities_and_learns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        load_synthetic_world(store, SynthParams(seed=5, n_users=120, n_tracks=250, n_events=6_000))
        interactions = load_interactions(store)
        train_models(interactions, ["als"], data / "models",
                     side=load_side_info(store, interactions))  # fmt: skip
        users = [str(u) for u in interactions.users.ids[:100]]
        store.set_user_flags(users[0], consent_personalisation=False)
    settings = Settings(data_dir=data, explore_share=0.2)
    with TestClient(create_app(settings, watch_s=None)) as client:
        answers = {u: client.get(f"/v1/users/{u}/recommendations").json() for u in users}
        plays = [
            {"event_id": uuid.uuid4().hex, "user_id": u, "item_id": a["items"][0]["item_id"],
             "type": "play", "ms_played": 120_000}
            for u, a in answers.items()
        ]  # fmt: skip
        assert client.post("/v1/events", json={"events": plays}).status_code == 202
        bandit = client.app.state.services.bandit  # type: ignore[attr-defined]
        client.app.state.services.flush_exposures()  # type: ignore[attr-defined]
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        logged = {e.user_id: e for e in store.exposures_between(0, 2**62)}
    # listeners who declined personalisation (ours, and the world's own) are neither explored
    # nor learnt from; every other listener's first slot was, and its play taught the bandit
    declined = [e for e in logged.values() if e.path == "non_personal"]
    assert logged[users[0]] in declined
    assert all(e.propensities is None and "explored" not in e.context for e in declined)
    others = [e for e in logged.values() if e.path != "non_personal"]
    assert len(others) > 80 and all(len(e.propensities or ()) == 3 for e in others)
    assert bandit.updates == len(others)
    explored = [e for e in others if e.context["explored"] == "1"]
    assert 0.05 * len(others) <= len(explored) <= 0.4 * len(others)  # about a fifth
    for e in others:  # a greedy slot shows the greedy choice with its probability
        if e.context["explored"] == "0":
            assert e.items[0] == e.context["greedy_top"]
            assert e.propensities[0] == pytest.approx(0.8 + 0.2 / len(e.items))

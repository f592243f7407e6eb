"""Next best action and personalisation consent, on a small synthetic world with logged messages
and a trained click model: two listeners without consent, with different histories, ages and
genders but the same country, time zone and channels, get the same real-time answer, the same
campaign message and the same campaign inputs, none of them taste-based (popular items, app
features); listeners with consent still get collaborative-filtering picks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from segue.data.synth import SynthParams
from segue.data.synth.nba import NBASimParams
from segue.jobs import nba
from segue.nba.actions import REASON_TEXT, Reason
from segue.nba.campaign import campaign_inputs, message_id, run_campaign
from segue.nba.policy import PolicySettings
from segue.nba.service import NOT_PERSONAL_NOTE, NBAService
from segue.store import open_store

PARAMS = SynthParams(seed=5, n_users=500, n_tracks=600, n_events=25_000)
SIM = NBASimParams(n_impressions=12_000)
NOW = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)  # daytime in UTC: no quiet hours
NOW_MS = int(NOW.timestamp() * 1000)
NON_PERSONAL = {Reason.POPULAR, Reason.APP_FEATURE}
POLICY = PolicySettings(holdout_share=0.0, min_probability=0.0, min_expected_value=0.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root: Path = tmp_path_factory.mktemp("nba-consent")
    store = open_store(f"sqlite:///{root / 'segue.sqlite'}")
    nba.simulate_nba(store, PARAMS, SIM, root / "truth.parquet")
    models = root / "models"
    nba.train_click_model(store, models)
    adults = [u for u in store.iter_users() if not u.kids_profile]
    active = store.interactions()
    plays = {str(active.user_ids[u]) for u in set(active.user.tolist())}
    adults = [u for u in adults if u.id in plays]
    # two listeners who differ in everything but the context, and withdraw consent
    a, b = adults[0], next(u for u in adults[1:] if u.age_band != adults[0].age_band)
    context = {"country": "SE", "timezone": "UTC", "consent_push": True, "consent_email": True}
    store.upsert_users(
        [
            a.model_copy(update={**context, "consent_personalisation": False}),
            b.model_copy(update={**context, "consent_personalisation": False}),
        ]
    )
    consenting = [u.id for u in adults[2:40] if u.consent_personalisation]
    yield {"store": store, "models": models, "pair": (a.id, b.id), "consenting": consenting}
    store.close()


def _words(message) -> str:
    return " ".join(str(v) for v in message.payload.values())


def _shape(answer) -> list[tuple]:
    suggestions = [answer.best, *answer.alternatives] if answer.best else []
    return [(s.action, s.channel, s.p_click, s.expected_value, s.send_at) for s in suggestions]


def test_the_real_time_answer_is_not_personal_without_consent(world: dict) -> None:
    service = NBAService(world["store"], world["models"], policy=POLICY)
    a, b = (service.next_best_action(u, NOW, alternatives=5) for u in world["pair"])
    assert _shape(a) == _shape(b) and _shape(a)
    assert a.note == b.note == NOT_PERSONAL_NOTE
    assert {s.action.reason for s in [a.best, *a.alternatives]} <= NON_PERSONAL
    personal = set()
    for user in world["consenting"]:
        answer = service.next_best_action(user, NOW, alternatives=5)
        assert answer.note != NOT_PERSONAL_NOTE
        personal |= {s.action.reason for s in [answer.best, *answer.alternatives] if s}
    assert Reason.LIKED_BY_SIMILAR in personal and not personal & NON_PERSONAL


def test_campaigns_send_them_the_same_non_personal_message(world: dict, tmp_path: Path) -> None:
    store, models = world["store"], world["models"]
    result = run_campaign(store, models, "consent", NOW_MS, policy=POLICY)
    assert result.queued > 0
    queued = {m.message_id: m for m in store.outbox_messages(campaign="consent")}
    a, b = (queued[message_id("consent", u)] for u in world["pair"])
    same = ("channel", "action_type", "item_id", "p_click", "value", "scheduled_ms")
    assert [getattr(a, f) for f in same] == [getattr(b, f) for f in same]
    assert any(REASON_TEXT[r] in _words(a) for r in NON_PERSONAL)
    assert {k: v for k, v in a.payload.items() if k not in ("to", "html", "text")} == {
        k: v for k, v in b.payload.items() if k not in ("to", "html", "text")
    }
    others = [queued[m] for u in world["consenting"] if (m := message_id("consent", u)) in queued]
    assert any(REASON_TEXT[Reason.LIKED_BY_SIMILAR] in _words(m) for m in others)

    path = tmp_path / "inputs.parquet"
    campaign_inputs(store, models, "consent-inputs", path, NOW.date(), NOW_MS, policy=POLICY)
    table = pq.read_table(path).to_pandas()
    rows = [
        table[table.user_id == u].drop(columns="user_id").reset_index(drop=True)
        for u in world["pair"]
    ]
    assert len(rows[0]) > 0 and rows[0].equals(rows[1])
    assert set(rows[0].reason) <= {r.value for r in NON_PERSONAL}

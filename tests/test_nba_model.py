"""The synthetic click truth, the feature rows, the click model and its metrics."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from segue.calibration import expected_calibration_error
from segue.data.model import EVENT_CODES, AgeBand, EventType, Item, ItemKind, User
from segue.data.synth import SynthParams, generate_world
from segue.data.synth.nba import (
    ClickTruth,
    NBASimParams,
    local_time,
    simulate_impressions,
)
from segue.data.synth.tables import CHANNELS
from segue.errors import SegueError
from segue.nba.actions import ACTION_TYPES, ActionType, Reason, make_action
from segue.nba.clickmodel import best_f1_threshold
from segue.nba.features import Audience, CTRTable, FeatureSpace, ItemTable, Profiles, Rows
from segue.nba.metrics import N_BINS, click_calibration, click_metrics


@pytest.fixture(scope="module")
def truth() -> ClickTruth:
    world = generate_world(SynthParams(seed=5, n_users=800, n_tracks=800, n_events=40_000))
    return ClickTruth(world, world.events(), NBASimParams(n_impressions=60_000))


def test_simulated_clicks_follow_the_stated_probabilities(truth: ClickTruth) -> None:
    log = simulate_impressions(truth)
    assert len(log) == 60_000
    # binned by true probability, the click rate matches the mean probability
    order = np.argsort(log.p_click)
    for part in np.array_split(order, 10):
        p, n = log.p_click[part].mean(), len(part)
        assert abs(log.clicked[part].mean() - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-3
    # consent: push only to users who allowed push, e-mail only with e-mail consent
    pop = truth.world.truth.population
    push, email = CHANNELS.index("push"), CHANNELS.index("email")
    assert pop.consent_push[log.user[log.channel == push]].all()
    assert pop.consent_email[log.user[log.channel == email]].all()
    assert not pop.kids[log.user].any()
    assert (log.ts_ms >= truth.cutoff_ms).all()
    # education features only for users who never used them
    feature = log.action == "try_feature"
    feature_ids = truth.world.item_ids[log.item[feature]]
    assert set(feature_ids) <= {
        "feat-discovery-station",
        "feat-create-playlist",
        "feat-focus-mode",
    }


def test_message_events_tie_outcomes_to_their_impression(truth: ClickTruth) -> None:
    log = simulate_impressions(truth, seed=3)
    events = log.events()
    impression = events.type == EVENT_CODES[EventType.IMPRESSION]
    shown = set(events.session_id[impression])
    for kind in (EventType.OPEN, EventType.CLICK, EventType.CONVERSION):
        mask = events.type == EVENT_CODES[kind]
        assert set(events.session_id[mask]) <= shown
    assert int((events.type == EVENT_CODES[EventType.CLICK]).sum()) == int(log.clicked.sum())
    assert set(events.surface) <= set(CHANNELS)
    assert set(events.source) == {a.value for a in ActionType}
    in_app = events.surface == "in_app"
    assert not (in_app & (events.type == EVENT_CODES[EventType.OPEN])).any()
    assert len(set(events.event_id)) == len(events)


def test_truth_rises_with_observable_affinity(truth: ClickTruth) -> None:
    """Same user, same moment: a track of the user's most played genre beats one of a genre
    they never play (the documented genre-share term)."""
    prof, attrs = truth.profile, truth.attrs
    user = int(np.argmax(prof.plays[:, 0]))
    shares = np.asarray(prof.genre_plays[user].todense()).ravel()
    tracks = np.flatnonzero(attrs.group == 0)[:800]
    tracks = tracks[attrs.action[tracks] == ACTION_TYPES.index(ActionType.PLAY_TRACK)]
    fav = tracks[attrs.genre[tracks] == int(np.argmax(shares))]
    never = tracks[shares[attrs.genre[tracks]] == 0]
    if len(fav) == 0 or len(never) == 0:
        pytest.skip("world too small for the comparison")
    one = np.array([user])
    args = (np.array([0]), np.array([18]), np.array([2]))
    liked = truth.observable_logit(one, fav[:1], *args)
    # pick a never-played track by the same kind of artist-share (0) for a clean comparison
    cold = [t for t in never if _pick(prof.artist_plays, user, attrs.artist[t]) == 0][:1]
    base = truth.observable_logit(one, np.array(cold), *args)
    expected = truth.params.genre_share * shares.max() / prof.plays[user, 0]
    artist_part = (
        truth.params.artist_share
        * _pick(prof.artist_plays, user, attrs.artist[fav[0]])
        / max(prof.plays[user, 0], 1)
    )
    assert liked[0] - base[0] == pytest.approx(expected + artist_part, abs=1e-9)


def _pick(matrix, row: int, col: int) -> float:
    return float(matrix[row, col]) if col >= 0 else 0.0


def test_local_time_of_the_generator_and_the_features_agree(truth: ClickTruth) -> None:
    log = simulate_impressions(truth, seed=4)
    users = truth.world.users
    audience = Audience.from_users(users, truth.world.user_ids)
    hour, weekday = audience.local_time(log.user, log.ts_ms)
    assert (hour == log.hour).all() and (weekday == log.weekday).all()
    h2, _ = local_time(truth.world, log.user[:100], log.ts_ms[:100])
    assert (h2 == log.hour[:100]).all()


def _items() -> list[Item]:
    return [
        Item(id="art-1", kind=ItemKind.ARTIST, title="A", genres=("rock",)),
        Item(id="alb-1", kind=ItemKind.ALBUM, title="B", artist_id="art-1", genres=("rock",)),
        Item(id="trk-1", kind=ItemKind.TRACK, title="C", artist_id="art-1", album_id="alb-1",
             genres=("rock", "x")),
        Item(id="trk-2", kind=ItemKind.TRACK, title="D", genres=("jazz",)),
        Item(id="ep-1", kind=ItemKind.PODCAST_EPISODE, title="E", genres=("news",)),
        Item(id="feat-focus-mode", kind=ItemKind.FEATURE, title="Focus Mode"),
        Item(id="show-1", kind=ItemKind.PODCAST_SHOW, title="S"),
    ]  # fmt: skip


def test_profiles_and_feature_rows_by_hand() -> None:
    from segue.data.log import InteractionLog
    from segue.data.model import Event

    t0 = dt.datetime(2025, 1, 10, 12, tzinfo=dt.UTC)
    events = [
        Event(event_id="1", user_id="u", item_id="trk-1", type="play", timestamp=t0,
              ms_played=120_000),
        Event(event_id="2", user_id="u", item_id="trk-1", type="play", timestamp=t0,
              ms_played=60_000),
        Event(event_id="3", user_id="u", item_id="trk-2", type="skip", timestamp=t0,
              ms_played=5_000),
        Event(event_id="4", user_id="u", item_id="trk-2", type="play", timestamp=t0,
              ms_played=60_000),
        Event(event_id="5", user_id="u", item_id="feat-focus-mode", type="open", timestamp=t0),
        Event(event_id="6", user_id="v", item_id="ep-1", type="play",
              timestamp=t0 - dt.timedelta(days=40), ms_played=600_000),
        Event(event_id="7", user_id="u", item_id="trk-2", type="play",
              timestamp=t0 + dt.timedelta(days=5), ms_played=60_000),  # after the cutoff
    ]  # fmt: skip
    log = InteractionLog.from_events(events)
    # the store's vocabulary lists every item (artists and albums without events too)
    catalog = np.array([i.id for i in _items()], dtype=object)
    where = {item_id: k for k, item_id in enumerate(catalog)}
    log = replace(log, item_ids=catalog, item=[where[i] for i in log.item_ids[log.item]])
    items = ItemTable.from_items(_items(), log.item_ids)
    cutoff = int((t0 + dt.timedelta(days=2)).timestamp() * 1000)
    prof = Profiles.build(log, items, cutoff)
    u, v = list(log.user_ids).index("u"), list(log.user_ids).index("v")
    assert prof.plays[u].tolist() == [3, 0, 0, 0] and prof.skips[u].tolist() == [1, 0, 0, 0]
    assert prof.minutes[u, 0] == pytest.approx((120 + 60 + 5 + 60) / 60)
    assert prof.recency_days[u] == pytest.approx(2.0)
    assert prof.active_days[u] == 1 and prof.active_days[v] == 0  # v played 40 days ago
    assert prof.plays[v].tolist() == [0, 1, 0, 0]
    assert prof.feature_used[u].tolist() == [False, False, True]

    users = [User(id="u", signup_at=t0, age_band=AgeBand.A25_34, country="DE",
                  timezone="Europe/Berlin"),
             User(id="v", signup_at=t0, country="US", timezone="America/New_York")]  # fmt: skip
    audience = Audience.from_users(users, log.user_ids)
    position = {i: k for k, i in enumerate(log.item_ids)}
    trk1 = position["trk-1"]
    ctr = CTRTable.fit(np.array(["trk-1"] * 10, object), np.zeros(10, int), np.r_[1, 1, [0] * 8])
    space = FeatureSpace(countries=audience.countries)
    rows = Rows(np.array([u, v]), np.array([trk1, trk1]), np.array([0, 2]),
                np.array([cutoff, cutoff]), np.array([0.5, np.nan]))  # fmt: skip
    numeric = space.numeric(rows, prof, items, ctr)
    names = list(space.names())
    col = {n: numeric[:, names.index(n)] for n in names[: numeric.shape[1]]}
    assert col["kind_plays"][0] == pytest.approx(np.log1p(3))
    assert col["kind_skip_share"][0] == pytest.approx(1 / 4)
    assert col["genre_share"][0] == pytest.approx(2 / 3)  # trk-1 is rock: 2 of 3 track plays
    assert col["artist_share"][0] == pytest.approx(2 / 3)
    assert col["cf_unknown"].tolist() == [0.0, 1.0]
    assert col["ctr_logit"][0] == pytest.approx(
        np.log(((2 + 50 * 0.2) / 60) / (1 - (2 + 50 * 0.2) / 60))
    )
    X = space.encode(rows, prof, items, audience, ctr)
    assert X.shape == (2, len(names))
    dense = X.toarray()
    berlin = dt.datetime.fromtimestamp(cutoff / 1000, tz=ZoneInfo("Europe/Berlin"))
    assert berlin.hour == 13  # 12:00 UTC in winter
    assert dense[0, names.index(f"hour={berlin.hour}")] == 1.0
    assert (
        dense[0, names.index("channel=push")] == 1.0
        and dense[1, names.index("channel=in_app")] == 1.0
    )
    assert dense[0, names.index("age=25-34×tracks")] == 1.0
    assert dense[1, names.index("age=unknown×tracks")] == 1.0
    assert dense[0, names.index("action=play_track")] == 1.0


def test_actions_link_and_refuse_unpromotable_kinds() -> None:
    action = make_action("podcast_episode", "ep-1", "Ep", Reason.LIKED_BY_SIMILAR)
    assert action.type == ActionType.PODCAST_EPISODE
    assert action.deep_link == "segue://episode/ep-1" and action.value > 0
    with pytest.raises(SegueError, match="cannot be promoted"):
        make_action("podcast_show", "show-1", "S", Reason.LIKED_BY_SIMILAR)


def test_metrics_agree_with_formulas_and_hand_counts() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 15, 20_000)
    y = (rng.random(20_000) < p).astype(float)
    m = click_metrics(y, p, threshold=0.1)
    # independent of scikit-learn: Mann-Whitney U, the log-likelihood and squared error
    u = mannwhitneyu(p[y == 1], p[y == 0]).statistic
    assert m.auc_roc == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()))
    assert m.log_loss == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert m.brier == pytest.approx(np.mean((p - y) ** 2))
    order = np.argsort(-p)  # average precision: precision at each click, averaged
    hits = y[order]
    assert m.pr_auc == pytest.approx(
        np.sum(np.cumsum(hits) / np.arange(1, len(y) + 1) * hits) / hits.sum()
    )
    predicted = p >= 0.1
    assert m.tp == int((predicted & (y == 1)).sum()) and m.fp == int((predicted & (y == 0)).sum())
    assert m.fn == int((~predicted & (y == 1)).sum()) and m.tn == int((~predicted & (y == 0)).sum())
    assert m.precision == pytest.approx(m.tp / (m.tp + m.fp))
    assert m.recall == pytest.approx(m.tp / (m.tp + m.fn))
    assert m.f1 == pytest.approx(2 * m.tp / (2 * m.tp + m.fp + m.fn))
    assert m.accuracy == pytest.approx((m.tp + m.tn) / len(y))
    # calibrated draws have a small ECE; doubling every prediction does not
    assert m.ece < 0.01
    doubled = np.clip(2 * p, 0, 1)
    assert expected_calibration_error(y, doubled, n_bins=N_BINS, strategy="quantile") > 0.04
    # the report's ECE: twenty equal-frequency bins (distinct predictions: 1,000 rows each)
    curve = click_calibration(y, p)
    assert list(curve.count) == [1000] * N_BINS and np.all(np.diff(curve.predicted) > 0)
    bins = np.array_split(np.argsort(p), N_BINS)
    by_hand = np.mean([abs(y[b].mean() - p[b].mean()) for b in bins])
    assert m.ece == pytest.approx(by_hand)
    with pytest.raises(SegueError, match="probabilities"):
        click_metrics(y, p * 2 + 1, 0.5)


def test_metrics_of_a_model_that_never_predicts_a_click() -> None:
    y = np.array([0.0, 1.0, 0.0, 1.0])
    m = click_metrics(y, np.array([0.1, 0.2, 0.3, 0.4]), threshold=0.9)
    assert (m.tp, m.fp, m.fn, m.tn) == (0, 0, 2, 2)
    assert m.precision == m.recall == m.f1 == 0.0 and m.accuracy == 0.5
    with pytest.raises(SegueError, match="both clicks and non-clicks"):
        click_metrics(np.zeros(3), np.full(3, 0.5), 0.5)


def test_best_f1_threshold_finds_the_separating_score() -> None:
    y = np.array([0, 0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.3, 0.8, 0.9, 0.4, 0.7])
    assert best_f1_threshold(y, p) == pytest.approx(0.7)

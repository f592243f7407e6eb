"""The synthetic world against its documented model (docs/synthetic-world.md).

Every expected value here is computed from the parameters and the documented formulas and
tables, never from a previous run; the tolerances are those the document quotes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from scipy.stats import norm

from segue.data.log import InteractionLog
from segue.data.model import EVENT_CODES, Friendship, Item, ItemKind, User
from segue.data.synth import (
    Context,
    SynthParamError,
    SynthParams,
    UserSimulator,
    World,
    generate_world,
)
from segue.data.synth.tables import GENRES, HOURLY_PROFILE, WEEKDAY_PROFILE
from segue.errors import SegueError

PLAY, SKIP, LIKE = EVENT_CODES["play"], EVENT_CODES["skip"], EVENT_CODES["like"]
OPEN, FOLLOW = EVENT_CODES["open"], EVENT_CODES["follow"]

TEST_PARAMS = SynthParams(
    seed=11,
    n_users=2_000,
    n_tracks=4_000,
    n_events=200_000,
    n_podcast_shows=60,
    n_podcast_episodes=800,
    n_videos=200,
    n_audiobooks=30,
)
SMALL = SynthParams(
    seed=3,
    n_users=300,
    n_tracks=600,
    n_events=15_000,
    n_podcast_shows=10,
    n_podcast_episodes=50,
    n_videos=20,
    n_audiobooks=5,
)


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(TEST_PARAMS)


@pytest.fixture(scope="module")
def log(world: World) -> InteractionLog:
    return world.events()


@pytest.fixture(scope="module")
def track_plays(log: InteractionLog) -> np.ndarray:
    """Mask of play-or-skip rows on tracks (track positions come first)."""
    return (log.item < TEST_PARAMS.n_tracks) & np.isin(log.type, [PLAY, SKIP])


@pytest.fixture(scope="module")
def session_starts(world: World, log: InteractionLog) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each session, local datetime of that row)."""
    _, first = np.unique(log.session_id, return_index=True)
    zones = {tz: ZoneInfo(tz) for tz in {u.timezone for u in world.users}}
    local = [
        dt.datetime.fromtimestamp(ts / 1000, zones[world.users[u].timezone])
        for ts, u in zip(log.ts_ms[first], log.user[first], strict=True)
    ]
    return first, np.array(local, dtype=object)


def _zipf(n: int, alpha: float) -> np.ndarray:
    w = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    return w / w.sum()


def _gini(x: np.ndarray) -> float:
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def _expit(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# -- parameters --------------------------------------------------------------------------
def test_every_numeric_parameter_is_range_checked() -> None:
    from segue.data.synth.params import _SPECS

    checked = {s.name for s in _SPECS}
    numeric = {
        f.name for f in dataclasses.fields(SynthParams) if f.name not in ("start_date", "end_date")
    }
    assert numeric == checked


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_users", 0),
        ("n_tracks", 5),
        ("skip_rate", 1.0),
        ("skip_rate", -0.1),
        ("like_prob", 0.0),
        ("latent_dim", 1),
        ("n_genres", len(GENRES) + 1),
        ("popularity_exponent", 0.0),
        ("seed", 1.5),
        ("seed", True),
        ("n_events", -1),
        ("new_release_share", 0.95),
        ("focus_share", float("nan")),
        ("kids_share", "0.1"),
        ("end_date", dt.date(2024, 1, 3)),
        ("start_date", "2024-13-01"),
        ("skip_ms_min", 40_000),
        ("taste_drift", 1.5),
        ("daypart_effect", -0.5),
        ("daypart_effect", 6.0),
    ],
)
def test_bad_parameters_name_themselves(name: str, value: object) -> None:
    with pytest.raises(SynthParamError, match=name) as info:
        SynthParams(**{name: value})
    assert isinstance(info.value, SegueError) and isinstance(info.value, ValueError)


def test_too_few_tracks_per_genre_is_refused_unless_genres_are_derived() -> None:
    with pytest.raises(SynthParamError, match="n_tracks"):
        SynthParams(n_tracks=100, n_genres=30)
    assert SynthParams(n_tracks=100).n_genres == 10
    assert SynthParams(n_tracks=50_000).n_genres == 30
    assert SynthParams(n_tracks=10).n_genres == 1


def test_spoken_session_shares_must_leave_room_for_music() -> None:
    with pytest.raises(SynthParamError, match="podcast_session_share"):
        SynthParams(podcast_session_share=0.5, video_session_share=0.3, audiobook_session_share=0.3)


def test_iso_dates_are_accepted_and_overrides_validate() -> None:
    p = SynthParams(start_date="2023-06-01", end_date="2023-07-01")
    assert p.start_date == dt.date(2023, 6, 1) and p.n_days == 30
    with pytest.raises(SynthParamError, match="skip_rate"):
        p.with_overrides(skip_rate=2.0)
    with pytest.raises(SynthParamError, match="bogus"):
        p.with_overrides(bogus=1)


def test_generate_world_rejects_non_params() -> None:
    with pytest.raises(SynthParamError, match="SynthParams"):
        generate_world({"n_users": 10})  # type: ignore[arg-type]


# -- determinism and streaming -----------------------------------------------------------
def _columns(log: InteractionLog) -> dict[str, np.ndarray]:
    names = ("user", "item", "type", "ts_ms", "ms_played", "focus", "event_id", "session_id")
    return {n: getattr(log, n) for n in (*names, "surface", "device")}


def test_same_seed_same_world_and_different_seed_different_world() -> None:
    a, b = generate_world(SMALL), generate_world(SMALL)
    assert a.items == b.items
    assert a.users == b.users
    assert a.friendships == b.friendships
    ea, eb = _columns(a.events()), _columns(b.events())
    for name in ea:
        assert np.array_equal(ea[name], eb[name]), name
    c = generate_world(SMALL.with_overrides(seed=4))
    assert [i.title for i in c.items] != [i.title for i in a.items]
    assert not np.array_equal(np.asarray(c.truth.user_latent), np.asarray(a.truth.user_latent))
    ec = c.events()
    n = min(len(ec), len(a.events()))
    assert not np.array_equal(ec.item[:n], ea["item"][:n])


def test_chunks_do_not_change_the_events() -> None:
    w = generate_world(SMALL)
    whole = w.events()
    seen: list[tuple[int, int]] = []
    chunks = list(w.iter_event_chunks(chunk_size=4_000, progress=lambda d, t: seen.append((d, t))))
    assert all(len(c) == 4_000 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 4_000
    joined = _columns(InteractionLog.concat(chunks))
    for name, column in _columns(whole).items():
        assert np.array_equal(joined[name], column), name
    assert seen[-1] == (SMALL.n_users, SMALL.n_users)
    for c in chunks:
        assert c.user_ids is w.user_ids and c.item_ids is w.item_ids
    with pytest.raises(SynthParamError, match="chunk_size"):
        next(w.iter_event_chunks(chunk_size=0))


def test_progress_of_generation_is_reported() -> None:
    steps: list[tuple[int, int]] = []
    generate_world(SMALL, progress=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]


# -- sizes, ids, records -----------------------------------------------------------------
def test_sizes_match_the_parameters(world: World, log: InteractionLog) -> None:
    p = TEST_PARAMS
    kinds = [i.kind for i in world.items]
    expected = {
        ItemKind.TRACK: p.n_tracks,
        ItemKind.ALBUM: p.n_albums,
        ItemKind.ARTIST: p.n_artists,
        ItemKind.PODCAST_SHOW: p.n_podcast_shows,
        ItemKind.PODCAST_EPISODE: p.n_podcast_episodes,
        ItemKind.VIDEO: p.n_videos,
        ItemKind.AUDIOBOOK: p.n_audiobooks,
        ItemKind.FEATURE: 10,
    }
    assert {k: kinds.count(k) for k in expected} == expected
    assert p.n_artists == p.n_tracks // 10 and p.n_albums == p.n_tracks // 5
    assert len(world.users) == p.n_users
    assert abs(len(log) - p.n_events) <= 0.03 * p.n_events


def test_event_ids_and_vocabularies_are_the_worlds(world: World, log: InteractionLog) -> None:
    assert list(log.user_ids) == [u.id for u in world.users]
    assert list(log.item_ids) == [i.id for i in world.items]
    assert log.user.min() >= 0 and log.user.max() < len(world.users)
    assert log.item.min() >= 0 and log.item.max() < len(world.items)
    seed = TEST_PARAMS.seed
    assert list(log.event_id[:3]) == [f"s{seed}-0", f"s{seed}-1", f"s{seed}-2"]
    assert len(set(log.event_id)) == len(log)
    assert all(isinstance(s, str) and s.startswith(f"s{seed}-sess-") for s in log.session_id)
    assert set(log.surface) <= {
        "home", "library", "playlist", "search", "radio", "discovery_station", "daily_mix",
        "focus_mode", "podcasts", "videos", "audiobooks",
    }  # fmt: skip
    assert set(log.device) == {"mobile", "desktop", "web", "smart_speaker", "tablet", "tv"}
    assert set(np.unique(log.type)) <= {
        EVENT_CODES[t] for t in ("play", "skip", "like", "dislike", "add_to_playlist")
    } | {FOLLOW, OPEN}
    assert (np.diff(log.user) >= 0).all()
    same_user = np.diff(log.user) == 0
    assert (np.diff(log.ts_ms)[same_user] >= 0).all()


def test_records_validate(world: World) -> None:
    for item in world.items:
        assert Item.model_validate(item.model_dump()) == item
    for user in world.users:
        assert User.model_validate(user.model_dump()) == user
    ids = {u.id for u in world.users}
    assert all(isinstance(f, Friendship) for f in world.friendships)
    assert all(f.user_id in ids and f.friend_id in ids for f in world.friendships)
    by_id = {i.id: i for i in world.items}
    for item in world.items:
        for ref in (item.artist_id, item.album_id, item.show_id):
            assert ref is None or ref in by_id
    tracks = [i for i in world.items if i.kind is ItemKind.TRACK]
    assert all(t.audio is not None and t.duration_ms and t.release_date for t in tracks)
    assert len({t.title for t in tracks}) > len(tracks) // 4  # varied, plausible names
    assert all(len(t.title.split()) >= 1 and t.title[0].isupper() for t in tracks)


def test_item_and_user_lookup_errors_name_the_id(world: World) -> None:
    with pytest.raises(SegueError, match="nobody"):
        world.user_index("nobody")
    with pytest.raises(SegueError, match="trk-nope"):
        world.item_index("trk-nope")


# -- the catalog -------------------------------------------------------------------------
def test_audio_and_duration_follow_the_genre_table(world: World) -> None:
    """The median of each feature over a genre is the table's value (docs §3).

    Tolerance: 4 standard errors of a median (1.25 sd/√n). The signal s is mostly shared by an
    artist's tracks, so it counts once per artist (sd 0.5 in logit units for energy, 0.08 in
    log tempo); the track noise (0.35, 0.05) counts once per track.
    """
    tracks = [i for i in world.items if i.kind is ItemKind.TRACK]
    by_genre: dict[str, list[Item]] = {}
    for t in tracks:
        by_genre.setdefault(t.genres[0], []).append(t)
    table = {g.name: g for g in GENRES}
    checked = 0
    for name, members in by_genre.items():
        n_artists = len({t.artist_id for t in members})
        if n_artists < 10:
            continue
        g, n = table[name], len(members)
        energy = np.median([t.audio.energy for t in members])
        tempo = np.median([t.audio.tempo for t in members])
        logit_se = 1.25 * math.sqrt(0.5**2 / n_artists + 0.35**2 / n)
        log_tempo_se = 1.25 * math.sqrt(0.08**2 / n_artists + 0.05**2 / n)
        logit = math.log(energy / (1 - energy)) - math.log(g.energy / (1 - g.energy))
        assert abs(logit) <= 4 * logit_se, name
        assert abs(math.log(tempo / g.tempo)) <= 4 * log_tempo_se, name
        checked += 1
    assert checked >= 5
    pop_durations = [t.duration_ms for t in by_genre["pop"]]  # duration factor 1.0
    log_duration_se = 1.25 * 0.28 / math.sqrt(len(pop_durations))
    assert abs(math.log(np.median(pop_durations) / 210_000)) <= 4 * log_duration_se
    assert np.median([t.audio.tempo for t in by_genre["techno"]]) > np.median(
        [t.audio.tempo for t in by_genre["hip hop"]]
    )  # 130 vs 95 BPM in the table


# -- users -------------------------------------------------------------------------------
def _zone_tab() -> dict[str, set[str]]:
    zones: dict[str, set[str]] = {}
    path = Path("/usr/share/zoneinfo/zone.tab")
    if not path.is_file():
        pytest.skip("zone.tab not found")
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            code, _, tz = line.split("\t")[:3]
            zones.setdefault(tz, set()).add(code)
    return zones


def test_users_demographics_consents_and_timezones(world: World) -> None:
    p, users = TEST_PARAMS, world.users
    zones = _zone_tab()
    assert all(u.country in zones[u.timezone] for u in users)
    n = len(users)

    def within(count: int, share: float) -> bool:
        return abs(count - n * share) <= 4 * math.sqrt(n * share * (1 - share))

    kids = [u for u in users if u.kids_profile]
    assert within(len(kids), p.kids_share)
    assert all(u.age_band is None and not u.consent_push and not u.consent_email for u in kids)
    start = dt.datetime.combine(p.start_date, dt.time(), tzinfo=dt.UTC)
    assert within(sum(u.signup_at >= start for u in users), p.signup_during_share)
    adults = [u for u in users if not u.kids_profile]
    assert within(sum(u.consent_push for u in adults), p.consent_push_rate * len(adults) / n)


def test_friends_are_symmetric_adults_near_the_mean_degree(world: World) -> None:
    links = {(f.user_id, f.friend_id) for f in world.friendships}
    assert all((b, a) in links for a, b in links)
    assert all(a != b for a, b in links)
    kids = {u.id for u in world.users if u.kids_profile}
    assert not any(a in kids for a, _ in links)
    adults = len(world.users) - len(kids)
    degree = len(links) / adults
    # Poisson(m/2) invitations per adult, each a link both ways: sd of the mean degree √(2m/n)
    m = TEST_PARAMS.friends_mean
    sd = math.sqrt(2 * m / adults)
    assert 0.9 * m - 4 * sd <= degree <= m + 4 * sd


def test_activity_is_heavy_tailed(log: InteractionLog) -> None:
    per_user = np.sort(np.bincount(log.user, minlength=TEST_PARAMS.n_users))[::-1]
    share = per_user[: TEST_PARAMS.n_users // 10].sum() / per_user.sum()
    lognormal_top10 = 1 - norm.cdf(norm.ppf(0.9) - TEST_PARAMS.activity_sigma)
    assert share >= lognormal_top10 - 0.05


def _genre_share(world: World, log: InteractionLog, mask: np.ndarray, genres: set[str]) -> float:
    track_genre = np.array([i.genres[0] if i.genres else "" for i in world.items], dtype=object)
    g = track_genre[log.item[mask]]
    return float(np.isin(g, list(genres)).mean())


def test_demographics_carry_taste_signal(
    world: World, log: InteractionLog, track_plays: np.ndarray
) -> None:
    band = np.array([u.age_band.value if u.age_band else "" for u in world.users])
    country = np.array([u.country for u in world.users])
    young = track_plays & (band[log.user] == "18-24")
    old = track_plays & np.isin(band[log.user], ["55-64", "65+"])
    urban = {"hip hop", "trap"}
    mature = {"jazz", "classical", "smooth jazz", "opera"}
    assert _genre_share(world, log, young, urban) > _genre_share(world, log, old, urban)
    assert _genre_share(world, log, old, mature) > _genre_share(world, log, young, mature)
    latin = {"latin", "reggaeton", "bossa nova"}
    mx = track_plays & (country[log.user] == "MX")
    de = track_plays & (country[log.user] == "DE")
    assert _genre_share(world, log, mx, latin) > _genre_share(world, log, de, latin)


def test_taste_drifts_from_the_first_mixture_to_the_later_one_over_the_period() -> None:
    """With ``taste_drift`` 1, a session's genre is drawn from (1 - t)·π + t·π' at the share
    t of the period gone by: the listener's first mixture π explains the early plays and
    the later one π' the late ones; responses after the period use the taste at its end.
    Without drift there is no later taste."""
    assert generate_world(SMALL).truth.population.later_genre_weights is None
    params = dataclasses.replace(SMALL, taste_drift=1.0)
    world = generate_world(params)
    log = world.events()
    pop, catalog = world.truth.population, world.truth.catalog
    tracks = (log.item < params.n_tracks) & np.isin(log.type, [PLAY, SKIP]) & ~log.focus
    genre, user = catalog.track_genre[log.item[tracks]], log.user[tracks]
    gone = (log.ts_ms[tracks] - params.start_ms) / (params.end_ms - params.start_ms)
    first, later = pop.genre_weights[user, genre], pop.later_genre_weights[user, genre]
    early, late = gone < 0.25, gone >= 0.75
    assert first[early].mean() > first[late].mean() + 0.15
    assert later[late].mean() > later[early].mean() + 0.15
    assert first[early].mean() > later[early].mean() and later[late].mean() > first[late].mean()
    n = params.n_users
    end = pop.latent + (pop.later_latent - pop.latent)  # all the way at drift 1
    np.testing.assert_allclose(world.truth.user_latent, end, rtol=1e-6, atol=1e-6)
    assert not np.allclose(world.truth.user_latent, pop.latent)
    assert world.truth.user_latent.shape == (n, params.latent_dim)


def test_the_daypart_tilts_each_sessions_genre_by_the_worlds_genre_daypart_weights() -> None:
    """With ``daypart_effect`` on, a genre's share of the plays in each local daypart
    (recovered from the events' UTC times and the listeners' zones, as the recommender
    reads them) moves with its log-weight for that daypart; without it, it does not. The
    plays' dayparts follow the world's hourly curve either way."""
    from segue.data.dayparts import DAYPARTS, local_dayparts
    from segue.data.synth.tables import TIMEZONES

    assert generate_world(SMALL).truth.population.genre_daypart is None
    params = dataclasses.replace(SMALL, n_events=150_000)
    correlations = []
    for effect in (0.0, 1.0):
        world = generate_world(dataclasses.replace(params, daypart_effect=effect))
        log, pop = world.events(), world.truth.population
        tracks = (log.item < params.n_tracks) & np.isin(log.type, [PLAY, SKIP]) & ~log.focus
        genre = world.truth.catalog.track_genre[log.item[tracks]]
        user = log.user[tracks]
        part = local_dayparts(log.ts_ms[tracks] / 86_400_000, pop.tz[user], TIMEZONES)
        assert (part >= 0).all()
        curve = HOURLY_PROFILE.reshape(len(DAYPARTS), -1).sum(axis=1)
        shares = np.bincount(part, minlength=len(DAYPARTS)) / len(part)
        np.testing.assert_allclose(shares, curve, atol=0.03)
        counts = np.zeros((params.n_genres, len(DAYPARTS)))
        np.add.at(counts, (genre, part), 1.0)
        busy = counts.sum(axis=1) >= 400  # genres with enough plays to read a share from
        lift = np.log((counts[busy] + 1) / (counts[busy].sum(axis=1, keepdims=True) + 4))
        lift -= np.log(shares)  # the genre's share in the daypart over the daypart's share
        weights = dataclasses.replace(params, daypart_effect=1.0)
        tilt = generate_world(weights).truth.population.genre_daypart[busy]
        assert tilt.shape[1] == len(DAYPARTS)
        np.testing.assert_allclose(tilt.mean(axis=1), 0.0, atol=1e-6)
        correlations.append(np.corrcoef(lift.ravel(), tilt.ravel())[0, 1])
    without, with_effect = correlations
    assert with_effect > 0.65 and abs(without) < 0.3, correlations


# -- listening ---------------------------------------------------------------------------
def test_popularity_follows_the_zipf_law(log: InteractionLog, track_plays: np.ndarray) -> None:
    n, alpha = TEST_PARAMS.n_tracks, TEST_PARAMS.popularity_exponent
    plays = np.bincount(log.item[track_plays], minlength=n)
    ranked = np.sort(plays)[::-1].astype(np.float64)
    ranks = np.arange(1, n + 1)
    lo, hi = 10, n // 10
    slope = np.polyfit(np.log(ranks[lo - 1 : hi]), np.log(ranked[lo - 1 : hi]), 1)[0]
    assert abs(slope + alpha) <= 0.15
    zipf = _zipf(n, alpha)
    zipf_top = zipf[: n // 100].sum()
    top = ranked[: n // 100].sum() / ranked.sum()
    assert 0.65 * zipf_top <= top <= 1.1 * zipf_top
    assert _gini(plays) >= _gini(zipf) - 0.06


def test_skip_and_like_rates_match_the_parameters(
    world: World, log: InteractionLog, track_plays: np.ndarray
) -> None:
    music = track_plays & ~log.focus
    skipped = log.type[music] == SKIP
    assert abs(skipped.mean() - TEST_PARAMS.skip_rate) <= 0.015
    likes = ((log.type == LIKE) & (log.item < TEST_PARAMS.n_tracks)).sum()
    kept = (music & (log.type == PLAY)).sum()
    assert abs(likes / kept - TEST_PARAMS.like_prob) <= 0.006
    z = world.truth.standardized_affinity(log.user[music], log.item[music])
    low, high = np.quantile(z, [0.25, 0.75])
    assert skipped[z <= low].mean() > skipped[z >= high].mean()
    skip_ms = log.ms_played[music][skipped]
    assert skip_ms.max() <= TEST_PARAMS.skip_ms_max
    durations = world.truth.catalog.duration_ms[log.item[music]]
    full = log.ms_played[music][~skipped] == durations[~skipped]
    assert abs((1 - full.mean()) - TEST_PARAMS.partial_rate) <= 0.015


def test_focus_sessions(log: InteractionLog) -> None:
    _, session = np.unique(log.session_id, return_inverse=True)
    track_rows = log.item < TEST_PARAMS.n_tracks
    music_sessions = np.unique(session[track_rows])
    focus_sessions = np.unique(session[log.focus])
    share = len(focus_sessions) / len(music_sessions)
    assert abs(share - TEST_PARAMS.focus_share) <= 0.006
    in_focus = np.isin(session, focus_sessions)
    assert log.focus[in_focus].all()
    plays = in_focus & track_rows
    assert (log.type[plays] == PLAY).all()
    pairs = set(zip(session[plays], log.item[plays], strict=True))
    assert len(pairs) == len(focus_sessions)  # one track on repeat per session
    opens = in_focus & (log.type == OPEN)
    assert opens.sum() == len(focus_sessions)
    assert set(log.item_ids[log.item[opens]]) == {"feat-focus-mode"}


def test_sessions_follow_the_hourly_and_weekly_profiles(session_starts: tuple) -> None:
    _, local = session_starts
    hours = np.bincount([t.hour for t in local], minlength=24)
    assert np.corrcoef(hours, HOURLY_PROFILE)[0, 1] > 0.95
    days = np.bincount([t.weekday() for t in local], minlength=7)
    assert np.corrcoef(days, WEEKDAY_PROFILE)[0, 1] > 0.8


def test_events_lie_in_the_period_after_signup(world: World, log: InteractionLog) -> None:
    p = TEST_PARAMS
    assert log.ts_ms.min() >= p.start_ms and log.ts_ms.max() < p.end_ms
    signup = np.array([int(u.signup_at.timestamp() * 1000) for u in world.users])
    assert (log.ts_ms >= signup[log.user]).all()


def test_releases_are_never_played_early_and_new_ones_get_played(
    world: World, log: InteractionLog, track_plays: np.ndarray
) -> None:
    release = {
        i: int(dt.datetime.combine(item.release_date, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)
        for i, item in enumerate(world.items)
        if item.release_date is not None
    }
    rows = np.flatnonzero(np.isin(log.type, [PLAY, SKIP]))
    for r in rows:
        item = int(log.item[r])
        assert item not in release or log.ts_ms[r] >= release[item]
    new = [i for i in range(TEST_PARAMS.n_tracks) if release[i] >= TEST_PARAMS.start_ms]
    played = set(np.unique(log.item[track_plays]).tolist())
    assert len(new) > 0 and len(played & set(new)) >= 0.5 * len(new)
    new_rows = track_plays & np.isin(log.item, new)
    month = (log.ts_ms[new_rows] - TEST_PARAMS.start_ms) // (30 * 86_400_000)
    per_month = np.bincount(month, minlength=12)
    assert per_month[:3].sum() < per_month[-4:-1].sum()  # more new music as it keeps coming


def test_kids_never_play_explicit_tracks(world: World, log: InteractionLog, track_plays) -> None:
    kids = np.array([u.kids_profile for u in world.users])
    explicit = np.array([i.explicit for i in world.items])
    rows = track_plays & kids[log.user]
    assert rows.sum() > 0
    assert not explicit[log.item[rows]].any()


def test_side_content_only_for_its_listeners(world: World, log: InteractionLog) -> None:
    pop = world.truth.population
    kinds = np.array([i.kind for i in world.items], dtype=object)
    episode_rows = kinds[log.item] == ItemKind.PODCAST_EPISODE
    video_rows = kinds[log.item] == ItemKind.VIDEO
    book_rows = kinds[log.item] == ItemKind.AUDIOBOOK
    assert episode_rows.any() and video_rows.any() and book_rows.any()
    assert pop.podcast[log.user[episode_rows]].all()
    assert pop.video[log.user[video_rows]].all()
    assert pop.audiobook[log.user[book_rows]].all()
    follows = log.type == FOLLOW
    pairs = list(zip(log.user[follows], log.item[follows], strict=True))
    assert len(pairs) == len(set(pairs))
    assert set(kinds[log.item[follows]]) <= {ItemKind.ARTIST, ItemKind.PODCAST_SHOW}


# -- the simulator -----------------------------------------------------------------------
def _consenting_user(world: World) -> User:
    return next(u for u in world.users if u.consent_push and u.consent_email)


def test_click_probability_is_the_documented_formula_and_its_empirical_rate(world: World) -> None:
    p = TEST_PARAMS
    sim = UserSimulator(world, seed=5)
    user = _consenting_user(world)
    u = world.user_index(user.id)
    feature = world.truth.catalog.span(ItemKind.FEATURE)[0]  # Discovery Station comes first
    f = float(world.truth.population.feature_affinity[u, 0])
    hour = 18
    h = p.hour_effect * math.log(24 * HOURLY_PROFILE[hour])
    base = math.log(p.message_click_rate / (1 - p.message_click_rate))
    expected = _expit(base + p.message_affinity * f + p.in_app_effect + h)
    item_id = world.item_ids[feature]
    assert sim.click_probability(user.id, item_id, "in_app", hour) == pytest.approx(expected)
    n = 20_000
    clicks = [sim.respond_to_message(user.id, item_id, "in_app", hour) for _ in range(n)]
    rate = np.mean([c for c, _ in clicks])
    assert all(prob == pytest.approx(expected) for _, prob in clicks)
    assert abs(rate - expected) <= 4 * math.sqrt(expected * (1 - expected) / n)
    assert sim.click_probability(user.id, item_id, "email", hour) < expected  # email_effect < 0


def test_messages_need_consent_and_valid_input(world: World) -> None:
    sim = UserSimulator(world, seed=1)
    no_push = next(u for u in world.users if not u.consent_push)
    assert sim.respond_to_message(no_push.id, "feat-focus-mode", "push", 9) == (False, 0.0)
    user = _consenting_user(world)
    with pytest.raises(SegueError, match="carrier_pigeon"):
        sim.respond_to_message(user.id, "feat-focus-mode", "carrier_pigeon", 9)
    with pytest.raises(SegueError, match="hour"):
        sim.respond_to_message(user.id, "feat-focus-mode", "push", 24)
    with pytest.raises(SegueError, match="usr-none"):
        sim.respond_to_message("usr-none", "feat-focus-mode", "push", 9)


def test_respond_draws_from_the_generators_probabilities(world: World) -> None:
    p, truth = TEST_PARAMS, world.truth
    sim = UserSimulator(world, seed=2)
    user = next(u for u in world.users if not u.kids_profile)
    u = world.user_index(user.id)
    track = 0
    z = float(truth.standardized_affinity(np.array(u), np.array(track)))
    cal = truth.calibration
    p_play, p_skip, p_like = sim.probabilities(user.id, world.item_ids[track])
    assert p_skip == pytest.approx(_expit(cal.skip_intercept - p.skip_affinity * z))
    assert p_like == pytest.approx(_expit(cal.like_intercept + p.like_affinity * z))
    logp = np.log(truth.catalog.popularity[: p.n_tracks])
    popz = (logp[track] - logp.mean()) / logp.std()
    base = math.log(p.play_rate / (1 - p.play_rate))
    assert p_play == pytest.approx(_expit(base + p.play_affinity * z + p.play_popularity * popz))
    n = 20_000
    responses = [sim.respond(user.id, world.item_ids[track]) for _ in range(n)]
    played = np.array([r.played for r in responses])
    assert abs(played.mean() - p_play) <= 4 * math.sqrt(p_play * (1 - p_play) / n)
    skipped = np.array([r.skipped for r in responses])[played]
    k = played.sum()
    assert abs(skipped.mean() - p_skip) <= 4 * math.sqrt(p_skip * (1 - p_skip) / k) + 1e-9
    assert all(r.ms_played == 0 for r in responses if not r.played)


def test_simulator_respects_release_and_kids(world: World) -> None:
    sim = UserSimulator(world, seed=3)
    c = world.truth.catalog
    new = int(np.argmax(c.release_ms[: TEST_PARAMS.n_tracks]))
    user = world.users[0].id
    before = Context(timestamp_ms=int(c.release_ms[new]) - 1)
    after = Context(timestamp_ms=int(c.release_ms[new]) + 1)
    assert sim.probabilities(user, world.item_ids[new], before)[0] == 0.0
    assert sim.probabilities(user, world.item_ids[new], after)[0] > 0.0
    as_mapping = {"timestamp_ms": int(c.release_ms[new]) - 1}
    assert sim.probabilities(user, world.item_ids[new], as_mapping)[0] == 0.0
    with pytest.raises(SegueError, match="weather"):
        sim.respond(user, world.item_ids[new], {"weather": "rain"})
    kid = next(u for u in world.users if u.kids_profile)
    explicit = int(np.flatnonzero(c.explicit[: TEST_PARAMS.n_tracks])[0])
    assert sim.respond(kid.id, world.item_ids[explicit]).prob_play == 0.0
    with pytest.raises(SegueError, match="respond_to_message"):
        sim.respond(user, "feat-focus-mode")


def test_simulator_agrees_with_the_generated_skips(
    world: World, log: InteractionLog, track_plays: np.ndarray
) -> None:
    """The simulator's P(skip) is the generator's: binned by it, observed rates match."""
    cal, p = world.truth.calibration, TEST_PARAMS
    rows = track_plays & ~log.focus
    z = world.truth.standardized_affinity(log.user[rows], log.item[rows])
    predicted = 1 / (1 + np.exp(-(cal.skip_intercept - p.skip_affinity * z)))
    skipped = log.type[rows] == SKIP
    edges = np.quantile(predicted, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    for lo, hi in itertools.pairwise(edges):
        inside = (predicted >= lo) & (predicted <= hi)
        mean_p = predicted[inside].mean()
        sd = math.sqrt(mean_p * (1 - mean_p) / inside.sum())
        assert abs(skipped[inside].mean() - mean_p) <= 4 * sd + 0.01


@pytest.mark.parametrize(
    "overrides",
    [
        {"n_events": 0},
        {"n_users": 1},
        {"n_genres": 1, "n_tracks": 10},
        {"n_podcast_shows": 0, "n_podcast_episodes": 0, "n_videos": 0, "n_audiobooks": 0},
        {"kids_share": 1.0},
        {"start_date": "2024-03-01", "end_date": "2024-03-08"},
        {"artist_spread": 0.0, "track_spread": 0.0, "user_spread": 0.0, "latent_dim": 2},
    ],
)
def test_corner_worlds_stay_consistent(overrides: dict) -> None:
    p = SynthParams(
        seed=5,
        n_users=40,
        n_tracks=300,
        n_events=1_500,
        n_podcast_shows=3,
        n_podcast_episodes=9,
        n_videos=4,
        n_audiobooks=2,
    ).with_overrides(**overrides)
    w = generate_world(p)
    log = w.events()
    assert list(log.user_ids) == [u.id for u in w.users]
    assert list(log.item_ids) == [i.id for i in w.items]
    if p.n_events == 0:
        assert len(log) == 0 and list(w.iter_event_chunks()) == []
        return
    assert len(log) > 0
    assert log.ts_ms.min() >= p.start_ms and log.ts_ms.max() < p.end_ms
    explicit = np.array([i.explicit for i in w.items])
    kids = np.array([u.kids_profile for u in w.users])
    assert not (explicit[log.item] & kids[log.user] & np.isin(log.type, [PLAY, SKIP])).any()
    if p.kids_share == 1.0:
        assert w.friendships == []

"""The listeners: demographics, consents, taste, activity, side interests and friends.

Like the catalog, the population is a set of arrays indexed by user position; :class:`User`
records are built only on request (:mod:`segue.data.synth.records`). Taste is drawn *from*
demographics (a genre's weight is tilted by the user's age and country), so demographics
carry signal for cold-start models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segue.data.dayparts import DAYPARTS
from segue.data.model import ItemKind
from segue.data.synth.catalog import DAY_MS, Catalog
from segue.data.synth.params import SynthParams
from segue.data.synth.tables import (
    AGE_BANDS,
    AGE_WIDTH,
    AUDIOBOOKS_FEATURE,
    COUNTRIES,
    COUNTRY_INDEX,
    CREATE_PLAYLIST,
    DAILY_MIX,
    DEVICES,
    DISCOVERY,
    FEATURES,
    FOCUS,
    GENDERS,
    GENRES,
    HOME_BOOST,
    KID_AGE,
    PODCASTS_FEATURE,
)

#: How many favourite genres a user has (1, 2 or 3) and with what probability.
FAVOURITE_COUNT_PROBS = (0.3, 0.4, 0.3)
#: Dirichlet concentration of the weights among a user's favourite genres.
FAVOURITE_CONCENTRATION = 2.0
#: Mean years since signup of users who joined before the period (exponential).
SIGNUP_YEARS_BEFORE = 2.0
#: Share of a user's friends drawn from their own country.
SAME_COUNTRY_FRIENDS = 0.7
_BATCH = 200_000
_AGES, _GENDERS_S, _TASTE, _SIDE, _FRIENDS, _LATER_TASTE, _DAYPART = range(7)


@dataclass
class Population:
    """Per-user arrays; ``age_band``/``gender`` hold -1 for "not given" (kids have no band)."""

    ids: np.ndarray
    signup_ms: np.ndarray
    age_band: np.ndarray
    age_years: np.ndarray
    gender: np.ndarray
    country: np.ndarray
    tz: np.ndarray
    kids: np.ndarray
    consent_push: np.ndarray
    consent_email: np.ndarray
    consent_personalisation: np.ndarray
    favourite_genres: np.ndarray
    genre_weights: np.ndarray
    latent: np.ndarray
    activity: np.ndarray
    podcast: np.ndarray
    video: np.ndarray
    audiobook: np.ndarray
    shows: np.ndarray
    books: np.ndarray
    feature_affinity: np.ndarray
    device: np.ndarray
    friend_pairs: np.ndarray
    #: Where taste drifts (``taste_drift`` > 0): the mixture and latent taste it drifts to.
    later_genre_weights: np.ndarray | None = None
    later_latent: np.ndarray | None = None
    #: Where the daypart matters (``daypart_effect`` > 0): each genre's extra log-weight in
    #: a session's genre choice per daypart of its local start, (n_genres, len(DAYPARTS)).
    genre_daypart: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def taste_at(self, users: np.ndarray, drift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(genre mixture, latent taste) of ``users`` with ``drift`` ∈ [0, 1] of the way
        from their first taste to their later one (a share per row; the first taste where
        the world has no drift)."""
        weights, latent = self.genre_weights[users], self.latent[users]
        if self.later_genre_weights is None or self.later_latent is None:
            return weights, latent
        w = drift.astype(np.float32)[:, None]
        weights = (1 - w) * weights + w * self.later_genre_weights[users]
        latent = (1 - w) * latent + w * self.later_latent[users]
        return weights, latent


#: Size of the reference sample that estimates each genre's share of listening (demand).
DEMAND_SAMPLE = 20_000
_USERS_STREAM, _REFERENCE_STREAM = 2, 5


def _rng(params: SynthParams, part: int, stream: int = _USERS_STREAM) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([params.seed, stream, part]))


def user_ids(n: int) -> np.ndarray:
    width = max(7, len(str(n)))
    return np.array([f"usr-{i:0{width}d}" for i in range(n)], dtype=object)


def genre_preferences(
    params: SynthParams, age_years: np.ndarray, country: np.ndarray, kids: np.ndarray
) -> np.ndarray:
    """q(g | age, country, kids) ∝ weight · age pull · home boost · kid factor, each ^strength.

    The strength ``demographic_strength`` is an exponent on every demographic factor: 0 makes
    taste independent of demographics, 1 is the documented default.
    """
    genres = GENRES[: params.n_genres]
    s = params.demographic_strength
    weight = np.log([g.weight for g in genres])
    centers = np.array([g.age_center for g in genres])
    kid = np.log([g.kid for g in genres])
    homes = np.zeros((len(COUNTRIES), len(genres)))
    for j, g in enumerate(genres):
        for code in g.homes:
            if code in COUNTRY_INDEX:
                homes[COUNTRY_INDEX[code], j] = np.log(HOME_BOOST)
    age = np.where(kids, KID_AGE, age_years)[:, None]
    logq = (
        weight[None, :]
        + s * (-((age - centers[None, :]) ** 2) / (2 * AGE_WIDTH**2))
        + s * homes[country]
        + s * np.where(kids[:, None], kid[None, :], 0.0)
    )
    logq -= logq.max(axis=1, keepdims=True)
    q = np.exp(logq)
    return q / q.sum(axis=1, keepdims=True)


def expected_genre_demand(params: SynthParams) -> np.ndarray:
    """Each genre's expected share of music sessions, E[π_g], over a reference sample of
    ``DEMAND_SAMPLE`` users drawn like the real ones (from their own random stream, so the
    catalog does not depend on ``n_users``)."""
    demo = _demographics(params, DEMAND_SAMPLE, _REFERENCE_STREAM)
    rng = _rng(params, _TASTE, _REFERENCE_STREAM)
    _, _, weights = _genre_mixture(params, demo, rng, 0, DEMAND_SAMPLE)
    demand = weights.mean(axis=0)
    return demand / demand.sum()


def build_population(params: SynthParams, catalog: Catalog) -> Population:
    p = params
    n = p.n_users
    ids = user_ids(n)
    demo = _demographics(p, n)
    taste = _taste(p, catalog, demo)
    if p.taste_drift > 0:
        taste.update(_later_taste(p, catalog, demo))
    if p.daypart_effect > 0:
        taste["genre_daypart"] = _genre_daypart(p)
    side = _side_interests(p, catalog, demo, taste)
    friends = _friendships(p, demo["country"], demo["kids"])
    return Population(ids=ids, **demo, **taste, **side, friend_pairs=friends)


def _demographics(p: SynthParams, n: int, stream: int = _USERS_STREAM) -> dict[str, np.ndarray]:
    rng = _rng(p, _AGES, stream)
    kids = rng.random(n) < p.kids_share
    band_p = np.array([w for _, w, _ in AGE_BANDS])
    band = rng.choice(len(AGE_BANDS), size=n, p=band_p / band_p.sum()).astype(np.int8)
    band[kids] = -1
    ages = np.array([a for _, _, a in AGE_BANDS])
    age_years = np.where(kids, KID_AGE, ages[np.maximum(band, 0)])
    country_p = np.array([c.weight for c in COUNTRIES], dtype=np.float64)
    country = rng.choice(len(COUNTRIES), size=n, p=country_p / country_p.sum()).astype(np.int16)
    tz = np.empty(n, dtype=np.int16)
    first_tz = np.cumsum([0] + [len(c.timezones) for c in COUNTRIES])
    pick = rng.random(n)
    for ci, c in enumerate(COUNTRIES):
        mask = country == ci
        cum = np.cumsum([w for _, w in c.timezones])
        local = np.minimum(np.searchsorted(cum / cum[-1], pick[mask], side="right"), len(cum) - 1)
        tz[mask] = first_tz[ci] + local
    g_rng = _rng(p, _GENDERS_S, stream)
    gender_p = np.array([w for _, w in GENDERS])
    gender = g_rng.choice(len(GENDERS), size=n, p=gender_p / gender_p.sum()).astype(np.int8)
    during = g_rng.random(n) < p.signup_during_share
    before_days = -1 - np.minimum(
        np.floor(g_rng.exponential(SIGNUP_YEARS_BEFORE * 365.25, n)), 15 * 365
    ).astype(np.int64)
    day = np.where(during, g_rng.integers(0, p.n_days, size=n), before_days)
    signup_ms = p.start_ms + day * DAY_MS + g_rng.integers(0, DAY_MS, size=n)
    consent_push = (g_rng.random(n) < p.consent_push_rate) & ~kids
    consent_email = (g_rng.random(n) < p.consent_email_rate) & ~kids
    consent_personalisation = g_rng.random(n) < p.consent_personalisation_rate
    device_p = np.array([w for _, w in DEVICES])
    device = g_rng.choice(len(DEVICES), size=n, p=device_p / device_p.sum()).astype(np.int8)
    return {
        "signup_ms": signup_ms.astype(np.int64),
        "age_band": band,
        "age_years": age_years.astype(np.float32),
        "gender": gender,
        "country": country,
        "tz": tz,
        "kids": kids,
        "consent_push": consent_push,
        "consent_email": consent_email,
        "consent_personalisation": consent_personalisation,
        "device": device,
    }


def _genre_mixture(
    p: SynthParams, demo: dict[str, np.ndarray], rng: np.random.Generator, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Favourite genres of users ``lo:hi`` (1-3, drawn from q without replacement, -1 pads),
    their weights (rows of a genre matrix) and the session-genre mixture
    π = (1 - exploration)·favourites + exploration·q."""
    g = p.n_genres
    n = hi - lo
    counts = np.minimum(rng.choice(3, size=n, p=FAVOURITE_COUNT_PROBS) + 1, g)
    q = genre_preferences(p, demo["age_years"][lo:hi], demo["country"][lo:hi], demo["kids"][lo:hi])
    keys = np.log(q) + rng.gumbel(size=q.shape)
    top = np.argsort(-keys, axis=1)[:, :3]
    if top.shape[1] < 3:
        top = np.pad(top, ((0, 0), (0, 3 - top.shape[1])))
    mix = rng.gamma(FAVOURITE_CONCENTRATION, size=(n, 3))
    mix[np.arange(3)[None, :] >= counts[:, None]] = 0.0
    mix /= mix.sum(axis=1, keepdims=True)
    fav = np.zeros((n, g))
    rows = np.arange(n)
    for j in range(3):  # a row's three genres are distinct, so plain assignment adds
        fav[rows, top[:, j]] += mix[:, j]
    weights = (1 - p.exploration) * fav + p.exploration * q
    return np.where(mix > 0, top, -1).astype(np.int16), fav, weights


def _taste(p: SynthParams, catalog: Catalog, demo: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Genre mixture, latent taste u = Σ_favourites w_g·c_g + noise, and activity."""
    rng = _rng(p, _TASTE)
    activity = np.exp(p.activity_sigma * rng.standard_normal(p.n_users))
    favourites, weights, latent = _mixtures(p, catalog, demo, rng)
    return {
        "favourite_genres": favourites,
        "genre_weights": weights,
        "latent": latent,
        "activity": activity,
    }


def _later_taste(
    p: SynthParams, catalog: Catalog, demo: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The taste each listener drifts towards: a second mixture and latent drawn as the
    first (from the same demographic preferences), from a random stream of its own so that
    a world without drift is the same with or without this code."""
    _, weights, latent = _mixtures(p, catalog, demo, _rng(p, _LATER_TASTE))
    return {"later_genre_weights": weights, "later_latent": latent}


def _genre_daypart(p: SynthParams) -> np.ndarray:
    """Each genre's log-weight per daypart, ``daypart_effect`` · N(0, 1) centred over the
    dayparts (a genre is not more listened to overall, only at some times of the day), from
    a random stream of its own so that a world without the effect is the same as before."""
    rng = _rng(p, _DAYPART)
    raw = rng.standard_normal((p.n_genres, len(DAYPARTS)))
    return (p.daypart_effect * (raw - raw.mean(axis=1, keepdims=True))).astype(np.float32)


def _mixtures(
    p: SynthParams, catalog: Catalog, demo: dict[str, np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every user's (favourite genres, session-genre mixture, latent taste), in batches."""
    n, g, d = p.n_users, p.n_genres, p.latent_dim
    favourites = np.full((n, 3), -1, dtype=np.int16)
    weights = np.zeros((n, g), dtype=np.float32)
    latent = np.empty((n, d), dtype=np.float32)
    centroids = catalog.genre_centroids.astype(np.float64)
    for lo in range(0, n, _BATCH):
        hi = min(n, lo + _BATCH)
        favourites[lo:hi], mix, weights[lo:hi] = _genre_mixture(p, demo, rng, lo, hi)
        noise = rng.standard_normal((hi - lo, d)) * (p.user_spread / np.sqrt(d))
        latent[lo:hi] = mix @ centroids + noise
    return favourites, weights, latent


def _side_interests(
    p: SynthParams, catalog: Catalog, demo: dict[str, np.ndarray], taste: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Podcast/video/audiobook habits, the shows and books followed, and feature affinity."""
    rng = _rng(p, _SIDE)
    n = p.n_users
    kids = demo["kids"]
    n_shows = catalog.count(ItemKind.PODCAST_SHOW)
    n_books = catalog.count(ItemKind.AUDIOBOOK)
    podcast = (rng.random(n) < p.podcast_user_share) & ~kids & (n_shows > 0)
    video = (rng.random(n) < p.video_user_share) & ~kids & (catalog.count(ItemKind.VIDEO) > 0)
    audiobook = (rng.random(n) < p.audiobook_user_share) & (n_books > 0)
    shows = _follow_some(rng, n, podcast, catalog, ItemKind.PODCAST_SHOW, 3)
    books = _follow_some(rng, n, audiobook, catalog, ItemKind.AUDIOBOOK, 2)

    band = demo["age_band"]
    young = (band >= 1) & (band <= 2)  # 18-34
    teen_or_young = (band >= 0) & (band <= 1)  # 13-24
    n_fav = (taste["favourite_genres"] >= 0).sum(axis=1)
    log_activity = np.clip(np.log(taste["activity"]), -2, 2)
    f = rng.standard_normal((n, len(FEATURES)))
    f[:, DISCOVERY] += 0.5 * (n_fav - 2) + 0.5 * young
    f[:, CREATE_PLAYLIST] += 0.3 * (log_activity > 0)
    f[:, FOCUS] += 0.5 * young
    f[:, DAILY_MIX] += 0.3 * log_activity
    f[:, 4] += 0.5 * young  # Release Radar
    f[:, PODCASTS_FEATURE] += 1.5 * podcast
    f[:, AUDIOBOOKS_FEATURE] += 1.5 * audiobook
    f[:, 7] += 0.5 * teen_or_young  # Wrapped
    f[:, 8] += 0.5 * (podcast | audiobook)  # Sleep Timer
    f[kids] -= 1.0
    return {
        "podcast": podcast,
        "video": video,
        "audiobook": audiobook,
        "shows": shows,
        "books": books,
        "feature_affinity": f.astype(np.float32),
    }


def _follow_some(
    rng: np.random.Generator,
    n: int,
    who: np.ndarray,
    catalog: Catalog,
    kind: ItemKind,
    most: int,
) -> np.ndarray:
    """1..``most`` distinct items of ``kind`` per user in ``who``, drawn by popularity."""
    out = np.full((n, most), -1, dtype=np.int32)
    lo, hi = catalog.span(kind)
    if hi == lo:
        return out
    pop = catalog.popularity[lo:hi]
    users = np.flatnonzero(who)
    picks = rng.choice(hi - lo, size=(len(users), most), p=pop / pop.sum()).astype(np.int32)
    keep = 1 + rng.binomial(most - 1, 0.4, size=len(users))
    picks[np.arange(most)[None, :] >= keep[:, None]] = -1
    for j in range(1, most):  # drop repeats of an earlier pick
        dup = (picks[:, j : j + 1] == picks[:, :j]).any(axis=1)
        picks[dup, j] = -1
    out[users] = picks
    return out


def _friendships(p: SynthParams, country: np.ndarray, kids: np.ndarray) -> np.ndarray:
    """Undirected links listed both ways: ``Poisson(friends_mean / 2)`` invitations per user,
    70% to someone of the same country. Kids profiles have no friends."""
    rng = _rng(p, _FRIENDS)
    adults = np.flatnonzero(~kids)
    if p.friends_mean <= 0 or len(adults) < 2:
        return np.zeros((0, 2), dtype=np.int32)
    k = rng.poisson(p.friends_mean / 2, size=len(adults))
    src = np.repeat(adults, k)
    by_country = adults[np.argsort(country[adults], kind="stable")]
    sizes = np.bincount(country[adults], minlength=len(COUNTRIES))
    starts = np.r_[0, np.cumsum(sizes)]
    same = rng.random(len(src)) < SAME_COUNTRY_FRIENDS
    c = country[src]
    local = starts[c] + np.floor(rng.random(len(src)) * sizes[c]).astype(np.int64)
    anywhere = adults[rng.integers(0, len(adults), size=len(src))]
    dst = np.where(same, by_country[local], anywhere)
    keep = src != dst
    a, b = src[keep].astype(np.int64), dst[keep].astype(np.int64)
    n = np.int64(p.n_users)
    keys = np.sort(np.concatenate([a * n + b, b * n + a]))
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
    return np.stack([keys // n, keys % n], axis=1).astype(np.int32)

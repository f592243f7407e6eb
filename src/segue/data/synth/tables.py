# ruff: noqa: E501  (one genre per line reads best as a table)
"""The fixed, documented tables behind the synthetic world.

Everything a reader of ``docs/synthetic-world.md`` needs to predict the world's statistics
lives here as plain data: the genre taxonomy with its audio profile and demographic pull, the
countries with their time zones, the age bands, the daily and weekly listening curves, the
podcast topics, the app features, the surfaces and devices. Code elsewhere only draws from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segue.data.model import AgeBand


@dataclass(frozen=True)
class Genre:
    """One genre of the taxonomy.

    ``weight`` is its share of listeners' attention before demographics; ``age_center`` the
    age (years) of its most typical listener; ``homes`` the countries where it is four times as
    likely (see ``home_boost``); ``kid`` how much more a kids profile favours it. The audio
    profile is the genre mean of each Spotify-style feature.
    """

    name: str
    parent: str | None
    weight: float
    age_center: float
    homes: tuple[str, ...]
    explicit: float
    duration: float
    tempo: float
    energy: float
    danceability: float
    valence: float
    acousticness: float
    instrumentalness: float
    loudness: float
    kid: float = 1.0


# fmt: off
#: Ordered by importance: ``SynthParams.n_genres`` keeps the first n.
GENRES: tuple[Genre, ...] = (
    Genre("pop", None, 10.0, 24, (), 0.12, 1.00, 118, .68, .68, .55, .15, .02, -6.0, 2.0),
    Genre("rock", None, 7.0, 40, ("GB", "US"), 0.08, 1.10, 125, .75, .48, .45, .10, .05, -6.5, .8),
    Genre("hip hop", None, 9.0, 22, ("US",), 0.50, 1.00, 95, .65, .78, .48, .12, .02, -6.5, .3),
    Genre("electronic", None, 5.0, 28, ("DE", "NL"), 0.05, 1.30, 124, .78, .68, .40, .05, .55, -6.0, .7),
    Genre("indie rock", "rock", 3.5, 28, ("GB", "US"), 0.10, 1.00, 128, .70, .50, .45, .18, .10, -7.0, .8),
    Genre("r&b", None, 5.0, 27, ("US",), 0.25, 1.00, 100, .55, .70, .50, .20, .02, -7.0, .5),
    Genre("latin", None, 6.0, 27, ("MX", "ES", "BR", "AR"), 0.15, 1.00, 100, .72, .76, .68, .15, .01, -5.5, 1.0),
    Genre("trap", "hip hop", 3.5, 20, ("US",), 0.65, 0.95, 140, .68, .75, .40, .10, .01, -6.0, .2),
    Genre("reggaeton", "latin", 3.5, 24, ("MX", "ES", "AR"), 0.35, 1.00, 95, .78, .82, .70, .12, .01, -5.0, .6),
    Genre("house", "electronic", 2.5, 28, ("GB", "NL"), 0.03, 1.40, 124, .80, .80, .60, .05, .60, -6.5, .7),
    Genre("country", None, 3.5, 42, ("US", "CA", "AU"), 0.04, 1.00, 115, .60, .58, .58, .35, .01, -7.0, 1.0),
    Genre("techno", "electronic", 2.0, 29, ("DE",), 0.01, 1.60, 130, .85, .72, .30, .03, .85, -7.0, .3),
    Genre("metal", None, 3.0, 32, ("SE", "NO", "FI", "DE"), 0.25, 1.25, 135, .92, .38, .30, .02, .15, -5.0, .2),
    Genre("jazz", None, 2.5, 52, ("US", "FR"), 0.00, 1.40, 110, .38, .52, .50, .70, .45, -11.0, .8),
    Genre("classical", None, 2.5, 58, ("DE", "AT", "IT"), 0.00, 1.80, 100, .20, .25, .30, .92, .88, -18.0, 1.2),
    Genre("children's music", None, 1.2, 8, (), 0.00, 0.80, 115, .60, .70, .80, .40, .05, -8.0, 30.0),
    Genre("k-pop", "pop", 2.5, 20, ("KR", "JP", "ID", "PH"), 0.03, 0.95, 120, .75, .70, .60, .10, .01, -4.5, 1.2),
    Genre("afrobeats", None, 2.5, 25, ("NG", "ZA", "GB"), 0.15, 1.00, 108, .72, .82, .72, .20, .02, -6.5, .8),
    Genre("folk", None, 2.5, 40, ("GB", "IE"), 0.02, 1.10, 108, .35, .52, .45, .75, .10, -10.0, 1.2),
    Genre("soul", None, 1.5, 48, ("US", "GB"), 0.03, 1.05, 105, .55, .62, .60, .35, .03, -8.0, .8),
    Genre("alternative", "rock", 2.5, 32, ("US",), 0.12, 1.05, 122, .72, .48, .40, .12, .05, -6.5, .6),
    Genre("lo-fi", "electronic", 2.0, 22, (), 0.00, 0.75, 85, .35, .65, .45, .70, .80, -11.0, 1.0),
    Genre("punk", "rock", 1.2, 30, ("GB", "US"), 0.30, 0.70, 160, .90, .45, .55, .05, .02, -5.0, .3),
    Genre("ambient", None, 1.2, 34, (), 0.00, 1.60, 90, .20, .30, .20, .85, .85, -17.0, .8),
    Genre("reggae", None, 1.5, 33, ("BR",), 0.08, 1.05, 90, .60, .78, .72, .20, .05, -7.5, .8),
    Genre("blues", None, 1.2, 55, ("US",), 0.02, 1.15, 100, .50, .52, .50, .50, .08, -9.0, .6),
    Genre("bollywood", "pop", 2.0, 30, ("IN",), 0.02, 1.15, 110, .70, .68, .65, .30, .02, -7.0, 1.0),
    Genre("drum and bass", "electronic", 1.2, 26, ("GB",), 0.05, 1.30, 174, .90, .55, .40, .02, .60, -5.5, .4),
    Genre("singer-songwriter", "folk", 2.0, 35, ("US", "GB"), 0.03, 1.00, 105, .35, .50, .40, .80, .03, -10.0, 1.0),
    Genre("j-pop", "pop", 1.5, 25, ("JP",), 0.02, 1.00, 125, .75, .62, .62, .15, .02, -5.5, 1.2),
    Genre("synthwave", "electronic", 1.0, 33, (), 0.01, 1.20, 110, .70, .60, .45, .05, .60, -8.0, .6),
    Genre("death metal", "metal", 0.8, 30, ("SE", "FI"), 0.30, 1.15, 180, .96, .25, .15, .01, .25, -4.5, .1),
    Genre("gospel", "soul", 1.0, 50, ("US", "NG"), 0.00, 1.10, 100, .60, .55, .65, .40, .02, -8.0, 1.2),
    Genre("dancehall", "reggae", 1.0, 26, ("GB",), 0.20, 1.00, 100, .72, .82, .70, .15, .02, -6.0, .5),
    Genre("bossa nova", "latin", 0.8, 50, ("BR",), 0.00, 1.10, 120, .30, .60, .55, .80, .20, -12.0, 1.0),
    Genre("opera", "classical", 0.8, 62, ("IT", "AT"), 0.00, 1.60, 95, .30, .20, .35, .90, .30, -16.0, .8),
    Genre("smooth jazz", "jazz", 0.8, 55, ("US",), 0.00, 1.30, 100, .40, .60, .60, .55, .60, -12.0, .8),
    Genre("schlager", "pop", 0.8, 55, ("DE", "AT"), 0.00, 1.00, 120, .70, .70, .80, .20, .00, -6.0, 1.0),
)
# fmt: on
GENRE_INDEX: dict[str, int] = {g.name: i for i, g in enumerate(GENRES)}
#: A genre's weight is multiplied by this in its home countries.
HOME_BOOST = 4.0
#: Width (years) of the Gaussian age preference around a genre's ``age_center``.
AGE_WIDTH = 12.0
#: Age assumed for kids profiles when weighting genres.
KID_AGE = 8.0


@dataclass(frozen=True)
class Country:
    code: str
    weight: float
    timezones: tuple[tuple[str, float], ...]


COUNTRIES: tuple[Country, ...] = (
    Country(
        "US",
        22,
        (
            ("America/New_York", 0.5),
            ("America/Chicago", 0.3),
            ("America/Denver", 0.05),
            ("America/Los_Angeles", 0.15),
        ),
    ),
    Country("BR", 8, (("America/Sao_Paulo", 1.0),)),
    Country("GB", 7, (("Europe/London", 1.0),)),
    Country("DE", 7, (("Europe/Berlin", 1.0),)),
    Country("MX", 5, (("America/Mexico_City", 1.0),)),
    Country("FR", 5, (("Europe/Paris", 1.0),)),
    Country("IN", 5, (("Asia/Kolkata", 1.0),)),
    Country("ES", 4, (("Europe/Madrid", 1.0),)),
    Country("IT", 3, (("Europe/Rome", 1.0),)),
    Country("CA", 3, (("America/Toronto", 0.6), ("America/Vancouver", 0.4))),
    Country("JP", 3, (("Asia/Tokyo", 1.0),)),
    Country("AU", 3, (("Australia/Sydney", 0.7), ("Australia/Perth", 0.3))),
    Country("ID", 3, (("Asia/Jakarta", 1.0),)),
    Country("KR", 2, (("Asia/Seoul", 1.0),)),
    Country("NL", 2, (("Europe/Amsterdam", 1.0),)),
    Country("SE", 2, (("Europe/Stockholm", 1.0),)),
    Country("PL", 2, (("Europe/Warsaw", 1.0),)),
    Country("AR", 2, (("America/Argentina/Buenos_Aires", 1.0),)),
    Country("NG", 2, (("Africa/Lagos", 1.0),)),
    Country("PH", 2, (("Asia/Manila", 1.0),)),
    Country("TR", 2, (("Europe/Istanbul", 1.0),)),
    Country("ZA", 1, (("Africa/Johannesburg", 1.0),)),
    Country("NO", 1, (("Europe/Oslo", 1.0),)),
    Country("FI", 1, (("Europe/Helsinki", 1.0),)),
    Country("IE", 1, (("Europe/Dublin", 1.0),)),
    Country("AT", 1, (("Europe/Vienna", 1.0),)),
)
COUNTRY_INDEX: dict[str, int] = {c.code: i for i, c in enumerate(COUNTRIES)}
#: Every time zone users can live in, in a fixed order (index = ``Population.tz``).
TIMEZONES: tuple[str, ...] = tuple(tz for c in COUNTRIES for tz, _ in c.timezones)

#: Age bands: (band, share of adult users, age used for genre preference).
AGE_BANDS: tuple[tuple[AgeBand, float, float], ...] = (
    (AgeBand.A13_17, 0.08, 15.0),
    (AgeBand.A18_24, 0.24, 21.0),
    (AgeBand.A25_34, 0.27, 29.5),
    (AgeBand.A35_44, 0.18, 39.5),
    (AgeBand.A45_54, 0.11, 49.5),
    (AgeBand.A55_64, 0.08, 59.5),
    (AgeBand.A65_PLUS, 0.04, 70.0),
)
#: Gender shares; the last entry (``None``) is "not given".
GENDERS: tuple[tuple[str | None, float], ...] = (
    ("female", 0.47),
    ("male", 0.47),
    ("nonbinary", 0.03),
    ("other", 0.01),
    (None, 0.02),
)

#: Relative session-start rate per local hour 0..23: a morning-commute peak at 8, a lunch
#: plateau, the highest peak at 18 (evening commute) and a quiet night.
HOURLY_PROFILE: np.ndarray = np.array(
    [1.5, 0.8, 0.5, 0.3, 0.3, 0.6, 2.0, 4.5, 5.5, 4.5, 3.8, 3.8,
     4.2, 4.0, 3.8, 4.0, 4.8, 6.0, 6.5, 6.0, 5.8, 5.2, 4.0, 2.6],
    dtype=np.float64,
)  # fmt: skip
HOURLY_PROFILE = HOURLY_PROFILE / HOURLY_PROFILE.sum()
#: Relative session rate per local weekday, Monday first: busiest Friday and Saturday.
WEEKDAY_PROFILE: np.ndarray = np.array([1.0, 1.0, 1.02, 1.03, 1.1, 1.15, 0.95])

PODCAST_TOPICS: tuple[str, ...] = (
    "true crime",
    "comedy",
    "news",
    "sports",
    "technology",
    "history",
    "business",
    "wellness",
    "science",
    "culture",
)
BOOK_GENRES: tuple[str, ...] = (
    "fantasy",
    "thriller",
    "romance",
    "biography",
    "self-help",
    "science fiction",
    "mystery",
    "history",
)


@dataclass(frozen=True)
class Feature:
    """An app feature that next-best-action messages can point to."""

    id: str
    title: str
    description: str


FEATURES: tuple[Feature, ...] = (
    Feature("feat-discovery-station", "Discovery Station", "An endless station of new finds."),
    Feature("feat-create-playlist", "Create a playlist", "Collect your favourite tracks."),
    Feature("feat-focus-mode", "Focus Mode", "Listen without it shaping your taste."),
    Feature("feat-daily-mix", "Daily Mix", "Your favourites, mixed fresh every day."),
    Feature("feat-release-radar", "Release Radar", "New music from artists you follow."),
    Feature("feat-podcasts", "Podcasts", "Shows picked for you."),
    Feature("feat-audiobooks", "Audiobooks", "Stories to listen to."),
    Feature("feat-wrapped", "Wrapped", "Your year in music."),
    Feature("feat-sleep-timer", "Sleep Timer", "Fade out when you drift off."),
    Feature("feat-blend", "Blend", "A shared playlist with a friend."),
)
FEATURE_INDEX: dict[str, int] = {f.id: i for i, f in enumerate(FEATURES)}
DISCOVERY, CREATE_PLAYLIST, FOCUS, DAILY_MIX = 0, 1, 2, 3
PODCASTS_FEATURE, AUDIOBOOKS_FEATURE = 5, 6

#: Surfaces of music sessions and their base weights; the feature surfaces' weights are scaled
#: per user by ``exp(feature_affinity - 1/2)`` (mean 1 for a N(0, 1) affinity).
MUSIC_SURFACES: tuple[tuple[str, float], ...] = (
    ("home", 0.30),
    ("library", 0.25),
    ("playlist", 0.18),
    ("search", 0.12),
    ("radio", 0.05),
    ("discovery_station", 0.05),
    ("daily_mix", 0.05),
)
#: Surface vocabulary: music surfaces, then one per non-music session kind and Focus Mode.
SURFACES: tuple[str, ...] = (
    *(s for s, _ in MUSIC_SURFACES),
    "focus_mode",
    "podcasts",
    "videos",
    "audiobooks",
)
SURFACE_INDEX: dict[str, int] = {s: i for i, s in enumerate(SURFACES)}
#: Devices and their shares; a user's sessions use their primary device 80% of the time.
DEVICES: tuple[tuple[str, float], ...] = (
    ("mobile", 0.62),
    ("desktop", 0.20),
    ("web", 0.06),
    ("smart_speaker", 0.05),
    ("tablet", 0.04),
    ("tv", 0.03),
)
PRIMARY_DEVICE_SHARE = 0.8

#: Message channels of next-best-action messages (see the simulator).
CHANNELS: tuple[str, ...] = ("push", "email", "in_app")

__all__ = [
    "AGE_BANDS",
    "CHANNELS",
    "COUNTRIES",
    "DEVICES",
    "FEATURES",
    "GENDERS",
    "GENRES",
    "HOURLY_PROFILE",
    "MUSIC_SURFACES",
    "PODCAST_TOPICS",
    "SURFACES",
    "TIMEZONES",
    "WEEKDAY_PROFILE",
]

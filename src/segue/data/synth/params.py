"""Every knob of the synthetic world, with its default and its allowed range.

``docs/synthetic-world.md`` explains what each parameter does to the world; the defaults here
are the numbers it quotes. Validation happens once, on construction, so a bad value fails
before any generation starts and the error names the parameter.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from segue.data.synth.tables import GENRES
from segue.errors import SegueError

_DAY_MS = 86_400_000
#: Genres used when ``n_genres`` is not given (fewer for catalogs under 300 tracks).
DEFAULT_GENRES = 30


class SynthParamError(SegueError, ValueError):
    """A synthetic-world parameter is out of range; the message names it."""


@dataclass(frozen=True)
class SynthParams:
    """Parameters of the generative model. See ``docs/synthetic-world.md`` for each one."""

    # -- size and time ------------------------------------------------------------------
    seed: int = 7
    n_users: int = 10_000
    n_tracks: int = 20_000
    n_events: int = 1_000_000
    start_date: dt.date = dt.date(2024, 1, 1)
    end_date: dt.date = dt.date(2025, 1, 1)
    n_genres: int | None = None  # None: min(30, n_tracks // 10)
    latent_dim: int = 32
    # -- catalog ------------------------------------------------------------------------
    popularity_exponent: float = 0.9
    new_release_share: float = 0.10
    n_podcast_shows: int = 100
    n_podcast_episodes: int = 2_000
    n_videos: int = 500
    n_audiobooks: int = 50
    # -- taste --------------------------------------------------------------------------
    affinity_scale: float = 4.0
    artist_spread: float = 1.0
    track_spread: float = 0.6
    user_spread: float = 0.6
    exploration: float = 0.10
    demographic_strength: float = 1.0
    recency_boost: float = 1.5
    recency_days: float = 30.0
    taste_drift: float = 0.0
    daypart_effect: float = 0.0
    # -- users --------------------------------------------------------------------------
    kids_share: float = 0.02
    signup_during_share: float = 0.25
    activity_sigma: float = 1.2
    consent_push_rate: float = 0.6
    consent_email_rate: float = 0.4
    consent_personalisation_rate: float = 0.95
    podcast_user_share: float = 0.35
    video_user_share: float = 0.15
    audiobook_user_share: float = 0.06
    podcast_session_share: float = 0.30
    video_session_share: float = 0.15
    audiobook_session_share: float = 0.30
    friends_mean: float = 4.0
    # -- sessions -----------------------------------------------------------------------
    session_length_mean: float = 8.0
    shortlist_size: int = 50
    n_favourites: int = 20
    repeat_share: float = 0.12
    focus_share: float = 0.03
    focus_length_mean: float = 12.0
    video_length_mean: float = 3.0
    # -- outcomes of a play -------------------------------------------------------------
    skip_rate: float = 0.25
    skip_affinity: float = 1.0
    skip_ms_min: int = 2_000
    skip_ms_max: int = 30_000
    partial_rate: float = 0.15
    like_prob: float = 0.05
    like_affinity: float = 1.0
    dislike_prob: float = 0.03
    playlist_prob: float = 0.02
    follow_prob: float = 0.20
    spoken_skip_rate: float = 0.10
    podcast_follow_prob: float = 0.05
    # -- simulator (responses to recommendations and messages) --------------------------
    play_rate: float = 0.30
    play_affinity: float = 1.0
    play_popularity: float = 0.3
    message_click_rate: float = 0.05
    message_affinity: float = 0.8
    email_effect: float = -0.7
    in_app_effect: float = 0.7
    hour_effect: float = 0.5

    def __post_init__(self) -> None:
        if self.n_genres is None:
            tracks = self.n_tracks if isinstance(self.n_tracks, int) else 0
            object.__setattr__(self, "n_genres", max(1, min(DEFAULT_GENRES, tracks // 10)))
        for name in ("start_date", "end_date"):
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    value = dt.date.fromisoformat(value)
                except ValueError as exc:
                    raise SynthParamError(
                        f"SynthParams.{name}: {value!r} is not YYYY-MM-DD"
                    ) from exc
                object.__setattr__(self, name, value)
            if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
                raise SynthParamError(f"SynthParams.{name} must be a date, not {value!r}")
        for spec in _SPECS:
            spec.check(self)
        self._check_relations()

    def _check_relations(self) -> None:
        if self.n_days < 7:
            raise SynthParamError(
                f"SynthParams.end_date ({self.end_date}) must be at least 7 days after "
                f"start_date ({self.start_date})"
            )
        if self.n_tracks < 10 * self.n_genres:
            raise SynthParamError(
                f"SynthParams.n_tracks={self.n_tracks} is too small for n_genres={self.n_genres}:"
                f" need at least 10 tracks per genre ({10 * self.n_genres})"
            )
        if self.skip_ms_min >= self.skip_ms_max:
            raise SynthParamError(
                f"SynthParams.skip_ms_min ({self.skip_ms_min}) must be below "
                f"skip_ms_max ({self.skip_ms_max})"
            )
        if self.n_podcast_shows and self.n_podcast_episodes < self.n_podcast_shows:
            raise SynthParamError(
                f"SynthParams.n_podcast_episodes={self.n_podcast_episodes} must be at least "
                f"n_podcast_shows={self.n_podcast_shows} (every show has an episode)"
            )
        spoken = self.podcast_session_share + self.video_session_share
        if spoken + self.audiobook_session_share > 0.95:
            raise SynthParamError(
                "SynthParams.podcast_session_share + video_session_share + "
                "audiobook_session_share must leave at least 5% of sessions to music"
            )

    # -- derived sizes ------------------------------------------------------------------
    @property
    def n_artists(self) -> int:
        """One artist per ten tracks, and at least one per genre."""
        return max(self.n_genres, self.n_tracks // 10)

    @property
    def n_albums(self) -> int:
        """Two albums per artist on average (five tracks per album)."""
        return max(self.n_artists, self.n_tracks // 5)

    @property
    def n_days(self) -> int:
        return (self.end_date - self.start_date).days

    @property
    def start_ms(self) -> int:
        return _date_ms(self.start_date)

    @property
    def end_ms(self) -> int:
        return _date_ms(self.end_date)

    def with_overrides(self, **values: Any) -> SynthParams:
        """A validated copy with some parameters replaced."""
        unknown = sorted(set(values) - {f.name for f in fields(self)})
        if unknown:
            raise SynthParamError(f"unknown SynthParams field(s) {unknown}")
        return replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (dates as ISO strings)."""
        out = asdict(self)
        out["start_date"] = self.start_date.isoformat()
        out["end_date"] = self.end_date.isoformat()
        return out


def _date_ms(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * _DAY_MS


@dataclass(frozen=True)
class _Spec:
    """The allowed range of one numeric field (open bounds exclude the end point)."""

    name: str
    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def check(self, params: SynthParams) -> None:
        value = getattr(params, self.name)
        where = f"SynthParams.{self.name}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SynthParamError(f"{where} must be a number, not {value!r}")
        if self.kind is int and not isinstance(value, int):
            raise SynthParamError(f"{where} must be an integer, not {value!r}")
        if not math.isfinite(value):
            raise SynthParamError(f"{where} must be finite, not {value!r}")
        too_low = self.low is not None and (
            value <= self.low if self.low_open else value < self.low
        )
        too_high = self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        )
        if too_low or too_high:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            left = "(" if self.low_open or self.low is None else "["
            right = ")" if self.high_open or self.high is None else "]"
            raise SynthParamError(f"{where}={value!r} is outside {left}{lo}, {hi}{right}")


def _share(name: str) -> _Spec:
    return _Spec(name, float, 0.0, 1.0)


def _prob(name: str) -> _Spec:
    return _Spec(name, float, 0.0, 1.0, low_open=True, high_open=True)


_SPECS: tuple[_Spec, ...] = (
    _Spec("seed", int, 0, 2**63 - 1),
    _Spec("n_users", int, 1, 50_000_000),
    _Spec("n_tracks", int, 10, 20_000_000),
    _Spec("n_events", int, 0, 10_000_000_000),
    _Spec("n_genres", int, 1, len(GENRES)),
    _Spec("latent_dim", int, 2, 512),
    _Spec("popularity_exponent", float, 0.0, 3.0, low_open=True),
    _Spec("new_release_share", float, 0.0, 0.9),
    _Spec("n_podcast_shows", int, 0, 10_000_000),
    _Spec("n_podcast_episodes", int, 0, 100_000_000),
    _Spec("n_videos", int, 0, 10_000_000),
    _Spec("n_audiobooks", int, 0, 10_000_000),
    _Spec("affinity_scale", float, 0.0, 100.0),
    _Spec("artist_spread", float, 0.0, 10.0),
    _Spec("track_spread", float, 0.0, 10.0),
    _Spec("user_spread", float, 0.0, 10.0),
    _share("exploration"),
    _Spec("demographic_strength", float, 0.0, 10.0),
    _Spec("recency_boost", float, 0.0, 20.0),
    _Spec("recency_days", float, 0.0, 3650.0, low_open=True),
    _share("taste_drift"),
    _Spec("daypart_effect", float, 0.0, 5.0),
    _share("kids_share"),
    _share("signup_during_share"),
    _Spec("activity_sigma", float, 0.0, 4.0),
    _share("consent_push_rate"),
    _share("consent_email_rate"),
    _share("consent_personalisation_rate"),
    _share("podcast_user_share"),
    _share("video_user_share"),
    _share("audiobook_user_share"),
    _share("podcast_session_share"),
    _share("video_session_share"),
    _share("audiobook_session_share"),
    _Spec("friends_mean", float, 0.0, 1000.0),
    _Spec("session_length_mean", float, 1.0, 1000.0),
    _Spec("shortlist_size", int, 2, 1000),
    _Spec("n_favourites", int, 1, 1000),
    _share("repeat_share"),
    _Spec("focus_share", float, 0.0, 1.0, high_open=True),
    _Spec("focus_length_mean", float, 1.0, 1000.0),
    _Spec("video_length_mean", float, 1.0, 100.0),
    _prob("skip_rate"),
    _Spec("skip_affinity", float, 0.0, 10.0),
    _Spec("skip_ms_min", int, 0, 600_000),
    _Spec("skip_ms_max", int, 1, 600_000),
    _share("partial_rate"),
    _prob("like_prob"),
    _Spec("like_affinity", float, 0.0, 10.0),
    _share("dislike_prob"),
    _share("playlist_prob"),
    _share("follow_prob"),
    _share("spoken_skip_rate"),
    _share("podcast_follow_prob"),
    _prob("play_rate"),
    _Spec("play_affinity", float, 0.0, 10.0),
    _Spec("play_popularity", float, 0.0, 10.0),
    _prob("message_click_rate"),
    _Spec("message_affinity", float, 0.0, 10.0),
    _Spec("email_effect", float, -10.0, 10.0),
    _Spec("in_app_effect", float, -10.0, 10.0),
    _Spec("hour_effect", float, 0.0, 10.0),
)

__all__ = ["SynthParamError", "SynthParams"]

"""Records to table rows and back: the one place that knows how a field is stored."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from segue.data.model import AudioFeatures, Item, User, from_epoch_ms, to_epoch_ms

#: Flags :meth:`Store.set_user_flags` may change; the rest of a user is owned by imports.
USER_FLAGS = (
    "consent_push",
    "consent_email",
    "consent_personalisation",
    "kids_profile",
    "focus_mode",
)


def _json_list(values: tuple[str, ...]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def item_row(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind.value,
        "title": item.title,
        "artist_id": item.artist_id,
        "album_id": item.album_id,
        "show_id": item.show_id,
        "genres": _json_list(item.genres),
        "tags": _json_list(item.tags),
        "duration_ms": item.duration_ms,
        "release_date": item.release_date,
        "explicit": item.explicit,
        "audio": None if item.audio is None else json.dumps(item.audio.model_dump()),
        "description": item.description,
    }


def row_item(row: Mapping[str, Any]) -> Item:
    audio = row["audio"]
    return Item(
        id=row["id"],
        kind=row["kind"],
        title=row["title"],
        artist_id=row["artist_id"],
        album_id=row["album_id"],
        show_id=row["show_id"],
        genres=tuple(json.loads(row["genres"])),
        tags=tuple(json.loads(row["tags"])),
        duration_ms=row["duration_ms"],
        release_date=row["release_date"],
        explicit=bool(row["explicit"]),
        audio=None if audio is None else AudioFeatures(**json.loads(audio)),
        description=row["description"],
    )


def user_row(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "signup_ms": to_epoch_ms(user.signup_at),
        "age_band": None if user.age_band is None else user.age_band.value,
        "gender": None if user.gender is None else user.gender.value,
        "country": user.country,
        "timezone": user.timezone,
        **{flag: getattr(user, flag) for flag in USER_FLAGS},
    }


def row_user(row: Mapping[str, Any]) -> User:
    return User(
        id=row["id"],
        signup_at=from_epoch_ms(row["signup_ms"]),
        age_band=row["age_band"],
        gender=row["gender"],
        country=row["country"],
        timezone=row["timezone"],
        **{flag: bool(row[flag]) for flag in USER_FLAGS},
    )

"""The HetRec 2011 Last.fm 2K dataset as segue records.

The five files are read as distributed: tab-separated with a header row, CRLF line endings in
most files but LF in ``artists.dat``, ``tags.dat`` in Latin-1 and everything else UTF-8. Ids
become strings of their integer value (``"2"``, never ``"02"``), so a user named in one file is
the same user in another.

Every record is validated by its pydantic model (in pydantic 2 validating a small model is
faster than ``model_construct``); the ids, counts and dates are checked here first, so that an
error names the file's own column rather than a field of the model.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from segue.data.batch import Origin, RecordBatch
from segue.data.model import (
    Event,
    EventType,
    Friendship,
    Item,
    ItemKind,
    Tag,
    TagAssignment,
    User,
)
from segue.data.sources._text import decode, paused_gc, read_bytes, tab_lines
from segue.data.sources._values import BadValue, non_negative_int, row_error_from_validation
from segue.errors import RowError, SegueError

ARTISTS = "artists.dat"
TAGS = "tags.dat"
PLAYS = "user_artists.dat"
FRIENDS = "user_friends.dat"
TAGGINGS = "user_taggedartists.dat"

#: Header and encoding of each file, as distributed.
FILES: dict[str, tuple[tuple[str, ...], str]] = {
    ARTISTS: (("id", "name", "url", "pictureURL"), "utf-8"),
    TAGS: (("tagID", "tagValue"), "latin-1"),
    PLAYS: (("userID", "artistID", "weight"), "utf-8"),
    FRIENDS: (("userID", "friendID"), "utf-8"),
    TAGGINGS: (("userID", "artistID", "tagID", "day", "month", "year"), "utf-8"),
}

#: How many of an artist's tags go into ``Item.tags``: enough to describe it, few enough that
#: a one-off joke tag by a single user rarely makes the cut.
TOP_TAGS = 10

SOURCE = "lastfm-2k"

# Which column of each file a record field comes from, for validation errors.
_TAG_COLUMNS = {"id": "tagID", "name": "tagValue"}
_ARTIST_COLUMNS = {"id": "id", "title": "name", "description": "url", "tags": None}
_TAGGING_COLUMNS = {"user_id": "userID", "item_id": "artistID", "tag_id": "tagID"}
_PLAY_COLUMNS = {"event_id": None, "user_id": "userID", "item_id": "artistID", "count": "weight"}
_FRIEND_COLUMNS = {"user_id": "userID", "friend_id": "friendID"}


def read_lastfm_2k(directory: Path) -> RecordBatch:
    """All five files of Last.fm 2K as one batch, with origins for every event and link.

    * users: every user id found in any file (the dataset has no user table).
    * items: ``artists.dat`` as ``artist`` items; ``description`` is the artist's Last.fm page
      (the only link the dataset gives; ``pictureURL`` points at a retired image host and is
      dropped); ``tags`` are the artist's :data:`TOP_TAGS` tags assigned by the most users,
      ties broken by tag id.
    * events: one ``play`` per ``user_artists.dat`` row with ``count`` = its weight and the id
      ``lastfm-2k:play:{user}:{artist}``, so importing the dataset twice adds nothing.
    * friendships, tags, tag assignments: as in their files. Assignments of the 390 artists
      missing from ``artists.dat`` are kept; tags may describe items outside the catalog.

    Play counts are totals with no time. They are dated at the *snapshot*: the day after the
    latest tagging date in ``user_taggedartists.dat``, the last day the crawl demonstrably
    saw. Any later date would invent time; an earlier one would put counts before taggings
    they include. Users get the same snapshot as ``signup_at``: the dataset does not say when
    they joined, and the snapshot is the one date at which each of them certainly existed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SegueError(f"{directory}: not a directory; expected the Last.fm 2K folder")
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise SegueError(
            f"{directory}: missing {', '.join(missing)}; a Last.fm 2K folder holds "
            f"{', '.join(FILES)}"
        )
    with paused_gc():
        return _read_all(directory)


def _read_all(directory: Path) -> RecordBatch:
    batch = RecordBatch()
    tag_names = _read_tags(directory / TAGS, batch)
    latest, artist_tags = _read_taggings(directory / TAGGINGS, tag_names, batch)
    if latest is None:
        raise RowError(
            str(directory / TAGGINGS), 1, None, "no taggings: cannot date the play counts"
        )
    snapshot = latest + dt.timedelta(days=1)
    _read_artists(directory / ARTISTS, artist_tags, tag_names, batch)
    _read_plays(directory / PLAYS, snapshot, batch)
    _read_friends(directory / FRIENDS, batch)
    batch.users = _users(batch, snapshot)
    return batch


def _rows(path: Path) -> tuple[str, Iterator[tuple[int, list[str]]]]:
    header, encoding = FILES[path.name]
    file = str(path)
    text = decode(file, read_bytes(path), encoding, delimiter="\t", quoting=csv.QUOTE_NONE)
    return file, tab_lines(file, text, header)


def _id(file: str, line: int, column: str, text: str) -> str:
    """A canonical id: the decimal integer without leading zeros."""
    if text.isascii() and text.isdigit():
        return text if text[0] != "0" or len(text) == 1 else str(int(text))
    raise RowError(file, line, column, f"expected a non-negative integer id, got {text!r}")


def _int(file: str, line: int, column: str, text: str) -> int:
    try:
        return non_negative_int(text)
    except BadValue as exc:
        raise RowError(file, line, column, str(exc)) from None


def _read_tags(path: Path, batch: RecordBatch) -> dict[int, str]:
    file, rows = _rows(path)
    names: dict[int, str] = {}
    first_line: dict[int, int] = {}
    for line, (tag_id, name) in rows:
        key = _int(file, line, "tagID", tag_id)
        if key in first_line:
            reason = f"duplicate tag {key} (first on line {first_line[key]})"
            raise RowError(file, line, "tagID", reason)
        first_line[key] = line
        try:
            tag = Tag(id=key, name=name)
        except ValidationError as exc:
            raise row_error_from_validation(exc, file, line, _TAG_COLUMNS) from None
        names[key] = tag.name
        batch.tags.append(tag)
    return names


def _read_taggings(
    path: Path, tag_names: dict[int, str], batch: RecordBatch
) -> tuple[dt.datetime | None, dict[str, Counter[int]]]:
    """Tag assignments, their latest date, and per artist how many users gave each tag."""
    file, rows = _rows(path)
    dates: dict[tuple[str, str, str], dt.datetime] = {}
    artist_tags: dict[str, Counter[int]] = {}
    seen: set[tuple[str, str, int]] = set()
    assignments = batch.tag_assignments
    origins = batch.tag_assignment_origins
    for line, (user, artist, tag, day, month, year) in rows:
        user_id = _id(file, line, "userID", user)
        item_id = _id(file, line, "artistID", artist)
        tag_id = _int(file, line, "tagID", tag)
        if tag_id not in tag_names:
            raise RowError(file, line, "tagID", f"tag {tag_id} is not in {TAGS}")
        when = dates.get((day, month, year))
        if when is None:
            when = _date(file, line, day, month, year)
            dates[(day, month, year)] = when
        try:
            assignment = TagAssignment.model_validate(
                {"user_id": user_id, "item_id": item_id, "tag_id": tag_id, "timestamp": when}
            )
        except ValidationError as exc:
            raise row_error_from_validation(exc, file, line, _TAGGING_COLUMNS) from None
        assignments.append(assignment)
        origins.append(Origin(file, line, "userID", "artistID"))
        key = (user_id, item_id, tag_id)
        if key not in seen:  # count users, not repeated rows
            seen.add(key)
            counts = artist_tags.get(item_id)
            if counts is None:
                counts = artist_tags[item_id] = Counter()
            counts[tag_id] += 1
    latest = max(dates.values(), default=None)
    return latest, artist_tags


def _date(file: str, line: int, day: str, month: str, year: str) -> dt.datetime:
    d = _int(file, line, "day", day)
    m = _int(file, line, "month", month)
    y = _int(file, line, "year", year)
    if not 1 <= y <= 9999:
        raise RowError(file, line, "year", f"year {y} is out of range")
    if not 1 <= m <= 12:
        raise RowError(file, line, "month", f"month {m} is not 1-12")
    try:
        return dt.datetime(y, m, d, tzinfo=dt.UTC)
    except ValueError:
        raise RowError(file, line, "day", f"day {d} does not exist in {y}-{m:02d}") from None


def _read_artists(
    path: Path,
    artist_tags: dict[str, Counter[int]],
    tag_names: dict[int, str],
    batch: RecordBatch,
) -> None:
    file, rows = _rows(path)
    first_line: dict[str, int] = {}
    for line, (artist, name, url, _picture) in rows:
        item_id = _id(file, line, "id", artist)
        if item_id in first_line:
            reason = f"duplicate artist {item_id} (first on line {first_line[item_id]})"
            raise RowError(file, line, "id", reason)
        first_line[item_id] = line
        counts = artist_tags.get(item_id)
        tags = ()
        if counts:
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_TAGS]
            tags = tuple(tag_names[tag_id] for tag_id, _ in ranked)
        try:
            item = Item(
                id=item_id, kind=ItemKind.ARTIST, title=name, tags=tags, description=url.strip()
            )
        except ValidationError as exc:
            raise row_error_from_validation(exc, file, line, _ARTIST_COLUMNS) from None
        batch.items.append(item)


def _read_plays(path: Path, snapshot: dt.datetime, batch: RecordBatch) -> None:
    file, rows = _rows(path)
    first_line: dict[str, int] = {}
    events = batch.events
    origins = batch.event_origins
    for line, (user, artist, weight) in rows:
        user_id = _id(file, line, "userID", user)
        item_id = _id(file, line, "artistID", artist)
        count = _int(file, line, "weight", weight)
        if count < 1:
            reason = f"expected a play count of at least 1, got {count}"
            raise RowError(file, line, "weight", reason)
        event_id = f"{SOURCE}:play:{user_id}:{item_id}"
        if event_id in first_line:  # the store would silently keep only the first
            reason = (
                f"user {user_id} and artist {item_id} already paired on line {first_line[event_id]}"
            )
            raise RowError(file, line, "artistID", reason)
        first_line[event_id] = line
        try:
            event = Event.model_validate(
                {
                    "event_id": event_id,
                    "user_id": user_id,
                    "item_id": item_id,
                    "type": EventType.PLAY,
                    "timestamp": snapshot,
                    "count": count,
                }
            )
        except ValidationError as exc:
            raise row_error_from_validation(exc, file, line, _PLAY_COLUMNS) from None
        events.append(event)
        origins.append(Origin(file, line, "userID", "artistID"))


def _read_friends(path: Path, batch: RecordBatch) -> None:
    file, rows = _rows(path)
    links = batch.friendships
    origins = batch.friendship_origins
    for line, (user, friend) in rows:
        user_id = _id(file, line, "userID", user)
        friend_id = _id(file, line, "friendID", friend)
        try:
            link = Friendship.model_validate({"user_id": user_id, "friend_id": friend_id})
        except ValidationError as exc:
            raise row_error_from_validation(exc, file, line, _FRIEND_COLUMNS) from None
        links.append(link)
        origins.append(Origin(file, line, "userID", None))


def _users(batch: RecordBatch, snapshot: dt.datetime) -> list[User]:
    ids: set[str] = {e.user_id for e in batch.events}
    ids.update(link.user_id for link in batch.friendships)
    ids.update(link.friend_id for link in batch.friendships)
    ids.update(a.user_id for a in batch.tag_assignments)
    return [User(id=user_id, signup_at=snapshot) for user_id in sorted(ids, key=int)]

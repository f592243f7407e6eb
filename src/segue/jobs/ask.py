"""Answering a request in words: parse it, link it, and for play requests build the queue.

This is what ``segue ask`` and ``POST /v1/query`` run. The parser (tagger + entity index over
the store's catalog + listeners' histories) is built once by :func:`load_parser` and reused
for every request; :func:`answer_query` does the per-request work and returns a
JSON-serialisable :class:`QueryAnswer`.

A listener without personalisation consent (:mod:`segue.data.consent`) is answered as
anyone would be: entity linking does not lean on their history, "play my favourites" queues
nothing and says that personalisation is off (``understanding.message``), and recommendation
queues are the non-personal list of their country (what the request names still counts).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segue.config import Settings
from segue.data.consent import personalised
from segue.data.model import EVENT_CODES, ItemKind
from segue.errors import SegueError
from segue.extras import require
from segue.jobs.recommend import recommend_for_user
from segue.models.text import model_path
from segue.nlu.calls import Call, PlayMusic, Recommend
from segue.nlu.linking import EntityIndex
from segue.nlu.parser import Parser, Understanding
from segue.nlu.words import request_words
from segue.registry.trained import TrainedModel
from segue.store import Store

#: The message for a request that needs the history of a listener without consent.
NO_PERSONALISATION = (
    "Personalisation is off for this listener, so their listening history is not used: "
    "name an artist, a track or a genre instead."
)
#: events that count towards a listener's history ("play my favourites")
_HISTORY_EVENTS = ("play", "like", "add_to_playlist")


@dataclass(frozen=True)
class QueuedTrack:
    item_id: str
    title: str
    reason: str
    score: float | None = None


@dataclass(frozen=True)
class QueryAnswer:
    """What a request meant, what to do, what to ask (``understanding``), and what would
    play (``queue``). Its JSON form is ``segue.api.schemas.QueryResponse``."""

    understanding: Understanding
    queue: list[QueuedTrack] = field(default_factory=list)


def nlu_folder(settings: Settings) -> Path:
    """Where the language model's checkpoint lives: under the data directory."""
    return settings.data_dir / "nlu" / "joint"


def catalog_stats(store: Store) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Plays per item (popularity) and per user the items they played, most played first.

    Focus-Mode events are left out, as everywhere personalisation is concerned.
    """
    log = store.interactions()
    if len(log.item) == 0:
        return {}, {}
    codes = np.array([EVENT_CODES[t] for t in _HISTORY_EVENTS])
    keep = np.isin(log.type, codes)
    weight = log.count[keep].astype(np.float64)
    plays = np.bincount(log.item[keep], weights=weight, minlength=len(log.item_ids))
    popularity = {str(log.item_ids[i]): float(plays[i]) for i in np.flatnonzero(plays)}
    pair = log.user[keep].astype(np.int64) * len(log.item_ids) + log.item[keep]
    keys, inverse = np.unique(pair, return_inverse=True)
    totals = np.bincount(inverse, weights=weight)
    users, items = keys // len(log.item_ids), keys % len(log.item_ids)
    order = np.lexsort((items, -totals, users))
    histories: dict[str, list[str]] = {}
    for row in order:
        histories.setdefault(str(log.user_ids[users[row]]), []).append(
            str(log.item_ids[items[row]])
        )
    return popularity, histories


def load_parser(
    store: Store,
    settings: Settings,
    *,
    folder: Path | None = None,
    serving: bool = True,
    threads: int = 1,
) -> Parser:
    """The trained tagger (in the serving precision and traced, unless ``serving=False``)
    plus an index over the store's catalog weighted by plays, and every listener's history."""
    require("nlu", "requests in words")
    from segue.nlu.tagger import Tagger, serving_precision  # torch: the nlu extra

    tagger = Tagger.load(
        folder or nlu_folder(settings),
        model_path(),
        precision=serving_precision() if serving else "fp32",
        trace=serving,
        threads=threads,
    )
    popularity, histories = catalog_stats(store)
    index = EntityIndex(store.iter_items(), popularity)
    return Parser(tagger, index, histories=histories)


def answer_query(
    store: Store,
    parser: Parser,
    text: str,
    *,
    user_id: str | None = None,
    now: dt.datetime | None = None,
    trained: TrainedModel | None = None,
    k: int = 10,
    confirmed: bool = False,
) -> QueryAnswer:
    """Parse ``text`` for ``user_id`` at local time ``now``; for play and recommend requests
    that need no question first, the queue the player would start (needs ``trained`` unless
    the request names an artist, a track or the listener's favourites).

    No queue is built while a question is open: a confirmation ("Did you mean X? Shall I go
    ahead?") gets its queue when the request comes again with ``confirmed`` (the listener
    said yes); a clarification (a name under the link threshold, something missing) has no
    call at all, so nothing can be queued for it."""
    if k < 1:
        raise SegueError(f"k must be at least 1, got {k}")
    request_words(text)  # nothing visible, or too long: refused before the model sees it
    user = store.get_user(user_id) if user_id is not None else None
    if user_id is not None and user_id not in parser.histories and user is None:
        raise SegueError(f"unknown user {user_id!r}: import or create the user first")
    personal = personalised(user)
    history = list(parser.histories.get(user_id, [])) if user_id is not None and personal else []
    parsed = parser.parse(text, history=history, now=now)
    understanding = Understanding(**parsed.understanding())
    queue: list[QueuedTrack] = []
    if confirmed and understanding.question_kind == "confirm":
        understanding = understanding.model_copy(
            update={
                "question": None,
                "question_kind": None,
                "context": {**understanding.context, "confirmed": True},
            }
        )
    if parsed.call is not None and understanding.question is None:
        if not personal and _needs_history(parsed.call):
            understanding = understanding.model_copy(update={"message": NO_PERSONALISATION})
        else:
            queue = _queue(store, parser, parsed.call, history, user_id, trained, k)
    return QueryAnswer(understanding, queue)


def _needs_history(call: Call) -> bool:
    """A call only the listener's own history can answer ("play my favourites")."""
    return isinstance(call, PlayMusic) and call.source == "history"


def _queue(
    store: Store,
    parser: Parser,
    call: Call,
    history: list[str],
    user_id: str | None,
    trained: TrainedModel | None,
    k: int,
) -> list[QueuedTrack]:
    if not isinstance(call, PlayMusic | Recommend):
        return []
    if isinstance(call, PlayMusic) and call.source == "history":
        tracks = [i for i in history if _is_track(store, parser.index, i)][:k]
        return [_track(store, i, "one of your most played") for i in tracks]
    first: list[QueuedTrack] = []
    picks: list[str] = []
    if isinstance(call, PlayMusic):
        if call.item is not None and call.item.id and parser.index is not None:
            return _item_queue(store, parser.index, call.item.id, k)
        if call.track is not None and call.track.id:
            first = [_track(store, call.track.id, "you asked for it")]
            picks = [call.track.id]
        elif call.album is not None and call.album.id:
            picks = [call.album.id]
        elif call.artist is not None and call.artist.id and parser.index is not None:
            return _artist_tracks(store, parser.index, call.artist.id, k)
    elif call.like is not None and call.like.id:
        picks = [call.like.id]
    genres = [call.genre] if call.genre else []
    if trained is None or not (user_id or picks or genres):
        return first
    if picks:  # the recommender can only start from items it was trained on
        rows = np.asarray(trained.items.to_index(picks, allow_unknown=True))
        picks = [p for p, row in zip(picks, rows, strict=True) if row >= 0]
    suggestions = recommend_for_user(
        store,
        trained,
        user_id or "",
        k=k,
        picks=picks,
        genres=genres,
        kinds=[ItemKind.TRACK.value],
    )
    seen = {q.item_id for q in first}
    rest = [
        QueuedTrack(item_id=s.item_id, title=s.title, score=s.score, reason=s.reason)
        for s in suggestions
        if s.item_id not in seen
    ]
    return (first + rest)[:k]


def _item_queue(store: Store, index: EntityIndex, item_id: str, k: int) -> list[QueuedTrack]:
    """A podcast show: its most played episodes; any other item: itself."""
    position = index.position.get(item_id)
    if position is not None and index.items[position].kind == ItemKind.PODCAST_SHOW:
        episodes = [
            p
            for p in index.works.get(item_id, [])
            if index.items[p].kind == ItemKind.PODCAST_EPISODE
        ]
        if episodes:
            return [
                _track(store, index.items[p].id, "an episode of the show you asked for")
                for p in episodes[:k]
            ]
    return [_track(store, item_id, "you asked for it")]


def _artist_tracks(store: Store, index: EntityIndex, artist_id: str, k: int) -> list[QueuedTrack]:
    positions = [p for p in index.works.get(artist_id, []) if index.items[p].kind == ItemKind.TRACK]
    return [_track(store, index.items[p].id, "popular by this artist") for p in positions[:k]]


def _is_track(store: Store, index: EntityIndex | None, item_id: str) -> bool:
    if index is not None:
        position = index.position.get(item_id)
        return position is not None and index.items[position].kind == ItemKind.TRACK
    item = store.get_item(item_id)
    return item is not None and item.kind == ItemKind.TRACK


def _track(store: Store, item_id: str, reason: str) -> QueuedTrack:
    item = store.get_item(item_id)
    return QueuedTrack(item_id=item_id, title=item.title if item else item_id, reason=reason)

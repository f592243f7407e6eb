"""One recommendation request at serving time: model version, live state and rules together.

The path a request takes (each step reads memory or the online state, nothing is rebuilt):

1. **Who is asking.** A listener the served model was trained on has a history row; their
   plays since training come from the online state and are folded in (``score_history``:
   ALS solves the user's least-squares system anew, neighbour models add the rows), so a play
   moves the list without a retrain; a model that reads the context (the staged pipeline)
   is told the request's daypart (the client's local time, else the listener's time zone
   now). Everyone else (new listeners, users created after
   training) goes through :class:`~segue.models.coldstart.ColdStartRecommender` with their
   onboarding picks, demographics and first plays: recommendations from the first event.
2. **The session.** Skips and likes of this session push artists and genres down or up
   (:class:`~segue.serving.session.SessionAdjuster`).
3. **Rules and surface.** Kids profiles never see explicit items; ``kinds``/``genres``/
   ``exclude`` filters; the ``discovery`` surface shows only music never heard (no played
   track and, by default, no played artist); ``radio`` may replay known tracks; a per-artist cap.

**Consent.** A listener without personalisation consent (:mod:`segue.data.consent`) takes
none of the steps above that read them: no history, no session, no stored onboarding answers,
no age band or gender. They get the cold-start list of their context alone (country, kids
profile), path ``non_personal``: the same list for every such listener in that context. What
the request itself names (``picks``, ``pick_genres``) still counts, and their published batch
list is never served.

What the request could not use is reported in :attr:`LiveAnswer.degraded` (e.g. the online
state was unreachable) rather than failing: a valid request always gets a list.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from segue.data.consent import Context, personalised
from segue.data.dayparts import UNKNOWN, daypart_now, daypart_of_hour
from segue.data.model import User
from segue.errors import SegueError
from segue.models import Reason
from segue.models.base import take_rows
from segue.models.coldstart import NewItemPolicy, Onboarding
from segue.models.filters import Filters
from segue.online.state import BatchList, OnlineState, SessionState, StateUnavailable
from segue.serving.holder import ServingModel
from segue.serving.session import history_from_recent, rerank_for_session
from segue.serving.titles import render_reason

#: Surfaces the request may name, and what they change.
SURFACES = ("home", "radio", "discovery")
#: Said in ``degraded`` while the online state answers from its fallback (Redis away).
STATE_FALLBACK = (
    "online state: Redis unreachable, this process's own state answers (plays and sessions "
    "recorded by other processes are missing until it is back)"
)
#: How many of the user's latest plays are folded into their history.
RECENT_FOR_SCORING = 50
#: Over-fetch factor before the per-artist cap.
CAP_OVERFETCH = 4


@dataclass(frozen=True)
class LiveRequest:
    """What a client asks for; validated by the face, checked again here."""

    user_id: str
    k: int = 10
    surface: str = "home"
    kinds: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_per_artist: int | None = None
    explain: bool = False
    #: up to this share of the list for new items (no plays yet): content, artist, exploration
    new_item_share: float = 0.0
    #: score a known listener as a new one from their onboarding answers (trying sign-ups)
    as_new_listener: bool = False
    #: items and genres the request itself starts from (a request in words, trying a
    #: sign-up); unlike stored onboarding answers they count without personalisation consent
    picks: tuple[str, ...] = ()
    pick_genres: tuple[str, ...] = ()
    device: str | None = None
    local_time: dt.datetime | None = None
    now_ms: int | None = None


@dataclass(frozen=True)
class LiveItem:
    item_id: str
    title: str
    score: float
    reason: str


@dataclass
class LiveAnswer:
    """The list plus how it was made, for the response and the metrics."""

    items: list[LiveItem]
    model: str
    version: str
    path: str  # "personal", "cold_start", "non_personal", "fallback" or "batch"
    personal_weight: float = 1.0
    fresh_plays: int = 0
    session_id: str | None = None
    degraded: list[str] = field(default_factory=list)


class ModelTitles:
    """Display titles from the serving model, in the interface ``render_reason`` reads."""

    def __init__(self, model: ServingModel) -> None:
        self._model = model
        self._column = model.items

    def _column_of(self, item_id: str) -> int:
        return int(self._column.to_index([item_id], allow_unknown=True)[0])

    def __getitem__(self, item_id: str) -> str:
        column = self._column_of(item_id)
        return self._model.display_titles[column] if column >= 0 else item_id

    def bare(self, item_id: str) -> str:
        column = self._column_of(item_id)
        if column < 0:
            return item_id
        assert self._model.side.catalog is not None
        return str(self._model.side.catalog.titles[column])


def recommend_live(
    model: ServingModel,
    state: OnlineState,
    user: User | None,
    request: LiveRequest,
) -> LiveAnswer:
    """Top ``request.k`` for one listener; see the module docstring for the steps."""
    if request.k < 1:
        raise SegueError(f"k must be at least 1, got {request.k}")
    if request.surface not in SURFACES:
        raise SegueError(f"unknown surface {request.surface!r}; expected one of {SURFACES}")
    degraded: list[str] = []
    catalog = model.side.catalog
    assert catalog is not None
    uid = request.user_id
    now_ms = request.now_ms
    personal = personalised(user)
    if not personal:
        # no consent: nothing the listener did may shape the list, only what everyone does
        recent, session, onboarding, row = [], None, ([], []), -1
    else:
        recent, session, onboarding = _live_state(state, uid, now_ms, degraded)
        row = int(model.users.to_index([uid], allow_unknown=True)[0])
        # a listener the store does not know has no history to use: new, or erased (the
        # model still holds an erased listener's row until the next training)
        row = -1 if request.as_new_listener or user is None else row
    if state.degraded:  # what /v1/ready calls "degraded": every answer says so too
        degraded.append(STATE_FALLBACK)
    if request.picks or request.pick_genres:
        onboarding = (list(request.picks), list(request.pick_genres))
    base = take_rows(model.train, [row]) if row >= 0 else None
    base = base if base is not None and base.nnz > 0 else None
    fresh = [i for i in recent if i in model.items]
    history = history_from_recent(fresh, model.items, base) if fresh else base

    filters = _filters(model, user, request, history)
    cap = request.max_per_artist
    fetch = request.k * CAP_OVERFETCH if cap else request.k
    exclude_seen = request.surface != "radio"
    if base is not None:
        excluded = ~filters.allowed
        if exclude_seen:  # scored from the training row when nothing is fresh: mask it too
            excluded[base.indices] = True
        reads_context = model.trained.model.uses_context  # the zone lookup only then
        items, scores = rerank_for_session(
            model.trained.model,
            row,
            history if fresh else None,
            catalog,
            session,
            fetch,
            exclude=excluded,
            adjuster=model.adjuster,
            exclude_seen=exclude_seen,
            scores=_folded_scores(model, state, uid, history) if fresh else None,
            daypart=_request_daypart(request, user) if reads_context else UNKNOWN,
        )
        reasons = _personal_reasons(model, row, items, request.explain)
        path, weight = "personal", 1.0
    else:
        items, scores, reasons, weight = _cold(
            model, user, history, session, onboarding, filters, fetch, personal
        )
        path = "cold_start" if personal else "non_personal"
    if request.new_item_share > 0:
        by_item = dict(zip(items.tolist(), scores.tolist(), strict=True))
        empty = sp.csr_matrix((1, len(catalog)), dtype=np.float32)
        policy = NewItemPolicy(model.train, model.side, max_share=request.new_item_share)
        blended, reasons = policy.blend(
            history if history is not None else empty, items, reasons, fetch, filters
        )
        items = np.asarray(blended, dtype=np.int64)
        scores = np.array([by_item.get(int(i), np.nan) for i in items], dtype=np.float64)
    if cap:
        positions = filters.cap_positions(items[None, :], request.k)[0]
        positions = positions[positions >= 0]
        items, scores = items[positions], scores[positions]
        reasons = [reasons[p] for p in positions]
    items, scores, reasons = items[: request.k], scores[: request.k], reasons[: request.k]
    if model.fallback:
        path = "fallback"
        degraded.append(f"model: {model.fallback}")
    titles = ModelTitles(model)
    return LiveAnswer(
        items=[
            LiveItem(
                item_id=str(model.item_ids[c]),
                title=model.display_titles[c],
                score=float(s),
                reason=render_reason(r, model.items, titles),
            )
            for c, s, r in zip(items.tolist(), scores.tolist(), reasons, strict=True)
        ],
        model=model.name,
        version=model.version,
        path=path,
        personal_weight=weight,
        fresh_plays=len(fresh),
        session_id=session.session_id if session else None,
        degraded=degraded,
    )


def _folded_scores(
    model: ServingModel, state: OnlineState, user_id: str, history: sp.csr_matrix
) -> np.ndarray | None:
    """Scores from the user's vector folded in from their history, which the feature store
    keeps as the user's current vector (for other consumers: campaigns, analytics).

    Only for models with a fold-in (ALS); others score the history row themselves.
    """
    fold_in = getattr(model.trained.model, "fold_in", None)
    if fold_in is None:
        return None
    vector = fold_in(history)[0]
    with contextlib.suppress(StateUnavailable):
        state.set_vector(user_id, vector)
    return model.trained.model.score_vectors(vector)[0]


def _request_daypart(request: LiveRequest, user: User | None) -> int:
    """The request's local daypart: from the local time the client sends, else the
    listener's time zone at the request's instant (now); unknown without either."""
    if request.local_time is not None:
        return int(daypart_of_hour(request.local_time.hour))
    zone = user.timezone if user is not None else None
    now_ms = request.now_ms if request.now_ms is not None else int(time.time() * 1000)
    return daypart_now(zone, now_ms)


def _live_state(
    state: OnlineState, user_id: str, now_ms: int | None, degraded: list[str]
) -> tuple[list[str], SessionState | None, tuple[list[str], list[str]]]:
    """Recent plays, session and onboarding; empty when the state cannot be read at all."""
    try:
        return state.for_request(user_id, RECENT_FOR_SCORING, now_ms)
    except StateUnavailable as exc:
        degraded.append(f"online state: {exc}")
        return [], None, ([], [])


def _filters(
    model: ServingModel,
    user: User | None,
    request: LiveRequest,
    history: sp.csr_matrix | None,
) -> Filters:
    catalog = model.side.catalog
    assert catalog is not None
    kids = bool(user and user.kids_profile)
    plain = not (request.genres or request.kinds or request.exclude)
    if plain and request.surface != "discovery":  # the common request: rules built at load
        rules = model.rules[kids]
        if request.max_per_artist is None:
            return rules
        return Filters.build(catalog, no_explicit=kids, max_per_artist=request.max_per_artist)
    include = None
    if request.genres:
        wanted = [catalog.genre_names.index(g) for g in request.genres if g in catalog.genre_names]
        genres = catalog.genres.tocsc()
        include = np.unique(np.concatenate([genres[:, [g]].indices for g in wanted] or [[]]))
    exclude = model.items.to_index(list(request.exclude), allow_unknown=True)
    exclude = [int(c) for c in exclude if c >= 0]
    if request.surface == "discovery" and history is not None and history.nnz:
        heard_artists = catalog.artist[history.indices]
        heard_artists = heard_artists[heard_artists >= 0]
        exclude.extend(np.flatnonzero(np.isin(catalog.artist, heard_artists)).tolist())
        exclude.extend(history.indices.tolist())
    return Filters.build(
        catalog,
        only_kinds=request.kinds,
        no_explicit=kids,
        include=include.astype(np.int64).tolist() if include is not None else None,
        exclude=exclude,
        max_per_artist=request.max_per_artist,
    )


def _personal_reasons(
    model: ServingModel, row: int, items: np.ndarray, explain: bool
) -> list[Reason]:
    """Per-item explanations when asked (ALS: one solve per request), else one line."""
    if explain:
        return model.trained.model.explain_items(row, [int(i) for i in items])
    return [Reason("matches_your_taste") for _ in items]


def _cold(
    model: ServingModel,
    user: User | None,
    history: sp.csr_matrix | None,
    session: SessionState | None,
    onboarding: tuple[list[str], list[str]],
    filters: Filters,
    fetch: int,
    personal: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[Reason], float]:
    """The cold-start list, then moved by the session like a personal one; without
    ``personal`` (no consent) from the listener's context alone (country, no demographics)."""
    picks, genres = onboarding
    columns = model.items.to_index(picks, allow_unknown=True) if picks else []
    answers = Onboarding(
        items=[int(c) for c in columns if c >= 0],
        genres=tuple(genres),
        age_band=user.age_band.value if personal and user and user.age_band else None,
        gender=user.gender.value if personal and user and user.gender else None,
        country=Context.of(user).country,
    )
    # fetch more than asked when a session may reorder the list
    wanted = fetch * 3 if session else fetch
    result = model.cold.recommend(answers, history, k=wanted, filters=filters)
    items, scores, reasons = result.items, np.asarray(result.scores, np.float64), result.reasons
    if session is not None and len(items):
        z = (scores - scores.mean()) / (scores.std() or 1.0)
        adjusted = z + model.adjuster.item_deltas(session)[items]
        order = np.lexsort((items, -adjusted))
        items, scores = items[order], adjusted[order]
        reasons = [reasons[i] for i in order]
    return items[:fetch], scores[:fetch], list(reasons[:fetch]), result.personal_weight


def item_columns(model: ServingModel, item_ids: Sequence[str]) -> np.ndarray:
    """Columns of ``item_ids`` in the served model; -1 for ids it does not know."""
    return np.asarray(model.items.to_index(list(item_ids), allow_unknown=True), dtype=np.int64)


def popular_answer(model: ServingModel, user: User | None, request: LiveRequest) -> LiveAnswer:
    """The list of last resort (popular, varied, kids-safe): when the personal path failed."""
    catalog = model.side.catalog
    assert catalog is not None
    filters = Filters.build(catalog, no_explicit=bool(user and user.kids_profile))
    items = model.cold.diverse_popular(request.k, filters)
    titles = ModelTitles(model)
    listeners = model.cold.listeners
    return LiveAnswer(
        items=[
            LiveItem(
                str(model.item_ids[c]),
                model.display_titles[c],
                float(listeners[c]),
                render_reason(Reason("popular", value=float(listeners[c])), model.items, titles),
            )
            for c in items.tolist()
        ],
        model=model.name,
        version=model.version,
        path="fallback",
        personal_weight=0.0,
        degraded=["recommendation failed; popular items instead"],
    )


#: The reason shown for items of a published batch list.
BATCH_REASON = "from today's picks for you"


def batch_answer(
    model: ServingModel,
    batch: BatchList,
    user: User | None,
    request: LiveRequest,
    degraded: Sequence[str] = (),
) -> LiveAnswer | None:
    """The user's published batch list as an answer, for when the model could not score;
    the request's rules still hold (kids profile, kinds, genres, exclusions). None when
    nothing of the list is left to show, and for a listener without personalisation consent
    (a list published before they withdrew it must not serve)."""
    if not personalised(user):
        return None
    columns = item_columns(model, batch.items)
    allowed = _filters(model, user, request, None).allowed
    kept = [
        (c, s) for c, s in zip(columns.tolist(), batch.scores, strict=True) if c >= 0 and allowed[c]
    ][: request.k]
    if not kept:
        return None
    return LiveAnswer(
        items=[
            LiveItem(str(model.item_ids[c]), model.display_titles[c], float(s), BATCH_REASON)
            for c, s in kept
        ],
        model=batch.name,
        version=batch.version,
        path="batch",
        degraded=[*degraded, f"published batch list of {batch.name} {batch.version}"],
    )


def has_similar_row(model: ServingModel, k: int) -> bool:
    """Whether :func:`similar_live` answers ``k`` items from the published table (a lookup)
    rather than by ranking the catalog."""
    table = model.trained.similar
    return table is not None and k <= table.items.shape[1]


def similar_live(model: ServingModel, item_id: str, k: int) -> list[LiveItem]:
    """Items like ``item_id``: the table published with the version (a lookup), else the
    model's similarity, else co-listening cosine."""
    column = int(model.items.to_index([item_id])[0])
    if has_similar_row(model, k):
        assert model.trained.similar is not None
        ranked, scores = model.trained.similar.row(column, k)
    else:
        ranked, scores = _similar_now(model, column, k)
    return [
        LiveItem(
            str(model.item_ids[c]),
            model.display_titles[c],
            float(s),
            f"like {model.display_titles[column]}",
        )
        for c, s in zip(ranked.tolist(), scores.tolist(), strict=True)
    ]


def _similar_now(model: ServingModel, column: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        ranked = np.asarray(model.trained.model.similar_items(np.array([column]), k))[0]
        ranked = ranked[ranked >= 0]
        scores = np.arange(len(ranked), 0, -1, dtype=np.float64) / max(len(ranked), 1)
    except SegueError:
        ranked, scores = _co_listened(model.train, column, k)
    return ranked, scores


def _co_listened(train: sp.csr_matrix, column: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of co-listening between one item and all others (for models without one)."""
    binary = (train > 0).astype(np.float32).tocsc()
    listeners = binary[:, column].indices
    if len(listeners) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    together = np.asarray(binary[listeners].sum(axis=0)).ravel()
    norms = np.sqrt(np.asarray(binary.sum(axis=0)).ravel()) * np.sqrt(len(listeners))
    cosine = np.divide(together, norms, out=np.zeros_like(together), where=norms > 0)
    cosine[column] = 0
    order = np.argsort(-cosine, kind="stable")[:k]
    order = order[cosine[order] > 0]
    return order.astype(np.int64), cosine[order].astype(np.float64)

"""Listener products as jobs: daily mixes (one user, or everyone in batch), station pages, new
releases, Wrapped.

Faces (CLI, API) call these with the store and a trained model; the logic lives in
:mod:`segue.products`. What is done here: reading the store and the online state, choosing the
known-user or cold-start path (the cold path is :func:`segue.jobs.recommend.recommend_for_user`
for one user, the same :class:`ColdStartRecommender` per demographic segment in batch), the
business rules (tracks only; kids profiles never see explicit items) and ids at the edges.

Personalisation consent (:mod:`segue.data.consent`): a listener without it gets editorial
mixes — the popular tracks of their country (kids setting applied), clustered by genre, drawn
with the same seed for the whole context — so every such listener in the same country gets
the same mixes; stations ignore their history and their session (no skips, no likes) and play
from the seed and what is popular; Wrapped is theirs regardless (it is a summary of their own
listening shown to them, not a model's suggestion: nothing in it is scored or recommended).

Focus Mode holds everywhere without a rule of its own here: the training matrix and the online
state never see focus events, station histories are read without them and Wrapped drops them.

:class:`ProductContext` is what is worth keeping between requests (the catalog arrays, the
session adjuster); the API builds one per loaded model and passes it in.
"""

from __future__ import annotations

import datetime as dt
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from segue.data.consent import Context, personalised
from segue.data.model import EVENT_CODES, EventType, Item, ItemKind, User
from segue.dataset import SideInfo
from segue.dataset.from_store import load_side_info
from segue.dataset.side import AGE_BANDS, GENDERS, UserTable
from segue.errors import SegueError
from segue.jobs.catalog import CatalogNames
from segue.jobs.mix_builder import MixBuilder, MixJob
from segue.jobs.recommend import recommend_for_user
from segue.models.coldstart import ColdStartRecommender, Onboarding
from segue.models.filters import Filters
from segue.online.state import OnlineState
from segue.products.catalog_view import ProductCatalog
from segue.products.mixes import Mix, MixConfig, MixPlan, build_mixes, to_mix
from segue.products.new_releases import (
    WINDOW_DAYS,
    NewRelease,
    ReleaseIndex,
    pick_new_releases,
)
from segue.products.stations import StationSeed, next_page
from segue.products.wrapped import Wrapped, compute_wrapped, year_bounds_ms
from segue.products.wrapped_render import render_html, render_png
from segue.progress import Progress, no_progress
from segue.registry.trained import TrainedModel
from segue.serving.holder import ServingModel
from segue.serving.session import SessionAdjuster, history_from_recent
from segue.store import Store

RECENT_PLAYS = 200


class ListSink(Protocol):
    """Where :func:`mixes_for_all_users` puts the top lists it scores alongside the mixes
    (:class:`segue.batch.lists.ListWriter`): the lists' length and filters are the sink's."""

    k: int

    def filters(self, kids: bool) -> Filters | None: ...

    def write(self, rows: np.ndarray, items: np.ndarray, scores: np.ndarray) -> None: ...


@dataclass(frozen=True, eq=False)
class ProductContext:
    """Per trained model: side info, catalog arrays, the session adjuster and the rule masks."""

    trained: TrainedModel
    side: SideInfo
    pc: ProductCatalog
    adjuster: SessionAdjuster
    allowed_adult: np.ndarray
    allowed_kids: np.ndarray

    def allowed(self, kids: bool) -> np.ndarray:
        return self.allowed_kids if kids else self.allowed_adult


def product_context(
    store: Store | None, trained: TrainedModel, side: SideInfo | None = None
) -> ProductContext:
    """Build once per model (seconds on a large catalog); ``side`` may be a cached one, and
    then the store is not read (a batch may run from a saved model and side info alone)."""
    if side is None:
        if store is None:
            raise SegueError("product_context needs the store or an already-built SideInfo")
        side = load_side_info(store, users=trained.users, items=trained.items, friends=False)
    if side.catalog is None:
        raise SegueError("the listener products need item attributes (SideInfo.catalog)")
    catalog = side.catalog
    pc = ProductCatalog.build(catalog, trained.model._fitted())
    track = [ItemKind.TRACK]
    return ProductContext(
        trained=trained,
        side=side,
        pc=pc,
        adjuster=SessionAdjuster(catalog),
        allowed_adult=Filters.build(catalog, only_kinds=track).allowed,
        allowed_kids=Filters.build(catalog, only_kinds=track, no_explicit=True).allowed,
    )


def _user(store: Store, user_id: str) -> User:
    user = store.get_user(user_id)
    if user is None:
        raise SegueError(f"unknown user {user_id!r}: import or create the user first")
    return user


# -- daily mixes -----------------------------------------------------------------------------
def daily_mixes(
    store: Store,
    trained: TrainedModel,
    user_id: str,
    date: dt.date | None = None,
    *,
    config: MixConfig = MixConfig(),
    side: SideInfo | None = None,
    context: ProductContext | None = None,
    serving: ServingModel | None = None,
) -> list[Mix]:
    """The user's "Made for you" mixes for ``date`` (default: today, UTC); editorial ones,
    the same for their whole context, without personalisation consent. ``serving``: the
    loaded version of ``trained``, when a serving process holds one."""
    user = _user(store, user_id)
    ctx = context or product_context(store, trained, side)
    date = date or dt.datetime.now(dt.UTC).date()
    allowed = ctx.allowed(user.kids_profile)
    train = trained.model._fitted()
    row = int(trained.users.to_index([user_id], allow_unknown=True)[0])
    seed = user_id
    empty = sp.csr_matrix((1, train.shape[1]), dtype=np.float32)

    def cold_start() -> np.ndarray:  # the cold-start path every face uses
        suggestions = recommend_for_user(
            store,
            trained,
            user_id,
            config.n_candidates,
            kinds=("track",),
            side=ctx.side,
            serving=serving,
        )
        return trained.items.to_index([s.item_id for s in suggestions], allow_unknown=True)

    if not personalised(user):  # the cold-start list of their context: country, kids
        history, candidates = empty, cold_start()
        seed = Context.of(user).key()
    elif row >= 0 and train[row].nnz:
        history = train[row]
        recs = trained.model.recommend(
            np.array([row]), config.n_candidates, filters=Filters(allowed)
        )
        candidates = recs.items[0]
    else:  # a new listener
        history, candidates = empty, cold_start()
    plans = build_mixes(
        seed, date, history.indices, history.data, candidates, ctx.pc, allowed, config
    )
    return [to_mix(plan, user_id, date, ctx.pc) for plan in plans]


@dataclass(frozen=True)
class MixBatchReport:
    users: int
    mixes: int
    tracks: int
    cold_users: int
    seconds: float


def mixes_for_all_users(
    store: Store | None,
    trained: TrainedModel,
    date: dt.date,
    *,
    config: MixConfig = MixConfig(),
    side: SideInfo | None = None,
    context: ProductContext | None = None,
    users: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 2048,
    sink: Callable[[str, list[MixPlan]], None] | None = None,
    lists: ListSink | None = None,
    workers: int = 0,
    progress: Progress = no_progress,
) -> MixBatchReport:
    """Every user's mixes for ``date``, in batches of rows; each user's plans go to ``sink``
    (:func:`segue.products.mixes.to_mix` makes a plan JSON-ready when it is served).

    Known users get the model's candidates in one batched ``recommend`` per block (kids and
    others apart, for the explicit rule); users without history share one cold-start list per
    demographic segment, so a million new listeners cost one ranking per segment, not each.
    Users without personalisation consent (``SideInfo.users.personalised``) get the editorial
    mixes of their context (country, kids), built once per context and the same for each.
    ``users``: model rows to do (default all); shards of rows can run in parallel processes.
    The store is only read when no ``context`` or ``side`` is given.

    ``lists``: also every listener's top list (every kind) for the day's batch, from the same
    scoring of each listener as their mixes' candidates (:meth:`Recommender.recommend_many`):
    scoring is most of a staged model's cost, and the two together cost about one.

    ``workers``: processes that build the mixes while this one scores the next block
    (:class:`segue.jobs.mix_builder.MixBuilder`); 0 builds here. The mixes are the same.
    """
    started = time.perf_counter()
    ctx = context or product_context(store, trained, side)
    table = ctx.side.users
    if table is None:
        raise SegueError("mixes for all users need the user table (SideInfo.users)")
    train = trained.model._fitted()
    rows = np.arange(train.shape[0]) if users is None else np.asarray(users, dtype=np.int64)
    nnz = np.diff(train.indptr)
    cold = ColdStartRecommender(trained.model, train, ctx.side)
    segments: dict[tuple[int, int, int, bool], np.ndarray] = {}
    editorial: dict[tuple[int, bool], list[MixPlan]] = {}
    consent = (
        np.ones(len(table.kids_profile), dtype=bool)
        if table.personalised is None
        else np.asarray(table.personalised, dtype=bool)
    )
    filters = {kids: Filters(ctx.allowed(kids)) for kids in (False, True)}
    counted = {"mixes": 0, "tracks": 0}

    Entries = list[tuple[str, list[MixPlan] | None]]  # (user, plans; None: being built)

    def deliver(entries: Entries, built: list[list[MixPlan]]) -> None:
        """Each user's plans to the sink in row order: the editorial ones were ready, the
        others come from the builder in the order they were given."""
        made = iter(built)
        for user_id, ready in entries:
            mixes = next(made) if ready is None else ready
            counted["mixes"] += len(mixes)
            counted["tracks"] += sum(len(m.tracks) for m in mixes)
            if sink is not None:
                sink(user_id, mixes)

    n_cold = 0
    builder = MixBuilder(ctx.pc, ctx.allowed_adult, ctx.allowed_kids, config, date, workers)
    pending: deque[tuple[Entries, Future[list[list[MixPlan]]]]] = deque()
    with builder:
        for start in range(0, len(rows), batch_size):
            block = rows[start : start + batch_size]
            ids = [str(x) for x in trained.users.to_ids(block)]
            kids = table.kids_profile[block]
            personal = consent[block]
            known = (nnz[block] > 0) & personal
            candidates: dict[int, np.ndarray] = {}
            for flag in (False, True):
                chosen = block[known & (kids == flag)]
                if not len(chosen):
                    continue
                if lists is None:
                    recs = trained.model.recommend(
                        chosen, config.n_candidates, filters=filters[flag]
                    )
                else:
                    top, recs = trained.model.recommend_many(
                        chosen,
                        [(lists.k, lists.filters(flag)), (config.n_candidates, filters[flag])],
                    )
                    lists.write(chosen, top.items, top.scores)
                candidates.update(zip(chosen.tolist(), recs.items, strict=True))
            if lists is not None:  # listeners with plays, no consent: their context's list
                ruled = block[(nnz[block] > 0) & ~personal]
                none = np.full((len(ruled), lists.k), -1, dtype=np.int64)
                lists.write(ruled, none, np.zeros(none.shape, dtype=np.float32))
            entries: Entries = []
            jobs: list[MixJob] = []
            for row, user_id, is_kid, is_known, is_personal in zip(
                block.tolist(), ids, kids.tolist(), known.tolist(), personal.tolist(), strict=True
            ):
                if not is_personal:
                    ready = _editorial(cold, table, row, is_kid, filters[is_kid], config, date,
                                       ctx, segments, editorial)  # fmt: skip
                    entries.append((user_id, ready))
                    continue
                if is_known:
                    lo, hi = train.indptr[row], train.indptr[row + 1]
                    history = (train.indices[lo:hi], train.data[lo:hi])
                    found = candidates[row]
                else:
                    n_cold += 1
                    history = (np.zeros(0), np.zeros(0))
                    found = _segment_candidates(cold, table, row, is_kid, filters[is_kid], config,
                                                segments)  # fmt: skip
                jobs.append(MixJob(user_id, is_kid, *history, found))
                entries.append((user_id, None))
            pending.append((entries, builder.submit(jobs)))
            while len(pending) > builder.depth:
                entries, future = pending.popleft()
                deliver(entries, future.result())
            progress("mixes", min(start + batch_size, len(rows)), len(rows))
        while pending:
            entries, future = pending.popleft()
            deliver(entries, future.result())
    return MixBatchReport(
        len(rows), counted["mixes"], counted["tracks"], n_cold, time.perf_counter() - started
    )


def _editorial(
    cold: ColdStartRecommender,
    table: UserTable,
    row: int,
    kids: bool,
    filters: Filters,
    config: MixConfig,
    date: dt.date,
    ctx: ProductContext,
    segments: dict[tuple[int, int, int, bool], np.ndarray],
    cache: dict[tuple[int, bool], list[MixPlan]],
) -> list[MixPlan]:
    """The mixes of a listener without personalisation consent: their context's (country,
    kids), from the country's cold-start list, seeded by the context — as :func:`daily_mixes`
    makes them online."""
    code = int(table.country[row])
    key = (code, kids)
    if key not in cache:
        onboarding = Onboarding(country=table.countries[code] if code >= 0 else None)
        segment = (-1, -1, code, kids)
        if segment not in segments:
            segments[segment] = cold.recommend(
                onboarding, k=config.n_candidates, filters=filters
            ).items
        seed = Context(onboarding.country, kids).key()
        none = np.zeros(0, dtype=np.int64)
        cache[key] = build_mixes(
            seed, date, none, none, segments[segment], ctx.pc, ctx.allowed(kids), config
        )
    return cache[key]


def _segment_candidates(
    cold: ColdStartRecommender,
    table: UserTable,
    row: int,
    kids: bool,
    filters: Filters,
    config: MixConfig,
    cache: dict[tuple[int, int, int, bool], np.ndarray],
) -> np.ndarray:
    key = (int(table.age_band[row]), int(table.gender[row]), int(table.country[row]), kids)
    if key not in cache:
        onboarding = Onboarding(
            age_band=AGE_BANDS[key[0]] if key[0] >= 0 else None,
            gender=GENDERS[key[1]] if key[1] >= 0 else None,
            country=table.countries[key[2]] if key[2] >= 0 else None,
        )
        cache[key] = cold.recommend(onboarding, k=config.n_candidates, filters=filters).items
    return cache[key]


# -- stations --------------------------------------------------------------------------------
@dataclass(frozen=True)
class StationTrack:
    item_id: str
    title: str
    artist: str | None
    genre: str | None
    score: float


@dataclass(frozen=True)
class StationResult:
    """The next page of a station, with the session it was adapted to (its JSON form is
    ``segue.api.schemas.StationResponse``)."""

    user_id: str
    seed: str
    session_id: str | None
    skips_by_genre: dict[str, int]
    tracks: list[StationTrack]
    #: the seed artist or track as a person knows it ("Title — Artist"); None otherwise
    seed_title: str | None = None


def station_page(
    store: Store,
    trained: TrainedModel,
    state: OnlineState,
    user_id: str,
    seed: str | StationSeed,
    k: int = 10,
    *,
    served: Sequence[str] = (),
    now_ms: int | None = None,
    new_artists_only: bool = True,
    side: SideInfo | None = None,
    context: ProductContext | None = None,
    names: CatalogNames | None = None,
) -> StationResult:
    """The next ``k`` tracks of a station given the session so far.

    ``served``: item ids this station already played in the session (the client sends them;
    they are never repeated); skips and likes come from the online state's current session.
    An artist or track seed may be a name ("Late Kingdom", "Title — Artist"), resolved with
    ``names`` (built from the store when not given) or refused with the closest items.
    The user's history (their "never played" set) is the model's training row plus the
    online state's recent plays (:func:`user_history`). Without personalisation consent
    neither is read: the station plays from its seed and what is popular, the same page for
    every such listener in the same context.
    """
    user = _user(store, user_id)
    ctx = context or product_context(store, trained, side)
    seed = seed if isinstance(seed, StationSeed) else StationSeed.parse(seed)
    seed, seed_title = _resolve_seed(store, trained, seed, names)
    served_cols = trained.items.to_index(list(served), allow_unknown=True)
    if personalised(user):
        history, user_row = user_history(trained, state, user_id)
        session = state.session(user_id, now_ms)
    else:
        history = sp.csr_matrix((1, len(trained.items)), dtype=np.float32)
        user_row, session = None, None
    page = next_page(
        trained.model,
        ctx.pc,
        seed,
        history,
        session,
        k,
        allowed=ctx.allowed(user.kids_profile),
        served=np.asarray(served_cols)[np.asarray(served_cols) >= 0],
        adjuster=ctx.adjuster,
        new_artists_only=new_artists_only,
        user_row=user_row,
    )
    pc = ctx.pc
    return StationResult(
        user_id=user_id,
        seed=str(seed),
        seed_title=seed_title,
        session_id=session.session_id if session else None,
        skips_by_genre=dict(session.skips_by_genre) if session else {},
        tracks=[
            StationTrack(
                item_id=item_id,
                title=str(pc.catalog.titles[col]),
                artist=pc.artist_name(int(col)),
                genre=pc.genre_name(int(pc.genre[col])),
                score=float(score),
            )
            for item_id, col, score in zip(
                pc.item_ids(page.items), page.items, page.scores, strict=True
            )
        ],
    )


def _resolve_seed(
    store: Store, trained: TrainedModel, seed: StationSeed, names: CatalogNames | None
) -> tuple[StationSeed, str | None]:
    """An artist or track seed by id, or by name through the catalog's names."""
    if seed.kind not in ("artist", "track") or seed.value is None:
        return seed, None
    value = seed.value
    if seed.kind == "track" and value in trained.items:  # an id: no index to build
        return seed, None
    if seed.kind == "artist" and store.existing_item_ids([value]):
        return seed, None
    names = names or CatalogNames.from_store(store, trained)
    within = trained.items if seed.kind == "track" else None
    found = names.resolve(value, [seed.kind], within=within)
    return StationSeed(seed.kind, found.item_id, label=found.label), found.label


def user_history(
    trained: TrainedModel, state: OnlineState, user_id: str
) -> tuple[sp.csr_matrix, int | None]:
    """(history row, training row or None): what the user has heard, without Focus Mode.

    The training row holds every positive event up to the last training (plays, likes, ...;
    the store leaves focus events out) and the online state the plays since (it ignores focus
    events too); between them that is the user's listening, read without a store query so a
    page stays within its latency budget.

    The training row is returned for a user the model knows, so the model scores the trained
    user (a dot product for ALS) rather than folding the whole history in on every page (an
    ALS fold-in costs a pass over all item factors, tens of ms on a large catalog). Plays since
    training still count where a page must react at once: they are "heard" (never offered
    again by Discovery) and the session's skips and likes move the scores; they reach the
    user's taste vector at the next training. Users the model does not know are scored from
    their history row.
    """
    row = int(trained.users.to_index([user_id], allow_unknown=True)[0])
    base = trained.model._fitted()[row] if row >= 0 else None
    history = history_from_recent(state.recent_plays(user_id, RECENT_PLAYS), trained.items, base)
    known = base is not None and base.nnz > 0
    return history, (row if known else None)


# -- new releases ----------------------------------------------------------------------------
_RELEASES: weakref.WeakKeyDictionary[CatalogNames, ReleaseIndex] = weakref.WeakKeyDictionary()


def release_index(names: CatalogNames) -> ReleaseIndex:
    """The dated tracks of the catalog ``names`` was built from (kept as long as it is)."""
    index = _RELEASES.get(names)
    if index is None:
        index = _RELEASES[names] = ReleaseIndex(names.index.items)
    return index


def new_releases_for(
    store: Store,
    trained: TrainedModel,
    state: OnlineState,
    user_id: str,
    k: int = 10,
    *,
    names: CatalogNames,
    today: dt.date | None = None,
    window_days: int = WINDOW_DAYS,
    context: ProductContext | None = None,
) -> tuple[dt.date, list[NewRelease]]:
    """(the day "new" counts back from, the listener's new releases), see
    :mod:`segue.products.new_releases`. Their taste is their history as stations read it
    (training row plus plays since, no Focus Mode) and their onboarding picks; without
    personalisation consent none is read and the row is what is new and popular."""
    user = _user(store, user_id)
    ctx = context or product_context(store, trained)
    index = release_index(names)
    as_of = index.as_of(today or dt.datetime.now(dt.UTC).date())
    catalog, ids = ctx.pc.catalog, trained.items.ids
    artist_plays: dict[str, float] = {}
    genre_plays: dict[str, float] = {}
    heard: set[str] = set()
    if personalised(user):
        history, _ = user_history(trained, state, user_id)
        cols, plays = history.indices, history.data
        heard = {str(ids[c]) for c in cols}
        for col, n in zip(cols, plays, strict=True):
            code = catalog.artist[col]
            if code >= 0:
                artist = catalog.artist_ids[code]
                artist_plays[artist] = artist_plays.get(artist, 0.0) + float(n)
        genres = catalog.genres[cols]
        per_genre = np.asarray(genres.T @ plays).ravel()
        for g in np.flatnonzero(per_genre):
            genre_plays[catalog.genre_names[g]] = float(per_genre[g])
        # a new listener's three picks say whom they like before any play does: one play each
        for pick in state.onboarding(user_id)[0]:
            item = names.item(pick)
            artist = pick if item is not None and item.kind is ItemKind.ARTIST else None
            artist = artist or (item.artist_id if item is not None else None)
            if artist:
                artist_plays[artist] = artist_plays.get(artist, 0.0) + 1.0
            for genre in item.genres if item is not None else ():
                genre_plays[genre] = genre_plays.get(genre, 0.0) + 1.0
    window = index.window(as_of, window_days)
    cols = trained.items.to_index([r.item_id for r in window], allow_unknown=True)
    popularity = {
        r.item_id: float(ctx.pc.popularity[c]) for r, c in zip(window, cols, strict=True) if c >= 0
    }
    picked = pick_new_releases(
        index,
        as_of=as_of,
        k=k,
        window_days=window_days,
        artist_plays=artist_plays,
        genre_plays=genre_plays,
        popularity=popularity,
        heard=heard,
        allow_explicit=not user.kids_profile,
    )
    return as_of, picked


# -- Wrapped ---------------------------------------------------------------------------------
def wrapped(store: Store, user_id: str, year: int) -> Wrapped:
    """The user's Wrapped for ``year``, from the store (SQLite or PostgreSQL alike)."""
    user = _user(store, user_id)
    start_ms, end_ms = year_bounds_ms(year, user.timezone)
    log = store.user_events(user_id, start_ms, end_ms)
    before = store.user_events(user_id, None, start_ms)
    played_before = ~before.focus & (before.type == EVENT_CODES[EventType.PLAY.value])
    heard_before = {str(x) for x in before.item_ids[np.unique(before.item[played_before])]}
    items = _items_with_parents(store, {str(x) for x in log.item_ids} | heard_before)
    return compute_wrapped(user, year, log, items, heard_before)


def _items_with_parents(store: Store, ids: set[str]) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for item_id in sorted(ids):
        item = store.get_item(item_id)
        if item is not None:
            items[item_id] = item
    parents = {p for i in items.values() for p in (i.artist_id, i.show_id) if p} - set(items)
    for item_id in sorted(parents):
        item = store.get_item(item_id)
        if item is not None:
            items[item_id] = item
    return items


def wrapped_html(store: Store, user_id: str, year: int, path: Path | None = None) -> str:
    """The Wrapped page as HTML; written to ``path`` too when given."""
    html = render_html(wrapped(store, user_id, year))
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(html, encoding="utf-8")
    return html


def wrapped_png(store: Store, user_id: str, year: int, path: Path | None = None) -> bytes:
    """The shareable Wrapped card as PNG bytes; written to ``path`` too when given."""
    png = render_png(wrapped(store, user_id, year))
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(png)
    return png

"""The listener's surfaces: daily mixes, stations that adapt to the session, Wrapped.

The product context (per-catalog arrays the mixes and stations read) is built once per served
model version, on first use, and dropped when the version changes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import HTMLResponse, Response

from segue.api.catalog_routes import catalog_names
from segue.api.problems import problem_responses
from segue.api.schemas import (
    NewReleaseOut,
    NewReleasesResponse,
    NextBestActionResponse,
    PublishedTop,
    RecommendedItem,
    StationResponse,
)
from segue.api.security import require
from segue.api.services import Services, ServicesDep
from segue.batch.publish import production_version, published_mixes, published_top
from segue.jobs.empty import why_empty_station
from segue.jobs.products import (
    ProductContext,
    daily_mixes,
    new_releases_for,
    product_context,
    station_page,
    wrapped,
    wrapped_html,
    wrapped_png,
)
from segue.nba.policy import PolicySettings
from segue.nba.service import NBAService
from segue.products.mixes import Mix
from segue.products.new_releases import WINDOW_DAYS
from segue.products.wrapped import Wrapped
from segue.serving.holder import ServingModel
from segue.serving.live import LiveRequest, batch_answer
from segue.store.exposures import Exposure

#: Every listener route: no key or scope, unknown user, invalid parameters, not set up (503).
log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/users/{user_id}",
    tags=["listener"],
    responses=problem_responses(401, 403, 404, 422, 503),
)
_lock = threading.Lock()


def product_context_of(svc: Services) -> ProductContext:
    """The served version's product context, built once per version."""
    model = svc.models.current
    cached = svc.products
    if cached is None or cached[0] is not model:
        with _lock:
            cached = svc.products
            if cached is None or cached[0] is not model:
                cached = svc.products = (model, product_context(None, model.trained, model.side))
    return cached[1]


def _known(svc: Services, user_id: str) -> None:
    if svc.users.get(user_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown user {user_id!r}")


@router.get("/mixes", response_model=list[Mix], dependencies=[Depends(require("read"))])
def mixes(
    user_id: str,
    svc: ServicesDep,
    date: Annotated[dt.date | None, Query(description="Which day's mixes (default today)")] = None,
) -> list[Mix]:
    """ "Made for you" daily mixes: stable within a day, refreshed the next."""
    _known(svc, user_id)
    model = svc.models.current
    day = date or dt.datetime.now(dt.UTC).date()
    context = product_context_of(svc)
    version = _published_version(svc, model)
    if version is not None:  # the daily run's mixes: identical to the batch, all day
        name = svc.models.name
        published = published_mixes(svc.store, name, version, user_id, day, context.pc)
        if published is not None:
            return published
    return daily_mixes(svc.store, model.trained, user_id, day, context=context, serving=model)


def _published_version(svc: Services, model: ServingModel) -> str | None:
    """The version whose published lists serve: the loaded one, or while the popularity
    fallback serves, the registry's production version."""
    return production_version(svc.settings, svc.models.name) if model.fallback else model.version


@router.get(
    "/published",
    response_model=PublishedTop,
    dependencies=[Depends(require("read"))],
)
def published(user_id: str, svc: ServicesDep) -> PublishedTop:
    """The listener's top list as the production version's daily run published it (the
    list analysts see in Parquet, less what the rules hide: explicit items from a kids
    profile); 404 when that version published none for them."""
    _known(svc, user_id)
    model = svc.models.current
    name, version = svc.models.name, _published_version(svc, model)
    batch = published_top(svc.store, svc.state, name, version, user_id) if version else None
    answer = None
    if batch is not None:
        request = LiveRequest(user_id, k=max(len(batch.items), 1))
        answer = batch_answer(model, batch, svc.users.get(user_id), request)
    if batch is None or answer is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no published list of {name!r} for user {user_id!r}"
        )
    return PublishedTop(
        user_id=user_id,
        name=name,
        version=batch.version,
        items=[RecommendedItem(**vars(i)) for i in answer.items],
    )


@router.get(
    "/new-releases", response_model=NewReleasesResponse, dependencies=[Depends(require("read"))]
)
def new_releases(
    user_id: str,
    svc: ServicesDep,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    days: Annotated[int, Query(ge=1, le=365, description="How far back 'new' reaches")] = (
        WINDOW_DAYS
    ),
) -> NewReleasesResponse:
    """Tracks released in the last ``days``: first those of the artists the listener plays,
    then of the genres they play, then what is new and popular (no explicit track for a kids
    profile; nothing personal without personalisation consent)."""
    _known(svc, user_id)
    model = svc.models.current
    as_of, items = new_releases_for(
        svc.store,
        model.trained,
        svc.state,
        user_id,
        k,
        names=catalog_names(svc),
        window_days=days,
        context=product_context_of(svc),
    )
    return NewReleasesResponse(
        user_id=user_id,
        as_of=as_of,
        window_days=days,
        items=[NewReleaseOut.model_validate(i) for i in items],
    )


@router.get("/station", response_model=StationResponse, dependencies=[Depends(require("read"))])
def station(
    user_id: str,
    svc: ServicesDep,
    seed: Annotated[
        str,
        Query(
            description="discovery, artist:NAME, track:TITLE (or 'TITLE — ARTIST'), genre:NAME "
            "or mood:NAME; artists and tracks by id too. A name that fits several items is a "
            "422 whose suggestions list them"
        ),
    ] = "discovery",
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    served: Annotated[list[str], Query(description="Tracks this station already played")] = [],  # noqa: B006
) -> StationResponse:
    """The next page of a station, adapted to this session's skips and likes."""
    _known(svc, user_id)
    model = svc.models.current
    page = station_page(
        svc.store,
        model.trained,
        svc.state,
        user_id,
        seed,
        k,
        served=served,
        context=product_context_of(svc),
        names=catalog_names(svc) if _by_name(seed) else None,
    )
    answer = StationResponse.model_validate(page)
    if not answer.tracks:
        reason = why_empty_station(svc.store, model.trained, seed, user_id)
        answer = answer.model_copy(update={"why_empty": reason})
    return answer


def _by_name(seed: str) -> bool:
    """An artist or track seed: it may be a name, resolved with the cached name index."""
    return seed.partition(":")[0].strip().lower() in ("artist", "track")


@router.get(
    "/next-best-action",
    response_model=NextBestActionResponse,
    dependencies=[Depends(require("read"))],
)
def next_best_action(
    user_id: str,
    svc: ServicesDep,
    now: Annotated[dt.datetime | None, Query(description="Decide as of (default now)")] = None,
) -> NextBestActionResponse:
    """The one thing to suggest to this listener now (song, podcast, artist, video,
    audiobook or app feature), by predicted click x value, within consent, caps and quiet
    hours; the same rules as a batch campaign, without its holdout."""
    _known(svc, user_id)
    now_ms = int(time.time() * 1000)
    assigned, policy = _nba_variant(svc, user_id, now_ms)
    answer = _nba(svc).next_best_action(user_id, now, policy=policy)
    shown = [s for s in (answer.best, *answer.alternatives) if s is not None]
    if shown and svc.exposures is not None:  # measured like any served list
        svc.exposures.log(
            Exposure(
                request_id=uuid.uuid4().hex,
                user_id=user_id,
                ts_ms=now_ms,
                surface="nba",
                model="nba",
                version="live",
                path="nba",
                items=tuple(s.action.item_id for s in shown),
                experiments=assigned,
                context={"channel": shown[0].channel},
            )
        )
    return NextBestActionResponse.model_validate(answer)


def _nba_variant(
    svc: Services, user_id: str, now_ms: int
) -> tuple[dict[str, str], PolicySettings | None]:
    """The listener's experiment variants and, when one sets the next-best-action policy's
    thresholds, the policy to answer with."""
    if svc.experiments is None:
        return {}, None
    try:
        assigned, overrides = svc.experiments.settings_for(user_id, now_ms)
    except Exception as exc:  # a broken experiments file must not stop serving
        log.warning("experiments not applied: %s", exc)
        return {}, None
    rules = {k.removeprefix("nba_"): v for k, v in overrides.items() if k.startswith("nba_")}
    if not rules:
        return assigned, None
    return assigned, dataclasses.replace(_nba(svc).policy, **rules)


def _nba(svc: Services) -> NBAService:
    return svc.component(
        "nba",
        lambda: NBAService(svc.store, svc.settings.data_dir / "models"),
        "next best action",
        "segue nba train",
    )


@router.get("/wrapped/{year}", response_model=Wrapped, dependencies=[Depends(require("read"))])
def wrapped_json(user_id: str, year: int, svc: ServicesDep) -> Wrapped:
    """The listener's year: top tracks, artists, genres, podcasts, minutes, personality."""
    _known(svc, user_id)
    return wrapped(svc.store, user_id, year)


@router.get(
    "/wrapped/{year}/page",
    response_class=HTMLResponse,
    dependencies=[Depends(require("read"))],
)
def wrapped_page(user_id: str, year: int, svc: ServicesDep) -> HTMLResponse:
    _known(svc, user_id)
    return HTMLResponse(wrapped_html(svc.store, user_id, year))


@router.get(
    "/wrapped/{year}/card.png",
    response_class=Response,
    dependencies=[Depends(require("read"))],
)
def wrapped_card(user_id: str, year: int, svc: ServicesDep) -> Response:
    _known(svc, user_id)
    return Response(wrapped_png(svc.store, user_id, year), media_type="image/png")

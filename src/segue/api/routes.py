"""The ``/v1`` endpoints. Each parses, calls a serving job, and shapes the answer.

A valid request never gets a 500: recommendation errors fall back to a popular list (and are
counted), a store that cannot be read is reported in ``degraded``. Every other answer is
problem details (RFC 9457, :mod:`segue.api.problems`), declared per route with its status
codes: invalid requests get a 4xx whose ``detail`` says what is wrong and where; while no model
can serve (an empty store), personal routes answer 503 with the fix.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from segue.api.catalog_routes import catalog_names
from segue.api.problems import MEDIA_TYPE as PROBLEM_MEDIA_TYPE
from segue.api.problems import NOT_READY, RETRY_AFTER_S, problem_responses
from segue.api.schemas import (
    EventBatch,
    EventsAccepted,
    ItemPlays,
    Readiness,
    RecommendationList,
    RecommendedItem,
    SimilarItems,
    UserIn,
    UserOut,
    UserSettings,
)
from segue.api.security import require
from segue.api.services import Services, ServicesDep
from segue.batch.publish import production_version, published_top
from segue.data.model import Event, EventType, ItemKind, User
from segue.errors import StoreError
from segue.jobs.empty import why_no_recommendations
from segue.serving.explore import SlotBandit
from segue.serving.holder import ModelUnavailable, ServingModel
from segue.serving.live import (
    LiveAnswer,
    LiveItem,
    LiveRequest,
    batch_answer,
    has_similar_row,
    item_columns,
    popular_answer,
    recommend_live,
    similar_live,
)
from segue.store.exposures import Exposure

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1")

#: What any route with a key may answer besides its own: no key, wrong scope, the store down.
_AUTH = (401, 403, 503)
#: ... and one with a body: too large, invalid.
_BODY = (*_AUTH, 413, 422)


class ReadinessOut(Readiness):
    missing: list[str] = Field(
        default_factory=list,
        description="What keeps the service from serving fully (no items, no events, no "
        "trained model), each with the command that fixes it",
    )


class NotReady(ReadinessOut):
    """The 503 of ``/v1/ready``: problem details (RFC 9457) whose extension members are the
    readiness fields."""

    type: str = NOT_READY
    title: str = "Not ready"
    status: int = 503
    detail: str
    instance: str = "/v1/ready"


def _items(items: list[LiveItem]) -> list[RecommendedItem]:
    return [RecommendedItem(**vars(i)) for i in items]


@router.get("/health", tags=["operations"])
async def health() -> dict[str, str]:
    """Liveness: the process answers (on the event loop itself: a probe that waited for a
    free thread would report a busy process as dead)."""
    return {"status": "ok"}


@router.get(
    "/ready",
    tags=["operations"],
    response_model=ReadinessOut,
    responses={503: {"model": NotReady, "description": "Not ready: see `missing`"}},
)
def ready(svc: ServicesDep) -> Response:
    """Readiness: a model is loaded, the store answers and (``segue serve``) the first
    version's products are built; else 503 problem details that also carry the readiness
    fields, ``missing`` saying what is lacking (items, events, a
    trained model) and how to fix it."""
    model = svc.models.loaded
    missing = list(svc.models.missing)
    store_ok = True
    try:
        svc.store.count("items")
    except Exception as exc:
        store_ok = False
        missing.append(f"store: it does not answer ({type(exc).__name__})")
    warm = svc.warmed is None or svc.warmed.is_set()
    if model is not None and not warm:
        missing.append("warming: the served version's product tables are being built")
    bus = svc.mode if svc.mode == "embedded" else "redis"
    body = ReadinessOut(
        ready=model is not None and store_ok and warm,
        model=model.name if model else None,
        version=model.version if model else None,
        fallback=model.fallback if model else None,
        state=svc.state_mode(),
        bus=bus,
        auth=svc.api_keys.enabled,
        missing=missing,
    )
    if body.ready:
        return Response(body.model_dump_json(), media_type="application/json")
    detail = "not ready: " + ("; ".join(missing) or "no model loaded")
    problem = NotReady(**body.model_dump(), detail=detail)
    return Response(
        problem.model_dump_json(),
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        media_type=PROBLEM_MEDIA_TYPE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


@router.get(
    "/users/{user_id}/recommendations",
    tags=["recommendations"],
    response_model=RecommendationList,
    responses=problem_responses(*_AUTH, 422),
    dependencies=[Depends(require("read"))],
)
async def recommendations(
    user_id: str,
    svc: ServicesDep,
    k: Annotated[int, Query(ge=1, le=500, description="How many items")] = 10,
    surface: Annotated[
        Literal["home", "radio", "discovery"],
        Query(description="home; radio (known tracks may return); discovery (never heard)"),
    ] = "home",
    device: Annotated[str | None, Query(max_length=100)] = None,
    local_time: Annotated[dt.datetime | None, Query(description="Listener's local time")] = None,
    kinds: Annotated[list[ItemKind], Query(description="Only these item kinds")] = [],  # noqa: B006
    genres: Annotated[list[str], Query(description="Only items of these genres")] = [],  # noqa: B006
    exclude: Annotated[list[str], Query(description="Item ids not to show")] = [],  # noqa: B006
    max_per_artist: Annotated[int | None, Query(ge=1, le=100)] = None,
    explain: Annotated[bool, Query(description="Per-item reasons (slower)")] = False,
) -> RecommendationList:
    """Top-k for a listener, known or new, shaped by what they did seconds ago.

    An ``async`` route on purpose: the work is a few milliseconds of NumPy and one Redis
    round trip, and each process has one core to give; running it on the event loop saves
    the thread-pool hand-off, which cost more than the scoring (profiled under load).
    """
    started = time.perf_counter()
    model = svc.models.current
    req = LiveRequest(
        user_id=user_id,
        k=k,
        surface=surface,
        kinds=tuple(k_.value for k_ in kinds),
        genres=tuple(genres),
        exclude=tuple(exclude),
        max_per_artist=max_per_artist,
        explain=explain,
        device=device,
        local_time=local_time,
    )
    now_ms = int(time.time() * 1000)
    assigned: dict[str, str] = {}
    explore_share = svc.settings.explore_share
    if svc.experiments is not None:
        try:
            assigned, overrides = svc.experiments.settings_for(user_id, now_ms)
        except Exception as exc:  # a broken experiments file must not stop serving
            log.warning("experiments not applied: %s", exc)
            assigned, overrides = {}, {}
        explore_share = overrides.pop("explore_share", explore_share)
        version = overrides.pop("version", None)
        if version is not None:  # a registry version as the variant: served beside production
            variant_model = svc.models.version(version)
            if variant_model is None:
                svc.metrics.fallbacks.labels("experiment_version").inc()
            else:
                model = variant_model
        # the variant's pipeline settings win: they are what is compared (settings for other
        # surfaces, the next best action's, are not this list's)
        listed = {k: v for k, v in overrides.items() if k in LIVE_REQUEST_FIELDS}
        if listed:
            req = dataclasses.replace(req, **listed)
    degraded: list[str] = []
    user: User | None = None
    try:
        user = svc.users.get(user_id)
    except Exception as exc:  # the store is down: answer without profile flags
        degraded.append(f"store: {type(exc).__name__}")
        svc.metrics.fallbacks.labels("store_unavailable").inc()
    try:
        answer = recommend_live(model, svc.state, user, req)
    except Exception:
        log.exception("recommendation for %s failed; answering with popular items", user_id)
        svc.metrics.fallbacks.labels("recommend_error").inc()
        answer = popular_answer(model, user, req)
    if answer.path == "fallback":  # the model could not score: the daily list beats popular
        answer = _published_instead(svc, model, user, req, answer)
    answer.degraded[:0] = degraded
    svc.metrics.recommendations.labels(answer.path).inc()
    why_empty = None
    if not answer.items:  # rare: look at the store (off the event loop) to say why
        why_empty = await run_in_threadpool(_why_no_items, svc, model, user_id, req.kinds)
    propensities: tuple[float, ...] | None = None
    explored: dict[str, str] = {}
    if (
        svc.bandit is not None
        and explore_share > 0
        and answer.path in EXPLORABLE
        and len(answer.items) > 1
    ):
        propensities, explored = _explore(svc.bandit, model, user_id, answer, explore_share)
    request_id = uuid.uuid4().hex
    if answer.items and svc.exposures is not None:
        svc.exposures.log(
            Exposure(
                request_id=request_id,
                user_id=user_id,
                ts_ms=now_ms,
                surface=req.surface,
                model=answer.model,
                version=answer.version,
                path=answer.path,
                items=tuple(i.item_id for i in answer.items),
                experiments=assigned,
                context={
                    **{k: str(v) for k, v in (("device", device), ("local_time", local_time)) if v},
                    # the experiment report's latency guardrail reads it
                    "served_us": str(int((time.perf_counter() - started) * 1e6)),
                    **explored,
                },
                propensities=propensities,
            )
        )
    body = RecommendationList(
        request_id=request_id,
        user_id=user_id,
        items=_items(answer.items),
        model=answer.model,
        version=answer.version,
        path=answer.path,
        surface=req.surface,
        personal_weight=answer.personal_weight,
        fresh_plays=answer.fresh_plays,
        session_id=answer.session_id,
        degraded=answer.degraded,
        why_empty=why_empty,
    )
    # serialised once here (pydantic's Rust encoder) rather than validated again by FastAPI
    return Response(body.model_dump_json(), media_type="application/json")  # type: ignore[return-value]


LIVE_REQUEST_FIELDS = frozenset(f.name for f in dataclasses.fields(LiveRequest))
#: Paths whose lists the top-slot bandit may re-order: made from the listener's own data.
EXPLORABLE = ("personal", "cold_start")


def _explore(
    bandit: SlotBandit, model: ServingModel, user_id: str, answer: LiveAnswer, share: float
) -> tuple[tuple[float, ...], dict[str, str]]:
    """Re-order the answer's top slots (in place) by the bandit; the propensities of what the
    top slots show, and what the off-policy estimates need: whether this request explored,
    the model's own first item and the greedy policy's."""
    ids = [i.item_id for i in answer.items]
    popularity = model.popularity[item_columns(model, ids)]
    x = bandit.features([i.score for i in answer.items], popularity)
    arranged = bandit.arrange(x, share)
    bandit.shown(user_id, ids, x, arranged.order)
    answer.items = [answer.items[p] for p in arranged.order]
    return arranged.propensities, {
        "explored": "1" if arranged.explored else "0",
        "model_top": ids[0],
        "greedy_top": ids[arranged.greedy[0]],
    }


def _why_no_items(
    svc: Services, model: ServingModel, user_id: str, kinds: tuple[str, ...]
) -> str | None:
    try:
        return why_no_recommendations(svc.store, model.trained, user_id, kinds)
    except Exception as exc:  # the reason is a courtesy: never fail the answer for it
        log.warning("could not tell why the list for %s is empty: %s", user_id, exc)
        return None


def _published_instead(
    svc: Services, model: ServingModel, user: User | None, req: LiveRequest, answer: LiveAnswer
) -> LiveAnswer:
    """The production version's published list for the user, if there is one; else
    ``answer``. While the popularity fallback serves, the production version is the
    registry's."""
    name = svc.models.name
    try:
        version = production_version(svc.settings, name) if model.fallback else model.version
        batch = published_top(svc.store, svc.state, name, version, req.user_id) if version else None
    except Exception:  # the store is down as well: popular it is
        log.exception("reading the published list of %s failed", req.user_id)
        return answer
    if batch is None:
        return answer
    return batch_answer(model, batch, user, req, answer.degraded) or answer


@router.get(
    "/items/{item_id}/similar",
    tags=["recommendations"],
    response_model=SimilarItems,
    responses=problem_responses(*_AUTH, 404, 422),
    dependencies=[Depends(require("read"))],
)
async def similar(
    item_id: str, svc: ServicesDep, k: Annotated[int, Query(ge=1, le=200)] = 10
) -> SimilarItems:
    """Items most like one item (the served model's own notion, or co-listening).

    ``async`` on purpose: with the similar table published beside the version (``segue
    train``, the daily flow) the answer is a row lookup of microseconds, less than the
    thread-pool hand-off a plain ``def`` route pays (issue 19's p99 ≤ 5 ms at 300 req/s).
    Without the table, the model ranks the catalog (milliseconds) and that runs off the loop.
    """
    model = svc.models.current
    if item_id not in model.items:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"item {item_id!r} is not in the served catalog"
        )
    if has_similar_row(model, k):
        items = similar_live(model, item_id, k)
    else:
        items = await run_in_threadpool(similar_live, model, item_id, k)
    body = SimilarItems(
        item_id=item_id, items=_items(items), model=model.name, version=model.version
    )
    # serialised once here (pydantic's Rust encoder) rather than validated again by FastAPI
    return Response(body.model_dump_json(), media_type="application/json")  # type: ignore[return-value]


@router.get(
    "/items/{item_id}/plays",
    tags=["recommendations"],
    response_model=ItemPlays,
    responses=problem_responses(*_AUTH, 404),
    dependencies=[Depends(require("read"))],
)
def item_plays(item_id: str, svc: ServicesDep) -> ItemPlays:
    """Fresh counters from the live state: plays in the last hour and day (event time)."""
    model = svc.models.loaded
    known = model is not None and item_id in model.items
    if not known and not svc.store.existing_item_ids([item_id]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown item {item_id!r}")
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    hour, day = svc.state.item_counts([item_id], now_ms)
    return ItemPlays(item_id=item_id, last_hour=int(hour[0]), last_day=int(day[0]))


@router.post(
    "/events",
    tags=["events"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventsAccepted,
    responses=problem_responses(*_BODY),
    dependencies=[Depends(require("ingest"))],
)
def post_events(batch: EventBatch, svc: ServicesDep) -> EventsAccepted:
    """Accept a batch of events: all or none. They change the next recommendation at once."""
    received = dt.datetime.now(dt.UTC)
    events = [e.to_event(received) for e in batch.events]
    report = svc.intake.accept(events)
    svc.metrics.events.labels(report.path).inc(report.accepted)
    if svc.bandit is not None:
        svc.bandit.observe(events)
    return EventsAccepted(**vars(report))


@router.post(
    "/users",
    tags=["users"],
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=problem_responses(*_BODY, 409),
    dependencies=[Depends(require("ingest"))],
)
def create_user(body: UserIn, svc: ServicesDep) -> UserOut:
    """Sign up a listener with optional demographics and onboarding picks/genres."""
    user_id = body.id or uuid.uuid4().hex
    if svc.store.get_user(user_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"user {user_id!r} already exists")
    model = svc.models.loaded
    if body.picks and model is None:  # the picks become events, which need a model to check
        raise ModelUnavailable(
            "onboarding picks need a serving model: " + "; ".join(svc.models.missing)
        )
    unknown = [p for p in body.picks if model is None or p not in model.items]
    if unknown:
        unknown = sorted(set(unknown) - svc.store.existing_item_ids(unknown))
    if unknown and model is not None:  # names ("Late Kingdom"): resolved, or a 422 to ask
        names = catalog_names(svc)
        ids = {p: names.resolve_all([p], what="onboarding pick") for p in unknown}
        body = body.model_copy(update={"picks": [i for p in body.picks for i in ids.get(p, [p])]})
        unknown = []
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"picks name items not in the catalog: {unknown[:5]}",
        )
    now = dt.datetime.now(dt.UTC)
    fields = body.model_dump(exclude={"id", "picks", "genres"})
    user = User(id=user_id, signup_at=now, **fields)
    svc.store.upsert_users([user])
    svc.users.forget(user_id)
    svc.state.set_onboarding(user_id, body.picks, body.genres)
    if body.picks:  # the picks are likes: training sees them once persisted
        svc.intake.accept(
            [
                Event(
                    event_id=f"onboarding:{user_id}:{item}",
                    user_id=user_id,
                    item_id=item,
                    type=EventType.LIKE,
                    timestamp=now,
                    source="onboarding",
                )
                for item in dict.fromkeys(body.picks)
            ]
        )
    return UserOut.of(user)


@router.get(
    "/users/{user_id}",
    tags=["users"],
    response_model=UserOut,
    responses=problem_responses(*_AUTH, 404),
    dependencies=[Depends(require("read"))],
)
def get_user(user_id: str, svc: ServicesDep) -> UserOut:
    user = svc.store.get_user(user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown user {user_id!r}")
    return UserOut.of(user)


@router.patch(
    "/users/{user_id}/settings",
    tags=["users"],
    response_model=UserOut,
    responses=problem_responses(*_BODY, 404),
    dependencies=[Depends(require("ingest"))],
)
def update_settings(user_id: str, body: UserSettings, svc: ServicesDep) -> UserOut:
    """Consents, kids profile and Focus Mode; Focus Mode applies to events from now on."""
    flags = body.model_dump(exclude_none=True)
    try:
        user = svc.store.set_user_flags(user_id, **flags)
        svc.users.forget(user_id)
    except StoreError as exc:
        if "unknown user" in str(exc):
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        raise
    return UserOut.of(user)


@router.get(
    "/admin/model",
    tags=["operations"],
    responses=problem_responses(*_AUTH),
    dependencies=[Depends(require("admin"))],
)
def model_info(svc: ServicesDep) -> dict[str, object]:
    """The served model version."""
    model = svc.models.current
    return {
        "model": model.name,
        "version": model.version,
        "fallback": model.fallback,
        "loaded_at": model.loaded_at,
        "items": len(model.items),
        "users": len(model.users),
    }


@router.post(
    "/admin/model/reload",
    tags=["operations"],
    responses=problem_responses(*_AUTH),
    dependencies=[Depends(require("admin"))],
)
def reload_model(svc: ServicesDep) -> dict[str, object]:
    """Load the production version now if it changed (the watcher does this every few s)."""
    swapped = svc.models.refresh()
    return {"swapped": swapped, "version": svc.models.current.version}

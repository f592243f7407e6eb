"""What the admin console (``/admin``) reads and does, as ``/v1/admin`` JSON (admin scope).

The process's own health (request and event counters, latency percentiles from its
histogram, stream lag, degraded parts), the model registry with each version's gate metrics,
promote (through the same gate as ``segue models promote``) and roll back, what two versions
give one listener, the daily flow's runs, the NBA outbox by campaign and status, and the
store's row counts with the last imports. A promotion or a rollback is loaded by this process
at once (``svc.models.refresh``); other processes follow within the 2 s watcher.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from segue.api.problems import problem_responses
from segue.api.schemas import finite_or_none
from segue.api.security import require
from segue.api.services import Services, ServicesDep
from segue.batch.lifecycle import KEY_METRIC, GateRefused, promote_checked
from segue.errors import SegueError
from segue.jobs.import_log import recent_imports
from segue.registry import ModelRegistry, RegistryError, default_registry_root
from segue.serving.live import LiveRequest, recommend_live

router = APIRouter(
    prefix="/v1/admin",
    tags=["operations"],
    dependencies=[Depends(require("admin"))],
    responses=problem_responses(401, 403, 503),
)

#: Routes left out of the latency percentiles: the console's own polling and the scrapes.
_NOT_TRAFFIC = ("/v1/admin/health", "/metrics")
_STARTED = time.time()
#: A registry entry's name, as the registry accepts it.
VERSION = r"^v[0-9]{4,}$"
EntryName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class Health(BaseModel):
    """This process's counters since it started; the console turns two readings into rates."""

    at: float = Field(description="Unix time of this reading")
    uptime_s: float
    requests: int = Field(description="HTTP requests answered (the console's polling left out)")
    errors: int = Field(description="... of which 5xx")
    p50_ms: float | None = Field(description="Median request time (histogram estimate)")
    p99_ms: float | None
    events_ingested: int
    events_persisted: int
    dead_letters: int | None = Field(description="Waiting in the dead letters (None: unreadable)")
    stream_lag: int | None = Field(description="Events published and not yet persisted")
    degraded: list[str] = Field(description="Parts running on a fallback now")
    fallbacks: dict[str, int]
    recommendations: dict[str, int] = Field(description="Lists served, by path")
    model: str | None
    version: str | None
    state: str
    bus: str


class VersionOut(BaseModel):
    version: str
    model_type: str | None
    created_at: str | None
    date: str | None
    metrics: dict[str, Any]
    key_metric: float | None = Field(description=f"{KEY_METRIC}, what the gate compares")
    gate: dict[str, Any] | None
    training_data: dict[str, Any]
    serving: bool


class EntryOut(BaseModel):
    name: str
    production: str | None
    rollback_to: str | None = Field(description="What a rollback would serve again")
    versions: list[VersionOut]
    history: list[dict[str, Any]]


class Registry(BaseModel):
    serving: str = Field(description="The registry name this process serves")
    key_metric: str
    entries: list[EntryOut]


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(pattern=VERSION)
    force: bool = Field(default=False, description="Skip the gate")


class Changed(BaseModel):
    name: str
    version: str = Field(description="The version that serves now")
    loaded: bool = Field(description="This process serves it already")


class ListedItem(BaseModel):
    item_id: str
    title: str
    rank: int = Field(description="1-based position in this version's list")


class VersionList(BaseModel):
    version: str
    path: str = Field(description="How the list was made (personal, cold_start, ...)")
    items: list[ListedItem]


class Comparison(BaseModel):
    """One listener's list from two versions of the served entry, side by side."""

    name: str
    user_id: str
    a: VersionList
    b: VersionList
    added: list[str] = Field(description="In b's list, not in a's")
    removed: list[str] = Field(description="In a's list, not in b's")
    overlap: float = Field(description="Share of b's list also in a's")


class Runs(BaseModel):
    runs: list[dict[str, Any]]
    note: str | None = None


class Campaigns(BaseModel):
    """The next-best-action outbox: messages per status, and per campaign, channel and status."""

    statuses: dict[str, int]
    campaigns: dict[str, dict[str, dict[str, int]]]


class ImportOut(BaseModel):
    started_at: str
    command: str
    source: str
    kind: str | None
    status: str = Field(description="imported, failed or dry run")
    seconds: float
    rows: int | None
    inserted: dict[str, int]
    updated: dict[str, int]
    ignored: dict[str, int]
    error: str | None = Field(description="A failed import's error: file, line and column")


class DataStats(BaseModel):
    tables: dict[str, int]
    imports: list[ImportOut] = Field(description="The last 20 `segue import` runs, newest first")


def _percentile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile in ms from cumulative (upper bound s, count) pairs, interpolated."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    want, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= want:
            if upper == float("inf"):
                return lower * 1000
            share = (want - below) / (count - below) if count > below else 1.0
            return (lower + (upper - lower) * share) * 1000
        lower, below = upper, count
    return lower * 1000


def _samples(metric: Any) -> list[Any]:
    return [s for family in metric.collect() for s in family.samples]


@router.get("/health", response_model=Health)
def health(svc: ServicesDep) -> Health:
    """Requests, latency, events, the stream's lag and what is degraded, from this process."""
    m = svc.metrics
    cumulative: dict[float, float] = defaultdict(float)
    requests = errors = 0
    for s in _samples(m.latency):
        if s.labels.get("route") in _NOT_TRAFFIC:
            continue
        if s.name.endswith("_bucket"):
            cumulative[float(s.labels["le"])] += s.value
        elif s.name.endswith("_count"):
            requests += int(s.value)
            errors += int(s.value) if s.labels.get("status", "").startswith("5") else 0
    buckets = sorted(cumulative.items())

    def by_label(metric: Any, label: str) -> dict[str, int]:
        return {
            s.labels[label]: int(s.value) for s in _samples(metric) if s.name.endswith("_total")
        }

    def total(metric: Any) -> int:
        return int(sum(s.value for s in _samples(metric) if s.name.endswith("_total")))

    degraded = [s.labels["component"] for s in _samples(m.degraded) if s.value]
    try:
        dead: int | None = int(svc.bus.dead_count())
    except Exception:
        dead = None
    try:
        lag: int | None = int(svc.bus.pending("persist"))
    except Exception:
        lag = None
    model = svc.models.loaded
    return Health(
        at=time.time(),
        uptime_s=time.time() - _STARTED,
        requests=requests,
        errors=errors,
        p50_ms=_percentile(buckets, 0.5),
        p99_ms=_percentile(buckets, 0.99),
        events_ingested=total(m.events),
        events_persisted=total(m.events_persisted),
        dead_letters=dead,
        stream_lag=lag,
        degraded=degraded,
        fallbacks=by_label(m.fallbacks, "kind"),
        recommendations=by_label(m.recommendations, "path"),
        model=model.name if model else None,
        version=model.version if model else None,
        state=svc.state_mode(),
        bus=svc.mode if svc.mode == "embedded" else "redis",
    )


def _registry(svc: Services) -> ModelRegistry:
    return ModelRegistry(default_registry_root(svc.settings))


def _entry(registry: ModelRegistry, name: str) -> EntryOut:
    production = registry.production(name)
    versions = []
    for v in registry.versions(name):
        m = v.manifest
        metric = m.get("metrics", {}).get(KEY_METRIC)
        versions.append(
            VersionOut(
                version=v.version,
                model_type=m.get("model_type"),
                created_at=m.get("created_at"),
                date=None if m.get("date") is None else str(m.get("date")),
                metrics=dict(m.get("metrics", {})),
                key_metric=None if metric is None else float(metric),
                gate=m.get("gate"),
                training_data=dict(m.get("training_data", {})),
                serving=production is not None and production.version == v.version,
            )
        )
    return EntryOut(
        name=name,
        production=production.version if production else None,
        rollback_to=registry.rollback_target(name),
        versions=versions,
        history=registry.history(name)[-20:],
    )


@router.get("/registry", response_model=Registry)
def registry(svc: ServicesDep) -> Registry:
    """Every registry entry's versions with their metrics and gate, newest last."""
    found = _registry(svc)
    names = found.names() if found.root.is_dir() else []
    return Registry(
        serving=svc.models.name,
        key_metric=KEY_METRIC,
        entries=[_entry(found, n) for n in names],
    )


def _changed(svc: Services, name: str, version: str) -> Changed:
    if name == svc.models.name:
        svc.models.refresh()
    loaded = svc.models.loaded
    return Changed(
        name=name, version=version, loaded=loaded is not None and loaded.version == version
    )


@router.post(
    "/registry/{name}/promote",
    response_model=Changed,
    responses=problem_responses(404, 409, 422),
)
def promote(name: EntryName, body: PromoteIn, svc: ServicesDep) -> Changed:
    """Serve a version: through the gate (a 409 says why it refused), unless ``force``."""
    found = _registry(svc)
    try:
        if body.force:
            found.promote(name, body.version)
        else:
            promote_checked(found, name, body.version)
    except GateRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except (RegistryError, SegueError) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return _changed(svc, name, body.version)


@router.post(
    "/registry/{name}/rollback",
    response_model=Changed,
    responses=problem_responses(404, 409, 422),
)
def rollback(name: EntryName, svc: ServicesDep) -> Changed:
    """Serve the previously promoted version again; 409 when there is none."""
    found = _registry(svc)
    if name not in (found.names() if found.root.is_dir() else []):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no registry entry {name!r}")
    try:
        version = found.rollback(name)
    except (RegistryError, SegueError) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return _changed(svc, name, version.version)


@router.get(
    "/registry/{name}/compare",
    response_model=Comparison,
    responses=problem_responses(404, 409, 422),
)
def compare(
    name: EntryName,
    svc: ServicesDep,
    user_id: Annotated[str, Query(min_length=1, max_length=256, description="The listener")],
    a: Annotated[str | None, Query(pattern=VERSION, description="Default: rollback's")] = None,
    b: Annotated[str | None, Query(pattern=VERSION, description="Default: production")] = None,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Comparison:
    """What a version changes in one listener's list: the list each of two versions gives them
    now (the same live path as ``/recommendations``: their plays since training, their
    session, the rules), with what came in and what went out. Only the entry this process
    serves can be compared (its versions load beside production, as experiment variants do);
    a is by default the version a rollback would serve, b the production version."""
    if name != svc.models.name:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"this process serves {svc.models.name!r}; compare that entry's versions",
        )
    found = _registry(svc)
    production = found.production(name) if name in found.names() else None
    if production is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no production version of {name!r}")
    a = a or found.rollback_target(name) or production.version
    b = b or production.version
    user = svc.users.get(user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown user {user_id!r}")
    lists = []
    for version in (a, b):
        model = svc.models.version(version)
        if model is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{name} {version} cannot be loaded")
        answer = recommend_live(model, svc.state, user, LiveRequest(user_id, k=k))
        lists.append(
            VersionList(
                version=version,
                path=answer.path,
                items=[
                    ListedItem(item_id=i.item_id, title=i.title, rank=r)
                    for r, i in enumerate(answer.items, 1)
                ],
            )
        )
    before = [i.item_id for i in lists[0].items]
    after = [i.item_id for i in lists[1].items]
    return Comparison(
        name=name,
        user_id=user_id,
        a=lists[0],
        b=lists[1],
        added=[i for i in after if i not in before],
        removed=[i for i in before if i not in after],
        overlap=len(set(after) & set(before)) / len(after) if after else 0.0,
    )


@router.get("/runs", response_model=Runs)
def runs(svc: ServicesDep) -> Runs:
    """The daily flow's latest runs (Metaflow's records), or why there are none to show."""
    from segue.batch.runs import list_runs

    try:
        found = list_runs(svc.settings, limit=20)
    except SegueError as exc:  # the flows extra is not installed
        return Runs(runs=[], note=str(exc))
    except Exception as exc:  # Metaflow's records unreadable: say so, do not fail the page
        return Runs(runs=[], note=f"runs unreadable: {type(exc).__name__}")
    rows = [
        {
            "run_id": r.run_id,
            "status": r.status,
            "created_at": r.created_at,
            "parameters": {k: str(v) for k, v in r.parameters.items()},
            "metrics": {k: v for k, v in r.metrics.items() if isinstance(v, int | float | str)},
            "artifacts": r.artifacts,
        }
        for r in found
    ]
    return Runs(runs=rows, note=None if rows else "no daily flow runs yet: segue flow run")


class StepOut(BaseModel):
    name: str
    status: str = Field(description="ok, failed or running")
    tasks: int = Field(
        description="Tasks of the step (two per model where training fans out: gate, fit)"
    )
    started_at: str | None
    finished_at: str | None
    seconds: float | None
    error: str | None = Field(description="A failed step's error; the traceback is in the log")


@router.get("/runs/{run_id}/steps", response_model=list[StepOut], responses=problem_responses(404))
def steps(
    run_id: Annotated[str, Path(pattern=r"^[0-9A-Za-z_-]{1,64}$")], svc: ServicesDep
) -> list[StepOut]:
    """The steps one daily run reached, in order, with their times and a failed step's error."""
    from segue.batch.runs import run_steps

    try:
        found = run_steps(svc.settings, run_id)
    except SegueError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return [StepOut.model_validate(vars(s)) for s in found]


class Lift(BaseModel):
    """A campaign's outcome (``segue nba report``): reactivation of users without a play in
    the 28 days before it, treated against the holdout, with Newcombe's interval."""

    campaign: str
    messages: int
    by_status: dict[str, int]
    impressions: int
    clicks: int
    conversions: int
    ctr: float | None
    treated_inactive: int
    treated_reactivated: int
    holdout_inactive: int
    holdout_reactivated: int
    lift: float | None = Field(description="Treated minus holdout reactivation rate")
    low: float | None
    high: float | None
    window_days: int


@router.get(
    "/campaigns/{campaign}/lift", response_model=Lift, responses=problem_responses(404, 422)
)
def campaign_lift(
    campaign: Annotated[str, Path(min_length=1, max_length=200)],
    svc: ServicesDep,
    window_days: Annotated[int, Query(ge=1, le=90)] = 14,
) -> Lift:
    """A campaign's CTR and its lift on reactivation, asked for one campaign at a time (it
    reads the window's plays: not part of the console's first load)."""
    from segue.nba.report import campaign_report

    try:
        report = campaign_report(svc.store, campaign, window_days)
    except SegueError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    diff, low, high = report.lift()
    return Lift(
        campaign=campaign,
        messages=report.messages,
        by_status=report.by_status,
        impressions=report.impressions,
        clicks=report.clicks,
        conversions=report.conversions,
        ctr=finite_or_none(report.ctr),
        treated_inactive=report.treated.inactive,
        treated_reactivated=report.treated.reactivated,
        holdout_inactive=report.holdout.inactive,
        holdout_reactivated=report.holdout.reactivated,
        lift=finite_or_none(diff),
        low=finite_or_none(low),
        high=finite_or_none(high),
        window_days=window_days,
    )


@router.get("/campaigns", response_model=Campaigns)
def campaigns(svc: ServicesDep) -> Campaigns:
    """Outbox messages per status, and per campaign, channel and status."""
    statuses = svc.store.outbox_counts()
    per: dict[str, dict[str, dict[str, int]]] = {}
    if sum(statuses.values()) <= 200_000:  # a page's worth of reading; else statuses only
        for msg in svc.store.outbox_messages():
            channels = per.setdefault(msg.campaign, {})
            counts = channels.setdefault(msg.channel, {})
            counts[msg.status] = counts.get(msg.status, 0) + 1
    return Campaigns(statuses=statuses, campaigns=per)


@router.get("/stats", response_model=DataStats)
def data_stats(svc: ServicesDep) -> DataStats:
    """Rows per table of the store (``segue stats``) and how the last imports ended."""
    from segue.store.base import READABLE_TABLES

    return DataStats(
        tables={name: svc.store.count(name) for name in READABLE_TABLES},
        imports=[ImportOut.model_validate(vars(r)) for r in recent_imports(svc.settings.data_dir)],
    )

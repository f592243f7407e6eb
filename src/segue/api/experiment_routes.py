"""Experiments for operators over HTTP: ``/v1/admin/experiments`` (admin scope).

The same book and the same report as ``segue experiments create | start | stop | list |
report``: the routes write ``<data_dir>/experiments.json`` through
:class:`~segue.experiments.book.ExperimentBook`, which every serving process re-reads when
it changes, so a start here is served by the whole installation within a request.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from segue.api.problems import problem_responses
from segue.api.schemas import finite_or_none
from segue.api.security import require
from segue.api.services import Services, ServicesDep
from segue.errors import SegueError
from segue.experiments.book import MAX_DAYS, RUNNING, STOPPED, ExperimentBook, Plan, new_plan

if TYPE_CHECKING:
    from segue.jobs.experiments import Sequential

router = APIRouter(
    prefix="/v1/admin/experiments",
    tags=["operations"],
    dependencies=[Depends(require("admin"))],
    responses=problem_responses(401, 403, 422, 503),
)

ExperimentId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
SettingValue = Annotated[str | int | float, Field(union_mode="left_to_right")]


class VariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    share: float | None = Field(default=None, gt=0, le=1, description="default: equal shares")
    settings: dict[str, SettingValue] = Field(
        default_factory=dict,
        max_length=8,
        description="version (a registry version, v0003), max_per_artist, new_item_share, surface",
    )


class ExperimentIn(BaseModel):
    """A new experiment, created as a draft; the first variant is the control."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    variants: list[VariantIn] = Field(min_length=2, max_length=10)
    layer: str = Field(default="default", min_length=1, max_length=64)
    start: float = Field(default=0.0, ge=0, le=1, description="the part of its layer it owns")
    end: float = Field(default=1.0, ge=0, le=1)
    days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DAYS,
        description="planned duration in days: the report then tests each daily look against "
        "O'Brien–Fleming boundaries spending alpha over these days (none: read the "
        "always-valid p while peeking)",
    )


class VariantOut(BaseModel):
    name: str
    share: float
    settings: dict[str, Any]


class ExperimentOut(BaseModel):
    id: str
    status: str
    layer: str
    start: float
    end: float
    variants: list[VariantOut]
    started_ms: int | None
    stopped_ms: int | None
    days: int | None = Field(description="planned duration in days; null: no plan")

    @classmethod
    def of(cls, plan: Plan) -> ExperimentOut:
        e = plan.experiment
        return cls(
            id=e.id,
            status=plan.status,
            layer=e.layer,
            start=e.start,
            end=e.end,
            variants=[
                VariantOut(name=v.name, share=v.share, settings=plan.settings.get(v.name, {}))
                for v in e.variants
            ],
            started_ms=plan.started_ms,
            stopped_ms=plan.stopped_ms,
            days=plan.days,
        )


class SequentialOut(BaseModel):
    """The group-sequential decision at the latest look within the plan."""

    day: int = Field(description="the look's day of the plan (1: the first)")
    planned_days: int
    fraction: float = Field(description="information fraction: day / planned days")
    z: float | None
    boundary: float | None = Field(
        description="two-sided: stop for efficacy when |z| reaches it (null: out of reach)"
    )
    alpha_spent: float
    crossed: bool = Field(description="reached at this or an earlier look: stop for efficacy")
    crossed_day: int | None


class EffectOut(BaseModel):
    """Null where the figure is undefined (no variance in either arm)."""

    metric: str
    variant: str
    control: float | None
    treatment: float | None
    difference: float | None
    low: float | None
    high: float | None
    p_holm: float | None
    always_valid_p: float | None = Field(description="mSPRT over the daily looks")
    sequential: SequentialOut | None = Field(
        default=None, description="the O'Brien–Fleming decision; null without a planned duration"
    )


class GuardrailOut(BaseModel):
    name: str
    variant: str
    control: float | None
    treatment: float | None
    detail: str
    breached: bool


class ReportOut(BaseModel):
    """``segue experiments report``'s figures, and its Markdown."""

    experiment: str
    control: str
    listeners: dict[str, int]
    lists: dict[str, int]
    sample_ratio_p: float | None
    sample_ratio_mismatch: bool
    planned_days: int | None
    effects: list[EffectOut]
    guardrails: list[GuardrailOut]
    markdown: str


def _book(svc: Services) -> ExperimentBook:
    if svc.experiments is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "experiments are not set up")
    return svc.experiments


def _known(book: ExperimentBook, experiment_id: str) -> Plan:
    try:
        return book.get(experiment_id)
    except SegueError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.get("", response_model=list[ExperimentOut])
def list_experiments(svc: ServicesDep) -> list[ExperimentOut]:
    """Every experiment, drafts and stopped ones too."""
    return [ExperimentOut.of(p) for p in _book(svc).plans()]


@router.post(
    "",
    response_model=ExperimentOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(409),
)
def create_experiment(svc: ServicesDep, body: ExperimentIn) -> ExperimentOut:
    """Define one as a draft (``…/start`` runs it); settings are checked as the CLI's."""
    book = _book(svc)
    if any(p.experiment.id == body.id for p in book.plans()):
        raise HTTPException(status.HTTP_409_CONFLICT, f"experiment {body.id!r} exists already")
    plan = new_plan(
        body.id,
        [(v.name, v.share, v.settings) for v in body.variants],
        layer=body.layer,
        start=body.start,
        end=body.end,
        days=body.days,
    )
    return ExperimentOut.of(book.create(plan))


@router.post("/{experiment_id}/start", response_model=ExperimentOut,
             responses=problem_responses(404, 409))  # fmt: skip
def start_experiment(svc: ServicesDep, experiment_id: ExperimentId) -> ExperimentOut:
    """Serve it from now on; refused (409) when it is not a draft or overlaps in its layer."""
    return _set_status(svc, experiment_id, RUNNING)


@router.post("/{experiment_id}/stop", response_model=ExperimentOut,
             responses=problem_responses(404, 409))  # fmt: skip
def stop_experiment(svc: ServicesDep, experiment_id: ExperimentId) -> ExperimentOut:
    """Everyone gets the default again; its exposures and report stay."""
    return _set_status(svc, experiment_id, STOPPED)


def _set_status(svc: Services, experiment_id: str, wanted: str) -> ExperimentOut:
    book = _book(svc)
    _known(book, experiment_id)
    try:
        plan = book.set_status(experiment_id, wanted, int(time.time() * 1000))
    except SegueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return ExperimentOut.of(plan)


@router.get("/{experiment_id}/report", response_model=ReportOut,
            responses=problem_responses(404))  # fmt: skip
async def experiment_report(
    svc: ServicesDep,
    experiment_id: ExperimentId,
    start: Annotated[dt.date | None, Query(alias="from", description="default: its start")] = None,
    end: Annotated[dt.date | None, Query(alias="to", description="default: today")] = None,
) -> ReportOut:
    """Effects with intervals, Holm-adjusted and always-valid p-values, the O'Brien–Fleming
    decision (with a planned duration), the sample-ratio check and the guardrails, from the
    exposure log (read off the event loop: it scans the range)."""
    from segue.jobs.experiments import experiment_report as build

    book = _book(svc)
    plan = _known(book, experiment_id)
    today = dt.datetime.now(dt.UTC).date()
    began = plan.started_ms
    first = start or (
        today if began is None else dt.datetime.fromtimestamp(began / 1000, dt.UTC).date()
    )
    last = end or today
    if last < first:
        raise SegueError(f"to ({last}) is before from ({first})")
    report = await run_in_threadpool(build, svc.store, book, experiment_id, first, last)
    split = report.split
    return ReportOut(
        experiment=report.experiment,
        control=report.control,
        listeners=report.listeners,
        lists=report.lists,
        sample_ratio_p=None if split is None or math.isnan(split.p) else split.p,
        sample_ratio_mismatch=bool(split and split.mismatch),
        planned_days=report.planned_days,
        effects=[
            EffectOut(
                metric=m.metric,
                variant=m.variant,
                control=finite_or_none(m.effect.control),
                treatment=finite_or_none(m.effect.treatment),
                difference=finite_or_none(m.effect.difference),
                low=finite_or_none(m.effect.low),
                high=finite_or_none(m.effect.high),
                p_holm=finite_or_none(m.adjusted_p),
                always_valid_p=finite_or_none(m.always_valid_p),
                sequential=_sequential(m.sequential),
            )
            for m in report.metrics
        ],
        guardrails=[
            GuardrailOut(
                name=g.name,
                variant=g.variant,
                control=finite_or_none(g.control),
                treatment=finite_or_none(g.treatment),
                detail=g.detail,
                breached=g.breached,
            )
            for g in report.guardrails
        ],
        markdown=report.markdown(),
    )


def _sequential(s: Sequential | None) -> SequentialOut | None:
    if s is None:
        return None
    return SequentialOut(
        day=s.day,
        planned_days=s.planned_days,
        fraction=s.fraction,
        z=finite_or_none(s.z),
        boundary=finite_or_none(s.bound),
        alpha_spent=s.spent,
        crossed=s.crossed,
        crossed_day=s.crossed_day,
    )

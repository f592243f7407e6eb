"""The event stream's dead letters for operators: ``/v1/admin/dead-letters`` to list them,
``…/replay`` to publish them again after a fix, ``…/drop`` to delete them (admin scope).

The same as ``segue events dead list | replay | drop``, and the only way to reach them in the
embedded mode, where the in-process bus keeps them inside the serving process. With Redis
they are the stream ``<prefix>events:dead`` that every worker (standalone ones too) adds to;
``/metrics`` reports how many wait (``segue_events_dead_letters``). Both streams' letters are
here, events and served lists (``stream``: ``events`` or ``exposures``); a replay puts each
back on its own stream.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from segue.api.problems import problem_responses
from segue.api.security import require
from segue.api.services import ServicesDep
from segue.online.bus import BusError, BusUnavailable, DeadLetter

router = APIRouter(
    prefix="/v1/admin/dead-letters",
    tags=["operations"],
    dependencies=[Depends(require("admin"))],
    responses=problem_responses(401, 403, 422, 503),
)

#: A dead letter's id: a counter in the embedded mode, a Redis stream id with Redis.
DeadLetterId = Annotated[str, Field(pattern=r"^[0-9]{1,20}(-[0-9]{1,20})?$")]


class DeadLetterOut(BaseModel):
    """One dead letter: the message as published, why it failed, how often."""

    id: str
    stream: str = Field(description="the stream it came from: events or exposures")
    message_id: str = Field(description="the id it had on the stream")
    group: str
    consumer: str
    attempts: int
    error: str
    dead_at_ms: int
    event: dict[str, Any] = Field(
        description="the message's fields (an event's, or a served list's on the exposures "
        "stream), as far as they are JSON"
    )

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterOut:
        return cls(
            **{k: v for k, v in vars(letter).items() if k != "payload"}, event=letter.fields()
        )


class DeadLetterChoice(BaseModel):
    """Which dead letters: ``ids``, or ``all``."""

    model_config = ConfigDict(extra="forbid")

    ids: list[DeadLetterId] = Field(default_factory=list, max_length=1000)
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> DeadLetterChoice:
        if self.all == bool(self.ids):
            raise ValueError("give the dead-letter ids or all: true (one of the two)")
        return self


class DeadLettersDone(BaseModel):
    """The ids acted on; ``missing``: asked for and not (or no longer) among them."""

    done: list[str]
    missing: list[str]


def _unavailable(exc: BusError) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the event bus: {exc}")


@router.get("", response_model=list[DeadLetterOut])
def list_dead_letters(
    svc: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadLetterOut]:
    """The dead letters, oldest first."""
    try:
        return [DeadLetterOut.of(letter) for letter in svc.bus.dead_letters(limit)]
    except BusUnavailable as exc:
        raise _unavailable(exc) from exc


def _act(svc: ServicesDep, choice: DeadLetterChoice, verb: str) -> DeadLettersDone:
    chosen = None if choice.all else list(dict.fromkeys(choice.ids))
    action = svc.bus.replay_dead if verb == "replay" else svc.bus.drop_dead
    try:
        done = action(chosen)
    except BusUnavailable as exc:
        raise _unavailable(exc) from exc
    acted = set(done)
    return DeadLettersDone(done=done, missing=[i for i in chosen or [] if i not in acted])


@router.post("/replay", response_model=DeadLettersDone)
def replay_dead_letters(svc: ServicesDep, choice: DeadLetterChoice) -> DeadLettersDone:
    """Publish them onto the stream again (attempts start anew) and remove them."""
    return _act(svc, choice, "replay")


@router.post("/drop", response_model=DeadLettersDone)
def drop_dead_letters(svc: ServicesDep, choice: DeadLetterChoice) -> DeadLettersDone:
    """Delete them for good."""
    return _act(svc, choice, "drop")

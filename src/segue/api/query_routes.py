"""``POST /v1/query``: a music request in words, answered with a validated call or a question.

The language model (fine-tuned MiniLM, int8 for serving) and the entity index are loaded on
first use and kept; for play requests the answer carries the queue the player would start,
from the served recommender — only once no question is open: a "confirm" answer's queue
comes when the same text is sent again with ``confirmed: true``.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from segue.api.problems import problem_responses
from segue.api.schemas import QueryResponse
from segue.api.security import require
from segue.api.services import Services, ServicesDep
from segue.jobs.ask import answer_query, load_parser
from segue.nlu.parser import Parser

router = APIRouter(prefix="/v1", tags=["requests"])


class Query(BaseModel):
    """What the listener said or typed, and who they are."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=500)
    user_id: str | None = Field(default=None, max_length=200)
    local_time: dt.datetime | None = Field(
        default=None, description="The listener's local time ('something for this morning')"
    )
    k: int = Field(default=10, ge=1, le=50, description="Length of the queue for play requests")
    confirmed: bool = Field(
        default=False,
        description=(
            "The listener said yes to the answer's confirmation question: send the same text "
            "again with this set to get the queue (none is built before)"
        ),
    )


def _parser(svc: Services) -> Parser:
    return svc.component(
        "parser",
        lambda: load_parser(svc.store, svc.settings),
        "music requests",
        "segue nlu train",
    )


@router.post(
    "/query",
    response_model=QueryResponse,
    responses=problem_responses(401, 403, 404, 413, 422, 503),
    dependencies=[Depends(require("read"))],
)
def query(body: Query, svc: ServicesDep) -> QueryResponse:
    """Intent, slots, linked catalog entities, the validated call, its confidence, and a
    question when something is missing or uncertain; for play requests, the queue."""
    parser = _parser(svc)
    if body.user_id is not None and svc.users.get(body.user_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown user {body.user_id!r}")
    answer = answer_query(
        svc.store,
        parser,
        body.text,
        user_id=body.user_id,
        now=body.local_time,
        trained=svc.models.current.trained,
        k=body.k,
        confirmed=body.confirmed,
    )
    return QueryResponse.of(answer)

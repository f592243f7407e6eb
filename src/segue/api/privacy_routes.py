"""A listener's data on request: ``GET /v1/users/{id}/export`` and ``DELETE /v1/users/{id}``.

Both need the ``admin`` scope: API keys name no listener, so no key can stand for "this
listener themself". The export is streamed (the events are read in chunks), the erasure is
:func:`segue.jobs.privacy.delete_user` with this process's user cache; see docs/serving.md.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from segue.api.problems import problem_responses
from segue.api.security import require
from segue.api.services import ServicesDep
from segue.jobs.privacy import UnknownListener, delete_user, export_chunks
from segue.online.state import StateUnavailable

router = APIRouter(prefix="/v1/users/{user_id}", tags=["users"])
#: What both routes may answer besides 200: no key, a key without admin, Redis or the store
#: not answering (for DELETE: the store part is done, call again).
_AUTH = (401, 403, 503)


class Erased(BaseModel):
    """What an erasure removed."""

    user_id: str
    removed: dict[str, int] = Field(description="rows deleted per store table")
    online: int = Field(description="online-state keys and stream messages deleted")
    previously_erased: bool = Field(description="the id had been erased before")


@router.get(
    "/export",
    dependencies=[Depends(require("admin"))],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/json": {}}, "description": "the export document"},
        **problem_responses(*_AUTH, 404),
    },
)
def export_user(user_id: str, svc: ServicesDep) -> StreamingResponse:
    """Everything held about the listener, as one JSON document (streamed)."""
    try:
        chunks = export_chunks(svc.store, svc.state, user_id)
    except UnknownListener as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return StreamingResponse(
        chunks,
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="segue-user-export.json"'},
    )


@router.delete(
    "",
    response_model=Erased,
    dependencies=[Depends(require("admin"))],
    responses=problem_responses(*_AUTH, 404),
)
def delete_listener(user_id: str, svc: ServicesDep) -> Erased:
    """Erase the listener: store rows, online state, stream messages, this process's cache."""
    try:
        report = delete_user(svc.store, svc.state, user_id, forget_cached=svc.users.forget)
    except UnknownListener as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except StateUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the listener's store rows are erased, but the online state is not: {exc}; "
            "call DELETE again once it answers",
        ) from exc
    return Erased(
        user_id=user_id,
        removed=report.removed,
        online=report.online,
        previously_erased=report.previously_erased,
    )

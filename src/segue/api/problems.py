"""One error format for every non-2xx answer: RFC 9457 problem details.

Every error body is ``application/problem+json`` with ``type`` (a URI naming the kind of
problem; ``about:blank`` when the HTTP status says it all), ``title`` (short, the same for
every problem of that type), ``status``, ``detail`` (what went wrong for this request and,
where there is one, the fix) and ``instance`` (the request's path). Invalid requests add
``errors``: one entry per invalid field with its location (``loc`` as FastAPI reports it,
e.g. ``["body", "events", 3, "type"]``, plus a JSON ``pointer`` into the body, or the
``name`` of the query parameter, path segment or header) and what is wrong with it.

The handlers here turn FastAPI's validation errors, ``HTTPException`` (raised by the routes
and by Starlette for unknown paths and methods), :class:`~segue.errors.SegueError`, a
database that cannot answer, and anything unexpected (500, without internals) into that
format; :func:`problem_responses` declares a route's problem statuses in OpenAPI and
:func:`install_openapi` puts the schema into the document and replaces FastAPI's default
422 description with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from segue.errors import NameNotResolved, SegueError
from segue.serving.holder import ModelUnavailable

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
#: Problem types of segue's own (URNs: they name a kind of problem, nothing to fetch).
VALIDATION = "urn:segue:problem:invalid-request"
NOT_READY = "urn:segue:problem:not-ready"
STORE_UNAVAILABLE = "urn:segue:problem:store-unavailable"
INVALID_INPUT = "urn:segue:problem:invalid-input"
INTERNAL = "urn:segue:problem:internal-error"
AMBIGUOUS_NAME = "urn:segue:problem:ambiguous-name"
UNKNOWN_NAME = "urn:segue:problem:unknown-name"
#: Seconds a client should wait before retrying a 503.
RETRY_AFTER_S = 5


class FieldError(BaseModel):
    """One invalid field of a request."""

    loc: list[str | int] = Field(description='Where, as FastAPI reports it: ["body", "k"], …')
    location: str = Field(description="body, query, path, header or cookie")
    pointer: str | None = Field(
        default=None, description="JSON pointer into the body (RFC 6901), for body fields"
    )
    name: str | None = Field(
        default=None, description="The query parameter, path segment or header"
    )
    detail: str = Field(description="What is wrong with it")
    type: str = Field(description="The kind of check that failed (pydantic's error type)")


class NameSuggestion(BaseModel):
    """A catalog item close to a name that did not resolve."""

    id: str
    kind: str
    title: str
    by: str | None = Field(default=None, description="The artist, or a podcast's show")


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (``application/problem+json``)."""

    type: str = Field(default="about:blank", description="URI naming the kind of problem")
    title: str = Field(description="Short summary of the kind of problem")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What went wrong for this request, and the fix if any")
    instance: str = Field(description="The request's path")
    errors: list[FieldError] | None = Field(
        default=None, description="Invalid requests: each invalid field and what is wrong"
    )
    suggestions: list[NameSuggestion] | None = Field(
        default=None,
        description="A name that fits several items, or none: the closest items, to ask back",
    )


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    type_: str = "about:blank",
    title: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    suggestions: Sequence[NameSuggestion] | None = None,
) -> JSONResponse:
    """The problem+json response for ``request``."""
    body = Problem(
        type=type_,
        title=title or _phrase(status),
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=list(errors) if errors is not None else None,
        suggestions=list(suggestions) if suggestions is not None else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# -- the handlers ---------------------------------------------------------------------------
def _field_error(error: Mapping[str, Any]) -> FieldError:
    loc = [p if isinstance(p, int) else str(p) for p in error.get("loc", ())]
    location = str(loc[0]) if loc else "body"
    rest = loc[1:]
    pointer = name = None
    if location == "body":
        pointer = "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in rest)
    elif rest:
        name = str(rest[0])
    return FieldError(
        loc=loc,
        location=location,
        pointer=pointer,
        name=name,
        detail=str(error.get("msg", "invalid")),
        type=str(error.get("type", "value_error")),
    )


def _where(field: FieldError) -> str:
    if field.location == "body":
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in field.loc[1:]).lstrip(
            "."
        )
        return f"body {path}" if path else "body"
    return f"{field.location} parameter {field.name!r}" if field.name else field.location


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [_field_error(e) for e in exc.errors()]
    shown = "; ".join(f"{_where(f)}: {f.detail}" for f in fields[:5])
    more = f" (and {len(fields) - 5} more)" if len(fields) > 5 else ""
    count = f"{len(fields)} invalid field{'s' if len(fields) != 1 else ''}"
    return problem(
        request,
        422,
        f"{count}: {shown}{more}",
        type_=VALIDATION,
        title="The request is not valid",
        errors=fields,
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no endpoint at {request.url.path}; the API is under /v1 (see /docs)"
    elif exc.status_code == 405 and detail == "Method Not Allowed":
        detail = f"{request.method} is not allowed on {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 503:
        headers.setdefault("Retry-After", str(RETRY_AFTER_S))
    return problem(request, exc.status_code, detail, headers=headers)


async def _not_ready(request: Request, exc: Exception) -> JSONResponse:
    return problem(
        request,
        503,
        str(exc),
        type_=NOT_READY,
        title="Not set up yet",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _segue(request: Request, exc: Exception) -> JSONResponse:
    return problem(request, 422, str(exc), type_=INVALID_INPUT, title="The input cannot be used")


async def _name(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NameNotResolved)
    return problem(
        request,
        422,
        str(exc),
        type_=AMBIGUOUS_NAME if exc.ambiguous else UNKNOWN_NAME,
        title="The name fits several items" if exc.ambiguous else "No item has that name",
        suggestions=[NameSuggestion.model_validate(s) for s in exc.suggestions],
    )


async def _database(request: Request, exc: Exception) -> JSONResponse:
    log.warning("store unavailable for %s %s: %s", request.method, request.url.path, exc)
    return problem(
        request,
        503,
        "the store did not answer in time (busy, locked or unreachable); retry shortly",
        type_=STORE_UNAVAILABLE,
        title="The store is unavailable",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(
        request,
        500,
        "an unexpected error occurred; it was logged (nothing more is told to clients)",
        type_=INTERNAL,
        title="Internal error",
    )


Handler = Callable[[Request, Exception], Any]


def install_handlers(app: FastAPI) -> None:
    """Every error of ``app`` as problem details."""
    handlers: list[tuple[type[Exception], Handler]] = [
        (RequestValidationError, _validation),
        (StarletteHTTPException, _http),
        (ModelUnavailable, _not_ready),
        (NameNotResolved, _name),
        (SegueError, _segue),
        (sa.exc.OperationalError, _database),
        (sa.exc.InterfaceError, _database),
        (sa.exc.TimeoutError, _database),  # the connection pool ran dry
        (Exception, _unexpected),
    ]
    for kind, handler in handlers:
        app.add_exception_handler(kind, handler)


# -- OpenAPI --------------------------------------------------------------------------------
_DESCRIPTIONS = {
    400: "Bad request",
    401: "No API key, or an unknown one",
    403: "The API key lacks the scope",
    404: "Not found",
    409: "Already exists",
    413: "Request body too large",
    422: "Invalid request: `errors` lists each field and what is wrong",
    500: "Unexpected error (no internals are told)",
    503: "Not set up yet (the fix is in `detail`), or the store is unavailable",
}
_REF = {"$ref": "#/components/schemas/Problem"}


def _declared(code: int) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS.get(code, _phrase(code)),
        "content": {MEDIA_TYPE: {"schema": dict(_REF)}},
    }


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status code with the problem schema."""
    return {code: _declared(code) for code in codes}


def install_openapi(app: FastAPI) -> None:
    """The OpenAPI document with the Problem schema, FastAPI's default 422 answer replaced
    by problem details."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        defs = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(defs.pop("$defs", {}))
        schemas["Problem"] = defs
        for path_item in doc.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:  # FastAPI's own, for every route with parameters
                    responses["422"] = _declared(422)
                # what every route behind a key, or with a body, may answer, in case a
                # route did not say so itself
                implied = (401, 403, 503) if operation.get("security") else ()
                if "requestBody" in operation:
                    implied = (*implied, 413, 422)
                for code in implied:
                    responses.setdefault(str(code), _declared(code))
                for code, response in responses.items():
                    if code[:1] not in ("4", "5"):
                        continue
                    content = response.setdefault("content", {})
                    if not content:  # declared without a body: ours
                        content[MEDIA_TYPE] = {"schema": dict(_REF)}
                    elif "application/json" in content and MEDIA_TYPE not in content:
                        # a problem with extension members (e.g. /v1/ready's 503)
                        content[MEDIA_TYPE] = content.pop("application/json")
        if not _still_used(doc, "HTTPValidationError"):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _still_used(doc: Mapping[str, Any], name: str) -> bool:
    ref = f"#/components/schemas/{name}"
    paths = doc.get("paths", {})
    return ref in repr(paths)

"""The two pages and their static files.

A page is its template rendered once per process (what it shows comes from the API at run
time), so serving one costs a dictionary lookup; static files carry a content hash in their
URL (``?v=``), so a browser may keep them.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import jinja2
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from segue.products.stations import MOODS

HERE = Path(__file__).resolve().parent
STATIC_PATH = "/web/static"
#: Pages are small and change with the package only: no-cache makes a browser revalidate.
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

router = APIRouter(include_in_schema=False)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def asset(name: str) -> str:
    """The URL of a static file, versioned by its content."""
    digest = hashlib.sha256((HERE / "static" / name).read_bytes()).hexdigest()[:12]
    return f"{STATIC_PATH}/{name}?v={digest}"


@cache
def render(template: str) -> str:
    return (
        _environment()
        .get_template(template)
        .render(
            asset=asset,
            moods=sorted(MOODS),
        )
    )


@router.get("/", response_class=HTMLResponse)
async def listener_app() -> HTMLResponse:
    """The listener app: sign in or onboard, Home, the player, search and requests, stations,
    Wrapped, settings and one's data."""
    return HTMLResponse(render("listener.html"), headers=_HEADERS)


@router.get("/admin", response_class=HTMLResponse)
async def admin_console() -> HTMLResponse:
    """The admin console: health, registry, runs, campaigns, dead letters, data."""
    return HTMLResponse(render("admin.html"), headers=_HEADERS)


def install(app: FastAPI) -> None:
    """Serve the pages and their static files from ``app``."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="web-static")

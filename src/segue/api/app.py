"""The FastAPI application: ``create_app`` wires services, middleware, errors and routes."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import Response

from segue.api import (
    admin_routes,
    catalog_routes,
    dead_letter_routes,
    experiment_routes,
    listener_routes,
    privacy_routes,
    query_routes,
    sing_routes,
)
from segue.api.metrics import BodyLimitMiddleware, LatencyMiddleware, Metrics
from segue.api.problems import install_handlers, install_openapi
from segue.api.routes import router
from segue.api.services import Services, build_services
from segue.config import Settings, load_settings
from segue.web import install as install_web

log = logging.getLogger(__name__)

#: Default request body limit: 5,000 events of ~400 bytes fit.
MAX_BODY_BYTES = 2 * 1024 * 1024


def warm_products(services: Services, stop: threading.Event, poll_s: float = 2.0) -> None:
    """Build each newly served version's product tables and name index before a listener
    asks: both are built on first use (seconds on a large catalog: the product context, the
    catalog's names for search, stations by name and new releases), which would otherwise
    land on whoever opens Home first after a deploy or a daily retrain. Then settle the heap
    (:func:`settle_heap`), and say the process is warm (``services.warmed``, which
    ``/v1/ready`` waits for)."""
    warmed = None
    while not stop.is_set():
        model = services.models.loaded
        if model is not None and model is not warmed:
            try:
                listener_routes.product_context_of(services)
                catalog_routes.catalog_names(services)
            except Exception as exc:  # the request path builds them itself, and says why
                log.warning("warming the products of %s failed: %s", model.version, exc)
            settle_heap()
            warmed = model
            if services.warmed is not None:
                services.warmed.set()
        stop.wait(poll_s)


def settle_heap() -> None:
    """Collect once, then freeze what survives out of the garbage collector's sight.

    Why: a served version is millions of long-lived Python objects (product tables, names,
    caches), and every full collection walks them all: 100-250 ms with the GIL held, measured
    in ``segue serve`` under the lyrics benchmark, which is the "stall" that took a 300 req/s
    window's p99 from 2 ms to 100-200 ms. Frozen objects are skipped by every later
    collection. Unfreezing first lets this collection free the previous version's cycles, so
    a daily retrain does not leak: the one full pass (the same 100-250 ms) is paid here, once
    per version, in the background thread right after a deploy, not at random under load.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None,
    *,
    model: str = "als",
    max_body_bytes: int = MAX_BODY_BYTES,
    watch_s: float | None = 2.0,
    run_worker: bool = True,
    warm: bool = False,
) -> FastAPI:
    """The service for ``model``; settings default to ``SEGUE_*`` / ``segue.toml``. ``warm``:
    build each served version's product tables in the background (:func:`warm_products`),
    as ``segue serve`` does."""
    settings = settings or load_settings()
    metrics = Metrics()
    services: Services | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal services
        services = build_services(settings, model, metrics=metrics, run_worker=run_worker)
        app.state.services = services
        services.start(watch_s=watch_s)
        stop = threading.Event()
        if warm:
            services.warmed = threading.Event()
            threading.Thread(
                target=warm_products, args=(services, stop), name="warm-products", daemon=True
            ).start()
        try:
            yield
        finally:
            stop.set()
            services.close()

    app = FastAPI(
        title="segue",
        version="1",
        summary="Music recommendations that react within one request.",
        lifespan=lifespan,
    )
    app.include_router(router)
    # second: routers are matched in order, and a player polls the lyrics several times a
    # second (each router passed costs its path checks: ~50 µs of a ~250 µs lookup)
    app.include_router(sing_routes.router)
    app.include_router(listener_routes.router)
    app.include_router(query_routes.router)
    app.include_router(catalog_routes.router)
    app.include_router(privacy_routes.router)
    app.include_router(dead_letter_routes.router)
    app.include_router(experiment_routes.router)
    app.include_router(admin_routes.router)
    install_web(app)  # the listener app at /, the admin console at /admin

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    install_handlers(app)  # every non-2xx answer as RFC 9457 problem details
    install_openapi(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    app.state.metrics = metrics
    return app

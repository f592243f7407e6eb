"""Everything a serving process holds open: store, bus, online state, model, workers.

Two modes, chosen by ``SEGUE_REDIS_URL``:

* **embedded** (no Redis): in-process bus and state, a worker thread in this process; one
  process only, since nothing is shared.
* **redis**: Redis Streams and Redis state shared by every process behind the port; each
  process also runs a worker thread as one more consumer of the group. Redis going away
  degrades to in-process state and direct persisting (see :mod:`segue.online.resilient`).

Served lists travel on a stream of their own beside the events (``exposure_bus``:
``<prefix>exposures`` in Redis, stored by the same workers; embedded, a pipe to a child
process that stores them, :mod:`segue.serving.exposure_writer`, or the in-process bus and
the worker thread; dead letters shared with the events'), see :mod:`segue.serving.exposures`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request, status

from segue.api.metrics import Metrics
from segue.api.security import ApiKeys
from segue.batch.online import read_latest
from segue.config import Settings, make_data_dir
from segue.data.model import set_max_future_s
from segue.errors import SegueError
from segue.experiments.book import EXPERIMENTS_FILE, ExperimentBook
from segue.extras import MissingExtra, install_hint, missing_extra
from segue.jobs.catalog import CatalogNames
from segue.jobs.products import ProductContext
from segue.nba.service import NBAService
from segue.nlu.parser import Parser
from segue.online.bus import EventBus, InProcessBus, RedisStreamBus
from segue.online.redis_client import redis_client
from segue.online.redis_state import RedisState
from segue.online.resilient import CircuitBreaker, ReconnectingBus, ResilientState
from segue.online.state import InProcessState, OnlineState
from segue.serving.explore import SlotBandit
from segue.serving.exposure_writer import ExposureWriter, shareable
from segue.serving.exposures import EXPOSURE_CODEC, EXPOSURES_STREAM, ExposureLog
from segue.serving.holder import ModelHolder, ServingModel, UserCache
from segue.serving.intake import BackgroundWorker, EventIntake
from segue.serving.worker import SERVING_EXPOSURE_SLICE, EventWorker
from segue.store import Store, open_store
from segue.store.exposures import Exposure

T = TypeVar("T")
_component_lock = threading.Lock()


@dataclass
class Services:
    settings: Settings
    store: Store
    bus: EventBus
    state: OnlineState
    models: ModelHolder
    users: UserCache
    intake: EventIntake
    worker: BackgroundWorker | None
    metrics: Metrics
    api_keys: ApiKeys
    mode: str
    #: the listener products' tables for one model version (built on first use)
    products: tuple[ServingModel, ProductContext] | None = None
    #: the catalog's names (search, names as station seeds and picks), per model version
    names: tuple[ServingModel, CatalogNames] | None = None
    #: the next-best-action engine (click model, catalog), loaded on first use
    nba: NBAService | None = None
    #: the music-request parser (language model and entity index), loaded on first use
    parser: Parser | None = None
    #: Redis's circuit breaker (redis mode): open while this process serves without Redis
    breaker: CircuitBreaker | None = None
    #: every served list, buffered here and published by a thread of its own onto
    #: ``exposure_bus``, whose consumers (the workers) store it
    exposures: ExposureLog | None = None
    exposure_bus: EventBus[Exposure] | None = None
    #: the running experiments (``<data_dir>/experiments.json``, re-read when it changes)
    experiments: ExperimentBook | None = None
    #: the bandit over lists' top slots, learning from this process's plays and skips
    bandit: SlotBandit | None = None
    #: set once the first served version's products are built and the heap settled
    #: (``segue serve`` warms in the background; ``None``: nothing to wait for)
    warmed: threading.Event | None = None

    def start(self, *, watch_s: float | None = 2.0) -> None:
        self.models.load()
        if self.mode == "redis":  # the direct path must be ready before Redis fails
            self.intake.warm()
        if watch_s:
            self.models.watch(watch_s)
        if self.worker is not None:
            self.worker.start()
        if self.exposures is not None:
            self.exposures.start()

    def flush_exposures(self) -> None:
        """Publish the buffered served lists now and, where this process runs a worker,
        store what waits on the streams (tests and simulations read the log right after)."""
        if self.exposures is not None:
            self.exposures.flush()
        if isinstance(self.exposure_bus, ExposureWriter):
            self.exposure_bus.sync()
        if self.worker is not None:
            self.worker.drain()

    def close(self) -> None:
        if self.exposures is not None:
            self.exposures.close()
        if self.worker is not None:
            self.worker.close()
            if self.mode == "embedded":  # the in-process streams die with us: store them
                try:
                    self.worker.drain(timeout_s=5.0)
                except Exception as exc:  # shutting down regardless
                    logging.getLogger(__name__).warning("not all drained at exit: %s", exc)
        if self.breaker is not None:
            self.breaker.close()
        self.models.close()
        self.bus.close()
        if self.exposure_bus is not None:
            self.exposure_bus.close()
        self.state.close()
        self.store.close()

    def component(self, name: str, load: Callable[[], T], what: str, fix: str) -> T:
        """An optional part (``nba``, ``parser``), loaded on first use and kept; while it
        cannot be loaded, requests needing it get a 503 that says how to set it up."""
        current = getattr(self, name)
        if current is None:
            with _component_lock:
                current = getattr(self, name)
                if current is None:
                    try:
                        current = load()
                    except MissingExtra as exc:
                        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
                    except (SegueError, OSError) as exc:
                        raise HTTPException(
                            status.HTTP_503_SERVICE_UNAVAILABLE, not_set_up(what, exc, fix)
                        ) from exc
                    except ModuleNotFoundError as exc:
                        extra = missing_extra(exc)
                        if extra is None:
                            raise
                        raise HTTPException(
                            status.HTTP_503_SERVICE_UNAVAILABLE, install_hint(extra, what)
                        ) from exc
                    setattr(self, name, current)
        return current

    def state_mode(self) -> str:
        if isinstance(self.state, ResilientState):
            return "degraded" if self.state.degraded else "redis"
        return "in-process"


def not_set_up(what: str, exc: BaseException, fix: str) -> str:
    """ "<what> is not set up: <why> (run `<fix>`)", the fix said once: a cause that names it
    already ("run `segue nba train` first") is not followed by it again."""
    reason = str(exc)
    said = f"`{fix}`" in reason
    return f"{what} is not set up: {reason}" + ("" if said else f" (run `{fix}`)")


def build_services(
    settings: Settings,
    model_name: str,
    *,
    metrics: Metrics | None = None,
    run_worker: bool = True,
) -> Services:
    metrics = metrics or Metrics()
    api_keys = ApiKeys.parse(settings.api_keys)
    make_data_dir(settings)
    store = open_store(
        settings.resolved_database_url,
        busy_timeout_ms=settings.db_busy_timeout_ms,
        statement_timeout_ms=settings.db_statement_timeout_ms or None,
    )
    url, prefix = settings.redis_url, settings.redis_prefix
    set_max_future_s(settings.max_future_s)  # the input rules' one setting
    dead_letters = {
        "max_attempts": settings.dead_letter_after,
        "on_dead": lambda letter: metrics.events_dead_lettered.inc(),
    }
    bus: EventBus
    exposure_bus: EventBus[Exposure]
    state: OnlineState
    breaker: CircuitBreaker | None = None
    if url:
        mode = "redis"
        degraded = metrics.degraded.labels("redis")
        timeouts = {
            "connect_timeout_s": settings.redis_connect_timeout_s,
            "socket_timeout_s": settings.redis_timeout_s,
        }
        breaker = CircuitBreaker(
            _redis_probe(url, settings.redis_connect_timeout_s),
            retry_after_s=settings.redis_retry_s,
            on_change=lambda down: degraded.set(1 if down else 0),
        )
        state = ResilientState(lambda: RedisState(url, prefix, **timeouts), breaker=breaker)
        bus = ReconnectingBus(
            lambda: RedisStreamBus(url, prefix, **timeouts, **dead_letters), breaker=breaker
        )
        exposure_bus = ReconnectingBus(
            lambda: RedisStreamBus(
                url, prefix, EXPOSURES_STREAM, codec=EXPOSURE_CODEC, **timeouts, **dead_letters
            ),
            breaker=breaker,
        )
    else:
        mode = "embedded"
        state = InProcessState()
        # this process's worker is the only reader: a message is dropped once it has it
        events_bus = InProcessBus(keep_delivered=False, **dead_letters)
        bus = events_bus
        if settings.exposure_writer == "process" and shareable(store.url):
            exposure_bus = ExposureWriter(
                store.url,
                busy_timeout_ms=settings.db_busy_timeout_ms,
                statement_timeout_ms=settings.db_statement_timeout_ms or None,
                max_attempts=settings.dead_letter_after,
                dead_letters=events_bus.dead_box,
                on_dead=dead_letters["on_dead"],
            )
        else:
            exposure_bus = InProcessBus(
                stream=EXPOSURES_STREAM,
                codec=EXPOSURE_CODEC,
                dead_letters=events_bus.dead_box,
                keep_delivered=False,
                **dead_letters,
            )

    metrics.sample(
        "segue_events_dead_letters",
        "Dead letters waiting to be replayed or dropped (all workers': the bus keeps them)",
        bus.dead_count,
    )
    metrics.sample_rows(
        "segue_online",
        "The daily run's online metrics of the last day with lists served, per arm",
        lambda: read_latest(settings.data_dir),
    )

    def on_model_event(kind: str, detail: str) -> None:
        metrics.model_loads.labels(kind).inc()
        if kind == "fallback":
            metrics.fallbacks.labels("model_unavailable").inc()

    models = ModelHolder(store, settings, model_name, on_event=on_model_event)
    users = UserCache(store)
    intake = EventIntake(
        store,
        bus,
        state,
        models,
        users=users,
        on_direct=lambda reason: metrics.fallbacks.labels("bus_unavailable").inc(),
    )
    worker = None
    if run_worker:
        consumer = f"api-{socket.gethostname()}-{os.getpid()}"
        worker = BackgroundWorker(
            EventWorker(
                bus,
                store,
                state,
                consumer=consumer,
                reclaim_idle_ms=int(settings.reclaim_idle_s * 1000),
                # the writer's own process stores what goes through an ExposureWriter
                exposures=None if isinstance(exposure_bus, ExposureWriter) else exposure_bus,
                exposure_slice=SERVING_EXPOSURE_SLICE,
            ),
            on_report=lambda persisted, rejected: metrics.events_persisted.inc(persisted),
        )
    return Services(
        settings,
        store,
        bus,
        state,
        models,
        users,
        intake,
        worker,
        metrics,
        api_keys,
        mode,
        breaker=breaker,
        exposures=ExposureLog(
            exposure_bus,
            on_published=metrics.exposures_logged.inc,
            on_drop=metrics.exposures_dropped.inc,
        )
        if settings.exposure_log
        else None,
        exposure_bus=exposure_bus,
        experiments=ExperimentBook(settings.data_dir / EXPERIMENTS_FILE),
        bandit=SlotBandit(),
    )


def _redis_probe(url: str, timeout_s: float) -> Callable[[], object]:
    """A PING on a client of its own: whether Redis answers again (run off the request path,
    so it may wait a little longer than a request's calls)."""
    client = None

    def probe() -> object:
        nonlocal client
        if client is None:
            client = redis_client(
                url, connect_timeout_s=timeout_s, socket_timeout_s=max(timeout_s, 1.0)
            )
        return client.ping()

    return probe


async def current_services(request: Request) -> Services:
    """The process's services, as a FastAPI dependency. ``async`` on purpose: a plain ``def``
    dependency is run on the thread pool, a hand-off that cost more than the lookup."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(current_services)]

"""Prometheus metrics of the service, one set per app (tests build several apps per process).

With several uvicorn worker processes, ``segue serve`` sets ``PROMETHEUS_MULTIPROC_DIR``;
the values are then written there by every process and ``/metrics`` aggregates them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Latency buckets (seconds) around the targets: p50 ≤ 5 ms, p99 ≤ 25 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "segue_request_seconds",
            "HTTP request latency by route",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            "segue_events_ingested",
            "Events accepted, by path (bus or direct)",
            ["path"],
            registry=r,
        )
        self.events_persisted = Counter(
            "segue_events_persisted", "Events persisted by this process's worker", registry=r
        )
        self.events_dead_lettered = Counter(
            "segue_events_dead_lettered",
            "Events this process's worker moved to the dead letters (failed too often, or poison)",
            registry=r,
        )
        self.exposures_logged = Counter(
            "segue_exposures_logged",
            "Served lists published to the exposure log's stream (the workers store them)",
            registry=r,
        )
        self.exposures_dropped = Counter(
            "segue_exposures_dropped",
            "Served lists dropped from the exposure log's buffer (the event bus away too long)",
            registry=r,
        )
        self.fallbacks = Counter(
            "segue_fallbacks", "Fallbacks taken, by kind", ["kind"], registry=r
        )
        self.recommendations = Counter(
            "segue_recommendations", "Lists served, by path", ["path"], registry=r
        )
        self.degraded = Gauge(
            "segue_degraded",
            "1 while a component is degraded",
            ["component"],
            registry=r,
            multiprocess_mode="max",
        )
        self.model_loads = Counter(
            "segue_model_loads", "Model versions loaded or failed", ["outcome"], registry=r
        )
        self._sampled: list[SampledGauge] = []

    def sample(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read when ``/metrics`` is scraped: for facts that live outside this process
        (the dead letters in Redis, which a standalone ``segue worker`` adds to)."""
        gauge = SampledGauge(name, documentation, read)
        self._sampled.append(gauge)
        self.registry.register(gauge)

    def sample_rows(
        self, prefix: str, documentation: str, read: Callable[[], list[dict[str, Any]]]
    ) -> None:
        """One gauge per numeric field of the rows ``read`` returns at scrape time, labelled by
        each row's ``arm``: the daily run's online metrics (``segue.batch.online``)."""
        gauge = RowGauges(prefix, documentation, read)
        self._sampled.append(gauge)
        self.registry.register(gauge)

    def render(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(merged)
            for gauge in self._sampled:
                merged.register(gauge)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class SampledGauge(Collector):
    """One gauge whose value is read at scrape time; no sample while it cannot be read (Redis
    down), rather than a stale or made-up one."""

    def __init__(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self.name, self.documentation, self.read = name, documentation, read

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            value = float(self.read())
        except Exception as exc:  # a scrape never fails for one unreadable value
            log.debug("metric %s unreadable: %s", self.name, exc)
            return
        yield GaugeMetricFamily(self.name, self.documentation, value=value)


class RowGauges(Collector):
    """Gauges ``<prefix>_<field>{arm=...}`` from rows read at scrape time; fields that are
    ``None`` (a retention day not yet in the log) give no sample rather than a made-up one."""

    def __init__(
        self, prefix: str, documentation: str, read: Callable[[], list[dict[str, Any]]]
    ) -> None:
        self.prefix, self.documentation, self.read = prefix, documentation, read

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            rows = self.read()
        except Exception as exc:  # a scrape never fails for one unreadable file
            log.debug("metrics %s unreadable: %s", self.prefix, exc)
            return
        families: dict[str, GaugeMetricFamily] = {}
        for row in rows:
            for field, value in row.items():
                if field == "arm" or isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                family = families.get(field)
                if family is None:
                    family = families[field] = GaugeMetricFamily(
                        f"{self.prefix}_{field}", f"{self.documentation}: {field}", labels=["arm"]
                    )
                family.add_metric([str(row.get("arm", ""))], float(value))
        yield from families.values()


class LatencyMiddleware:
    """Pure ASGI middleware: times every HTTP request under its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_code[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], path, str(status_code[0])).observe(
                time.perf_counter() - started
            )


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes, scope.get("path", ""))
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, self.max_bytes, scope.get("path", ""))


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, max_bytes: int, path: str = "") -> None:
    """413 as problem details (RFC 9457, as every error of the API: ``segue.api.problems``)."""
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"request body too large: the limit is {max_bytes} bytes; "
            "send events in smaller batches",
            "instance": path,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/problem+json")],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""The exposure log: every list served, as it was shown.

An exposure is one answer to one request — who, when, on which surface, by which model
version and pipeline path, in which experiment variants, the items in position order, the
request's context and, where a stage explored, the probability each position had of being
shown. Outcomes are not stored here: they are the listener's events, joined afterwards
(``segue.jobs.online_metrics``), so that an exposure is written once and never updated.

Written under its request id: writing the same exposure again (a retried flush) adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from segue.store import schema

_CHUNK = 2_000


@dataclass(frozen=True)
class Exposure:
    request_id: str
    user_id: str
    ts_ms: int
    surface: str
    model: str
    version: str
    path: str
    items: tuple[str, ...]
    experiments: dict[str, str] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)
    propensities: tuple[float, ...] | None = None

    def row(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "user_id": self.user_id,
            "ts_ms": self.ts_ms,
            "surface": self.surface,
            "model": self.model,
            "version": self.version,
            "path": self.path,
            "items": json.dumps(list(self.items)),
            "experiments": json.dumps(self.experiments, sort_keys=True),
            "context": json.dumps(self.context, sort_keys=True),
            "propensities": None
            if self.propensities is None
            else json.dumps(list(self.propensities)),
        }

    @classmethod
    def of(cls, row: Any) -> Exposure:
        m = row._mapping
        return cls(
            request_id=m["request_id"],
            user_id=m["user_id"],
            ts_ms=int(m["ts_ms"]),
            surface=m["surface"],
            model=m["model"],
            version=m["version"],
            path=m["path"],
            items=tuple(json.loads(m["items"])),
            experiments=json.loads(m["experiments"]),
            context=json.loads(m["context"]),
            propensities=None
            if m["propensities"] is None
            else tuple(json.loads(m["propensities"])),
        )


def add(conn: sa.Connection, exposures: Sequence[Exposure]) -> int:
    """Insert exposures whose request id is new; returns how many were."""
    from segue.store.rows import write_rows

    total = 0
    for start in range(0, len(exposures), _CHUNK):
        rows = [e.row() for e in exposures[start : start + _CHUNK]]
        total += write_rows(conn, schema.exposures, rows, ["request_id"], "skip")
    return total


def between(
    conn: sa.Connection, start_ms: int, end_ms: int, user_id: str | None = None
) -> list[Exposure]:
    """Exposures served in ``[start_ms, end_ms)`` (one listener's with ``user_id``), by time."""
    x = schema.exposures
    query = sa.select(x).where(x.c.ts_ms >= start_ms, x.c.ts_ms < end_ms)
    if user_id is not None:
        query = query.where(x.c.user_id == user_id)
    return [Exposure.of(r) for r in conn.execute(query.order_by(x.c.ts_ms, x.c.request_id))]

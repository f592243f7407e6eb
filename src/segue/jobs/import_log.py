"""What was imported into a data directory, and how it ended: the admin console's import status.

Every ``segue import ...`` command appends one JSON line to ``<data dir>/imports.jsonl`` when
it ends — imported (with the store's counts), refused (with the error's first line, which
names the file, line and column) or a dry run — so an operator sees that last night's import
failed, and why, without the terminal that ran it. A line is appended in one ``write`` to a
file opened for appending, so imports running side by side do not interleave. The log is a
record for people, not state: a log that cannot be written (a read-only folder) is logged
and never fails the import; unreadable lines are skipped when read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FILE = "imports.jsonl"


@dataclass
class ImportRecord:
    """One import: ``status`` is ``imported``, ``failed`` or ``dry run``."""

    started_at: str
    command: str
    source: str
    kind: str | None = None
    status: str = "imported"
    seconds: float = 0.0
    rows: int | None = None
    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    ignored: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def counts(self, report: object) -> None:
        """Take the store's counts from an ingest report (``inserted``/``updated``/
        ``ignored`` per table) or a files report (``stored``/``failed``)."""
        for name in ("inserted", "updated", "ignored"):
            found = getattr(report, name, None)
            if isinstance(found, Mapping):
                setattr(self, name, {str(k): int(v) for k, v in found.items() if v})
        stored, failed = getattr(report, "stored", None), getattr(report, "failed", None)
        if stored is not None:
            self.inserted = {"files": len(stored)}
        if failed:
            self.ignored = {"files refused": len(failed)}


@contextmanager
def recorded_import(
    data_dir: Path, command: str, source: Path | str, kind: str | None = None
) -> Iterator[ImportRecord]:
    """Record the import run inside the block: the caller fills the counts; an exception
    marks it failed with its message's first line and goes on up."""
    record = ImportRecord(
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        command=command,
        source=str(source),
        kind=kind,
    )
    started = time.perf_counter()
    try:
        yield record
    except BaseException as exc:
        record.status = "failed"
        record.error = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise
    finally:
        record.seconds = round(time.perf_counter() - started, 3)
        _append(data_dir, record)


def _append(data_dir: Path, record: ImportRecord) -> None:
    line = json.dumps(asdict(record), ensure_ascii=False) + "\n"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with (data_dir / FILE).open("a", encoding="utf-8") as out:
            out.write(line)
    except OSError as exc:
        log.warning("the import log %s could not be written: %s", data_dir / FILE, exc)


def recent_imports(data_dir: Path, limit: int = 20) -> list[ImportRecord]:
    """The last ``limit`` imports, newest first."""
    path = data_dir / FILE
    if not path.is_file():
        return []
    with path.open("rb") as f:  # the tail is enough: read the last 256 KiB at most
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 256 * 1024))
        tail = f.read().decode("utf-8", errors="replace").splitlines()
    out: list[ImportRecord] = []
    for text in reversed(tail):
        try:
            out.append(ImportRecord(**json.loads(text)))
        except (ValueError, TypeError):
            continue  # a partial first line of the tail, or a hand-edited one
        if len(out) >= limit:
            break
    return out

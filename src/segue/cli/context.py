"""Per-invocation state shared by commands: the settings and a lazily opened store."""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from segue.config import Settings
from segue.store import Store


@dataclass
class State:
    settings: Settings
    _store: Store | None = field(default=None, repr=False)

    def store(self) -> Store:
        """Open the configured store once; it is closed when the process ends."""
        if self._store is None:
            from segue.store import open_store

            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            self._store = open_store(self.settings.resolved_database_url)
        return self._store


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj

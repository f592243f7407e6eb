"""Per-invocation state shared by commands: the settings and a lazily opened store."""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from segue.config import Settings, make_data_dir
from segue.errors import SegueError
from segue.store import Store


@dataclass
class State:
    settings: Settings
    _store: Store | None = field(default=None, repr=False)

    def store(self, *, create: bool = False) -> Store:
        """Open the configured store once; it is closed when the process ends.

        ``create``: the command makes a world or imports (synth, import, demo, nba simulate),
        so a data directory that does not exist yet is made; any other command refuses one
        (:meth:`require_data_dir`).
        """
        if self._store is None:
            from segue.store import open_store

            self.require_data_dir(create=create)
            make_data_dir(self.settings)  # one line when it cannot be made
            self._store = open_store(self.settings.resolved_database_url)
        return self._store

    def require_data_dir(self, *, create: bool = False) -> None:
        """Refuse a data directory that does not exist, unless ``create``.

        Otherwise a mistyped ``--data-dir`` opens a new, empty SQLite store there and every
        answer is silently empty. With an explicit database URL the store lives elsewhere and
        the directory only holds models, so it is made when missing.
        """
        folder = self.settings.data_dir
        if create or self.settings.database_url:
            make_data_dir(self.settings)  # a folder that cannot be made: one line, now
            return
        if folder.is_dir():
            return
        raise SegueError(
            f"no segue data in {folder} (the folder does not exist): check --data-dir / "
            "SEGUE_DATA_DIR, or make a world there first (segue synth, segue import, segue demo)"
        )


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj

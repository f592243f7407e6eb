"""Contiguous integer indices for external string ids.

Matrices, factor tables and saved models are indexed by position; every other layer speaks in
the ids users and importers gave us. An :class:`IdMap` is the one place where the two meet, so
a model saved with its maps can be loaded next to a store whose vocabulary has since grown.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from segue.errors import DatasetError

_FORMAT = "segue.idmap"
_VERSION = 1
#: How many offending ids an error message lists before it says "and N more".
_SHOWN = 5


class UnknownIdError(DatasetError, KeyError):
    """Ids not in the map; a :class:`KeyError` too, so ``except KeyError`` keeps working."""

    def __init__(self, message: str, unknown: list[str]) -> None:
        super().__init__(message)
        self.unknown = unknown

    def __str__(self) -> str:  # KeyError would quote the message; keep it readable
        return str(self.args[0])


class IdMap:
    """A fixed, ordered vocabulary: ``ids[i]`` has index ``i``.

    ``name`` ("user", "item") only labels error messages; two maps are equal when they give
    every id the same index, whatever their names.
    """

    __slots__ = ("_ids", "_index", "name")

    def __init__(self, ids: Iterable[str], *, name: str = "id") -> None:
        self.name = name
        label = "id" if name == "id" else f"{name} id"
        self._ids = np.array(list(ids), dtype=object)
        self._ids.flags.writeable = False
        self._index: dict[str, int] = {}
        for position, value in enumerate(self._ids):
            if not isinstance(value, str) or not value:
                raise DatasetError(
                    f"{label}s must be non-empty strings; position {position} holds {value!r}"
                )
            if self._index.setdefault(value, position) != position:
                raise DatasetError(
                    f"{label} {value!r} appears twice (positions {self._index[value]} and "
                    f"{position}); an id map needs unique ids"
                )

    # -- lookups -------------------------------------------------------------------------
    def to_index(
        self, ids: str | Iterable[str], *, allow_unknown: bool = False
    ) -> int | np.ndarray:
        """Indices of ``ids`` (an int for one id, an int64 array otherwise).

        Unknown ids raise :class:`UnknownIdError` naming them, or become ``-1`` with
        ``allow_unknown=True`` (for callers that filter, e.g. events of users seen after
        training).
        """
        if isinstance(ids, str):
            position = self._index.get(ids, -1)
            if position < 0 and not allow_unknown:
                self._raise_unknown([ids], 1)
            return position
        values = ids if isinstance(ids, np.ndarray) else list(ids)
        get = self._index.get
        out = np.fromiter((get(v, -1) for v in values), dtype=np.int64, count=len(values))
        if not allow_unknown:
            missing = np.flatnonzero(out < 0)
            if len(missing):
                unknown = list(dict.fromkeys(str(values[i]) for i in missing))
                self._raise_unknown(unknown, len(values))
        return out

    def to_ids(self, indices: int | Iterable[int] | np.ndarray) -> str | np.ndarray:
        """Ids at ``indices`` (a str for one index, an object array otherwise)."""
        if isinstance(indices, int | np.integer):
            position = int(indices)
            if not 0 <= position < len(self._ids):
                raise DatasetError(self._bad_index_message([position]))
            return str(self._ids[position])
        array = np.asarray(
            indices if isinstance(indices, np.ndarray) else list(indices), dtype=np.int64
        )
        bad = (array < 0) | (array >= len(self._ids))
        if bad.any():
            raise DatasetError(self._bad_index_message(array[bad].tolist()))
        return self._ids[array]

    @property
    def ids(self) -> np.ndarray:
        """All ids in index order (read-only object array)."""
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and value in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids.tolist())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdMap):
            return NotImplemented
        return self is other or (
            len(self) == len(other) and bool(np.array_equal(self._ids, other._ids))
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container; compare by value

    def __repr__(self) -> str:
        head = ", ".join(repr(v) for v in self._ids[:3])
        more = ", ..." if len(self) > 3 else ""
        return f"IdMap(name={self.name!r}, n={len(self)}, ids=[{head}{more}])"

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the map as JSON, atomically (a crash leaves the old file or none)."""
        target = Path(path)
        payload = {"format": _FORMAT, "version": _VERSION, "name": self.name}
        payload["ids"] = self._ids.tolist()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle, ensure_ascii=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | Path) -> IdMap:
        """Read a map written by :meth:`save`."""
        source = Path(path)
        try:
            payload = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DatasetError(f"id map file {source} does not exist") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"id map file {source} cannot be read as JSON: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise DatasetError(f"{source} is not a segue id map (no format {_FORMAT!r})")
        if payload.get("version") != _VERSION:
            raise DatasetError(
                f"{source} is id map version {payload.get('version')!r}; this segue reads "
                f"version {_VERSION}"
            )
        ids = payload.get("ids")
        if not isinstance(ids, list):
            raise DatasetError(f"{source}: 'ids' must be a list of strings")
        try:
            return cls(ids, name=str(payload.get("name", "id")))
        except DatasetError as exc:
            raise DatasetError(f"{source}: {exc}") from exc

    # -- messages ------------------------------------------------------------------------
    @property
    def _label(self) -> str:
        return "id" if self.name == "id" else f"{self.name} id"

    def _raise_unknown(self, unknown: list[str], asked: int) -> None:
        shown = ", ".join(repr(v) for v in unknown[:_SHOWN])
        more = f" and {len(unknown) - _SHOWN} more" if len(unknown) > _SHOWN else ""
        raise UnknownIdError(
            f"unknown {self._label}(s) {shown}{more} ({len(unknown)} distinct of {asked} "
            f"looked up; the map holds {len(self)} {self.name}s)",
            unknown,
        )

    def _bad_index_message(self, bad: list[int]) -> str:
        shown = ", ".join(str(v) for v in bad[:_SHOWN])
        more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        return (
            f"{self.name} index {shown}{more} out of range: the map holds {len(self)} "
            f"{self.name}s (valid indices 0..{len(self) - 1})"
        )

"""Columnar interaction logs: how millions of events move between layers without objects.

Users and items are dictionary-encoded: ``user`` holds positions into the ``user_ids``
vocabulary. A 10M-event log is then a few int arrays plus two small vocabularies, so the
synthetic world can write it and the dataset layer can read it without creating one Python
object per event. The optional string columns are only filled where a writer needs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from segue.data.model import EVENT_CODES, EVENT_TYPES, Event, EventType, to_epoch_ms

#: ``ms_played`` value meaning "unknown".
UNKNOWN_MS = -1

_ROW_COLUMNS = ("user", "item", "type", "ts_ms", "ms_played", "count", "focus", "rating")
_OPTIONAL_COLUMNS = ("event_id", "session_id", "surface", "source", "device")


@dataclass
class InteractionLog:
    """Events as parallel arrays. All row arrays have the same length.

    ``type`` holds codes into :data:`segue.data.model.EVENT_TYPES`; ``rating`` is NaN where
    absent. Optional string columns are object arrays or ``None`` when not carried.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user: np.ndarray
    item: np.ndarray
    type: np.ndarray
    ts_ms: np.ndarray
    ms_played: np.ndarray
    count: np.ndarray
    focus: np.ndarray
    rating: np.ndarray
    event_id: np.ndarray | None = None
    session_id: np.ndarray | None = None
    surface: np.ndarray | None = None
    source: np.ndarray | None = None
    device: np.ndarray | None = None
    _checked: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.user_ids = np.asarray(self.user_ids, dtype=object)
        self.item_ids = np.asarray(self.item_ids, dtype=object)
        self.user = np.asarray(self.user, dtype=np.int32)
        self.item = np.asarray(self.item, dtype=np.int32)
        self.type = np.asarray(self.type, dtype=np.uint8)
        self.ts_ms = np.asarray(self.ts_ms, dtype=np.int64)
        self.ms_played = np.asarray(self.ms_played, dtype=np.int64)
        self.count = np.asarray(self.count, dtype=np.int32)
        self.focus = np.asarray(self.focus, dtype=bool)
        self.rating = np.asarray(self.rating, dtype=np.float64)
        n = len(self.user)
        for name in _ROW_COLUMNS + _OPTIONAL_COLUMNS:
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise ValueError(f"InteractionLog column {name!r} has {len(column)} rows, not {n}")
        if n and (self.user.min() < 0 or self.user.max() >= len(self.user_ids)):
            raise ValueError("InteractionLog.user indexes outside user_ids")
        if n and (self.item.min() < 0 or self.item.max() >= len(self.item_ids)):
            raise ValueError("InteractionLog.item indexes outside item_ids")
        if n and self.type.max() >= len(EVENT_TYPES):
            raise ValueError("InteractionLog.type holds an unknown event type code")

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def empty(cls) -> InteractionLog:
        return cls.from_events([])

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> InteractionLog:
        """Encode validated events; keeps every optional column."""
        events = list(events)
        user_ids, user = _encode([e.user_id for e in events])
        item_ids, item = _encode([e.item_id for e in events])
        return cls(
            user_ids=user_ids,
            item_ids=item_ids,
            user=user,
            item=item,
            type=np.array([EVENT_CODES[e.type] for e in events], dtype=np.uint8),
            ts_ms=np.array([to_epoch_ms(e.timestamp) for e in events], dtype=np.int64),
            ms_played=np.array(
                [UNKNOWN_MS if e.ms_played is None else e.ms_played for e in events],
                dtype=np.int64,
            ),
            count=np.array([e.count for e in events], dtype=np.int32),
            focus=np.array([e.focus for e in events], dtype=bool),
            rating=np.array(
                [np.nan if e.rating is None else e.rating for e in events], dtype=np.float64
            ),
            event_id=np.array([e.event_id for e in events], dtype=object),
            session_id=np.array([e.session_id for e in events], dtype=object),
            surface=np.array([e.surface for e in events], dtype=object),
            source=np.array([e.source for e in events], dtype=object),
            device=np.array([e.device for e in events], dtype=object),
        )

    def type_mask(self, types: Sequence[EventType | str]) -> np.ndarray:
        codes = [EVENT_CODES[str(t)] for t in types]
        return np.isin(self.type, codes)

    def select(self, mask: np.ndarray) -> InteractionLog:
        """Rows where ``mask`` is true (or at the given positions); vocabularies are kept."""
        changes = {}
        for name in _ROW_COLUMNS + _OPTIONAL_COLUMNS:
            column = getattr(self, name)
            changes[name] = None if column is None else column[mask]
        return replace(self, **changes)

    def user_id_array(self) -> np.ndarray:
        """External user id per row (materialised; avoid on very large logs)."""
        return self.user_ids[self.user]

    def item_id_array(self) -> np.ndarray:
        return self.item_ids[self.item]

    @staticmethod
    def concat(logs: Sequence[InteractionLog]) -> InteractionLog:
        """Join logs, merging their vocabularies."""
        if not logs:
            return InteractionLog.empty()
        user_ids, user_maps = _merge_vocab([log.user_ids for log in logs])
        item_ids, item_maps = _merge_vocab([log.item_ids for log in logs])
        values: dict[str, object] = {
            "user_ids": user_ids,
            "item_ids": item_ids,
            "user": np.concatenate([m[log.user] for m, log in zip(user_maps, logs, strict=True)]),
            "item": np.concatenate([m[log.item] for m, log in zip(item_maps, logs, strict=True)]),
        }
        for name in _ROW_COLUMNS[2:]:
            values[name] = np.concatenate([getattr(log, name) for log in logs])
        for name in _OPTIONAL_COLUMNS:
            columns = [getattr(log, name) for log in logs]
            if all(c is not None for c in columns):
                values[name] = np.concatenate(columns)
        return InteractionLog(**values)  # type: ignore[arg-type]


def _encode(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    vocab: dict[str, int] = {}
    codes = np.fromiter((vocab.setdefault(v, len(vocab)) for v in values), np.int32, len(values))
    return np.array(list(vocab), dtype=object), codes


def _merge_vocab(vocabs: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    merged: dict[str, int] = {}
    maps = []
    for vocab in vocabs:
        maps.append(
            np.fromiter((merged.setdefault(v, len(merged)) for v in vocab), np.int32, len(vocab))
        )
    return np.array(list(merged), dtype=object), maps


__all__ = ["UNKNOWN_MS", "InteractionLog"]

"""Item attributes as arrays aligned with an item :class:`IdMap`.

Models score items by column index; filters, content models and explanations need the kind,
artist, explicit flag, genres, tags and audio features of those same columns. This table is
built once from the catalog records (``Store.iter_items()``) and shared.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.data.model import AudioFeatures, Item, ItemKind, to_epoch_ms
from segue.dataset.idmap import IdMap
from segue.errors import DatasetError

#: Kinds in code order: ``KINDS[code]``.
KINDS: tuple[ItemKind, ...] = tuple(ItemKind)
KIND_CODES: dict[str, int] = {k.value: i for i, k in enumerate(KINDS)}
AUDIO_FIELDS: tuple[str, ...] = tuple(AudioFeatures.model_fields)
NO_RELEASE = np.iinfo(np.int64).min
#: Tags used as genres (:meth:`ItemCatalog.genre_matrix`) when the catalog has no genres.
TAG_GENRES = 50


@dataclass(frozen=True)
class ItemCatalog:
    """Attributes of every item column; unknown items (no record) get neutral values.

    ``artist`` holds a code into ``artist_ids`` (-1 when none; an artist item is its own
    artist), whether or not the artist is itself an item column; ``genres`` and ``tags`` are
    item×label CSR indicator matrices over ``genre_names`` / ``tag_names``; ``audio`` is
    (n_items, len(AUDIO_FIELDS)) with NaN rows where unknown.
    """

    items: IdMap
    titles: np.ndarray
    kind: np.ndarray
    artist: np.ndarray
    artist_ids: tuple[str, ...]
    explicit: np.ndarray
    release_ms: np.ndarray
    genres: sp.csr_matrix
    genre_names: tuple[str, ...]
    tags: sp.csr_matrix
    tag_names: tuple[str, ...]
    audio: np.ndarray
    known: np.ndarray

    @classmethod
    def from_items(cls, records: Iterable[Item], items: IdMap) -> ItemCatalog:
        n = len(items)
        titles = np.array(list(items.ids), dtype=object)
        kind = np.full(n, KIND_CODES[ItemKind.TRACK.value], dtype=np.int8)
        artist_ids: list[str | None] = [None] * n
        explicit = np.zeros(n, dtype=bool)
        release = np.full(n, NO_RELEASE, dtype=np.int64)
        audio = np.full((n, len(AUDIO_FIELDS)), np.nan, dtype=np.float32)
        known = np.zeros(n, dtype=bool)
        genre_vocab: dict[str, int] = {}
        tag_vocab: dict[str, int] = {}
        g_rows: list[int] = []
        g_cols: list[int] = []
        t_rows: list[int] = []
        t_cols: list[int] = []
        records = list(records)
        columns = items.to_index([r.id for r in records], allow_unknown=True) if records else []
        for item, col in zip(records, columns, strict=True):
            if col < 0:
                continue
            known[col] = True
            titles[col] = item.title
            kind[col] = KIND_CODES[item.kind.value]
            artist_ids[col] = item.id if item.kind is ItemKind.ARTIST else item.artist_id
            explicit[col] = item.explicit
            if item.release_date is not None:
                release[col] = to_epoch_ms(dt.datetime.combine(item.release_date, dt.time()))
            if item.audio is not None:
                audio[col] = [getattr(item.audio, f) for f in AUDIO_FIELDS]
            for genre in item.genres:
                g_rows.append(col)
                g_cols.append(genre_vocab.setdefault(genre, len(genre_vocab)))
            for tag in item.tags:
                t_rows.append(col)
                t_cols.append(tag_vocab.setdefault(tag, len(tag_vocab)))
        artist_vocab: dict[str, int] = {}
        artist = np.array(
            [
                -1 if a is None else artist_vocab.setdefault(a, len(artist_vocab))
                for a in artist_ids
            ],
            dtype=np.int64,
        )
        return cls(
            items=items,
            titles=titles,
            kind=kind,
            artist=artist,
            artist_ids=tuple(artist_vocab),
            explicit=explicit,
            release_ms=release,
            genres=_indicator(g_rows, g_cols, n, len(genre_vocab)),
            genre_names=tuple(genre_vocab),
            tags=_indicator(t_rows, t_cols, n, len(tag_vocab)),
            tag_names=tuple(tag_vocab),
            audio=audio,
            known=known,
        )

    def __len__(self) -> int:
        return len(self.items)

    def kind_mask(self, kinds: Iterable[ItemKind | str]) -> np.ndarray:
        kinds = [str(k) for k in kinds]
        unknown = [k for k in kinds if k not in KIND_CODES]
        if unknown:
            raise DatasetError(f"unknown item kind(s) {unknown}; known: {', '.join(KIND_CODES)}")
        return np.isin(self.kind, [KIND_CODES[k] for k in kinds])

    def genre_members(self, name: str) -> np.ndarray | None:
        """Boolean mask of the items of genre ``name`` (case-insensitive), or None if unknown.

        A catalog whose items carry tags but no genres (Last.fm 2K: artists with the tags
        listeners gave them, "indie rock", "80s") uses its tags as its genres, so a new
        listener's genre picks mean the same thing there as on a catalog with genres. Tags
        are only looked up when no item has a genre: where both exist, genres are curated
        and tags are free text.
        """
        matrix, names = self._genre_labels()
        wanted = name.strip().lower()
        columns = [j for j, label in enumerate(names) if label.lower() == wanted]
        if not columns:
            return None
        return np.asarray(matrix[:, columns].sum(axis=1)).ravel() > 0

    def known_genres(self, limit: int = 20) -> list[str]:
        """The genres a person may pick, most used first (tags where there are no genres)."""
        matrix, names = self._genre_labels()
        if not names:
            return []
        used = np.asarray(matrix.sum(axis=0)).ravel()
        order = sorted(range(len(names)), key=lambda j: (-used[j], names[j]))
        return [names[j] for j in order[:limit]]

    def genre_matrix(self, limit: int | None = None) -> sp.csr_matrix:
        """Item × genre indicators (float32): the catalog's genres, or its ``TAG_GENRES`` most
        used tags where it has none (Last.fm 2K tags artists; it has no genres), so that
        everything reading "the item's genres" reads the same ones; ``limit``: at most that
        many, the most used."""
        if self.genre_names or self.tags.shape[1] == 0:
            return _most_used(self.genres, limit)
        return _most_used(self.tags, TAG_GENRES if limit is None else min(limit, TAG_GENRES))

    def _genre_labels(self) -> tuple[sp.csr_matrix, tuple[str, ...]]:
        if self.genre_names or not self.tag_names:
            return self.genres, self.genre_names
        return self.tags, self.tag_names


def _most_used(labels: sp.csr_matrix, limit: int | None) -> sp.csr_matrix:
    """0/1 float32 columns of ``labels``: the ``limit`` carried by the most items (ties by
    column order), in column order; all of them without a limit."""
    labels = (labels.tocsr() != 0).astype(np.float32)
    if limit is None or labels.shape[1] <= limit:
        return labels
    used = np.asarray(labels.sum(axis=0)).ravel()
    return labels[:, np.sort(np.argsort(-used, kind="stable")[:limit])]


def _indicator(rows: list[int], cols: list[int], n_rows: int, n_cols: int) -> sp.csr_matrix:
    data = np.ones(len(rows), dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(n_rows, n_cols))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix

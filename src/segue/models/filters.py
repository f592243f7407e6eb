"""Business rules applied to every list: what may be shown, and how varied it must be.

Hard rules (exclude kinds, no explicit content on kids profiles, include/exclude lists) become a
boolean mask over item columns applied before ranking, so they cost nothing per item. The
per-artist cap is a greedy pass over an over-fetched ranking, because whether an item fits
depends on what is above it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from segue.data.model import ItemKind
from segue.dataset.catalog import ItemCatalog
from segue.errors import SegueError


@dataclass(frozen=True)
class Filters:
    """Rules for one request, resolved against a catalog; build with :meth:`build`."""

    allowed: np.ndarray
    artist: np.ndarray | None = None
    max_per_artist: int | None = None

    @classmethod
    def build(
        cls,
        catalog: ItemCatalog,
        *,
        exclude_kinds: Iterable[ItemKind | str] = (),
        only_kinds: Iterable[ItemKind | str] = (),
        no_explicit: bool = False,
        include: Iterable[int] | None = None,
        exclude: Iterable[int] = (),
        max_per_artist: int | None = None,
    ) -> Filters:
        """``include``: if given, only these item columns may appear (a hard allow-list)."""
        allowed = np.ones(len(catalog), dtype=bool)
        exclude_kinds = list(exclude_kinds)
        only_kinds = list(only_kinds)
        if exclude_kinds:
            allowed &= ~catalog.kind_mask(exclude_kinds)
        if only_kinds:
            allowed &= catalog.kind_mask(only_kinds)
        if no_explicit:
            allowed &= ~catalog.explicit
        if include is not None:
            only = np.zeros(len(catalog), dtype=bool)
            only[_columns(include, len(catalog), "include")] = True
            allowed &= only
        allowed[_columns(exclude, len(catalog), "exclude")] = False
        if max_per_artist is not None and max_per_artist < 1:
            raise SegueError("max_per_artist must be at least 1")
        return cls(allowed, catalog.artist if max_per_artist else None, max_per_artist)

    def cap_positions(self, ranked: np.ndarray, k: int) -> np.ndarray:
        """Positions in each over-fetched row of the first ``k`` items that keep at most N per
        artist (-1 pads), so callers can take items and scores alike."""
        out = np.full((ranked.shape[0], k), -1, dtype=np.int64)
        if self.max_per_artist is None or self.artist is None:
            width = min(k, ranked.shape[1])
            out[:, :width] = np.where(ranked[:, :width] >= 0, np.arange(width), -1)
            return out
        for r, row in enumerate(ranked):
            counts: dict[int, int] = {}
            filled = 0
            for position, item in enumerate(row):
                if item < 0 or filled == k:
                    break
                artist = int(self.artist[item])
                if artist >= 0:
                    if counts.get(artist, 0) >= self.max_per_artist:
                        continue
                    counts[artist] = counts.get(artist, 0) + 1
                out[r, filled] = position
                filled += 1
        return out


def _columns(values: Iterable[int], n: int, what: str) -> np.ndarray:
    cols = np.fromiter((int(v) for v in values), dtype=np.int64)
    if len(cols) and (cols.min() < 0 or cols.max() >= n):
        raise SegueError(f"{what} list names item columns outside 0..{n - 1}")
    return cols

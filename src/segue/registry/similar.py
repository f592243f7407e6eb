"""Each item's nearest neighbours, computed once when a model is saved and published with it.

``GET /v1/items/{id}/similar`` used to rank the whole catalog per call (≈10 ms of CPU, so a
process managed about 100 calls a second); with the table saved beside the model it is a row
lookup. The neighbours are the model's own (``Recommender.similar_items``: factors, EASE's
weights, item-kNN's similarities), ranked, or, for a model without a notion of similar
items, the co-listening cosine — the same answers the per-request path gave.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from segue.errors import SegueError
from segue.models import Recommender

log = logging.getLogger(__name__)

#: Neighbours kept per item (the API's ``k`` is at most this).
SIMILAR_K = 50
FILE = "similar.npz"
_BLOCK = 1_024


@dataclass(frozen=True)
class SimilarTable:
    """``items[c]``: the columns most like column ``c`` in order (-1 pads); ``scores[c]`` their
    co-listening cosines, or, for a model's own ranking (``ranked``), nothing: scores then
    fall evenly from 1.0 over the ``k`` asked for, as the per-request path gives them."""

    items: np.ndarray
    scores: np.ndarray
    ranked: bool

    def row(self, column: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        neighbours = self.items[column, :k]
        keep = neighbours >= 0
        chosen = neighbours[keep].astype(np.int64)
        if self.ranked:
            n = len(chosen)
            return chosen, np.arange(n, 0, -1, dtype=np.float64) / max(n, 1)
        return chosen, self.scores[column, :k][keep].astype(np.float64)

    def save(self, folder: Path) -> None:
        np.savez(folder / FILE, items=self.items, scores=self.scores, ranked=self.ranked)

    @classmethod
    def load(cls, folder: Path) -> SimilarTable | None:
        path = folder / FILE
        if not path.is_file():
            return None
        with np.load(path) as data:
            return cls(data["items"], data["scores"], bool(data["ranked"]))


def similar_table(model: Recommender, train: sp.csr_matrix, k: int = SIMILAR_K) -> SimilarTable:
    """Every item's ``k`` neighbours, in blocks of items (bounded memory on big catalogs)."""
    n_items = train.shape[1]
    k = min(k, max(n_items - 1, 0))
    items = np.full((n_items, k), -1, dtype=np.int32)
    scores = np.zeros((n_items, k), dtype=np.float32)
    if k == 0:
        return SimilarTable(items, scores, ranked=True)
    try:
        model.similar_items(np.array([0]), 1)
        own = True
    except SegueError:
        own = False
    try:
        _fill(model, train, items, scores, own, k)
    except Exception:  # a model's own similarity failing must not stop its publication
        if not own:
            raise
        log.exception("similar items of %s failed; using co-listening instead", model.name)
        own = False
        items[:] = -1
        _fill(model, train, items, scores, own, k)
    return SimilarTable(items, scores, ranked=own)


def _fill(
    model: Recommender,
    train: sp.csr_matrix,
    items: np.ndarray,
    scores: np.ndarray,
    own: bool,
    k: int,
) -> None:
    n_items = train.shape[1]
    space = getattr(model, "_item_space", None) if own else None
    if space is not None:  # factor models: cosine of item vectors, by faiss's exact search
        items[:] = _nearest_vectors(np.asarray(space(), dtype=np.float32), k)
        return
    binary = None if own else (train > 0).astype(np.float32).tocsc()
    for start in range(0, n_items, _BLOCK):
        block = np.arange(start, min(start + _BLOCK, n_items))
        if own:
            ranked = np.asarray(model.similar_items(block, k), dtype=np.int64)[:, :k]
            ranked = np.where(ranked == block[:, None], -1, ranked)
            items[block, : ranked.shape[1]] = ranked
        else:
            assert binary is not None
            ranked, cosine = _co_listened_block(binary, block, k)
            items[block] = ranked
            scores[block] = cosine


def _co_listened_block(
    binary: sp.csc_matrix, block: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Co-listening cosine of a block of items against all items: top ``k`` of each row."""
    together = (binary[:, block].T @ binary).toarray()
    counts = np.asarray(binary.sum(axis=0)).ravel()
    norms = np.sqrt(counts[block])[:, None] * np.sqrt(counts)[None, :]
    cosine = np.divide(together, norms, out=np.zeros_like(together), where=norms > 0)
    cosine[np.arange(len(block)), block] = 0.0
    top = np.argpartition(-cosine, k - 1, axis=1)[:, :k] if cosine.shape[1] > k else (
        np.tile(np.arange(cosine.shape[1]), (len(block), 1))
    )
    values = np.take_along_axis(cosine, top, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    top = np.where(values > 0, top, -1)
    return top.astype(np.int32), np.where(values > 0, values, 0.0).astype(np.float32)


def _nearest_vectors(vectors: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` nearest other rows by cosine (faiss's exact inner-product search on
    unit rows: the ranking ``MatrixFactorization.similar_items`` gives, tens of times faster
    over a whole catalog); -1 where a row has fewer."""
    import faiss

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    out = np.full((len(unit), k), -1, dtype=np.int32)
    for start in range(0, len(unit), 8_192):
        block = unit[start : start + 8_192]
        _, found = index.search(block, k + 1)
        rows = np.arange(start, start + len(block))
        for r, row in enumerate(found):
            kept = row[(row != rows[r]) & (row >= 0)][:k]
            out[start + r, : len(kept)] = kept
    return out

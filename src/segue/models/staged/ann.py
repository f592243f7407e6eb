"""Nearest items by inner product through faiss, exact below a catalog size where ANN does not pay.

An embedding generator (ALS, NCF, two-tower: anything whose scores are ``user · item``)
retrieves its top N by maximum inner product. On a catalog of tens of thousands of items an
exact product over all of them costs a millisecond or two and has perfect recall, so
:class:`VectorIndex` keeps a flat (exact) index below ``exact_below`` items; above it, an IVF
index (√n lists, 16 probed; HNSW on request) answers in a fraction of the time at a recall
that ``benchmarks/bench_staged_ann.py`` measures: on 1M clustered items, 0.986 of exact's top
200 at 97× exact's speed per query (docs/benchmarks.md).

Seen items are removed after the search, so the caller asks for ``k + extra`` with ``extra``
the most items any of its listeners has played, and masks them itself.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from segue.errors import SegueError

#: Below this many items an exact (flat) index is used: ANN would not be faster by much.
EXACT_BELOW = 50_000

Kind = Literal["flat", "hnsw", "ivf"]


class VectorIndex:
    """Maximum-inner-product search over item vectors (float32, one row per item)."""

    def __init__(
        self,
        vectors: np.ndarray,
        kind: Kind | None = None,
        *,
        exact_below: int = EXACT_BELOW,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 256,
        nlist: int | None = None,
        nprobe: int = 16,
        seed: int = 0,
    ) -> None:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or not np.isfinite(vectors).all():
            raise SegueError("ann: item vectors must be a finite 2-d array")
        self.n_items, self.dim = vectors.shape
        if kind is None:
            kind = "flat" if self.n_items < exact_below else "ivf"
        if kind not in ("flat", "hnsw", "ivf"):
            raise SegueError(f"ann: unknown index kind {kind!r}; use flat, hnsw or ivf")
        self.kind: Kind = kind
        self.vectors = vectors
        metric = faiss.METRIC_INNER_PRODUCT
        if kind == "flat":
            index = faiss.IndexFlatIP(self.dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, hnsw_m, metric)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
        else:
            lists = nlist or max(16, int(np.sqrt(self.n_items)))
            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(quantizer, self.dim, lists, metric)
            rng = np.random.default_rng(seed)
            sample = vectors[rng.choice(self.n_items, min(self.n_items, 40 * lists), False)]
            index.train(sample)
            index.nprobe = nprobe
        index.add(vectors)
        self.index = index

    def search(
        self, queries: np.ndarray, k: int, extra: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of the ``k + extra`` best items per query, best first; -1 / -inf short."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise SegueError(f"ann: queries have {queries.shape[1]} components, items {self.dim}")
        want = min(k + extra, self.n_items)
        if want <= 0 or len(queries) == 0:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        scores, ids = self.index.search(queries, want)
        ids = ids.astype(np.int64)
        scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
        return ids, scores

    def exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The exact top k by a dense product (the reference the ANN's recall is measured by)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        dense = queries @ self.vectors.T
        k = min(k, self.n_items)
        part = np.argpartition(-dense, k - 1, axis=1)[:, :k]
        values = np.take_along_axis(dense, part, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)


def recall_of(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (ids) that ``found`` contains."""
    hits = [len(np.intersect1d(f[f >= 0], t[t >= 0])) / max(1, (t >= 0).sum())
            for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) if hits else float("nan")

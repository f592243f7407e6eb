"""Content-based filtering: recommend items that look like what a listener already plays.

Every item becomes one vector from its own attributes, never from who played it, so an item
nobody has played yet is recommended as soon as it is in the catalog (the cold-start case the
collaborative models cannot serve). The vector concatenates three blocks, each scaled to
unit size and then multiplied by its weight:

* **labels** (``label_weight``): TF-IDF over the item's genres and tags, merged into one
  vocabulary by normalised name (lower case, ``-``/``_`` as spaces), so the genre "Hip-Hop" of
  one source meets the tag "hip hop" of another. Labels are present or absent (tf = 1);
  ``idf = ln((1 + n) / (1 + df)) + 1`` over the n items that have labels (scikit-learn's
  smoothed idf), and each item's label block has unit L2 norm.
* **audio** (``audio_weight``): the audio features, standardised over the items that have
  them and divided by sqrt(number of features), so an average item's block has norm about 1
  and an item near the catalog mean has little audio to say. Items without audio get zeros.
* **text** (``text_weight``, default 0): MiniLM embeddings (:mod:`segue.models.text`) of
  ``"title. genres. tags"``. Off by default so that training needs no torch; only items with
  a catalog record get text (an unknown item's "title" is just its id).

The whole vector is then L2-normalised, so the dot product of two item vectors is their cosine.
A user's profile is the mean of the vectors of the items in their training row, weighted by
the row's values; an item's score is the cosine between profile and item.

Items with no attributes at all (no labels, no audio, and no text) have a zero vector: they
score 0 for everyone, the same as an item sharing nothing with the profile, and are never
anyone's similar item. :attr:`ContentRecommender.described` says which items have content.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Self

import numpy as np
import scipy.sparse as sp

from segue.dataset.catalog import ItemCatalog
from segue.dataset.side import SideInfo
from segue.errors import SegueError
from segue.models.base import Reason, Recommender, take_rows, top_k

#: Widest item vectors :meth:`ContentRecommender.query_space` holds densely (labels + audio +
#: text); wider label vocabularies keep the sparse scoring.
_DENSE_AT_MOST = 512
#: Profiles scored together by :meth:`ContentRecommender.score_profiles`.
_PROFILE_SLICE = 16
#: Up to this many profiles are scored dimension-major (requests), more item-major (batches).
_ROW_MAJOR_AT_MOST = 4


class ContentRecommender(Recommender):
    name = "content"

    def __init__(
        self,
        label_weight: float = 1.0,
        audio_weight: float = 1.0,
        text_weight: float = 0.0,
        text_cache_dir: str | None = None,
    ) -> None:
        weights = {
            "label_weight": label_weight,
            "audio_weight": audio_weight,
            "text_weight": text_weight,
        }
        for key, value in weights.items():
            try:
                ok = math.isfinite(float(value)) and float(value) >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise SegueError(f"content model {key} must be a finite number >= 0, got {value!r}")
        if not any(weights.values()):
            raise SegueError("content model needs at least one of its weights above 0")
        self.label_weight = float(label_weight)
        self.audio_weight = float(audio_weight)
        self.text_weight = float(text_weight)
        self.text_cache_dir = text_cache_dir
        #: item × term label block, already weighted and normalised with the dense block
        self.sparse_vectors: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)
        self._by_dim_cache: tuple[sp.csr_matrix, tuple[sp.csr_matrix, np.ndarray]] | None = None
        self._space_cache: tuple[sp.csr_matrix, np.ndarray] | None = None
        #: item × (audio + text) block, same scaling
        self.dense_vectors: np.ndarray = np.zeros((0, 0), dtype=np.float32)
        #: the label vocabulary, one name per column of ``sparse_vectors``
        self.terms: tuple[str, ...] = ()
        #: items with a non-zero vector (anything the model can say about them)
        self.described: np.ndarray = np.zeros(0, dtype=bool)

    def params(self) -> dict[str, object]:
        return {
            "label_weight": self.label_weight,
            "audio_weight": self.audio_weight,
            "text_weight": self.text_weight,
            "text_cache_dir": self.text_cache_dir,
        }

    # -- fitting -------------------------------------------------------------------------
    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        catalog = side.catalog if side is not None else None
        if catalog is None:
            raise SegueError(
                "the content model needs item attributes: pass SideInfo with a catalog "
                "(jobs build it with load_side_info)"
            )
        if len(catalog) != interactions.shape[1]:
            raise SegueError(
                f"the catalog describes {len(catalog)} items but the interaction matrix has "
                f"{interactions.shape[1]} item columns; build both from the same item map"
            )
        labels, terms = label_tfidf(catalog)
        blocks: list[np.ndarray] = []
        audio = audio_block(catalog.audio)
        if self.audio_weight > 0 and audio.any():  # a catalog without audio adds no columns
            blocks.append(self.audio_weight * audio)
        if self.text_weight > 0:
            blocks.append(self.text_weight * self._text_block(catalog))
        n = len(catalog)
        sparse = (labels * self.label_weight).astype(np.float32).tocsr()
        dense = (
            np.hstack(blocks).astype(np.float32) if blocks else np.zeros((n, 0), dtype=np.float32)
        )
        squared = np.asarray(sparse.multiply(sparse).sum(axis=1)).ravel() + (dense**2).sum(axis=1)
        norms = np.sqrt(squared)
        described = norms > 0
        scale = np.zeros(n, dtype=np.float32)
        scale[described] = 1.0 / norms[described]
        self.sparse_vectors = sp.diags(scale).dot(sparse).tocsr().astype(np.float32)
        self.sparse_vectors.eliminate_zeros()
        self.dense_vectors = (dense * scale[:, None]).astype(np.float32)
        self.terms = terms
        self.described = described
        self._train = interactions.tocsr().astype(np.float32)
        return self

    def _text_block(self, catalog: ItemCatalog) -> np.ndarray:
        from segue.models.text import DIM, TextEncoder

        texts = item_texts(catalog)
        out = np.zeros((len(catalog), DIM), dtype=np.float32)
        rows = np.flatnonzero(catalog.known)
        if len(rows):
            encoder = TextEncoder(cache_dir=self.text_cache_dir)
            out[rows] = encoder.encode([texts[r] for r in rows])
        return out

    # -- scoring -------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Length of a profile vector: label terms, then the dense blocks."""
        return self.sparse_vectors.shape[1] + self.dense_vectors.shape[1]

    def score(self, users: np.ndarray) -> np.ndarray:
        rows = take_rows(self._fitted(), users)
        return self.score_profiles(self._profiles(rows))

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """A listener known only by plays (new, or with fresh plays in serving): the same
        profile :meth:`score` builds from a training row, built from the history row."""
        n_items = self._fitted().shape[1]
        if not sp.issparse(history) or history.shape[1] != n_items:
            raise SegueError(
                f"content: a history must be a sparse (n, {n_items}) matrix, got "
                f"{getattr(history, 'shape', type(history))}"
            )
        return self.score_profiles(self._profiles(sp.csr_matrix(history)))

    def profile_from_items(
        self, items: Sequence[int] | np.ndarray, weights: Sequence[float] | np.ndarray | None = None
    ) -> np.ndarray:
        """The profile of someone who likes ``items`` (columns), e.g. a new user's onboarding
        picks: the weighted mean of their vectors, shape (dim,). Feed it (or a stack of them)
        to :meth:`score_profiles`."""
        n_items = self._fitted().shape[1]
        items = np.asarray(items, dtype=np.int64).ravel()
        if len(items) == 0:
            raise SegueError("a content profile needs at least one liked item; got none")
        if items.min() < 0 or items.max() >= n_items:
            bad = int(items[(items < 0) | (items >= n_items)][0])
            raise SegueError(f"item index {bad} is out of range 0..{n_items - 1}")
        if weights is None:
            w = np.ones(len(items), dtype=np.float64)
        else:
            w = np.asarray(weights, dtype=np.float64).ravel()
            if len(w) != len(items):
                raise SegueError(f"got {len(w)} weights for {len(items)} items; give one each")
            if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
                raise SegueError("profile weights must be finite, >= 0, and not all 0")
        row = sp.csr_matrix((w, (np.zeros(len(items), dtype=np.int64), items)), shape=(1, n_items))
        return self._profiles(row)[0] / w.sum()

    def score_profiles(self, profiles: np.ndarray) -> np.ndarray:
        """Cosine between each profile (row, or a single (dim,) vector) and every item:
        dense (n_profiles, n_items). A zero profile scores 0 everywhere."""
        self._fitted()
        profiles = np.atleast_2d(np.asarray(profiles, dtype=np.float32))
        if profiles.ndim != 2 or profiles.shape[1] != self.dim:
            raise SegueError(
                f"profiles have shape {profiles.shape}; expected (n, {self.dim}) as made by "
                "profile_from_items"
            )
        norms = np.linalg.norm(profiles, axis=1)
        unit = profiles / np.where(norms > 0, norms, 1.0)[:, None]
        t = self.sparse_vectors.shape[1]
        if len(unit) <= _ROW_MAJOR_AT_MOST:  # a request: (profile × dims) @ (dims × items)
            by_dim = self._by_dim()
            out = np.asarray(unit[:, :t] @ by_dim[0], dtype=np.float32)
            if self.dense_vectors.shape[1]:
                out += unit[:, t:] @ by_dim[1]
            return out
        out = np.empty((len(unit), self.sparse_vectors.shape[0]), dtype=np.float32)
        # item-major: CSR @ C-contiguous dense is scipy's fast kernel, then a transpose; in
        # slices of profiles, whose item-major rows fit a cache line or two: transposing
        # (items × 256) at once cost ~1.4 ms per listener of a batch on 132,660 items
        for start in range(0, len(unit), _PROFILE_SLICE):
            part = unit[start : start + _PROFILE_SLICE]
            item_major = np.asarray(self.sparse_vectors @ np.ascontiguousarray(part[:, :t].T))
            if self.dense_vectors.shape[1]:
                item_major += self.dense_vectors @ part[:, t:].T
            out[start : start + len(part)] = item_major.T
        return out

    def query_space(self) -> tuple[Callable[[sp.csr_matrix], np.ndarray], np.ndarray] | None:
        """Unit profiles against the item vectors (sparse and dense parts side by side):
        a score is their dot product, so a large catalog is searched in a vector index.
        None when the vectors are too wide to hold densely (thousands of tags)."""
        self._fitted()
        if self.dim > _DENSE_AT_MOST:
            return None
        cached = self._space_cache
        if cached is None or cached[0] is not self.sparse_vectors:
            vectors = np.hstack([self.sparse_vectors.toarray(), self.dense_vectors])
            cached = (self.sparse_vectors, np.ascontiguousarray(vectors, dtype=np.float32))
            self._space_cache = cached

        def query(rows: sp.csr_matrix) -> np.ndarray:
            profiles = self._profiles(rows)
            norms = np.linalg.norm(profiles, axis=1, keepdims=True)
            return (profiles / np.where(norms > 0, norms, 1.0)).astype(np.float32)

        return query, cached[1]

    def _by_dim(self) -> tuple[sp.csr_matrix, np.ndarray]:
        """The item vectors dimension-major (sparse part as CSR, dense part contiguous), made
        once per fitted vectors: one profile scores against them in a third of the time the
        item-major layout takes (0.2 against 0.6 ms for the sparse part on 132,660 items)."""
        cached = self._by_dim_cache
        if cached is None or cached[0] is not self.sparse_vectors:
            by_dim = (self.sparse_vectors.T.tocsr(), np.ascontiguousarray(self.dense_vectors.T))
            cached = (self.sparse_vectors, by_dim)
            self._by_dim_cache = cached
        return cached[1]

    def _profiles(self, rows: sp.csr_matrix) -> np.ndarray:
        """Unnormalised weighted sums of item vectors, one per row of ``rows``."""
        rows = rows.astype(np.float32)
        sparse = np.asarray((rows @ self.sparse_vectors).todense(), dtype=np.float32)
        dense = np.asarray(rows @ self.dense_vectors, dtype=np.float32)
        return np.hstack([sparse, dense])

    def item_similarity(self, anchors: np.ndarray, item: int) -> np.ndarray:
        """Cosine of ``item`` with each of ``anchors``."""
        anchors = np.asarray(anchors, dtype=np.int64)
        s = self.sparse_vectors
        sims = np.asarray((s[anchors] @ s[item].T).todense()).ravel()
        return sims + self.dense_vectors[anchors] @ self.dense_vectors[item]

    def explain(self, user: int, item: int) -> Reason:
        row = self._fitted()[user]
        if row.nnz:
            sims = self.item_similarity(row.indices, item)
            best = int(np.argmax(sims))
            if sims[best] > 0:
                return Reason("because_you_played", anchor_item=int(row.indices[best]))
        return Reason("matches_your_taste")

    def similar_items(self, items: Sequence[int] | np.ndarray, k: int = 10) -> np.ndarray:
        """Items with the most similar content (cosine > 0), -1 where fewer exist."""
        n_items = self._fitted().shape[1]
        items = np.asarray(items, dtype=np.int64)
        if len(items) and (items.min() < 0 or items.max() >= n_items):
            raise SegueError(f"item index out of range 0..{n_items - 1}")
        s = self.sparse_vectors
        dense = np.asarray((s[items] @ s.T).todense(), dtype=np.float32)
        if self.dense_vectors.shape[1]:
            dense += self.dense_vectors[items] @ self.dense_vectors.T
        dense[np.arange(len(items)), items] = -np.inf
        dense[dense <= 1e-6] = -np.inf
        ranked, scores = top_k(dense, min(k, n_items))
        ranked[~np.isfinite(scores)] = -1
        return ranked

    # -- persistence ---------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        s = self.sparse_vectors
        return {
            "data": s.data,
            "indices": s.indices,
            "indptr": s.indptr,
            "shape": np.array(s.shape),
            "dense": self.dense_vectors,
            "terms": np.array(self.terms, dtype=str),
            "described": self.described,
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.sparse_vectors = sp.csr_matrix(
            (state["data"], state["indices"], state["indptr"]), shape=tuple(state["shape"])
        )
        self.dense_vectors = state["dense"]
        self.terms = tuple(str(t) for t in state["terms"])
        self.described = state["described"]


# -- item features (pure functions, tested by hand) ---------------------------------------
_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_label(label: str) -> str:
    """One spelling per label: "Hip-Hop", "hip hop" and "hip_hop" all become "hip hop"."""
    return _SEPARATORS.sub(" ", label.lower()).strip()


def label_indicator(catalog: ItemCatalog) -> tuple[sp.csr_matrix, tuple[str, ...]]:
    """Item × term 0/1 matrix over genres and tags merged by normalised name."""
    vocab: dict[str, int] = {}
    parts = []
    for matrix, names in ((catalog.genres, catalog.genre_names), (catalog.tags, catalog.tag_names)):
        columns = np.array(
            [vocab.setdefault(normalise_label(name), len(vocab)) for name in names],
            dtype=np.int64,
        )
        coo = matrix.tocoo()
        parts.append((coo.row, columns[coo.col] if len(columns) else coo.col))
    rows = np.concatenate([p[0] for p in parts]).astype(np.int64)
    cols = np.concatenate([p[1] for p in parts]).astype(np.int64)
    indicator = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(catalog), len(vocab))
    )
    indicator.sum_duplicates()
    indicator.data[:] = 1.0
    return indicator, tuple(vocab)


def label_tfidf(catalog: ItemCatalog) -> tuple[sp.csr_matrix, tuple[str, ...]]:
    """Row-normalised TF-IDF of the merged labels (see the module doc for the formula)."""
    indicator, terms = label_indicator(catalog)
    counts = np.diff(indicator.indptr)
    n_docs = int((counts > 0).sum())
    df = np.bincount(indicator.indices, minlength=indicator.shape[1])
    idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
    weighted = indicator.astype(np.float64) @ sp.diags(idf)
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    inverse = np.zeros_like(norms)
    inverse[norms > 0] = 1.0 / norms[norms > 0]
    return (sp.diags(inverse) @ weighted).tocsr(), terms


def audio_block(audio: np.ndarray) -> np.ndarray:
    """Standardised audio features / sqrt(n features); zeros where an item has none."""
    audio = np.asarray(audio, dtype=np.float64)
    out = np.zeros(audio.shape, dtype=np.float32)
    if audio.size == 0:
        return out
    known = np.isfinite(audio).all(axis=1)
    if not known.any():
        return out
    mean = audio[known].mean(axis=0)
    std = audio[known].std(axis=0)
    std[std == 0] = 1.0  # a constant feature says nothing: it standardises to 0
    out[known] = (audio[known] - mean) / std / np.sqrt(audio.shape[1])
    return out


def item_texts(catalog: ItemCatalog) -> list[str]:
    """``"title. genre, genre. tag, tag"`` per item, empty parts left out."""
    genres = catalog.genres.tocsr()
    tags = catalog.tags.tocsr()
    texts = []
    for i in range(len(catalog)):
        g = ", ".join(
            catalog.genre_names[j] for j in genres.indices[genres.indptr[i] : genres.indptr[i + 1]]
        )
        t = ", ".join(
            catalog.tag_names[j] for j in tags.indices[tags.indptr[i] : tags.indptr[i + 1]]
        )
        texts.append(". ".join(part for part in (str(catalog.titles[i]), g, t) if part))
    return texts


__all__ = [
    "ContentRecommender",
    "audio_block",
    "item_texts",
    "label_indicator",
    "label_tfidf",
    "normalise_label",
]

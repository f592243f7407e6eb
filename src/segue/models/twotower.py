"""A two-tower recommender: an item tower over ids and side features, a user tower over the
listener's history, scored by their dot product.

**Item tower.** Each item's vector is the sum of linear embeddings of what is known about it:

* its id (only for items with plays in the matrix it trained on; ``id_dropout`` of them are
  hidden per step, so the features learn to stand in for the id),
* its artist (``catalog.artist``),
* its genres and tags (TF-IDF over the merged labels, as the content model builds them),
* its audio features (standardised with the training catalog's mean and spread),
* with ``use_text``, the MiniLM embedding of ``"title. genres. tags"`` (:mod:`segue.models.text`;
  needs the ``nlu`` extra's weights, off by default so training needs nothing more than torch).

The vector has ``dim + 1`` components; the last acts as the item's bias (popularity). With
``temperature`` τ > 0 (the default, 0.2) the first ``dim`` are scaled to length 1/τ, so the
score is ``cos(user, item) / τ + bias``: on Last.fm 2K's validation part this beat the plain
dot product (NDCG@10 0.177 vs 0.167, seed 0), whose lengths grew with popularity and overfit.

**User tower.** The mean of the item-tower vectors of the listener's items (weighted by the
matrix values), through one linear layer (or, with ``user_hidden``, a tanh layer first: 0.146
on the same validation, so off by default), normalised to length 1 when τ > 0, with a
constant 1 appended for the bias. There is no
per-user parameter, so a new listener is scored from their history alone (``score_history``)
and a new item from its features alone (:meth:`TwoTowerRecommender.embed_items`, or any
column that had no plays at fit time), both without a retrain.

**Training.** Each step takes a batch of users; each user's items are split at random into
targets (``target_share`` of them, at least one) and the history the user tower pools, and a
softmax over the catalog asks every target to win, the history itself left out of it (the
user's other items must not count as wrong answers), and so are items without plays: unknown
is not disliked, and as negatives they would teach the features that new means bad (on
Last.fm's new-items protocol that put every new artist below the top 50; artists with no
played item likewise add nothing to the tower). One softmax per user serves all of that
user's targets, which is what makes a whole-catalog softmax affordable on the CPU. Catalogs up
to ``full_softmax_items`` use the whole catalog (exact); larger ones a sampled softmax over the
batch's targets plus ``sampled`` uniform items, with the logQ correction (each logit minus the
log of how likely that item was to be among the candidates; Yi et al. 2019) so popular items
are not over-penalised for appearing in many batches. Early stopping on an inner ``holdout`` of
each user's training items (NDCG@10 after each epoch; never the test part), Adam, seeded. No
refit: nothing in the model is per user, so the final user vectors pool each user's whole
training row.

``score`` is exactly ``user_embeddings() @ item_embeddings().T``, so ``recommend`` ranks with
the factor path (``_dot_factors``) and an ANN index can retrieve by the same vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from segue.dataset.catalog import ItemCatalog
from segue.dataset.side import SideInfo
from segue.dataset.splits import inner_holdout
from segue.errors import SegueError
from segue.models.base import Reason, Recommender, sparse_from_state, sparse_state, top_k
from segue.models.content import item_texts, label_indicator
from segue.models.neural import (
    check_positive_float,
    check_positive_int,
    checked_matrix,
    load_torch,
    seeded_generator,
    torch_threads,
    unit_rows,
    validation_ndcg,
    validation_users,
)

#: Weight names of the item tower's feature projections, in the order they are summed.
_FEATURES = ("labels", "audio", "text")


class TwoTowerRecommender(Recommender):
    """Two towers, dot-product scores; see the module docstring."""

    name = "twotower"

    def __init__(
        self,
        dim: int = 64,
        epochs: int = 40,
        patience: int = 3,
        learning_rate: float = 1e-2,
        regularization: float = 1e-5,
        batch_size: int = 256,
        target_share: float = 0.5,
        user_hidden: int = 0,
        temperature: float = 0.2,
        id_dropout: float = 0.1,
        use_text: bool = False,
        text_cache_dir: str | None = None,
        full_softmax_items: int = 50_000,
        sampled: int = 4096,
        holdout: float = 0.1,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        for key, value in (
            ("dim", dim),
            ("epochs", epochs),
            ("patience", patience),
            ("batch_size", batch_size),
            ("sampled", sampled),
        ):
            check_positive_int(f"twotower: {key}", value)
        check_positive_int("twotower: full_softmax_items", full_softmax_items, minimum=0)
        check_positive_int("twotower: user_hidden", user_hidden, minimum=0)
        check_positive_float("twotower: temperature", temperature, allow_zero=True)
        check_positive_float("twotower: learning_rate", learning_rate)
        check_positive_float("twotower: regularization", regularization, allow_zero=True)
        if not 0 < target_share < 1:
            raise SegueError(
                f"twotower: target_share must lie strictly between 0 and 1, got {target_share!r}"
            )
        if not 0 <= id_dropout < 1:
            raise SegueError(f"twotower: id_dropout must lie in [0, 1), got {id_dropout!r}")
        if not 0 < holdout < 1:
            raise SegueError(
                f"twotower: holdout must lie strictly between 0 and 1, got {holdout!r}"
            )
        self.dim = int(dim)
        self.epochs = int(epochs)
        self.patience = int(patience)
        self.learning_rate = float(learning_rate)
        self.regularization = float(regularization)
        self.batch_size = int(batch_size)
        self.target_share = float(target_share)
        self.user_hidden = int(user_hidden)
        self.temperature = float(temperature)
        self.id_dropout = float(id_dropout)
        self.use_text = bool(use_text)
        self.text_cache_dir = text_cache_dir
        self.full_softmax_items = int(full_softmax_items)
        self.sampled = int(sampled)
        self.holdout = float(holdout)
        self.seed = int(seed)
        self.num_threads = int(num_threads)  # not saved
        self.weights: dict[str, np.ndarray] = {}
        self.features = _Features.empty(0)
        #: items whose id embedding was trained (they had plays); the rest use features only
        self.has_id = np.zeros(0, dtype=bool)
        self.user_vectors_ = np.zeros((0, dim + 1), dtype=np.float32)
        self.item_vectors_ = np.zeros((0, dim + 1), dtype=np.float32)
        self.trained_epochs = 0
        self.validation_curve: list[float] = []

    def params(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "epochs": self.epochs,
            "patience": self.patience,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "batch_size": self.batch_size,
            "target_share": self.target_share,
            "user_hidden": self.user_hidden,
            "temperature": self.temperature,
            "id_dropout": self.id_dropout,
            "use_text": self.use_text,
            "text_cache_dir": self.text_cache_dir,
            "full_softmax_items": self.full_softmax_items,
            "sampled": self.sampled,
            "holdout": self.holdout,
            "seed": self.seed,
        }

    # -- fitting -------------------------------------------------------------------------
    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        torch = load_torch("the twotower model")
        train = checked_matrix(interactions, self.name)
        if train.nnz == 0:
            raise SegueError("twotower: the interaction matrix has no positive entries")
        catalog = side.catalog if side is not None else None
        if catalog is not None and len(catalog) != train.shape[1]:
            raise SegueError(
                f"the catalog describes {len(catalog)} items but the interaction matrix has "
                f"{train.shape[1]} item columns; build both from the same item map"
            )
        self.features = _Features.fit(catalog, train.shape[1], self.use_text, self.text_cache_dir)
        with torch_threads(self.num_threads, torch):
            inner, valid = inner_holdout(train, self.holdout, self.seed)
            users = validation_users(valid, 1000, self.seed)
            weights, curve, has_id = self._run_epochs(torch, inner, valid, users)
        self.weights = weights
        self.has_id = has_id
        self.validation_curve = [float(v) for v in curve]
        finite = [v for v in curve if np.isfinite(v)]
        self.trained_epochs = int(np.argmax(finite)) + 1 if finite else len(curve)
        self.item_vectors_ = self._item_tower_numpy(self.features, self.has_id)
        self.user_vectors_ = self.user_vectors(train)
        self._train = train
        return self

    def _run_epochs(
        self, torch: Any, matrix: sp.csr_matrix, valid: sp.csr_matrix, users: np.ndarray
    ) -> tuple[dict[str, np.ndarray], list[float], np.ndarray]:
        n_items = matrix.shape[1]
        has_id = np.diff(matrix.tocsc().indptr) > 0
        params = self._init(torch, n_items)
        optimiser = torch.optim.Adam(list(params.values()), lr=self.learning_rate)
        features = self.features.tensors(torch)
        rng = np.random.default_rng(self.seed)
        active = np.flatnonzero(np.diff(matrix.indptr) > 0)
        full = n_items <= self.full_softmax_items
        has_id_t = torch.from_numpy(has_id.astype(np.float32))
        # only items with plays compete in the softmax: an unplayed item is unknown, not
        # disliked (and pushing it down would teach its features that new means bad)
        warm = np.flatnonzero(has_id)
        # artists none of whose items has plays learn nothing: they add nothing either
        trained_artist = np.zeros(self.features.n_artists, dtype=bool)
        artist = self.features.artist
        trained_artist[artist[has_id & (artist >= 0)]] = True
        curve: list[float] = []
        best: dict[str, np.ndarray] = {}
        since_best = 0
        for _ in range(self.epochs):
            order = rng.permutation(active)
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                keep = has_id_t
                if self.id_dropout:
                    shown = rng.random(n_items) >= self.id_dropout
                    keep = has_id_t * torch.from_numpy(shown.astype(np.float32))
                step = _Step.build(matrix, rows, full, warm, rng, self)
                loss = self._loss(torch, params, features, keep, step)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            snapshot = {k: v.detach().numpy().copy() for k, v in params.items()}
            if "artists" in snapshot:
                snapshot["artists"][~trained_artist] = 0.0
            if self.temperature:  # what the numpy towers read to scale as training did
                snapshot["temperature"] = np.array([self.temperature], dtype=np.float32)
            items = _item_tower(snapshot, self.features, has_id)
            value = validation_ndcg(
                lambda b, w=snapshot, e=items: _pool(w, matrix[b], e) @ e.T, matrix, valid, users
            )
            curve.append(value)
            if not best or value > max(curve[:-1], default=-1.0):
                best, since_best = snapshot, 0
            else:
                since_best += 1
                if since_best >= self.patience:
                    break
        return best, curve, has_id

    def _init(self, torch: Any, n_items: int) -> dict[str, Any]:
        generator = seeded_generator(torch, self.seed)
        width = self.dim + 1

        def normal(n_in: int, std: float) -> Any:
            return (torch.randn(n_in, width, generator=generator) * std).requires_grad_()

        params: dict[str, Any] = {"ids": normal(n_items, 0.1)}
        if self.features.n_artists:
            params["artists"] = normal(self.features.n_artists, 0.1)
        for name in _FEATURES:
            n_in = self.features.width(name)
            if n_in:
                params[name] = normal(n_in, 1.0 / np.sqrt(n_in))
        into = width
        if self.user_hidden:
            bound = float(np.sqrt(6.0 / (width + self.user_hidden)))  # Glorot, for tanh
            hidden = (torch.rand(width, self.user_hidden, generator=generator) * 2 - 1) * bound
            params["user_hidden"] = hidden.requires_grad_()
            params["user_hidden_bias"] = torch.zeros(self.user_hidden, requires_grad=True)
            into = self.user_hidden
        eye = torch.zeros(into, self.dim)  # linear: starts as the identity on the pooled vector
        if not self.user_hidden:
            eye[: self.dim, : self.dim] = torch.eye(self.dim)
        params["user"] = eye + torch.randn(into, self.dim, generator=generator) * (
            0.01 if not self.user_hidden else 1.0 / np.sqrt(into)
        )
        params["user"].requires_grad_()
        params["user_bias"] = torch.zeros(self.dim, requires_grad=True)
        return params

    def _loss(
        self,
        torch: Any,
        params: dict[str, Any],
        features: dict[str, Any],
        keep: Any,
        step: _Step,
    ) -> Any:
        needed = torch.from_numpy(step.needed)
        vectors = _item_tower_torch(torch, params, features, keep, needed)
        if self.temperature:
            vectors = _cosine_items(torch, vectors, self.temperature)
        history = torch.sparse_coo_tensor(
            torch.from_numpy(np.vstack([step.history_rows, step.history_cols])),
            torch.from_numpy(step.history_weights),
            (step.n_rows, len(step.needed)),
            check_invariants=False,
        )
        pooled = torch.sparse.mm(history, vectors)
        if "user_hidden" in params:
            pooled = torch.tanh(pooled @ params["user_hidden"] + params["user_hidden_bias"])
        user = pooled @ params["user"] + params["user_bias"]
        if self.temperature:
            user = torch.nn.functional.normalize(user, dim=1)
        user = torch.cat([user, torch.ones(step.n_rows, 1)], dim=1)
        candidates = vectors[torch.from_numpy(step.candidates)]
        logits = user @ candidates.T
        if step.log_q is not None:
            logits = logits - torch.from_numpy(step.log_q)[None, :]
        masked = (torch.from_numpy(step.masked_rows), torch.from_numpy(step.masked_cols))
        logits = logits.index_put(masked, torch.tensor(float("-inf")))
        log_p = torch.log_softmax(logits, dim=1)
        loss = -log_p[torch.from_numpy(step.target_rows), torch.from_numpy(step.target_cols)].mean()
        if self.regularization:
            loss = loss + self.regularization * (vectors.pow(2).sum() / len(step.needed))
        return loss

    # -- the towers in numpy (scoring, new users, new items) -----------------------------
    def _item_tower_numpy(self, features: _Features, has_id: np.ndarray) -> np.ndarray:
        return _item_tower(self.weights, features, has_id)

    def user_vectors(self, history: sp.csr_matrix) -> np.ndarray:
        """User-tower vectors (n, dim + 1) of rows of plays over the model's items: what
        ``score_history`` multiplies with the item vectors. An empty row pools to zero, so
        it scores by the items' bias and the tower's constant."""
        self._require_weights()
        rows = checked_matrix(history, f"{self.name}.score_history")
        if rows.shape[1] != self.item_vectors_.shape[0]:
            raise SegueError(
                f"{self.name}.score_history: rows have {rows.shape[1]} items, "
                f"the model was trained on {self.item_vectors_.shape[0]}"
            )
        return _pool(self.weights, rows, self.item_vectors_)

    def embed_items(self, catalog: ItemCatalog) -> np.ndarray:
        """Item-tower vectors (len(catalog), dim + 1) of items described by ``catalog``, from
        their features alone (no id): how an item added after training is scored. Labels and
        artists the model never saw add nothing; audio is standardised as at fit time."""
        self._require_weights()
        features = self.features.transform(catalog, self.use_text, self.text_cache_dir)
        return _item_tower(self.weights, features, np.zeros(len(catalog), dtype=bool))

    def user_embeddings(self) -> np.ndarray:
        """(n_users, dim + 1) float32 user vectors of the training rows; the last component is
        1 (it multiplies the item bias), so ``user_embeddings() @ item_embeddings().T`` is
        exactly ``score`` for every user and item."""
        self._fitted()
        return self.user_vectors_

    def item_embeddings(self) -> np.ndarray:
        """(n_items, dim + 1) float32 item vectors, the last component each item's bias."""
        self._fitted()
        return self.item_vectors_

    def score(self, users: np.ndarray) -> np.ndarray:
        self._fitted()
        return self.user_vectors_[np.asarray(users, dtype=np.int64)] @ self.item_vectors_.T

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self.user_vectors(history) @ self.item_vectors_.T

    def _dot_factors(self) -> tuple[np.ndarray, np.ndarray]:
        self._fitted()
        return self.user_vectors_, self.item_vectors_

    def explain(self, user: int, item: int) -> Reason:
        """The played item nearest (cosine, bias left out) to the recommended one."""
        row = self._fitted()[user]
        if row.nnz == 0:
            return Reason("matches_your_taste")
        unit = unit_rows(self.item_vectors_[np.append(row.indices, item), :-1])
        closeness = unit[:-1] @ unit[-1]
        best = int(np.argmax(closeness))
        if closeness[best] <= 0:
            return Reason("matches_your_taste")
        return Reason("because_you_played", anchor_item=int(row.indices[best]))

    def similar_items(self, items: Sequence[int] | np.ndarray, k: int = 10) -> np.ndarray:
        """Nearest items by cosine of their item-tower vectors (bias left out)."""
        n_items = self._fitted().shape[1]
        items = np.asarray(items, dtype=np.int64)
        if len(items) and (items.min() < 0 or items.max() >= n_items):
            raise SegueError(f"item index out of range 0..{n_items - 1}")
        unit = unit_rows(self.item_vectors_[:, :-1])
        dense = unit[items] @ unit.T
        dense[np.arange(len(items)), items] = -np.inf
        ranked, scores = top_k(dense, min(k, n_items))
        ranked[~np.isfinite(scores)] = -1
        return ranked

    def _require_weights(self) -> None:
        if not self.weights:
            raise SegueError(f"model {self.name!r} is not fitted yet; call fit() first")

    # -- persistence ---------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {
            **{f"w_{k}": v for k, v in self.weights.items()},
            **{f"f_{k}": v for k, v in self.features.state().items()},
            "has_id": self.has_id,
            "user_vectors": self.user_vectors_,
            "item_vectors": self.item_vectors_,
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.weights = {k[2:]: v for k, v in state.items() if k.startswith("w_")}
        features = {k[2:]: v for k, v in state.items() if k.startswith("f_")}
        self.features = _Features.restore(features)
        self.has_id = state["has_id"]
        self.user_vectors_ = state["user_vectors"]
        self.item_vectors_ = state["item_vectors"]

    def _meta(self) -> dict[str, Any]:
        return {"trained_epochs": self.trained_epochs, "validation_curve": self.validation_curve}

    def _load_parts(self, folder: Any, meta: dict[str, Any]) -> None:
        self.trained_epochs = int(meta.get("trained_epochs", 0))
        self.validation_curve = [float(v) for v in meta.get("validation_curve", [])]


class _Features:
    """The item tower's inputs per item column, and the vocabularies that make them again
    for items of another catalog (``transform``)."""

    def __init__(
        self,
        labels: sp.csr_matrix,
        artist: np.ndarray,
        audio: np.ndarray,
        text: np.ndarray,
        terms: tuple[str, ...],
        idf: np.ndarray,
        artist_ids: tuple[str, ...],
        audio_mean: np.ndarray,
        audio_std: np.ndarray,
    ) -> None:
        self.labels = labels
        self.artist = artist
        self.audio = audio
        self.text = text
        self.terms = terms
        self.idf = idf
        self.artist_ids = artist_ids
        self.audio_mean = audio_mean
        self.audio_std = audio_std

    @property
    def n_artists(self) -> int:
        return len(self.artist_ids)

    def width(self, name: str) -> int:
        return int({"labels": self.labels, "audio": self.audio, "text": self.text}[name].shape[1])

    @classmethod
    def empty(cls, n_items: int) -> _Features:
        return cls(
            sp.csr_matrix((n_items, 0), dtype=np.float32),
            np.full(n_items, -1, dtype=np.int64),
            np.zeros((n_items, 0), dtype=np.float32),
            np.zeros((n_items, 0), dtype=np.float32),
            (),
            np.zeros(0, dtype=np.float32),
            (),
            np.zeros(0, dtype=np.float32),
            np.zeros(0, dtype=np.float32),
        )

    @classmethod
    def fit(
        cls, catalog: ItemCatalog | None, n_items: int, use_text: bool, cache_dir: str | None
    ) -> _Features:
        """Features of the training catalog; vocabularies and audio statistics from it."""
        if catalog is None:
            if use_text:
                raise SegueError("twotower: use_text needs SideInfo with a catalog")
            return cls.empty(n_items)
        indicator, terms = label_indicator(catalog)
        df = np.bincount(indicator.indices, minlength=indicator.shape[1])
        n_docs = int((np.diff(indicator.indptr) > 0).sum())
        idf = (np.log((1.0 + n_docs) / (1.0 + df)) + 1.0).astype(np.float32)
        audio = np.asarray(catalog.audio, dtype=np.float64)
        known = np.isfinite(audio).all(axis=1) if audio.size else np.zeros(n_items, dtype=bool)
        if known.any():
            mean = audio[known].mean(axis=0)
            std = audio[known].std(axis=0)
            std[std == 0] = 1.0
        else:  # a catalog without audio adds no audio input at all
            mean = std = np.zeros(0)
        used = np.unique(catalog.artist[catalog.artist >= 0])
        artist_ids = tuple(catalog.artist_ids[a] for a in used)
        base = cls(
            indicator,
            np.full(n_items, -1, dtype=np.int64),
            np.zeros((n_items, 0), dtype=np.float32),
            np.zeros((n_items, 0), dtype=np.float32),
            terms,
            idf,
            artist_ids,
            mean.astype(np.float32),
            std.astype(np.float32),
        )
        return base.transform(catalog, use_text, cache_dir)

    def transform(self, catalog: ItemCatalog, use_text: bool, cache_dir: str | None) -> _Features:
        """These vocabularies applied to ``catalog``'s items."""
        n = len(catalog)
        indicator, terms = label_indicator(catalog)
        position = {term: j for j, term in enumerate(self.terms)}
        mapped = np.array([position.get(t, -1) for t in terms], dtype=np.int64)
        coo = indicator.tocoo()
        cols = mapped[coo.col] if len(mapped) else coo.col
        ok = cols >= 0
        labels = sp.csr_matrix(
            (self.idf[cols[ok]], (coo.row[ok], cols[ok])), shape=(n, len(self.terms))
        )
        labels.sum_duplicates()
        norms = np.sqrt(np.asarray(labels.multiply(labels).sum(axis=1)).ravel())
        labels = (sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ labels).astype(np.float32)
        artist_index = {a: j for j, a in enumerate(self.artist_ids)}
        artist = np.array(
            [artist_index.get(catalog.artist_ids[a], -1) if a >= 0 else -1 for a in catalog.artist],
            dtype=np.int64,
        )
        audio = np.zeros((n, len(self.audio_mean)), dtype=np.float32)
        if len(self.audio_mean):
            raw = np.asarray(catalog.audio, dtype=np.float64)
            known = np.isfinite(raw).all(axis=1)
            audio[known] = (raw[known] - self.audio_mean) / self.audio_std / np.sqrt(raw.shape[1])
        text = np.zeros((n, 0), dtype=np.float32)
        if use_text:
            from segue.models.text import DIM, TextEncoder

            text = np.zeros((n, DIM), dtype=np.float32)
            rows = np.flatnonzero(catalog.known)
            if len(rows):
                texts = item_texts(catalog)
                text[rows] = TextEncoder(cache_dir=cache_dir).encode([texts[r] for r in rows])
        return _Features(
            labels.tocsr(), artist, audio, text, self.terms, self.idf, self.artist_ids,
            self.audio_mean, self.audio_std,
        )  # fmt: skip

    def tensors(self, torch: Any) -> dict[str, Any]:
        """Training inputs as torch tensors (labels as a CSR of the whole catalog)."""
        padded = np.where(self.artist >= 0, self.artist, self.n_artists)
        return {
            "labels": self.labels,
            "labels_all": _sparse_tensor(torch, self.labels),
            "artist": self.artist,
            "artist_padded": torch.from_numpy(padded.astype(np.int64)),
            "audio": torch.from_numpy(self.audio),
            "text": torch.from_numpy(self.text),
        }

    def state(self) -> dict[str, np.ndarray]:
        return {
            **sparse_state(self.labels, "labels_"),
            "artist": self.artist,
            "audio": self.audio,
            "text": self.text,
            "terms": np.array(self.terms, dtype=str),
            "idf": self.idf,
            "artist_ids": np.array(self.artist_ids, dtype=str),
            "audio_mean": self.audio_mean,
            "audio_std": self.audio_std,
        }

    @classmethod
    def restore(cls, state: dict[str, np.ndarray]) -> _Features:
        return cls(
            sparse_from_state(state, "labels_").astype(np.float32),
            state["artist"],
            state["audio"],
            state["text"],
            tuple(str(t) for t in state["terms"]),
            state["idf"],
            tuple(str(a) for a in state["artist_ids"]),
            state["audio_mean"],
            state["audio_std"],
        )


class _Step:
    """One training batch of users: which items the tower computes, each row's pooled
    history (the items not drawn as targets), the softmax candidates, which of them are masked
    (the history), and the (row, candidate) targets."""

    needed: np.ndarray
    n_rows: int
    history_rows: np.ndarray
    history_cols: np.ndarray
    history_weights: np.ndarray
    candidates: np.ndarray
    log_q: np.ndarray | None
    masked_rows: np.ndarray
    masked_cols: np.ndarray
    target_rows: np.ndarray
    target_cols: np.ndarray

    @classmethod
    def build(
        cls,
        matrix: sp.csr_matrix,
        users: np.ndarray,
        full: bool,
        warm: np.ndarray,
        rng: np.random.Generator,
        model: TwoTowerRecommender,
    ) -> _Step:
        step = cls()
        n_items = matrix.shape[1]
        coo = matrix[users].tocoo()
        drawn = rng.random(len(coo.row)) < model.target_share
        # every row gets a target: where none was drawn, its first item in a random order
        has = np.bincount(coo.row[drawn], minlength=len(users)) > 0
        lacking = ~has[coo.row]
        if lacking.any():
            order = np.lexsort((rng.random(len(coo.row)), coo.row))
            first = order[np.r_[True, coo.row[order][1:] != coo.row[order][:-1]]]
            drawn[first[lacking[first]]] = True
        t_rows, t_cols = coo.row[drawn], coo.col[drawn]
        h_rows, h_cols, h_vals = coo.row[~drawn], coo.col[~drawn], coo.data[~drawn]
        sums = np.bincount(h_rows, weights=h_vals, minlength=len(users))
        weights = (h_vals / np.where(sums > 0, sums, 1.0)[h_rows]).astype(np.float32)
        if full:  # the tower runs over every item (one fast path), the softmax over the warm
            step.needed = np.arange(n_items)
            step.log_q = None
            cand_of = warm
        else:
            sample = warm[rng.integers(0, len(warm), size=model.sampled)]
            cand_of = np.unique(np.concatenate([t_cols, sample]))
            step.needed = np.unique(np.concatenate([cand_of, h_cols]))
            share = np.bincount(matrix.indices, minlength=n_items)[cand_of] / max(matrix.nnz, 1)
            # chance that an item is among the candidates: drawn as a target, or sampled
            q = 1.0 - (1.0 - share) ** len(t_cols) * (1.0 - 1.0 / len(warm)) ** model.sampled
            step.log_q = np.log(np.maximum(q, 1e-12)).astype(np.float32)
        local = np.full(n_items, -1, dtype=np.int64)
        local[step.needed] = np.arange(len(step.needed))
        cand_local = np.full(n_items, -1, dtype=np.int64)
        cand_local[cand_of] = np.arange(len(cand_of))
        step.n_rows = len(users)
        step.history_rows = h_rows.astype(np.int64)
        step.history_cols = local[h_cols]
        step.history_weights = weights
        step.candidates = local[cand_of]
        masked = cand_local[h_cols]
        step.masked_rows = h_rows[masked >= 0].astype(np.int64)
        step.masked_cols = masked[masked >= 0]
        step.target_rows = t_rows.astype(np.int64)
        step.target_cols = cand_local[t_cols]
        return step


def _item_tower_torch(
    torch: Any, params: dict[str, Any], features: dict[str, Any], keep: Any, items: Any
) -> Any:
    """Item vectors of ``items`` (an index tensor): ids where kept, plus every feature."""
    everything = len(items) == len(features["artist"])  # the full softmax's every step
    if everything:
        out = params["ids"] * keep[:, None]
    else:
        out = params["ids"][items] * keep[items][:, None]
    index = items.numpy()
    if "artists" in params:
        table = params["artists"]  # an item without a known artist reads the zero row
        padded = torch.cat([table, torch.zeros(1, table.shape[1])])
        artist = features["artist_padded"] if everything else features["artist_padded"][items]
        out = out + padded[artist]
    if "labels" in params:
        sparse = features["labels_all"] if everything else _sparse_tensor(
            torch, features["labels"][index])  # fmt: skip
        out = out + torch.sparse.mm(sparse, params["labels"])
    for name in ("audio", "text"):
        if name in params:
            dense = features[name] if everything else features[name][items]
            out = out + dense @ params[name]
    return out


def _cosine_items(torch: Any, vectors: Any, temperature: float) -> Any:
    """Unit direction / temperature, the bias component kept as is."""
    direction = torch.nn.functional.normalize(vectors[:, :-1], dim=1) / temperature
    return torch.cat([direction, vectors[:, -1:]], dim=1)


def _sparse_tensor(torch: Any, matrix: sp.spmatrix) -> Any:
    coo = matrix.tocoo()
    return torch.sparse_coo_tensor(
        torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)),
        torch.from_numpy(coo.data.astype(np.float32)),
        coo.shape,
        check_invariants=False,
    ).coalesce()


def _item_tower(
    weights: dict[str, np.ndarray], features: _Features, has_id: np.ndarray
) -> np.ndarray:
    """The item tower in numpy, every item of ``features``; ids only where ``has_id``."""
    n = len(features.artist)
    width = weights["ids"].shape[1]
    out = np.zeros((n, width), dtype=np.float32)
    ids = np.flatnonzero(has_id)
    out[ids] = weights["ids"][ids]
    if "artists" in weights:
        known = features.artist >= 0
        out[known] += weights["artists"][features.artist[known]]
    if "labels" in weights:
        out += np.asarray(features.labels @ weights["labels"], dtype=np.float32)
    for name in ("audio", "text"):
        if name in weights:
            out += getattr(features, name) @ weights[name]
    temperature = float(weights["temperature"][0]) if "temperature" in weights else 0.0
    if temperature:
        norms = np.linalg.norm(out[:, :-1], axis=1, keepdims=True)
        out[:, :-1] /= np.maximum(norms, 1e-12) * temperature
    return out


def _pool(weights: dict[str, np.ndarray], rows: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
    """User-tower vectors: the weighted mean of the rows' item vectors, the linear layer, 1."""
    rows = rows.tocsr().astype(np.float32)
    sums = np.asarray(rows.sum(axis=1)).ravel()
    mean = sp.diags(1.0 / np.where(sums > 0, sums, 1.0)) @ rows
    pooled = np.asarray(mean @ items, dtype=np.float32)
    if "user_hidden" in weights:
        pooled = np.tanh(pooled @ weights["user_hidden"] + weights["user_hidden_bias"])
    user = pooled @ weights["user"] + weights["user_bias"]
    if "temperature" in weights and float(weights["temperature"][0]):
        user /= np.maximum(np.linalg.norm(user, axis=1, keepdims=True), 1e-12)
    return np.hstack([user, np.ones((len(user), 1), dtype=np.float32)]).astype(np.float32)


__all__ = ["TwoTowerRecommender"]

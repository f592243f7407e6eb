"""The staged recommender as one model: retrieval → LambdaRank → calibrated re-ranking.

``fit`` never looks outside the matrix it is given. It carves ``folds`` *inner* splits out
of it (each holding out about ``holdout`` of each listener's items, as the hybrid does; the
held-out parts of different folds are disjoint), and per fold fits the generators on the
inner-train part, retrieves their candidates and labels a candidate 1 when the listener played
it in that fold's held-out part. The folds' candidate sets are stacked (one query group per
listener and fold) and the LightGBM ranker learns from them: one fold leaves about three
positive candidates per listener, so more folds give the ranker several times the labels
for several times the generator fits. Early stopping and the re-ranking weight are chosen on
a separate share of the listeners (the same listeners in every fold). Then it refits the
generators and the feature context on the whole matrix for serving. Scores: the ranker's
for candidates, the re-ranked top placed above them, a low constant for items no generator
retrieved (``-inf`` for items already played).

Where the pairs' times and the listeners' time zones are known, a query is one listener's
held-out plays in one local daypart (:mod:`segue.data.dayparts`), and the ranker reads the
daypart of the request (``dayparts=``; a share of the queries are trained without it, as a
request may come without one).

``stage`` picks how far the pipeline goes when scoring — ``retrieval`` (candidates ordered
by the generators' reciprocal-rank sum), ``ranker``, ``full`` — so that the benchmark's
ablation scores one fitted model three ways.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from segue.data.dayparts import DAYPARTS, UNKNOWN
from segue.dataset.side import SideInfo
from segue.dataset.splits import aligned_values, daypart_queries, inner_folds, values_at
from segue.errors import SegueError
from segue.models.base import Reason, Recommender, take_rows
from segue.models.staged.features import (
    FeatureContext,
    feature_names,
    listener_recency,
    pair_features,
)
from segue.models.staged.ranker import Ranker
from segue.models.staged.rerank import calibrate, genre_distribution
from segue.models.staged.retrieval import (
    DEFAULT_GENERATORS,
    Candidates,
    Generators,
    candidate_recall,
)
from segue.ranking import hit_matrix, ndcg_per_user, rank_pairs

#: Score of an item no generator retrieved: below every candidate, above played items.
UNRETRIEVED = -1.0e4
STAGES = ("retrieval", "ranker", "full")
INNER_SPLITS = ("auto", "random", "temporal")
_RERANK_GRID = (0.0, 0.02, 0.05, 0.1, 0.2)
#: Share of the ranker's daypart queries trained as if the daypart were unknown: a request
#: can come without one (no time zone), and a ranker that never saw the context missing
#: ranks such a request at random among its NaN branches (NDCG@10 halved when measured).
UNKNOWN_CONTEXT_SHARE = 0.2


class StagedRecommender(Recommender):
    name = "pipeline"
    unstored_score = UNRETRIEVED
    uses_pair_times = True
    uses_context = True

    def __init__(
        self,
        generators: Sequence[str] = DEFAULT_GENERATORS,
        n_candidates: int = 100,
        holdout: float = 0.125,
        folds: int | None = None,
        negatives: float = 0.3,
        max_train_users: int = 20_000,
        valid_share: float = 0.2,
        rerank_weight: float | None = None,
        rerank_depth: int = 20,
        n_estimators: int = 500,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 50,
        stage: str = "full",
        block: int = 256,
        seed: int = 0,
        generator_params: Mapping[str, Mapping[str, Any]] | None = None,
        refit: bool = True,
        recency_days: float = 90.0,
        inner_split: str = "auto",
    ) -> None:
        """``folds``: how many disjoint inner held-out parts label the ranker's training
        pairs (at most 1/``holdout``; None: all of them, so every training pair is a label
        once); ``negatives``: the share of each group's negative
        candidates the ranker trains on (all positives are kept). ``refit`` false keeps the
        generators fitted on the last fold's inner-train part (they then match what the
        ranker learnt from, at the cost of a tenth of the data).

        Where ``fit`` is given the pairs' times: ``recency_days`` is the half-life of a play
        in the listener's recency features; ``inner_split`` "temporal" makes each inner
        fold a cut in each listener's time line (it holds out their newest items and trains
        on the older ones), the shape of a temporal test and of serving (what a listener
        plays next), where "random" holds out items at random as a random test does;
        "auto" is temporal where the pairs' times are given and random where they are not.
        (On a synthetic world with drifting taste and the ``genremix`` generator, temporal
        folds ranked the next plays at NDCG@10 0.185 against random folds' 0.172: a random
        fold tells the ranker that a listener's genre mix from their training plays is
        almost their future one, which drifting taste makes untrue.)"""
        if n_candidates < 1:
            raise SegueError(f"pipeline: n_candidates must be >= 1, got {n_candidates!r}")
        if not 0 < holdout < 1 or not 0 < valid_share < 1:
            raise SegueError("pipeline: holdout and valid_share must lie strictly in (0, 1)")
        most = int(1 / holdout + 1e-9)  # disjoint held-out parts that fit in one matrix
        if folds is not None and not 1 <= folds <= most:
            raise SegueError(f"pipeline: folds must lie in [1, 1/holdout = {most}], got {folds!r}")
        if not 0 < negatives <= 1:
            raise SegueError(f"pipeline: negatives must lie in (0, 1], got {negatives!r}")
        if rerank_weight is not None and not 0 <= rerank_weight < 1:
            raise SegueError(f"pipeline: rerank_weight must lie in [0, 1), got {rerank_weight}")
        if not np.isfinite(recency_days) or recency_days <= 0:
            raise SegueError(f"pipeline: recency_days must be > 0, got {recency_days!r}")
        if inner_split not in INNER_SPLITS:
            raise SegueError(
                f"pipeline: inner_split must be one of {', '.join(INNER_SPLITS)}, "
                f"got {inner_split!r}"
            )
        if stage not in STAGES:
            raise SegueError(f"pipeline: stage must be one of {', '.join(STAGES)}, got {stage!r}")
        self.generators = list(generators)
        self.n_candidates = int(n_candidates)
        self.holdout = float(holdout)
        self.folds = most if folds is None else int(folds)
        self.negatives = float(negatives)
        self.max_train_users = int(max_train_users)
        self.valid_share = float(valid_share)
        self.rerank_weight = rerank_weight
        self.rerank_depth = int(rerank_depth)
        self.n_estimators = int(n_estimators)
        self.learning_rate = float(learning_rate)
        self.num_leaves = int(num_leaves)
        self.min_child_samples = int(min_child_samples)
        self.stage = stage
        self.block = int(block)
        self.seed = int(seed)
        self.generator_params = {k: dict(v) for k, v in (generator_params or {}).items()}
        self.refit = bool(refit)
        self.recency_days = float(recency_days)
        self.inner_split = inner_split
        #: each stored entry of the matrix in use, weighted by its recency in its listener's
        #: time line (the matrix's structure); None where the pairs' times are not known
        self._recency: sp.csr_matrix | None = None
        #: each stored entry's local daypart (-1 unknown; the matrix's structure); None where
        #: the pairs' times or the listeners' time zones are not known
        self._dayparts: sp.csr_matrix | None = None
        self.gens = Generators(self.generators, self.generator_params)
        self.ctx: FeatureContext | None = None
        #: every training listener's 0/1 row, and the training matrix it was built from
        self._played_rows: tuple[sp.csr_matrix, sp.csr_matrix] | None = None
        #: the generators' dict and the one of them the similar items come from
        self._similar_from: tuple[dict[str, Recommender], Recommender | None] | None = None
        self.ranker: Ranker | None = None
        #: the ranker's feature names and their columns among those computed (None: all)
        self._columns: tuple[list[str], np.ndarray | None] | None = None
        #: The re-ranking weight in use (``rerank_weight``, or the one validation chose).
        self.chosen_rerank = 0.0
        #: Inner-validation figures: candidate recall per generator and union, NDCG@10 by stage.
        self.validation: dict[str, float] = {}
        #: What the ranker learnt from: labelled pairs, positives among them, query groups.
        self.training_pairs: dict[str, int] = {}

    def params(self) -> dict[str, Any]:
        return {
            "generators": self.generators,
            "n_candidates": self.n_candidates,
            "holdout": self.holdout,
            "folds": self.folds,
            "negatives": self.negatives,
            "max_train_users": self.max_train_users,
            "valid_share": self.valid_share,
            "rerank_weight": self.rerank_weight,
            "rerank_depth": self.rerank_depth,
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "stage": self.stage,
            "block": self.block,
            "seed": self.seed,
            "generator_params": self.generator_params,
            "refit": self.refit,
            "recency_days": self.recency_days,
            "inner_split": self.inner_split,
        }

    # -- fitting -------------------------------------------------------------------------
    def fit(
        self,
        interactions: sp.csr_matrix,
        side: SideInfo | None = None,
        pair_times: sp.csr_matrix | None = None,
    ) -> Self:
        """``interactions`` holds raw values (counts); each generator applies its weighting.
        ``pair_times``: when each pair was last played (days; ``Interactions.pair_times``),
        for the recency features and the temporal inner split; without them those
        features are NaN and the split is random. With the times and the listeners' time
        zones (``side.users``), each play's local daypart is known: the ranker then learns
        from one query per listener and daypart of their held-out plays, and reads the
        request's daypart (``dayparts=`` when scoring)."""
        raw = sp.csr_matrix(interactions, dtype=np.float32)
        times = dayparts = None
        if pair_times is not None:
            times = sp.csr_matrix(
                (aligned_values(pair_times, raw, "pipeline: pair_times"), raw.indices, raw.indptr),
                shape=raw.shape,
            )
            users = None if side is None else side.users
            dayparts = None if users is None else users.pair_dayparts(times)
        elif self.inner_split == "temporal":
            raise SegueError("pipeline: inner_split 'temporal' needs the pairs' times")
        parts = self._training_parts(raw, side, times, dayparts)
        self._record_recall(parts["fit"])
        self._train_ranker(parts["fit"], parts["valid"])
        self._choose_rerank(parts["valid"])
        if not self.refit:
            return self
        self._use_matrix(raw, side, times, dayparts)
        self.gens.fit(raw, side, self._recency)
        return self

    def _use_matrix(
        self,
        matrix: sp.csr_matrix,
        side: SideInfo | None,
        times: sp.csr_matrix | None,
        dayparts: sp.csr_matrix | None = None,
    ) -> None:
        """The matrix the features read from now, its feature context, recency, dayparts."""
        when = None if times is None else values_at(times, matrix, "pipeline: pair_times")
        parts = None if dayparts is None else values_at(dayparts, matrix, "pipeline: dayparts")
        self.ctx = FeatureContext.build(matrix, side, when, parts)
        self._train = matrix
        self._recency = self._dayparts = None
        if parts is not None:
            self._dayparts = sp.csr_matrix(
                (parts, matrix.indices, matrix.indptr), shape=matrix.shape
            )
        if when is not None:
            dated = sp.csr_matrix((when, matrix.indices, matrix.indptr), shape=matrix.shape)
            weights = listener_recency(dated, self.recency_days)
            self._recency = sp.csr_matrix(
                (weights, matrix.indices, matrix.indptr), shape=matrix.shape
            )

    def _training_parts(
        self,
        raw: sp.csr_matrix,
        side: SideInfo | None,
        times: sp.csr_matrix | None = None,
        dayparts: sp.csr_matrix | None = None,
    ) -> dict[str, _Part]:
        """The ranker's stacked training ("fit") and validation ("valid") query groups, one
        per listener with held-out items and fold (and per daypart of those items, where
        known); generators fitted per fold's inner train."""
        temporal = times if self.inner_split in ("auto", "temporal") else None
        splits = inner_folds(raw, self.holdout, self.folds, self.seed, times=temporal)
        rng = np.random.default_rng(self.seed)
        users = np.flatnonzero(np.diff(splits[0][1].indptr) > 0)
        if len(users) > self.max_train_users:
            users = np.sort(rng.choice(users, self.max_train_users, replace=False))
        in_valid = rng.random(len(users)) < self.valid_share
        pieces: dict[str, list[_Part]] = {"fit": [], "valid": []}
        for inner_train, inner_held in splits:
            self._use_matrix(inner_train, side, times, dayparts)
            self.gens.fit(inner_train, side, self._recency)
            held_parts = None
            if dayparts is not None:  # then _use_matrix has set the fold's dayparts
                assert times is not None and self._dayparts is not None
                held_parts = values_at(dayparts, inner_held, "pipeline: dayparts")
                self._dayparts = _apart_from_held_days(self._dayparts, times, inner_held)
            for label, group in (("fit", users[~in_valid]), ("valid", users[in_valid])):
                group = group[np.diff(inner_held.indptr)[group] > 0]
                group, request, relevant = daypart_queries(group, inner_held, held_parts)
                if request is not None:
                    request[rng.random(len(request)) < UNKNOWN_CONTEXT_SHARE] = UNKNOWN
                cands, features = self._features(group, dayparts=request)
                target = genre_distribution(inner_train[group], self.ctx.genres)
                part = _Part(cands, features, _labels(cands, relevant), relevant, target)
                pieces[label].append(part)
        return {label: _stack(pieces[label]) for label in pieces}

    def _train_ranker(self, fit: _Part, valid: _Part) -> None:
        """LambdaRank on the "fit" groups, trees chosen by NDCG@10 on the "valid" ones."""
        names = feature_names(self.gens.active, self.ctx.audio.shape[1] if self.ctx else 0)
        self.ranker = Ranker(
            names,
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            seed=self.seed,
        )

        def quality(scores: np.ndarray) -> float:
            lists, _ = _ranked_lists(valid.cands, scores, valid.n_rows, 10)
            return _ndcg(lists, valid.relevant)

        train = _sample_negatives(*_with_positives(fit), self.negatives, self.seed)
        self.ranker.fit(*train, valid=(valid.features, quality))
        self.training_pairs = {
            "pairs": len(train[1]),
            "positives": int(train[1].sum()),
            "groups": len(train[2]),
        }

    def _record_recall(self, part: _Part) -> None:
        """Candidate recall@N per generator and union, on the inner-held-out parts."""
        for g, name in enumerate(self.gens.active):
            self.validation[f"recall_{name}"] = candidate_recall(part.cands, part.relevant, g)
        self.validation["recall_union"] = candidate_recall(part.cands, part.relevant, None)

    def _choose_rerank(self, part: _Part) -> None:
        """NDCG@10 of each stage on the validation listeners; λ chosen among ``_RERANK_GRID``."""
        assert self.ranker is not None and self.ctx is not None
        cands, relevant = part.cands, part.relevant
        scores = self.ranker.predict(part.features)
        lists, list_scores = _ranked_lists(cands, scores, part.n_rows, self.rerank_depth)
        retrieval, _ = _ranked_lists(cands, _rrf(cands), part.n_rows, 10)

        def ndcg(ranked: np.ndarray) -> float:
            return _ndcg(ranked, relevant)

        self.validation["ndcg_retrieval"] = ndcg(retrieval)
        grid = _RERANK_GRID if self.rerank_weight is None else (self.rerank_weight,)
        best, best_value = 0.0, -1.0
        for weight in grid:
            ranked = calibrate(lists, list_scores, part.target, self.ctx.genres, weight, 10)
            value = ndcg(ranked)
            self.validation[f"ndcg_rerank_{weight:g}"] = value
            if value > best_value + 1e-9:
                best, best_value = weight, value
        self.validation["ndcg_ranker"] = ndcg(lists)
        self.chosen_rerank = best

    def _features(
        self,
        users: np.ndarray | None,
        history: sp.csr_matrix | None = None,
        known: np.ndarray | None = None,
        dayparts: np.ndarray | None = None,
    ) -> tuple[Candidates, np.ndarray]:
        """Candidates and their features for known ``users`` or for ``history`` rows (of the
        training listeners ``known``, -1 for none, where given), each row's request in its
        daypart (``dayparts``, -1 unknown, where given)."""
        assert self.ctx is not None
        train = self._fitted()
        played = self._played(train)
        if history is not None:
            request = _request_dayparts(dayparts, history.shape[0])
            cands = self.gens.retrieve(None, history, self.n_candidates, history=history, raw=train)
            fresh = np.repeat(request, np.diff(history.indptr))  # a fresh play happens now
            recency = _known_values(history, known, self._recency, np.ones(history.nnz))
            entries = _known_values(history, known, self._dayparts, fresh)
            return cands, pair_features(
                self.ctx, cands, history, None, played, recency, request, entries
            )
        assert users is not None
        request = _request_dayparts(dayparts, len(users))
        chunks: list[tuple[Candidates, np.ndarray]] = []
        for start in range(0, len(users), self.block):
            block = users[start : start + self.block]
            rows = take_rows(train, block)
            cands = self.gens.retrieve(block, rows, self.n_candidates)
            friends = take_rows(self.ctx.friends, block)
            recency = None if self._recency is None else take_rows(self._recency, block).data
            entries = None if self._dayparts is None else take_rows(self._dayparts, block).data
            features = pair_features(self.ctx, cands, rows, friends, played, recency,
                                     request[start : start + self.block], entries)  # fmt: skip
            cands.rows = cands.rows + start
            chunks.append((cands, features))
        return _concat(chunks, self.n_candidates, len(self.gens.active))

    def _played(self, train: sp.csr_matrix) -> sp.csr_matrix:
        """``train`` as 0/1 rows, built once per training matrix: built per call it was two
        thirds of a served request's time on the 1M-listener world (~35 of ~55 ms)."""
        cached = self._played_rows
        if cached is None or cached[0] is not train:
            cached = (train, (train != 0).astype(np.float32).tocsr())
            self._played_rows = cached
        return cached[1]

    # -- scoring -------------------------------------------------------------------------
    def score(self, users: np.ndarray, dayparts: np.ndarray | None = None) -> np.ndarray:
        """``dayparts``: each row's request daypart (index into ``DAYPARTS``, -1 unknown)."""
        users = np.asarray(users, dtype=np.int64)
        features = self._features(users, dayparts=dayparts)
        return self._scores(*features, take_rows(self._fitted(), users))

    def score_sparse(self, users: np.ndarray, dayparts: np.ndarray | None = None) -> sp.csr_matrix:
        """:meth:`score` as it is held: the candidates' scores, the listener's plays stored
        at -inf, every other item :data:`UNRETRIEVED` (unstored)."""
        users = np.asarray(users, dtype=np.int64)
        seen = take_rows(self._fitted(), users)
        return self._sparse_scores(*self._features(users, dayparts=dayparts), seen)

    def score_history(
        self, history: sp.csr_matrix, dayparts: np.ndarray | None = None
    ) -> np.ndarray:
        """A listener outside the training data: generators' ``score_history`` → features →
        ranker (no friends in the model, so the friend features are 0)."""
        rows = self._history_rows(history)
        return self._scores(*self._features(None, rows, dayparts=dayparts), rows)

    def score_history_sparse(
        self,
        history: sp.csr_matrix,
        known: np.ndarray | None = None,
        dayparts: np.ndarray | None = None,
    ) -> sp.csr_matrix:
        """:meth:`score_history` held as :meth:`score_sparse` holds :meth:`score`.

        ``known``: each history row's training listener (-1: none), as serving knows when a
        history is a listener's training row plus fresh plays: their trained plays keep the
        recency and daypart they were fitted with; the plays beyond them count as the
        newest, played in the request's daypart."""
        rows = self._history_rows(history)
        return self._sparse_scores(*self._features(None, rows, known, dayparts), rows)

    def _history_rows(self, history: sp.csr_matrix) -> sp.csr_matrix:
        n_items = self._fitted().shape[1]
        if not sp.issparse(history) or history.shape[1] != n_items:
            raise SegueError(
                f"pipeline: a history must be a sparse (n, {n_items}) matrix, got "
                f"{getattr(history, 'shape', type(history))}"
            )
        return sp.csr_matrix(history, dtype=np.float32)

    def _sparse_scores(
        self, cands: Candidates, features: np.ndarray, seen: sp.csr_matrix
    ) -> sp.csr_matrix:
        """The candidates' scores and ``seen``'s items at -inf, as a CSR of seen's shape."""
        rows, items, values = self._candidate_scores(cands, features, seen)
        seen_rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
        return sp.csr_matrix(
            (
                np.concatenate([values, np.full(seen.nnz, -np.inf, np.float32)]),
                (np.concatenate([rows, seen_rows]), np.concatenate([items, seen.indices])),
            ),
            shape=seen.shape,
        )

    def _scores(self, cands: Candidates, features: np.ndarray, seen: sp.csr_matrix) -> np.ndarray:
        """:meth:`_sparse_scores` filled in: every unstored item at :data:`UNRETRIEVED`."""
        held = self._sparse_scores(cands, features, seen).tocoo()
        dense = np.full(seen.shape, UNRETRIEVED, dtype=np.float32)
        dense[held.row, held.col] = held.data
        return dense

    def _candidate_scores(
        self, cands: Candidates, features: np.ndarray, seen: sp.csr_matrix
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, items, scores) of the candidates as :meth:`score` places them: by the
        stage's order, the re-ranked top above the rest; every other item is below them."""
        assert self.ranker is not None and self.ctx is not None
        if self.stage == "retrieval":
            return cands.rows, cands.items, _rrf(cands)
        scores = self.ranker.predict(self._ranker_input(features))  # the re-ranking orders by these
        if self.stage != "full" or self.chosen_rerank <= 0:
            return cands.rows, cands.items, scores.astype(np.float32)
        n_rows = seen.shape[0]
        lists, list_scores = _ranked_lists(cands, scores, n_rows, 2 * self.rerank_depth)
        target = genre_distribution(seen, self.ctx.genres)
        top = calibrate(
            lists, list_scores, target, self.ctx.genres, self.chosen_rerank, self.rerank_depth
        )
        ceiling = np.nanmax(np.where(lists >= 0, list_scores, -np.inf), axis=1)
        # the re-ranked top goes above every candidate, in its order (first highest); those
        # pairs leave the ranker's part so that each pair has one score
        placed = top >= 0
        top_rows = np.nonzero(placed)[0]
        order_in_row = (np.cumsum(placed, axis=1) - 1)[placed]
        above = ceiling[top_rows] + 1 + (placed.sum(axis=1)[top_rows] - 1 - order_in_row)
        n_items = seen.shape[1]
        moved = np.isin(cands.rows * n_items + cands.items, top_rows * n_items + top[placed])
        rows = np.concatenate([cands.rows[~moved], top_rows])
        items = np.concatenate([cands.items[~moved], top[placed]])
        values = np.concatenate([scores[~moved], above]).astype(np.float32)
        return rows, items, values

    def _ranker_input(self, features: np.ndarray) -> np.ndarray:
        """The feature columns the ranker was trained on, by name: a model saved by an
        earlier version reads fewer features than this one computes (the context features
        came later), and must keep serving until the next training."""
        assert self.ranker is not None and self.ctx is not None
        names = self.ranker.feature_names
        cached = self._columns
        if cached is None or cached[0] is not names:
            current = feature_names(self.gens.active, self.ctx.audio.shape[1])
            columns = None
            if names != current:
                missing = [n for n in names if n not in current]
                if missing:
                    raise SegueError(
                        "pipeline: the saved ranker reads features this version does not "
                        f"compute: {', '.join(missing[:5])}"
                    )
                at = {n: j for j, n in enumerate(current)}
                columns = np.array([at[n] for n in names], dtype=np.int64)
            cached = (names, columns)
            self._columns = cached
        return features if cached[1] is None else features[:, cached[1]]

    def feature_importance(self) -> dict[str, float]:
        """The ranker's total gain per feature, largest first."""
        if self.ranker is None:
            raise SegueError("model 'pipeline' is not fitted yet; call fit() first")
        return self.ranker.importance()

    def explain(self, user: int, item: int) -> Reason:
        """The reason of the generator that ranked the item highest among its candidates."""
        self._fitted()
        cands, _ = self._features(np.array([user], dtype=np.int64))
        at = np.flatnonzero(cands.items == item)
        active = self.gens.active
        if len(at) == 0:
            return self.gens.models[active[0]].explain(user, item)
        best = int(np.argmin(cands.ranks[at[0]]))
        return self.gens.models[active[best]].explain(user, item)

    def similar_items(self, items: Sequence[int] | np.ndarray, k: int = 10) -> np.ndarray:
        source = self._similar_source()
        if source is None:
            return super().similar_items(items, k)
        return source.similar_items(items, k)

    def _similar_source(self) -> Recommender | None:
        """The first generator that knows similar items: what the pipeline's are. Found
        once per fitted (or loaded) set of generators, not on every call."""
        self._fitted()
        models = self.gens.models
        if self._similar_from is None or self._similar_from[0] is not models:
            source = None
            for name in self.gens.active:
                try:
                    models[name].similar_items(np.array([0]), 1)
                except SegueError:
                    continue
                source = models[name]
                break
            self._similar_from = (models, source)
        return self._similar_from[1]

    @property
    def _item_space(self) -> Callable[[], np.ndarray] | None:
        """The item vectors of that generator when it is a factor model, so that the
        published similar-items table is one exact vector search (as for ALS itself) rather
        than a call per block of items: on the 1M world's 132,660 items, minutes against
        most of an hour."""
        source = self._similar_source() if self.ranker is not None else None
        return getattr(source, "_item_space", None)

    # -- persistence ---------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        assert self.ranker is not None
        return {
            "active": self.gens.active,
            "searched": self.gens.searched(),
            "feature_names": self.ranker.feature_names,
            "chosen_rerank": self.chosen_rerank,
            "validation": self.validation,
        }

    def _state(self) -> dict[str, np.ndarray]:
        assert self.ctx is not None
        state = self.ctx.state()
        if self._recency is not None:  # the training matrix's structure, saved beside it
            state["recency"] = self._recency.data
        if self._dayparts is not None:
            state["dayparts"] = self._dayparts.data
        return state

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.ctx = FeatureContext.from_state(state)
        train = self._fitted()
        self._recency = self._dayparts = None
        if "recency" in state:
            self._recency = sp.csr_matrix(
                (state["recency"], train.indices, train.indptr), shape=train.shape
            )
        if "dayparts" in state:
            self._dayparts = sp.csr_matrix(
                (state["dayparts"], train.indices, train.indptr), shape=train.shape
            )

    def _save_parts(self, folder: Path) -> None:
        assert self.ranker is not None
        self.gens.save(folder)
        self.ranker.save(folder / "ranker.txt")

    def _load_parts(self, folder: Path, meta: dict[str, Any]) -> None:
        self.gens.load(folder, meta["active"], meta.get("searched"))
        self.ranker = Ranker(meta["feature_names"])
        self.ranker.load(folder / "ranker.txt")
        self.chosen_rerank = float(meta["chosen_rerank"])
        self.validation = dict(meta["validation"])


def _apart_from_held_days(
    parts: sp.csr_matrix, times: sp.csr_matrix, held: sp.csr_matrix
) -> sp.csr_matrix:
    """``parts`` (an inner fold's training pairs' dayparts) with every pair played on a day
    on which its listener has a held-out play set unknown. A held-out play's session-mates
    (same listener, day, daypart and, mostly, genre) would otherwise sit in what the
    listener's daypart profile reads, a hint no request for a future session has: measured
    on seed 0's validation part of the synthetic world, the ranker then scored 0.180 on
    its inner folds against 0.168 on the real held-out part."""
    def keyed(matrix: sp.csr_matrix) -> np.ndarray:
        day = np.floor(values_at(times, matrix, "pipeline: pair_times")).astype(np.int64)
        rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        return rows * (1 << 32) + day

    data = np.array(parts.data, copy=True)
    data[np.isin(keyed(parts), keyed(held))] = UNKNOWN
    return sp.csr_matrix((data, parts.indices, parts.indptr), shape=parts.shape)


def _request_dayparts(dayparts: np.ndarray | None, n_rows: int) -> np.ndarray:
    """One request daypart per row (-1 unknown), checked: an edge of the model."""
    if dayparts is None:
        return np.full(n_rows, UNKNOWN, np.int8)
    out = np.asarray(dayparts).reshape(-1)
    if len(out) != n_rows:
        raise SegueError(f"pipeline: {len(out)} request dayparts for {n_rows} rows")
    if not np.issubdtype(out.dtype, np.integer) or (
        len(out) and (out.min() < UNKNOWN or out.max() >= len(DAYPARTS))
    ):
        raise SegueError(
            f"pipeline: a request daypart must be -1 (unknown) or an index into "
            f"{', '.join(DAYPARTS)}"
        )
    return out.astype(np.int8)


def _known_values(
    history: sp.csr_matrix,
    known: np.ndarray | None,
    stored: sp.csr_matrix | None,
    fresh: np.ndarray,
) -> np.ndarray | None:
    """Each stored history entry's value of ``stored`` (recency, daypart): a history comes
    without times, so its plays take ``fresh`` (recent, played now) but those its training
    listener (``known``, -1 none) was fitted with, which keep their stored value; None where
    the model stores none."""
    if stored is None:
        return None
    out = np.array(fresh, dtype=stored.dtype)
    if known is None:
        return out
    known = np.asarray(known, dtype=np.int64).reshape(-1)
    if len(known) != history.shape[0]:
        raise SegueError(
            f"pipeline: {len(known)} known listeners for {history.shape[0]} history rows"
        )
    for r in np.flatnonzero(known >= 0):  # serving: one listener per request
        lo, hi = history.indptr[r], history.indptr[r + 1]
        u = known[r]
        items = stored.indices[stored.indptr[u] : stored.indptr[u + 1]]  # sorted
        if len(items) == 0 or hi == lo:
            continue
        pos = np.minimum(np.searchsorted(items, history.indices[lo:hi]), len(items) - 1)
        found = items[pos] == history.indices[lo:hi]
        values = stored.data[stored.indptr[u] + pos]
        out[lo:hi] = np.where(found, values, out[lo:hi])
    return out


def _ndcg(ranked: np.ndarray, relevant: sp.csr_matrix) -> float:
    """Mean NDCG@10 of ranked rows against all of each row's relevant items."""
    hits = hit_matrix(ranked[:, :10], relevant)
    return float(ndcg_per_user(hits, np.diff(relevant.indptr)).mean())


def _labels(cands: Candidates, relevant: sp.csr_matrix) -> np.ndarray:
    n_items = relevant.shape[1]
    rel = relevant.tocoo()
    truth = np.sort(rel.row.astype(np.int64) * n_items + rel.col)
    return np.isin(cands.rows * n_items + cands.items, truth).astype(np.float32)


def _rrf(cands: Candidates) -> np.ndarray:
    """Retrieval-only order: the reciprocal-rank sum over the generators that retrieved it."""
    retrieved = cands.ranks < cands.n
    return np.where(retrieved, 1.0 / (10.0 + cands.ranks), 0.0).sum(axis=1).astype(np.float32)


def _ranked_lists(
    cands: Candidates, scores: np.ndarray, n_rows: int, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, depth) candidates by score (ties by item), -1 / -inf where a row has fewer."""
    return rank_pairs(cands.rows, cands.items, scores, n_rows, depth)


def _concat(
    chunks: list[tuple[Candidates, np.ndarray]], n: int, n_generators: int
) -> tuple[Candidates, np.ndarray]:
    if not chunks:
        empty = np.zeros(0, dtype=np.int64)
        scores = np.zeros((0, n_generators), np.float32)
        cands = Candidates(empty, empty, scores, scores.copy(), n, scores.copy())
        return cands, np.zeros((0, 0), np.float32)
    cands = Candidates(
        np.concatenate([c.rows for c, _ in chunks]),
        np.concatenate([c.items for c, _ in chunks]),
        np.concatenate([c.scores for c, _ in chunks]),
        np.concatenate([c.ranks for c, _ in chunks]),
        n,
        np.concatenate([c.zall for c, _ in chunks]),
    )
    return cands, np.concatenate([f for _, f in chunks])


@dataclass
class _Part:
    """Query groups for the ranker: candidates (``rows`` index the groups), their features and
    0/1 labels, each group's held-out items and its genre distribution (for calibration)."""

    cands: Candidates
    features: np.ndarray
    labels: np.ndarray
    relevant: sp.csr_matrix
    target: np.ndarray

    @property
    def n_rows(self) -> int:
        return self.relevant.shape[0]


def _stack(parts: list[_Part]) -> _Part:
    """The folds' groups one after another (a listener in two folds is two groups)."""
    offsets = np.cumsum([0] + [p.n_rows for p in parts])
    chunks = []
    for part, offset in zip(parts, offsets, strict=False):
        c = part.cands
        if len(c) == 0:  # a fold without listeners here has no feature columns either
            continue
        chunks.append((Candidates(c.rows + offset, c.items, c.scores, c.ranks, c.n, c.zall),
                       part.features))  # fmt: skip
    first = parts[0]
    cands, features = _concat(chunks, first.cands.n, first.cands.scores.shape[1])
    if len(cands) == 0:
        features = np.zeros((0, first.features.shape[1]), np.float32)
    return _Part(
        cands,
        features,
        np.concatenate([p.labels for p in parts]),
        sp.vstack([p.relevant for p in parts], format="csr"),
        np.concatenate([p.target for p in parts]),
    )


def _with_positives(part: _Part) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, labels, group sizes) of the listeners with at least one positive candidate
    (a group without one gives LambdaRank no gradient)."""
    cands, labels, n_rows = part.cands, part.labels, part.n_rows
    positives = np.bincount(cands.rows, weights=labels, minlength=n_rows)
    keep_rows = positives > 0
    keep = keep_rows[cands.rows]
    sizes = np.bincount(cands.rows[keep], minlength=n_rows)[keep_rows]
    return part.features[keep], labels[keep], sizes


def _sample_negatives(
    features: np.ndarray, labels: np.ndarray, sizes: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every positive and about ``share`` of the negatives of each group, drawn at random:
    stacked folds give millions of pairs, and LambdaRank's cost grows with them while the
    positives carry the signal."""
    if share >= 1:
        return features, labels, sizes
    rng = np.random.default_rng(seed)
    keep = (labels > 0) | (rng.random(len(labels)) < share)
    group = np.repeat(np.arange(len(sizes)), sizes)
    return features[keep], labels[keep], np.bincount(group[keep], minlength=len(sizes))

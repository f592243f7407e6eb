"""Neural collaborative filtering: NeuMF (He et al. 2017), GMF and an MLP side by side.

Every user and item has two embeddings: one for the generalised matrix factorisation (GMF)
half, whose output is their element-wise product, and one for the multi-layer perceptron (MLP)
half, whose input is their concatenation. The last layer reads both halves:

    logit(u, i) = h_g · (p_u ⊙ q_i) + h_m · MLP([p'_u, q'_i]) + b

It learns from implicit feedback with ``negatives`` unplayed items drawn uniformly per played
pair, by BPR (pairwise, the default: better on Last.fm 2K's validation part than the paper's
pointwise log loss, ``loss="bce"``) with Adam, in PyTorch on the CPU.

Early stopping: ``holdout`` of each user's training items is set aside, the model trains on
the rest and NDCG@10 on that part is read after every epoch; after ``patience`` epochs without
a gain (or ``epochs``), the best epoch count is known and, with ``refit`` (default), the model
is trained again on the whole matrix for that many epochs (the user embeddings are per user, so
the 10% set aside would otherwise be missing from them). Nothing outside the matrix passed to
``fit`` is read, so the test part of an evaluation never steers it.

Determinism: the same matrix, settings and ``seed`` give the same model on the same machine
and thread count (initial weights from a seeded torch generator of its own; batches and
negatives from a seeded numpy generator).

Scoring every item is not a dot product (the MLP mixes user and item), so ``recommend`` scores
densely; the first MLP layer is split into a user part and an item part computed once, so a
user's scores cost the remaining small layers per item. :meth:`NCFRecommender.user_embeddings`
and :meth:`NCFRecommender.item_embeddings` give the GMF half as vectors whose dot product is
exactly that half of the logit: what an approximate-nearest-neighbour index can retrieve by.

New listeners (``score_history``) are *folded in*: their two embeddings start at the mean of
their items' embeddings and take ``fold_in_steps`` Adam steps on the training loss with every
item weight frozen, so a history of a few plays gives a list that follows them without a
retrain.

torch is imported on first use (the ``nlu`` extra); ``import segue.models.ncf`` does not need it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from segue.dataset.side import SideInfo
from segue.dataset.splits import inner_holdout
from segue.errors import SegueError
from segue.models.base import Reason, Recommender, top_k
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

LOSSES = ("bpr", "bce")
#: Floats held at once by one block of the MLP's item-wise part while scoring.
_SCORE_BLOCK_FLOATS = 8_000_000


class NCFRecommender(Recommender):
    """NeuMF; see the module docstring. Defaults chosen on Last.fm 2K's validation part."""

    name = "ncf"

    def __init__(
        self,
        factors: int = 64,
        mlp_layers: Sequence[int] = (64, 32, 16),
        loss: str = "bpr",
        negatives: int = 4,
        epochs: int = 30,
        patience: int = 3,
        learning_rate: float = 2e-3,
        regularization: float = 1e-2,
        batch_size: int = 1024,
        holdout: float = 0.1,
        refit: bool = True,
        fold_in_steps: int = 40,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        check_positive_int("ncf: factors", factors)
        layers = tuple(int(n) for n in mlp_layers)
        if len(layers) < 1 or any(n < 1 for n in layers) or layers[0] % 2:
            raise SegueError(
                "ncf: mlp_layers must be positive integers, the first (the concatenated "
                f"user and item embeddings) even; got {list(mlp_layers)!r}"
            )
        if loss not in LOSSES:
            raise SegueError(f"ncf: loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        for key, value in (
            ("negatives", negatives),
            ("epochs", epochs),
            ("patience", patience),
            ("batch_size", batch_size),
        ):
            check_positive_int(f"ncf: {key}", value)
        check_positive_int("ncf: fold_in_steps", fold_in_steps, minimum=0)
        check_positive_float("ncf: learning_rate", learning_rate)
        check_positive_float("ncf: regularization", regularization, allow_zero=True)
        if not 0 < holdout < 1:
            raise SegueError(f"ncf: holdout must lie strictly between 0 and 1, got {holdout!r}")
        self.factors = int(factors)
        self.mlp_layers = layers
        self.loss = loss
        self.negatives = int(negatives)
        self.epochs = int(epochs)
        self.patience = int(patience)
        self.learning_rate = float(learning_rate)
        self.regularization = float(regularization)
        self.batch_size = int(batch_size)
        self.holdout = float(holdout)
        self.refit = bool(refit)
        self.fold_in_steps = int(fold_in_steps)
        self.seed = int(seed)
        self.num_threads = int(num_threads)  # not saved: it never changes the ranking much
        #: the fitted weights by name, numpy float32 (see ``_forward_numpy``)
        self.weights: dict[str, np.ndarray] = {}
        #: epochs the final model trained for, and the inner validation NDCG@10 per epoch
        self.trained_epochs = 0
        self.validation_curve: list[float] = []

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "mlp_layers": list(self.mlp_layers),
            "loss": self.loss,
            "negatives": self.negatives,
            "epochs": self.epochs,
            "patience": self.patience,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "batch_size": self.batch_size,
            "holdout": self.holdout,
            "refit": self.refit,
            "fold_in_steps": self.fold_in_steps,
            "seed": self.seed,
        }

    # -- fitting -------------------------------------------------------------------------
    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        """Train with early stopping on an inner split, then (``refit``) on everything."""
        torch = load_torch("the ncf model")
        train = checked_matrix(interactions, self.name)
        if train.nnz == 0:
            raise SegueError("ncf: the interaction matrix has no positive entries to learn from")
        with torch_threads(self.num_threads, torch):
            inner, valid = inner_holdout(train, self.holdout, self.seed)
            users = validation_users(valid, 500, self.seed)
            weights, curve = self._run_epochs(torch, inner, self.epochs, valid=valid, users=users)
            best = int(np.nanargmax(curve)) + 1 if np.isfinite(curve).any() else len(curve)
            if self.refit:
                weights, _ = self._run_epochs(torch, train, best)
        self.weights = weights
        self.trained_epochs = best
        self.validation_curve = [float(v) for v in curve]
        self._train = train
        return self

    def _run_epochs(
        self,
        torch: Any,
        matrix: sp.csr_matrix,
        epochs: int,
        *,
        valid: sp.csr_matrix | None = None,
        users: np.ndarray | None = None,
    ) -> tuple[dict[str, np.ndarray], list[float]]:
        """Weights after ``epochs`` epochs, or with ``valid`` the best epoch's (early stop)."""
        n_users, n_items = matrix.shape
        params = self._init(torch, n_users, n_items)
        optimiser = torch.optim.Adam(list(params.values()), lr=self.learning_rate)
        rng = np.random.default_rng(self.seed)
        coo = matrix.tocoo()
        pair_users = coo.row.astype(np.int64)
        pair_items = coo.col.astype(np.int64)
        curve: list[float] = []
        best: dict[str, np.ndarray] = {}
        since_best = 0
        for _ in range(epochs):
            order = rng.permutation(len(pair_users))
            negatives = rng.integers(0, n_items, size=(len(order), self.negatives))
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                u = torch.from_numpy(pair_users[rows])
                pos = torch.from_numpy(pair_items[rows])
                neg = torch.from_numpy(negatives[start : start + len(rows)])
                loss = self._loss(torch, params, u, pos, neg)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            if valid is None or users is None:
                continue
            snapshot = _numpy(params)
            value = validation_ndcg(lambda b, w=snapshot: _score_users(w, b), matrix, valid, users)
            curve.append(value)
            if not best or value > max(curve[:-1], default=-1.0):
                best, since_best = snapshot, 0
            else:
                since_best += 1
                if since_best >= self.patience:
                    break
        return (best or _numpy(params)), curve

    def _init(self, torch: Any, n_users: int, n_items: int) -> dict[str, Any]:
        """Embeddings ~ N(0, 0.01²) as in the paper; layers by Kaiming-uniform; last layer 1s."""
        generator = seeded_generator(torch, self.seed)
        half = self.mlp_layers[0] // 2

        def normal(*shape: int, std: float = 0.01) -> Any:
            return (torch.randn(*shape, generator=generator) * std).requires_grad_()

        def uniform(n_in: int, n_out: int) -> Any:
            bound = float(np.sqrt(6.0 / n_in))
            return ((torch.rand(n_in, n_out, generator=generator) * 2 - 1) * bound).requires_grad_()

        params: dict[str, Any] = {
            "user_gmf": normal(n_users, self.factors),
            "item_gmf": normal(n_items, self.factors),
            "user_mlp": normal(n_users, half),
            "item_mlp": normal(n_items, half),
        }
        widths = self.mlp_layers
        for layer, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
            params[f"w{layer}"] = uniform(n_in, n_out)
            params[f"b{layer}"] = torch.zeros(n_out, requires_grad=True)
        last = self.factors + widths[-1]
        params["h"] = torch.full((last,), 1.0 / np.sqrt(last), requires_grad=True)
        params["h_bias"] = torch.zeros(1, requires_grad=True)
        return params

    def _loss(self, torch: Any, params: dict[str, Any], u: Any, pos: Any, neg: Any) -> Any:
        n_neg = neg.shape[1]
        users = torch.cat([u, u.repeat_interleave(n_neg)])
        items = torch.cat([pos, neg.reshape(-1)])
        logits = _forward(torch, params, users, items, len(self.mlp_layers) - 1)
        positive, negative = logits[: len(u)], logits[len(u) :].reshape(len(u), n_neg)
        if self.loss == "bpr":
            loss = -torch.nn.functional.logsigmoid(positive[:, None] - negative).mean()
        else:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                torch.cat([positive, negative.reshape(-1)]),
                torch.cat([torch.ones_like(positive), torch.zeros(negative.numel())]),
            )
        if self.regularization:
            embedded = (
                params["user_gmf"][u].pow(2).sum()
                + params["user_mlp"][u].pow(2).sum()
                + params["item_gmf"][items].pow(2).sum() / (1 + n_neg)
                + params["item_mlp"][items].pow(2).sum() / (1 + n_neg)
            )
            loss = loss + self.regularization * embedded / len(u)
        return loss

    # -- scoring -------------------------------------------------------------------------
    def score(self, users: np.ndarray) -> np.ndarray:
        self._fitted()
        return _score_users(self.weights, np.asarray(users, dtype=np.int64))

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores of listeners known only by their plays: fold in (module doc), then score."""
        gmf, mlp = self.fold_in(history)
        return _score_vectors(self.weights, gmf, mlp)

    def fold_in(self, history: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """(GMF, MLP) user embeddings for rows of plays, item weights frozen; an empty row
        gets zero vectors (its scores are then the items' own part: a popularity-like list)."""
        self._fitted()
        rows = checked_matrix(history, f"{self.name}.score_history")
        n_items = self.weights["item_gmf"].shape[0]
        if rows.shape[1] != n_items:
            raise SegueError(
                f"{self.name}.score_history: rows have {rows.shape[1]} items, "
                f"the model was trained on {n_items}"
            )
        counts = np.diff(rows.indptr).astype(np.float32)
        mean = sp.diags(1.0 / np.maximum(counts, 1.0)) @ (rows > 0).astype(np.float32)
        gmf = np.asarray(mean @ self.weights["item_gmf"], dtype=np.float32)
        mlp = np.asarray(mean @ self.weights["item_mlp"], dtype=np.float32)
        if self.fold_in_steps == 0 or rows.nnz == 0:
            return gmf, mlp
        torch = load_torch("the ncf model")
        with torch_threads(self.num_threads, torch):
            return self._fold_in_steps(torch, rows, gmf, mlp)

    def _fold_in_steps(
        self, torch: Any, rows: sp.csr_matrix, gmf: np.ndarray, mlp: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        frozen = {k: torch.from_numpy(v) for k, v in self.weights.items()}
        user_gmf = torch.from_numpy(gmf.copy()).requires_grad_()
        user_mlp = torch.from_numpy(mlp.copy()).requires_grad_()
        optimiser = torch.optim.Adam([user_gmf, user_mlp], lr=0.05)
        coo = rows.tocoo()
        u = torch.from_numpy(coo.row.astype(np.int64))
        pos = torch.from_numpy(coo.col.astype(np.int64))
        rng = np.random.default_rng(self.seed)
        n_items = frozen["item_gmf"].shape[0]
        for _ in range(self.fold_in_steps):
            neg = torch.from_numpy(rng.integers(0, n_items, size=(len(pos), self.negatives)))
            params = {**frozen, "user_gmf": user_gmf, "user_mlp": user_mlp}
            loss = self._loss(torch, params, u, pos, neg)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return user_gmf.detach().numpy().copy(), user_mlp.detach().numpy().copy()

    def user_embeddings(self) -> np.ndarray:
        """(n_users, factors) float32: the GMF user vectors times the output weights, so that
        ``user_embeddings() @ item_embeddings().T`` is exactly the GMF half of every logit.
        The MLP half is not a dot product; use these for retrieval, ``score`` to rank."""
        self._fitted()
        h = self.weights["h"][: self.factors]
        return np.ascontiguousarray(self.weights["user_gmf"] * h, dtype=np.float32)

    def item_embeddings(self) -> np.ndarray:
        """(n_items, factors) float32: the GMF item vectors (see :meth:`user_embeddings`)."""
        self._fitted()
        return np.ascontiguousarray(self.weights["item_gmf"], dtype=np.float32)

    def explain(self, user: int, item: int) -> Reason:
        """The played item closest (cosine of both embeddings) to the recommended one."""
        row = self._fitted()[user]
        if row.nnz == 0:
            return Reason("matches_your_taste")
        space = self._item_space()
        unit = unit_rows(space[np.append(row.indices, item)])
        closeness = unit[:-1] @ unit[-1]
        best = int(np.argmax(closeness))
        if closeness[best] <= 0:
            return Reason("matches_your_taste")
        return Reason("because_you_played", anchor_item=int(row.indices[best]))

    def similar_items(self, items: Sequence[int] | np.ndarray, k: int = 10) -> np.ndarray:
        """Nearest items by cosine of the concatenated GMF and MLP item embeddings."""
        n_items = self._fitted().shape[1]
        items = np.asarray(items, dtype=np.int64)
        if len(items) and (items.min() < 0 or items.max() >= n_items):
            raise SegueError(f"item index out of range 0..{n_items - 1}")
        unit = unit_rows(self._item_space())
        dense = unit[items] @ unit.T
        dense[np.arange(len(items)), items] = -np.inf
        ranked, scores = top_k(dense, min(k, n_items))
        ranked[~np.isfinite(scores)] = -1
        return ranked

    def _item_space(self) -> np.ndarray:
        return np.hstack([self.weights["item_gmf"], self.weights["item_mlp"]])

    # -- persistence ---------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {f"w_{k}": v for k, v in self.weights.items()}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.weights = {k[2:]: v for k, v in state.items() if k.startswith("w_")}

    def _meta(self) -> dict[str, Any]:
        return {"trained_epochs": self.trained_epochs, "validation_curve": self.validation_curve}

    def _load_parts(self, folder: Any, meta: dict[str, Any]) -> None:
        self.trained_epochs = int(meta.get("trained_epochs", 0))
        self.validation_curve = [float(v) for v in meta.get("validation_curve", [])]


def _forward(torch: Any, params: dict[str, Any], users: Any, items: Any, n_layers: int) -> Any:
    """Logits of (user, item) pairs, both 1-d index tensors of the same length."""
    gmf = params["user_gmf"][users] * params["item_gmf"][items]
    x = torch.cat([params["user_mlp"][users], params["item_mlp"][items]], dim=1)
    for layer in range(n_layers):
        x = torch.relu(x @ params[f"w{layer}"] + params[f"b{layer}"])
    return torch.cat([gmf, x], dim=1) @ params["h"] + params["h_bias"]


def _numpy(params: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().astype(np.float32, copy=True) for k, v in params.items()}


def _score_users(weights: dict[str, np.ndarray], users: np.ndarray) -> np.ndarray:
    return _score_vectors(weights, weights["user_gmf"][users], weights["user_mlp"][users])


def _score_vectors(weights: dict[str, np.ndarray], gmf: np.ndarray, mlp: np.ndarray) -> np.ndarray:
    """Every item's logit for users given by their two embeddings, in numpy (no torch needed).

    The first MLP layer is linear in the concatenation, so it splits into a user part and an
    item part, each computed once; only the later (narrow) layers run per (user, item) pair.
    """
    factors = weights["item_gmf"].shape[1]
    n_layers = sum(1 for k in weights if k.startswith("w"))
    h = weights["h"]
    out = (gmf * h[:factors]) @ weights["item_gmf"].T + weights["h_bias"][0]
    if n_layers == 0:
        return (out + _mlp_only(weights, mlp)).astype(np.float32)
    half = weights["item_mlp"].shape[1]
    w0 = weights["w0"]
    user_part = (mlp @ w0[:half] + weights["b0"]).astype(np.float32)
    item_part = (weights["item_mlp"] @ w0[half:]).astype(np.float32)
    n_items = item_part.shape[0]
    block = max(1, _SCORE_BLOCK_FLOATS // max(1, n_items * w0.shape[1]))
    for start in range(0, len(mlp), block):
        rows = user_part[start : start + block]
        x = (rows[:, None, :] + item_part[None, :, :]).reshape(-1, item_part.shape[1])
        np.maximum(x, 0.0, out=x)
        for layer in range(1, n_layers):  # one 2-d product per layer: a single BLAS call
            x = x @ weights[f"w{layer}"]
            x += weights[f"b{layer}"]
            np.maximum(x, 0.0, out=x)
        out[start : start + block] += (x @ h[factors:]).reshape(len(rows), n_items)
    return out.astype(np.float32, copy=False)


def _mlp_only(weights: dict[str, np.ndarray], mlp: np.ndarray) -> np.ndarray:
    """With no hidden layer the MLP half is its input, the concatenated embeddings."""
    factors = weights["item_gmf"].shape[1]
    half = weights["item_mlp"].shape[1]
    h = weights["h"][factors:]
    return (mlp @ h[:half])[:, None] + (weights["item_mlp"] @ h[half:])[None, :]


__all__ = ["LOSSES", "NCFRecommender"]

"""Batch recommendations for every listener, written as Parquet for analysts and serving.

One row per (user, rank): ``user_id, rank, item_id, score, model, date``. Only users with
training history get a list; new listeners are answered online by the cold-start path. A user
without personalisation consent (``SideInfo.users.personalised``) gets the non-personal list
of their context instead of the model's — the cold-start list of their country, kids setting
applied, the same one for every such user there and the one serving answers them online
(:mod:`segue.data.consent`).
Rows are written in blocks so that a million users never need one table in memory.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from segue.dataset import SideInfo
from segue.errors import SegueError
from segue.models.coldstart import ColdStartRecommender, Onboarding
from segue.models.filters import Filters
from segue.progress import Progress, no_progress
from segue.registry.trained import TrainedModel

SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("rank", pa.int16()),
        ("item_id", pa.string()),
        ("score", pa.float32()),
        ("model", pa.string()),
        ("date", pa.date32()),
    ]
)


def batch_path(data_dir: Path, date: dt.date, name: str) -> Path:
    """Where a day's lists go: Hive-style ``date=`` folders read as one dataset by Spark,
    DuckDB or pandas (``pd.read_parquet(data_dir / "batch")``)."""
    return data_dir / "batch" / f"date={date.isoformat()}" / f"{name}.parquet"


def batch_recommend(
    trained: TrainedModel,
    path: Path,
    *,
    k: int = 50,
    date: dt.date,
    block: int = 4096,
    side: SideInfo | None = None,
    rows: np.ndarray | None = None,
    progress: Progress = no_progress,
) -> int:
    """Top ``k`` unplayed items for every user with history (or those of them in ``rows``);
    returns the rows written.

    With ``side`` (item attributes and the user table), kids profiles get no explicit items,
    as every face applies: the file is what downstream jobs and analysts take as the list.
    """
    train = trained.model._fitted()
    users = np.flatnonzero(np.diff(train.indptr) > 0)
    if rows is not None:
        users = np.intersect1d(users, rows)
    with ListWriter(trained, path, k=k, date=date, side=side) as lists:
        for start in range(0, len(users), block):
            progress("batch recommendations", start, len(users))
            chunk = users[start : start + block]
            items = np.full((len(chunk), k), -1, dtype=np.int64)
            scores = np.zeros((len(chunk), k), dtype=np.float32)
            mine = lists.personal(chunk)  # the others get their context's list: not scored
            if mine.any():
                found = _top(trained, chunk[mine], k, lists.kids[chunk[mine]], lists.kids_filters)
                items[mine, : found[0].shape[1]], scores[mine, : found[1].shape[1]] = found
            lists.write(chunk, items, scores)
    progress("batch recommendations", len(users), len(users))
    return lists.written


class ListWriter:
    """Lists into one Parquet file (:data:`SCHEMA`), a block of users at a time, the rules
    applied: a user without personalisation consent gets their context's list whatever is
    given for them; kids profiles' lists are the caller's to ask with :attr:`kids_filters`.

    A context manager: written to ``path.tmp`` and renamed on a clean exit, so readers see the
    previous day's file or the complete new one; on an error the partial file is removed.
    :func:`batch_recommend` writes with it, and so does the daily batch pass that scores each
    listener once for both their list and their mixes
    (:func:`segue.batch.publish.batch_lists_and_mixes`).
    """

    def __init__(
        self, trained: TrainedModel, path: Path, *, k: int, date: dt.date, side: SideInfo | None
    ) -> None:
        if k < 1:
            raise SegueError(f"k must be >= 1, got {k}")
        self.trained, self.path, self.k = trained, Path(path), k
        self.date = np.datetime64(date, "D")
        self.kids, self.kids_filters = _kids_rule(side, len(trained.users))
        self._context = _ContextLists(trained, side, k, self.kids_filters)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._writer: pq.ParquetWriter | None = None
        self.written = 0

    def __enter__(self) -> ListWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self._tmp, SCHEMA)
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        assert self._writer is not None
        self._writer.close()
        if kind is None:
            self._tmp.replace(self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def filters(self, kids: bool) -> Filters | None:
        """The filters a list is asked with: no explicit items for a kids profile."""
        return self.kids_filters if kids else None

    def personal(self, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` get the model's list (the rest: their context's)."""
        return self._context.personal(rows)

    def write(self, rows: np.ndarray, items: np.ndarray, scores: np.ndarray) -> None:
        """The lists of ``rows`` (items best first, -1 padding; at most ``k`` each)."""
        assert self._writer is not None, "use ListWriter as a context manager"
        items, scores = items[:, : self.k].copy(), scores[:, : self.k].copy()
        self._context.replace(rows, self.kids[rows], items, scores)
        keep = items >= 0
        at, ranks = np.nonzero(keep)
        table = pa.table(
            {
                "user_id": self.trained.users.ids[rows[at]],
                "rank": (ranks + 1).astype(np.int16),
                "item_id": self.trained.items.ids[items[keep]],
                "score": scores[keep].astype(np.float32),
                "model": np.full(len(at), self.trained.name),
                "date": np.full(len(at), self.date),
            },
            schema=SCHEMA,
        )
        self._writer.write_table(table)
        self.written += len(at)


def ruled_users(side: SideInfo | None) -> np.ndarray:
    """User rows whose list a rule shapes (no personalisation consent, kids profiles): an
    engine that cannot apply the rules (Spark) leaves them to :func:`batch_recommend`."""
    if side is None or side.users is None:
        return np.zeros(0, dtype=np.int64)
    ruled = np.asarray(side.users.kids_profile, dtype=bool).copy()
    if side.users.personalised is not None:
        ruled |= ~np.asarray(side.users.personalised, dtype=bool)
    return np.flatnonzero(ruled)


class _ContextLists:
    """Lists of users without personalisation consent: one per (country, kids), computed
    the first time a user of that context comes up."""

    def __init__(
        self, trained: TrainedModel, side: SideInfo | None, k: int, kids_filters: Filters | None
    ) -> None:
        table = side.users if side is not None else None
        self.table = table
        self.consent = None if table is None or table.personalised is None else table.personalised
        self.k, self.kids_filters = k, kids_filters
        self.trained, self.side = trained, side
        self._cold: ColdStartRecommender | None = None
        self._lists: dict[tuple[int, bool], tuple[np.ndarray, np.ndarray]] = {}

    def personal(self, rows: np.ndarray) -> np.ndarray:
        if self.consent is None:
            return np.ones(len(rows), dtype=bool)
        return np.asarray(self.consent[rows], dtype=bool)

    def replace(
        self, rows: np.ndarray, kids: np.ndarray, items: np.ndarray, scores: np.ndarray
    ) -> None:
        """Overwrite, in place, the rows of ``items``/``scores`` of users without consent."""
        if self.consent is None or self.table is None:
            return
        for position in np.flatnonzero(~np.asarray(self.consent[rows], dtype=bool)):
            row = int(rows[position])
            key = (int(self.table.country[row]), bool(kids[position]))
            if key not in self._lists:
                self._lists[key] = self._list(*key)
            found, values = self._lists[key]
            n = min(len(found), items.shape[1])
            items[position] = -1
            scores[position] = 0
            items[position, :n], scores[position, :n] = found[:n], values[:n]

    def _list(self, country: int, kids: bool) -> tuple[np.ndarray, np.ndarray]:
        assert self.table is not None and self.side is not None
        if self._cold is None:
            train = self.trained.model._fitted()
            self._cold = ColdStartRecommender(self.trained.model, train, self.side)
        onboarding = Onboarding(country=self.table.countries[country] if country >= 0 else None)
        filters = self.kids_filters if kids else None
        found = self._cold.recommend(onboarding, k=self.k, filters=filters)
        return np.asarray(found.items), np.asarray(found.scores)


def _kids_rule(side: SideInfo | None, n_users: int) -> tuple[np.ndarray, Filters | None]:
    """(kids flag per model row, the filters for them); no flags without the side info."""
    if side is None or side.catalog is None or side.users is None:
        return np.zeros(n_users, dtype=bool), None
    return np.asarray(side.users.kids_profile, dtype=bool), Filters.build(
        side.catalog, no_explicit=True
    )


def _top(
    trained: TrainedModel, rows: np.ndarray, k: int, kids: np.ndarray, kids_filters: Filters | None
) -> tuple[np.ndarray, np.ndarray]:
    """The model's top ``k`` for ``rows``; kids' rows apart, under ``kids_filters``."""
    if kids_filters is None or not kids.any():
        recs = trained.model.recommend(rows, k)
        return recs.items, recs.scores
    young = trained.model.recommend(rows[kids], k, filters=kids_filters)
    items = np.full((len(rows), young.items.shape[1]), -1, dtype=young.items.dtype)
    scores = np.zeros(items.shape, dtype=young.scores.dtype)
    items[kids], scores[kids] = young.items, young.scores
    if not kids.all():
        adults = trained.model.recommend(rows[~kids], k)
        items[~kids], scores[~kids] = adults.items, adults.scores
    return items, scores

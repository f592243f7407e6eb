"""From logged messages in the store to a trained, evaluated click model.

Impressions are the ``impression`` events of messages (``session_id`` = message id,
``surface`` = channel, ``source`` = action type); a message counts as clicked when a ``click``
event carries the same message id. User features are taken at ``cutoff_ms``, the first logged
impression, from the history before it, which is also what a campaign sees when it runs.

The log is split so that nothing is tuned or reported on rows it learned from: the earliest
``ctr_share`` of impressions (by time) only feeds the past-CTR table; the rest is split by
user into train, validation (choice of C, calibration, threshold) and test (the metrics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.data.log import InteractionLog
from segue.data.model import EVENT_CODES, EventType
from segue.errors import SegueError
from segue.nba.cf import CFScorer
from segue.nba.clickmodel import ClickModel, fit_click_model
from segue.nba.features import (
    CHANNELS,
    HISTORY_TYPES,
    ITEM_COLUMNS,
    USER_COLUMNS,
    Audience,
    CTRTable,
    FeatureSpace,
    ItemTable,
    Profiles,
    Rows,
)
from segue.nba.metrics import ClickEvaluation, click_calibration, click_metrics
from segue.store import Store


@dataclass(frozen=True)
class NBAContext:
    """Items, users and their histories at one instant, in the store's vocabularies."""

    items: ItemTable
    audience: Audience
    profiles: Profiles


def load_context(store: Store, cutoff_ms: int) -> NBAContext:
    """Everything the click model needs about users and items, as of ``cutoff_ms``."""
    history = store.interactions(types=HISTORY_TYPES, end_ms=cutoff_ms)
    items = ItemTable.from_columns(history.item_ids, store.table_columns("items", ITEM_COLUMNS))
    users = store.table_columns("users", USER_COLUMNS)
    audience = Audience.from_columns(history.user_ids, users)
    return NBAContext(items, audience, Profiles.build(history, items, cutoff_ms))


@dataclass
class Impressions:
    """Logged messages: one row per impression, with its outcomes."""

    message_id: np.ndarray
    user: np.ndarray
    item: np.ndarray
    channel: np.ndarray
    ts_ms: np.ndarray
    clicked: np.ndarray
    opened: np.ndarray
    converted: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def select(self, mask: np.ndarray) -> Impressions:
        return Impressions(**{k: v[mask] for k, v in vars(self).items()})


def impressions_from_events(log: InteractionLog) -> Impressions:
    """Join impression events with the open/click/conversion events of the same message."""
    if log.session_id is None or log.surface is None:
        raise SegueError("message events need their message id (session_id) and channel")
    shown = np.flatnonzero(log.type == EVENT_CODES[EventType.IMPRESSION])
    channel_code = {c: k for k, c in enumerate(CHANNELS)}
    channel = np.array([channel_code.get(s, -1) for s in log.surface[shown]], dtype=np.int64)
    shown, channel = shown[channel >= 0], channel[channel >= 0]
    ids = log.session_id[shown]
    if any(m is None for m in ids):
        raise SegueError("some impression events carry no message id (session_id)")

    def flag(kind: EventType) -> np.ndarray:
        marked = set(log.session_id[log.type == EVENT_CODES[kind]])
        return np.fromiter((m in marked for m in ids), dtype=bool, count=len(ids))

    return Impressions(
        message_id=ids.astype(object),
        user=log.user[shown].astype(np.int64),
        item=log.item[shown].astype(np.int64),
        channel=channel,
        ts_ms=log.ts_ms[shown],
        clicked=flag(EventType.CLICK),
        opened=flag(EventType.OPEN),
        converted=flag(EventType.CONVERSION),
    )


@dataclass(frozen=True)
class Split:
    ctr: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_impressions(
    imp: Impressions,
    ctr_share: float = 0.25,
    val_share: float = 0.2,
    test_share: float = 0.2,
    seed: int = 0,
) -> Split:
    """Earliest ``ctr_share`` by time for the CTR table; the rest by user (see module doc)."""
    n = len(imp)
    if n < 100:
        raise SegueError(f"training the click model needs at least 100 impressions, found {n}")
    order = np.argsort(imp.ts_ms, kind="stable")
    ctr = np.zeros(n, dtype=bool)
    ctr[order[: int(n * ctr_share)]] = True
    n_users = int(imp.user.max()) + 1
    draw = np.random.default_rng(seed).random(n_users)[imp.user]
    test = ~ctr & (draw < test_share)
    val = ~ctr & (draw >= test_share) & (draw < test_share + val_share)
    train = ~ctr & ~test & ~val
    return Split(ctr, train, val, test)


def candidate_rows(ctx: NBAContext, imp: Impressions, cf: CFScorer | None) -> Rows:
    cf_scores = cf.pair_scores(imp.user, imp.item) if cf is not None else np.full(len(imp), np.nan)
    return Rows(imp.user, imp.item, imp.channel, imp.ts_ms, cf_scores)


def _take(rows: Rows, mask: np.ndarray) -> Rows:
    return Rows(
        rows.user[mask], rows.item[mask], rows.channel[mask], rows.ts_ms[mask], rows.cf[mask]
    )


@dataclass(frozen=True)
class TrainingResult:
    model: ClickModel
    evaluation: ClickEvaluation
    split: Split
    sizes: dict[str, int]


def train_and_evaluate(
    ctx: NBAContext,
    imp: Impressions,
    cf: CFScorer | None = None,
    p_true: np.ndarray | None = None,
    seed: int = 0,
) -> TrainingResult:
    """Fit the click model on the train part, tune on validation, report on test."""
    split = split_impressions(imp, seed=seed)
    actions = ctx.items.action[imp.item]
    ctr = CTRTable.fit(
        ctx.items.ids[imp.item[split.ctr]], actions[split.ctr], imp.clicked[split.ctr]
    )
    rows = candidate_rows(ctx, imp, cf)
    space = FeatureSpace(countries=ctx.audience.countries)
    train_rows = _take(rows, split.train)
    space.fit(space.numeric(train_rows, ctx.profiles, ctx.items, ctr))

    def matrix(mask: np.ndarray) -> sp.csr_matrix:
        return space.encode(_take(rows, mask), ctx.profiles, ctx.items, ctx.audience, ctr)

    y = imp.clicked.astype(np.float64)
    model = fit_click_model(
        space, ctr, matrix(split.train), y[split.train], matrix(split.val), y[split.val]
    )
    p_test = model.predict(matrix(split.test))
    y_test = y[split.test]
    truth = None if p_true is None else np.asarray(p_true)[split.test]
    notes = [
        f"Held-out test rows: {int(split.test.sum()):,} impressions of users not in training;"
        f" C = {model.C} and calibration (Platt a = {model.platt[0]:.3f},"
        f" b = {model.platt[1]:.3f}) chosen on validation.",
    ]
    if truth is not None:
        notes.append(
            "The last column scores the true click probabilities of the synthetic world: the "
            "ceiling any model can reach on these rows."
        )
    evaluation = ClickEvaluation(
        model=click_metrics(y_test, p_test, model.threshold),
        ceiling=None if truth is None else click_metrics(y_test, truth, model.threshold),
        curve=click_calibration(y_test, p_test),
        y=y_test,
        p=p_test,
        p_true=truth,
        notes=tuple(notes),
    )
    # The served model's CTR table counts every logged impression.
    model.ctr = CTRTable.fit(ctx.items.ids[imp.item], actions, imp.clicked)
    sizes = {k: int(getattr(split, k).sum()) for k in ("ctr", "train", "val", "test")}
    return TrainingResult(model, evaluation, split, sizes)


__all__ = [
    "Impressions",
    "NBAContext",
    "Split",
    "TrainingResult",
    "impressions_from_events",
    "load_context",
    "split_impressions",
    "train_and_evaluate",
]

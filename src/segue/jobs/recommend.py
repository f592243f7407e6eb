"""Answering for one listener: known users, new users (cold start), rules and new items.

This is the single path every face uses to turn "recommend for user X" into a list with
titles and reasons: the model for listeners it was trained on, the cold-start recommender for
everyone else (with onboarding answers if given, demographics from the store otherwise), the
business rules (kids profiles never see explicit items), and a bounded share of new items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from segue.data.model import Item
from segue.dataset import IdMap, SideInfo
from segue.errors import SegueError
from segue.jobs.train import TrainedModel, load_side_info
from segue.models import Reason
from segue.models.coldstart import ColdStartRecommender, NewItemPolicy, Onboarding
from segue.models.filters import Filters
from segue.store import Store


@dataclass(frozen=True)
class Suggestion:
    """One recommended item, ready to show: id, title, score and the reason in words."""

    item_id: str
    title: str
    score: float
    reason: str


def recommend_for_user(
    store: Store,
    trained: TrainedModel,
    user_id: str,
    k: int = 10,
    *,
    picks: Sequence[str] = (),
    genres: Sequence[str] = (),
    kinds: Sequence[str] = (),
    max_per_artist: int | None = None,
    new_item_share: float = 0.0,
    side: SideInfo | None = None,
) -> list[Suggestion]:
    """Top-k for one listener, known to the model or not; see the module docstring.

    ``kinds`` restricts the list to item kinds (e.g. ``podcast_episode`` for a music listener:
    the same collaborative models answer across kinds when people consume several).
    """
    user = store.get_user(user_id)
    if user is None and not (picks or genres):
        raise SegueError(
            f"unknown user {user_id!r}: import or create the user first, or give onboarding "
            "picks (--pick ITEM_ID) or genres (--genre NAME) to try a new listener"
        )
    side = side or load_side_info(store, users=trained.users, items=trained.items, friends=False)
    assert side.catalog is not None
    filters = Filters.build(
        side.catalog,
        only_kinds=kinds,
        no_explicit=bool(user and user.kids_profile),
        max_per_artist=max_per_artist,
    )
    train: sp.csr_matrix = trained.model._fitted()
    row = int(trained.users.to_index([user_id], allow_unknown=True)[0])
    known = row >= 0 and train[row].nnz > 0 and not (picks or genres)
    if known:
        recs = trained.model.recommend(np.array([row]), k, filters=filters)
        items = recs.items[0]
        scores = recs.scores[0]
        reasons = recs.reasons(0)
        history = train[row]
    else:
        onboarding = Onboarding(
            items=[int(i) for i in trained.items.to_index(list(picks))] if picks else (),
            genres=tuple(genres),
            age_band=user.age_band.value if user and user.age_band else None,
            gender=user.gender.value if user and user.gender else None,
            country=user.country if user else None,
        )
        cold = ColdStartRecommender(trained.model, train, side)
        result = cold.recommend(onboarding, k=k, filters=filters)
        items, scores, reasons = result.items, result.scores, result.reasons
        history = sp.csr_matrix((1, train.shape[1]), dtype=np.float32)
    if new_item_share > 0:
        policy = NewItemPolicy(train, side, max_share=new_item_share)
        by_item = dict(zip((int(i) for i in items), scores, strict=False))
        items, reasons = policy.blend(history, items, reasons, k, filters)
        scores = np.array([by_item.get(int(i), np.nan) for i in items], dtype=np.float32)
    return _suggestions(store, trained.items, items, scores, reasons)


def _suggestions(
    store: Store, items: IdMap, columns: np.ndarray, scores: np.ndarray, reasons: list[Reason]
) -> list[Suggestion]:
    columns = np.asarray([int(c) for c in columns if c >= 0], dtype=np.int64)
    ids = [str(x) for x in items.to_ids(columns)] if len(columns) else []
    titles = _Titles(store)
    return [
        Suggestion(item_id, titles[item_id], float(s), render_reason(r, items, titles))
        for item_id, s, r in zip(ids, scores, reasons, strict=False)
    ]


class TitleLookup(Protocol):
    """Display titles by item id: ``lookup[id]`` ("Song — Artist") and ``lookup.bare(id)``."""

    def __getitem__(self, item_id: str) -> str: ...

    def bare(self, item_id: str) -> str: ...


def render_reason(reason: Reason, items: IdMap, titles: TitleLookup) -> str:
    """Words for a reason, naming the anchor item or artist by its title."""
    code = reason.code
    if code == "because_you_played" and reason.anchor_item is not None:
        anchor = str(items.to_ids(np.array([reason.anchor_item]))[0])
        return f"because you played {titles[anchor]}"
    if code == "popular":
        if reason.value is None:
            return "popular with listeners"
        return f"popular with {int(reason.value):,} listeners"
    if code == "new_from_artist" and reason.label:
        return f"new from {titles.bare(reason.label)}"
    words = {
        "listeners_like_you": "popular with listeners like you",
        "matches_your_picks": "matches what you picked",
        "matches_your_taste": "matches your taste",
        "exploration": "something new to explore",
        "trending": "trending now",
        "popular_in_your_country": "popular in your country",
        "because_you_played": "because of what you play",
    }
    return words.get(code, code.replace("_", " "))


class _Titles:
    """Display titles ("Song — Artist") looked up once per item for one answer.

    A list of ten items names ten items, their artists and the anchors of their reasons, many
    of them the same; this keeps that to one store read per distinct id.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._items: dict[str, Item | None] = {}

    def _item(self, item_id: str) -> Item | None:
        if item_id not in self._items:
            self._items[item_id] = self._store.get_item(item_id)
        return self._items[item_id]

    def bare(self, item_id: str) -> str:
        item = self._item(item_id)
        return item.title if item else item_id

    def __getitem__(self, item_id: str) -> str:
        item = self._item(item_id)
        if item is None:
            return item_id
        parent_id = item.artist_id or item.show_id
        parent = self._item(parent_id) if parent_id else None
        return f"{item.title} — {parent.title}" if parent else item.title

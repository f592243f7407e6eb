"""Answering for one listener: known users, new users (cold start), rules and new items.

This is the single path every face uses to turn "recommend for user X" into a list with
titles and reasons: the model for listeners it was trained on, the cold-start recommender for
everyone else (with onboarding answers if given, demographics from the store otherwise), the
business rules (kids profiles never see explicit items), and a bounded share of new items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.dataset import IdMap, ItemCatalog, SideInfo, UserTable
from segue.errors import SegueError
from segue.jobs.train import TrainedModel
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


def side_info_for(store: Store, trained: TrainedModel) -> SideInfo:
    """Catalog and demographics aligned with a trained model's id maps."""
    return SideInfo(
        catalog=ItemCatalog.from_items(store.iter_items(), trained.items),
        users=UserTable.from_users(store.iter_users(), trained.users),
    )


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
    side = side or side_info_for(store, trained)
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
    titles = _titles(store, ids)
    return [
        Suggestion(
            item_id, titles.get(item_id, item_id), float(score), render_reason(r, items, store)
        )
        for item_id, score, r in zip(ids, scores, reasons, strict=False)
    ]


def render_reason(reason: Reason, items: IdMap, store: Store) -> str:
    """Words for a reason, naming the anchor item or artist by its title."""
    code = reason.code
    if code == "because_you_played" and reason.anchor_item is not None:
        anchor = str(items.to_ids(np.array([reason.anchor_item]))[0])
        return f"because you played {_titles(store, [anchor]).get(anchor, anchor)}"
    if code == "popular":
        if reason.value is None:
            return "popular with listeners"
        return f"popular with {int(reason.value):,} listeners"
    if code == "new_from_artist" and reason.label:
        artist = store.get_item(reason.label)
        return f"new from {artist.title if artist else reason.label}"
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


def _titles(store: Store, item_ids: list[str]) -> dict[str, str]:
    titles = {}
    for item_id in item_ids:
        item = store.get_item(item_id)
        if item is not None:
            parent_id = item.artist_id or item.show_id
            parent = store.get_item(parent_id) if parent_id else None
            titles[item_id] = f"{item.title} — {parent.title}" if parent else item.title
    return titles

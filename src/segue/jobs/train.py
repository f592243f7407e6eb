"""Training models on everything in the store, saving them, and answering for one user."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segue.dataset import IdMap, Interactions, ItemCatalog, SideInfo, UserTable, friend_matrix
from segue.errors import SegueError
from segue.jobs.progress import Progress, no_progress
from segue.models import Reason, Recommender, model_spec
from segue.store import Store


def load_interactions(store: Store) -> Interactions:
    """Everything personalisation may use (Focus-Mode events are left out by the store)."""
    return Interactions.from_log(store.interactions())


def load_side_info(store: Store, data: Interactions) -> SideInfo:
    """Item attributes, demographics and friend links aligned with ``data``'s id maps."""
    return SideInfo(
        catalog=ItemCatalog.from_items(store.iter_items(), data.items),
        users=UserTable.from_users(store.iter_users(), data.users),
        friends=friend_matrix(store.friendships(), data.users),
    )


@dataclass(frozen=True)
class TrainedModel:
    name: str
    model: Recommender
    users: IdMap
    items: IdMap
    fit_seconds: float = 0.0


def train_models(
    data: Interactions,
    names: list[str],
    model_dir: Path | None = None,
    progress: Progress = no_progress,
    side: SideInfo | None = None,
) -> dict[str, TrainedModel]:
    """Fit each named model on all of ``data``; save under ``model_dir/<name>`` if given."""
    trained = {}
    for done, name in enumerate(names):
        progress("training", done, len(names))
        spec = model_spec(name)
        started = time.perf_counter()
        model = spec.factory().fit(data.matrix(spec.weighting), side)
        result = TrainedModel(name, model, data.users, data.items, time.perf_counter() - started)
        if model_dir is not None:
            save_trained(result, model_dir / name)
        trained[name] = result
    progress("training", len(names), len(names))
    return trained


def save_trained(trained: TrainedModel, path: Path) -> None:
    trained.model.save(path)
    trained.users.save(path / "users.idmap")
    trained.items.save(path / "items.idmap")


def load_trained(model_dir: Path, name: str) -> TrainedModel:
    path = model_dir / name
    if not (path / "params.json").is_file():
        raise SegueError(f"no trained {name!r} model in {model_dir}; run `segue train` first")
    spec = model_spec(name)
    return TrainedModel(
        name,
        spec.cls.load(path),
        IdMap.load(path / "users.idmap"),
        IdMap.load(path / "items.idmap"),
    )


@dataclass(frozen=True)
class Suggestion:
    """One recommended item, ready to show: id, title, score and the reason in words."""

    item_id: str
    title: str
    score: float
    reason: str


def recommend_for_user(
    store: Store, trained: TrainedModel, user_id: str, k: int = 10
) -> list[Suggestion]:
    """Top-k for one known user, with titles and reasons from the store."""
    if user_id not in trained.users:
        raise SegueError(
            f"user {user_id!r} is not in the {trained.name!r} model's training data; "
            "retrain after importing their events, or pick a user from `segue stats`"
        )
    index = int(trained.users.to_index([user_id])[0])
    recs = trained.model.recommend(np.array([index]), k)
    items = [int(i) for i in recs.items[0] if i >= 0]
    ids = [str(x) for x in trained.items.to_ids(np.array(items, dtype=np.int64))] if items else []
    titles = _titles(store, ids)
    out = []
    for item_id, score, reason in zip(ids, recs.scores[0], recs.reasons(0), strict=False):
        out.append(
            Suggestion(
                item_id,
                titles.get(item_id, item_id),
                float(score),
                render_reason(reason, trained.items, store),
            )
        )
    return out


def render_reason(reason: Reason, items: IdMap, store: Store) -> str:
    """Words for a reason, naming the anchor item by its title."""
    if reason.code == "because_you_played" and reason.anchor_item is not None:
        anchor = str(items.to_ids(np.array([reason.anchor_item]))[0])
        return f"because you played {_titles(store, [anchor]).get(anchor, anchor)}"
    if reason.code == "popular":
        if reason.value is None:
            return "popular with listeners"
        return f"popular with {int(reason.value):,} listeners"
    return reason.code.replace("_", " ")


def _titles(store: Store, item_ids: list[str]) -> dict[str, str]:
    titles = {}
    for item_id in item_ids:
        item = store.get_item(item_id)
        if item is not None:
            artist = store.get_item(item.artist_id) if item.artist_id else None
            titles[item_id] = f"{item.title} — {artist.title}" if artist else item.title
    return titles

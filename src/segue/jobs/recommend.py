"""Answering for one listener outside the serving process (CLI, demo, batch jobs).

The same path as a live request (:func:`segue.serving.live.recommend_live`: the model for
listeners it was trained on, the cold-start recommender for everyone else, the rules such as no
explicit items on kids profiles, a bounded share of new items), with an empty live state and
the listener's onboarding answers, if given, standing in for a sign-up. A listener without
personalisation consent gets the non-personal list of their country and kids setting
(:mod:`segue.data.consent`); picks and genres given here still count, as the request's own.
Building the serving tables costs about as much as loading the catalog; a process answering
many listeners should build one :class:`~segue.serving.holder.ServingModel` and call
``recommend_live`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from segue.dataset import SideInfo
from segue.errors import SegueError
from segue.jobs.catalog import CatalogNames
from segue.online.state import InProcessState
from segue.registry.trained import TrainedModel
from segue.serving.holder import ServingModel
from segue.serving.live import LiveRequest, recommend_live
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
    serving: ServingModel | None = None,
) -> list[Suggestion]:
    """Top-k for one listener, known to the model or not; see the module docstring.

    ``picks``/``genres`` answer onboarding for a new listener (given for a known one, they
    are scored as a new listener with those answers); a pick is an item id or a name
    (:mod:`segue.jobs.catalog`), and a value may list several, comma-separated. ``kinds``
    restricts the list to item kinds (e.g. ``podcast_episode``: the same collaborative
    models answer across kinds). ``serving``: the loaded version of ``trained`` a serving
    process already holds (its request-time tables cost hundreds of milliseconds to build).
    """
    user = store.get_user(user_id)
    if user is None and not (picks or genres):
        raise SegueError(
            f"unknown user {user_id!r}: import or create the user first, or give onboarding "
            "picks (--pick NAME or ITEM_ID) or genres (--genre NAME) to try a new listener"
        )
    if any(p not in trained.items for p in picks):  # names ("Late Kingdom"), or unknown ids
        names = CatalogNames.from_store(store, trained)
        picks = names.resolve_all(picks, within=trained.items, what="onboarding pick")
    model = serving or ServingModel.build(store, trained, "offline", side=side)
    state = InProcessState()
    answer = recommend_live(
        model,
        state,
        user,
        LiveRequest(
            user_id,
            k,
            kinds=tuple(kinds),
            max_per_artist=max_per_artist,
            explain=True,
            new_item_share=new_item_share,
            as_new_listener=bool(picks or genres),
            picks=tuple(picks),
            pick_genres=tuple(genres),
        ),
    )
    return [Suggestion(i.item_id, i.title, i.score, i.reason) for i in answer.items]

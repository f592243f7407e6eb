"""Training data from anything that reads like the store: interactions and side information.

The dataset layer never imports the store; it asks for the few reads it needs through
:class:`StoreReader`, which :class:`segue.store.Store` satisfies, so the serving, batch and
job layers build models' inputs the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from segue.data.log import InteractionLog
from segue.dataset.catalog import ItemCatalog
from segue.dataset.idmap import IdMap
from segue.dataset.interactions import Interactions
from segue.dataset.side import SideInfo, UserTable, friend_matrix


class StoreReader(Protocol):
    def interactions(self) -> InteractionLog: ...

    def iter_items(self) -> Iterable[Any]: ...

    def iter_users(self) -> Iterable[Any]: ...

    def friendships(self) -> Any: ...


def load_interactions(store: StoreReader, *, values: str = "count") -> Interactions:
    """Everything personalisation may use (Focus-Mode events are left out by the store);
    ``values="rating"`` weighs rated events by their rating (:meth:`Interactions.from_log`)."""
    return Interactions.from_log(store.interactions(), values=values)


def load_side_info(
    store: StoreReader,
    data: Interactions | None = None,
    *,
    users: IdMap | None = None,
    items: IdMap | None = None,
    friends: bool = True,
) -> SideInfo:
    """Item attributes, demographics and (optionally) friend links aligned with id maps.

    The maps are ``data``'s, or given directly (a trained model's, when serving).
    """
    if data is not None:
        users, items = data.users, data.items
    if users is None or items is None:
        raise ValueError("load_side_info needs the interactions or both id maps")
    return SideInfo(
        catalog=ItemCatalog.from_items(store.iter_items(), items),
        users=UserTable.from_users(store.iter_users(), users),
        friends=friend_matrix(store.friendships(), users) if friends else None,
    )

"""Reasons in words, with items named by their display titles ("Song — Artist").

Models give reasons as data (:class:`~segue.models.Reason`); every face renders them here, with
titles from whatever implements the small :class:`TitleLookup` (the serving model's memory in
``segue.serving.live``).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from segue.dataset import IdMap
from segue.models import Reason


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

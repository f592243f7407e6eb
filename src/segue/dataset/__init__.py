"""From an interaction log to what models train on: id maps, weighted matrices, splits.

This layer reads a columnar :class:`~segue.data.log.InteractionLog` (``Store.interactions()``
returns one) and never the store itself, so it works the same on any backend or on a log built
in memory.
"""

from segue.dataset.coldstart import new_item_split, new_user_split
from segue.dataset.idmap import IdMap, UnknownIdError
from segue.dataset.interactions import (
    DEFAULT_NEGATIVE,
    DEFAULT_POSITIVE,
    NO_TIMESTAMP,
    EventFilter,
    Interactions,
    Pairs,
)
from segue.dataset.splits import (
    Split,
    global_temporal_split,
    last_n_split,
    leave_one_out_split,
    random_split,
    user_temporal_split,
)
from segue.dataset.weighting import (
    BM25,
    WEIGHTINGS,
    Binary,
    Confidence,
    Counts,
    LogScale,
    Recency,
    TfIdf,
    TimeDecay,
    Weighting,
    make_weighting,
)

__all__ = [
    "BM25",
    "DEFAULT_NEGATIVE",
    "DEFAULT_POSITIVE",
    "NO_TIMESTAMP",
    "WEIGHTINGS",
    "Binary",
    "Confidence",
    "Counts",
    "EventFilter",
    "IdMap",
    "Interactions",
    "LogScale",
    "Pairs",
    "Recency",
    "Split",
    "TfIdf",
    "TimeDecay",
    "UnknownIdError",
    "Weighting",
    "global_temporal_split",
    "last_n_split",
    "leave_one_out_split",
    "make_weighting",
    "new_item_split",
    "new_user_split",
    "random_split",
    "user_temporal_split",
]

from segue.dataset.catalog import ItemCatalog
from segue.dataset.side import SideInfo, UserTable, friend_matrix

__all__ += ["ItemCatalog", "SideInfo", "UserTable", "friend_matrix"]

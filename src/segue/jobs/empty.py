"""Why an answer is empty, and what would fill it.

An empty table with no words reads as a bug: a listener asking for podcasts on a catalog of
Last.fm artists, a station on a catalog without tracks, or a Wrapped of a year they did not
listen in gets the same blank. These functions look at the store (and the trained model) only
when an answer came back empty, so the usual path pays nothing, and return one line a face
can print in place of the blank: the cause, then the command or option that would fill it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import numpy as np

from segue.data.model import EVENT_CODES, EventType, ItemKind
from segue.registry.trained import TrainedModel
from segue.store import Store

_IMPORT_ITEMS = "segue import csv FILE --kind items"


def catalog_kinds(store: Store) -> Counter[str]:
    """How many items of each kind the store holds."""
    kinds = store.table_columns("items", ["kind"])["kind"]
    return Counter(str(k) for k in kinds.tolist())


def _kinds_text(kinds: Counter[str]) -> str:
    if not kinds:
        return "no items at all"
    return ", ".join(f"{kind} ×{n:,}" for kind, n in kinds.most_common())


def _trained_kinds(store: Store, trained: TrainedModel) -> set[str]:
    """Kinds of the items the model was trained on (it can only rank those)."""
    ids = [str(i) for i in trained.items.ids]
    kinds = store.table_columns("items", ["id", "kind"])
    known = dict(zip(kinds["id"].tolist(), kinds["kind"].tolist(), strict=True))
    return {str(known[i]) for i in ids if i in known}


def why_no_recommendations(
    store: Store, trained: TrainedModel, user_id: str, kinds: Sequence[str] = ()
) -> str:
    """The reason an answer for ``user_id`` (restricted to ``kinds``) came back empty."""
    in_store = catalog_kinds(store)
    wanted = [str(k) for k in kinds]
    if wanted:
        missing = [k for k in wanted if not in_store.get(k)]
        if len(missing) == len(wanted):
            return (
                f"the catalog holds no {' or '.join(wanted)} items (it has "
                f"{_kinds_text(in_store)}); import some ({_IMPORT_ITEMS}) with their plays, "
                "then `segue train`"
            )
        if not _trained_kinds(store, trained) & set(wanted):
            return (
                f"the model was trained before any {' or '.join(wanted)} items had plays; "
                "run `segue train` again once they have some"
            )
    return (
        f"every item the model could offer {user_id} is already in their history or ruled out "
        "by the list's rules (kids profile, explicit content, the kinds asked for); try another "
        "model or drop --kind"
    )


def why_empty_station(store: Store, trained: TrainedModel, seed: str, user_id: str) -> str:
    """The reason a station page came back empty."""
    in_store = catalog_kinds(store)
    if not in_store.get(ItemKind.TRACK.value):
        return (
            f"stations play tracks and this catalog has none (it has {_kinds_text(in_store)}, "
            f"e.g. Last.fm 2K's artists); import tracks ({_IMPORT_ITEMS}) with their plays, "
            "then `segue train`, or ask for recommendations instead: "
            f"`segue recommend {user_id}`"
        )
    if ItemKind.TRACK.value not in _trained_kinds(store, trained):
        return "the model was trained before the tracks had plays; run `segue train` again"
    if seed == "discovery":
        return (
            f"{user_id} has played every artist the model knows, or the session ruled them out; "
            "--all-artists lets the station bring new tracks by known artists"
        )
    return (
        f"every track for {seed} has been served in this session or ruled out by its skips; "
        "try another seed, or start a new session"
    )


def why_no_mixes(store: Store, user_id: str) -> str:
    """The reason ``user_id`` got no daily mixes."""
    in_store = catalog_kinds(store)
    if not in_store.get(ItemKind.TRACK.value):
        return (
            f"mixes are made of tracks and this catalog has none (it has "
            f"{_kinds_text(in_store)}); import tracks ({_IMPORT_ITEMS}) with their plays, then "
            f"`segue train`, or ask for recommendations instead: `segue recommend {user_id}`"
        )
    return (
        f"{user_id} has not played enough tracks yet for a taste cluster (a mix needs a few "
        "plays of one genre or artist); play more, or try `segue recommend`"
    )


def years_with_plays(store: Store, user_id: str, timezone: str | None = None) -> list[int]:
    """The years (in the listener's time zone) in which ``user_id`` played anything, oldest
    first; Focus-Mode plays do not count, as in Wrapped itself."""
    log = store.user_events(user_id)
    played = (log.type == EVENT_CODES[EventType.PLAY.value]) & ~log.focus
    if not played.any():
        return []
    zone = ZoneInfo(timezone or "UTC")
    # every zone's offset is a multiple of 15 minutes: minutes decide the local year exactly
    minutes = np.unique(log.ts_ms[played] // 60_000)
    return sorted({dt.datetime.fromtimestamp(m * 60, tz=zone).year for m in minutes.tolist()})


def default_wrapped_year(store: Store, user_id: str) -> int:
    """The latest year with plays for ``user_id``: Wrapped shows a year the listener heard
    music in, not the calendar's current one (a store of 2024 plays read in 2026)."""
    from segue.errors import SegueError

    user = store.get_user(user_id)
    if user is None:
        raise SegueError(f"unknown user {user_id!r}: import or create the user first")
    years = years_with_plays(store, user_id, user.timezone)
    if not years:
        raise SegueError(
            f"{user_id} has no plays yet, so there is no year to wrap; their plays arrive "
            "through imports (segue import), the API or the event stream"
        )
    return years[-1]


def why_empty_wrapped(store: Store, user_id: str, year: int) -> str | None:
    """None when ``user_id`` has plays in ``year``; else why the Wrapped is empty and which
    years would not be."""
    user = store.get_user(user_id)
    if user is None:
        return None
    years = years_with_plays(store, user_id, user.timezone)
    if year in years:
        return None
    if not years:
        return f"{user_id} has no plays at all yet, so every Wrapped is empty"
    span = str(years[0]) if len(years) == 1 else f"{years[0]}–{years[-1]}"
    return f"{user_id} has no plays in {year}; their plays are from {span} (try --year {years[-1]})"

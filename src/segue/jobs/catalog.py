"""Items by the names people type: a name to an id, search, and similar items.

A person names an artist ("Late Kingdom"), a track ("Title — Artist", or just "Title"), a
podcast; the store keys items by ids nobody remembers. :class:`CatalogNames` indexes the
catalog's titles once with the fuzzy linker that requests in words use
(:class:`segue.nlu.linking.EntityIndex`: edit distance, word order, partial names, popularity
for near-ties; rapidfuzz only, no torch, so the core install has it) and answers:

* :meth:`CatalogNames.resolve`: one item for what was typed. An item id is taken as it is
  (ids keep working everywhere); a name is linked, and refused with
  :class:`~segue.errors.NameNotResolved`, carrying the closest items, when it matches nothing
  or several items equally well (two tracks called "Home": the artist tells them apart, as
  "Home — Late Kingdom"). A misspelt name that clearly points at one item is taken.
* :meth:`CatalogNames.search`: the best matches of any kind, for ``segue search`` and
  ``GET /v1/search``.

:func:`similar_items` answers ``segue similar``: the trained model's neighbours of one item
(the same :func:`segue.serving.live.similar_live` as ``GET /v1/items/{id}/similar``) with
reasons a person can check: how many listeners played both, the same artist, a shared genre.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from segue.data.model import Item, ItemKind
from segue.errors import NameNotResolved, SegueError
from segue.nlu.linking import Candidate, EntityIndex, normalise
from segue.registry.trained import TrainedModel
from segue.serving.holder import ServingModel
from segue.serving.live import similar_live
from segue.store import Store

ALL_KINDS: tuple[ItemKind, ...] = tuple(ItemKind)
#: A fuzzy (not exact) match is taken without asking only when it is at least this close
#: (0-1, the linker's text match) ...
CONFIDENT_MATCH = 0.85
#: ... and beats the next item by this much of the linker's score (text match + popularity).
CLEAR_MARGIN = 0.05
#: How many near items a refusal lists.
SUGGESTIONS = 5
#: "Title — Artist": an em dash, an en dash or a hyphen with spaces around it.
_TITLE_ARTIST = re.compile(r"\s+[—–-]\s+")
_QUOTES = "\"'“”‘’"


@dataclass(frozen=True)
class Found:
    """A catalog item as a person recognises it: ``by`` is the artist of a track or album,
    the show of a podcast episode (None for artists, shows and the rest)."""

    item_id: str
    kind: str
    title: str
    by: str | None
    score: float

    @property
    def label(self) -> str:
        """``Title — Artist`` (or the bare title), the form a person types back."""
        return f"{self.title} — {self.by}" if self.by else self.title

    def suggestion(self) -> dict[str, str | None]:
        return {"id": self.item_id, "kind": self.kind, "title": self.title, "by": self.by}


class CatalogNames:
    """The catalog's names, indexed once (about a second per 100k items); see the module
    docstring. ``popularity``: plays or listeners per item id, to order equal names."""

    def __init__(self, items: Iterable[Item], popularity: Mapping[str, float] | None = None):
        self.index = EntityIndex(items, popularity, kinds=ALL_KINDS)
        self._by_id = {item.id: item for item in self.index.items}
        self.kinds = tuple(k for k in ALL_KINDS if any(i.kind is k for i in self.index.items))

    @classmethod
    def from_store(cls, store: Store, trained: TrainedModel | None = None) -> CatalogNames:
        """Every item of the store, popularity from the model's training matrix when there is
        one (cheap), else from the store's interactions."""
        popularity = _model_popularity(trained) if trained is not None else _store_popularity(store)
        return cls(store.iter_items(), popularity)

    def found(self, item_id: str, score: float = 1.0) -> Found:
        item = self._by_id[item_id]
        parent = item.show_id if item.kind is ItemKind.PODCAST_EPISODE else item.artist_id
        by = self._by_id[parent].title if parent and parent in self._by_id else None
        if parent == item.id:
            by = None
        return Found(item.id, item.kind.value, item.title, by, round(float(score), 4))

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def item(self, item_id: str) -> Item | None:
        """The catalog's record of ``item_id``, or None."""
        return self._by_id.get(item_id)

    # -- resolution -----------------------------------------------------------------------
    def resolve(
        self,
        text: str,
        kinds: Sequence[ItemKind | str] = ALL_KINDS,
        *,
        within: Collection[str] | None = None,
        what: str | None = None,
    ) -> Found:
        """The one item ``text`` names: an id of one of ``kinds``, or a name (see the module
        docstring). ``within``: the ids that may be answered (those a trained model knows);
        ``what``: how the refusal calls the item (default: the kinds, "artist or track").

        A leading ``KIND:`` ("artist:Late Kingdom") narrows the kinds, for places that take
        any kind, such as onboarding picks.
        """
        wanted = [ItemKind(k) for k in kinds]
        text = _unquote(text)
        kind, sep, rest = text.partition(":")
        if sep and kind.strip().lower() in {k.value for k in wanted} and text not in self:
            wanted, text = [ItemKind(kind.strip().lower())], _unquote(rest)
        what = what or " or ".join(k.value.replace("_", " ") for k in wanted)
        if not text:
            raise SegueError(f"an empty {what} name")
        item = self._by_id.get(text)
        if item is not None and item.kind in wanted:
            if within is not None and text not in within:
                raise SegueError(
                    f"{what} {text!r} is not in the trained model's catalog; run `segue train`"
                )
            return self.found(text)
        candidates = self._candidates(text, wanted)
        if within is not None:
            known = [c for c in candidates if c.item_id in within]
            if candidates and not known:
                raise SegueError(
                    f"{_quoted(text)} ({self.found(candidates[0].item_id).label}) is not in the "
                    "trained model's catalog; run `segue train`"
                )
            candidates = known
        if not candidates:
            raise NameNotResolved(
                f"no {what} named {_quoted(text)}; look it up with `segue search {_shell(text)}`",
                [],
                ambiguous=False,
            )
        exact = [c for c in candidates if c.match >= 0.999]
        if len(exact) == 1:
            return self.found(exact[0].item_id, exact[0].score)
        top = candidates[0]
        runner_up = candidates[1].score if len(candidates) > 1 else -1.0
        if not exact and top.match >= CONFIDENT_MATCH and top.score - runner_up >= CLEAR_MARGIN:
            return self.found(top.item_id, top.score)
        shown = [self.found(c.item_id, c.score) for c in (exact or candidates)[:SUGGESTIONS]]
        names = "; ".join(f"{f.label} ({f.item_id})" for f in shown)
        noun = wanted[0].value.replace("_", " ") if len(wanted) == 1 else "item"
        fits = f"fits {len(exact)} {noun}s equally" if exact else f"matches no {noun} exactly"
        hint = " with its artist, as 'Title — Artist'," if ItemKind.TRACK in wanted else ""
        raise NameNotResolved(
            f"{_quoted(text)} {fits}: did you mean {names}? Give the name{hint} or the id",
            [f.suggestion() for f in shown],
            ambiguous=True,
        )

    def resolve_all(
        self,
        values: Sequence[str],
        kinds: Sequence[ItemKind | str] = ALL_KINDS,
        *,
        within: Collection[str] | None = None,
        what: str | None = None,
    ) -> list[str]:
        """Ids for several typed values (``--pick`` repeated, or one comma-separated list);
        a value with commas is first tried whole, as names may hold commas."""
        out: list[str] = []
        for value in values:
            if "," in value and _unquote(value) not in self:
                parts = [p for p in (s.strip() for s in value.split(",")) if p]
                try:
                    out += [self.resolve(p, kinds, within=within, what=what).item_id for p in parts]
                    continue
                except SegueError:
                    pass  # maybe one name with a comma in it
            out.append(self.resolve(value, kinds, within=within, what=what).item_id)
        return list(dict.fromkeys(out))

    def _candidates(self, text: str, kinds: Sequence[ItemKind]) -> list[Candidate]:
        """Candidates for ``text``; "Title — Artist" first looks for the title among the
        works of the artist it names, when that artist is clear."""
        parts = _TITLE_ARTIST.split(text)
        if len(parts) >= 2 and any(k in (ItemKind.TRACK, ItemKind.ALBUM) for k in kinds):
            title, artist_name = " - ".join(parts[:-1]), parts[-1]
            artists = self.index.link(artist_name, [ItemKind.ARTIST], limit=3)
            clear = artists and (
                len(artists) == 1 or artists[0].score - artists[1].score >= CLEAR_MARGIN
            )
            if artists and (
                artists[0].match >= 0.999 or (clear and artists[0].match >= CONFIDENT_MATCH)
            ):
                works = self.index.link_artist_work(
                    title, kinds, artists[0].item_id, limit=SUGGESTIONS * 2
                )
                if works:
                    return works
        return self.index.link(text, kinds, limit=SUGGESTIONS * 2, per_name=SUGGESTIONS * 2)

    # -- search ---------------------------------------------------------------------------
    def search(
        self, text: str, kinds: Sequence[ItemKind | str] | None = None, limit: int = 10
    ) -> list[Found]:
        """The ``limit`` items whose names best match ``text``, of ``kinds`` (default all);
        an item id finds its item first."""
        if limit < 1:
            raise SegueError(f"limit must be at least 1, got {limit}")
        wanted = [ItemKind(k) for k in kinds] if kinds else list(self.kinds)
        text = _unquote(text)
        hits: list[Found] = []
        item = self._by_id.get(text)
        if item is not None and item.kind in wanted:
            hits.append(self.found(text, 2.0))
        for c in self.index.link(text, wanted, limit=limit, per_name=limit):
            if c.item_id != text:
                hits.append(self.found(c.item_id, c.score))
        return hits[:limit]


def parse_kinds(values: Iterable[str]) -> list[ItemKind]:
    """Item kinds from ``--kind`` values (repeated or comma-separated), with one clear line
    for an unknown one."""
    out: list[ItemKind] = []
    known = ", ".join(k.value for k in ItemKind)
    for value in values:
        for part in (p.strip().lower() for p in value.split(",")):
            if not part:
                continue
            try:
                out.append(ItemKind(part))
            except ValueError:
                raise SegueError(f"unknown item kind {part!r}; kinds: {known}") from None
    return out


def _unquote(text: str) -> str:
    """``"Late Kingdom"`` -> ``Late Kingdom``: quotes that reached us (an API query, a shell
    quoting twice) are not part of the name."""
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


def _quoted(text: str) -> str:
    return f'"{text}"'


def _shell(text: str) -> str:
    return f'"{text}"' if normalise(text) != text or " " in text else text


def _model_popularity(trained: TrainedModel) -> dict[str, float]:
    """Listeners per item in the model's training matrix."""
    train = trained.model._fitted().tocsc()
    listeners = np.diff(train.indptr)
    ids = trained.items.ids
    return {str(ids[i]): float(listeners[i]) for i in np.flatnonzero(listeners)}


def _store_popularity(store: Store) -> dict[str, float]:
    """Plays per item in the store (Focus-Mode plays left out, as the store does)."""
    log = store.interactions()
    if len(log.item) == 0:
        return {}
    plays = np.bincount(log.item, weights=log.count.astype(np.float64), minlength=len(log.item_ids))
    return {str(log.item_ids[i]): float(plays[i]) for i in np.flatnonzero(plays)}


# -- similar items ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SimilarItem:
    """One neighbour, with the reasons in words (its JSON form: ``segue.api.schemas``)."""

    item_id: str
    kind: str
    title: str
    by: str | None
    score: float
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SimilarAnswer:
    item: Found
    model: str
    items: list[SimilarItem]


def similar_items(
    store: Store,
    trained: TrainedModel,
    text: str,
    k: int = 10,
    *,
    names: CatalogNames | None = None,
) -> SimilarAnswer:
    """The ``k`` items the model places nearest the item ``text`` names (an id or a name)."""
    if k < 1:
        raise SegueError(f"k must be at least 1, got {k}")
    names = names or CatalogNames.from_store(store, trained)
    item = names.resolve(text, within=trained.items, what="item")
    model = ServingModel.build(store, trained, "offline")
    neighbours = similar_live(model, item.item_id, k)
    binary = (model.train > 0).tocsc()
    column = int(model.items.to_index([item.item_id])[0])
    listeners = set(binary[:, column].indices.tolist())
    out = []
    for n in neighbours:
        f = names.found(n.item_id, n.score) if n.item_id in names else None
        reasons = _reasons(model, binary, listeners, item, n.item_id, f)
        out.append(
            SimilarItem(
                item_id=n.item_id,
                kind=f.kind if f else "",
                title=f.title if f else n.title,
                by=f.by if f else None,
                score=round(float(n.score), 4),
                reasons=reasons or [f"near {item.title} in the {trained.name} model"],
            )
        )
    return SimilarAnswer(item=item, model=trained.name, items=out)


def _reasons(
    model: ServingModel,
    binary,
    listeners: set[int],
    seed: Found,
    item_id: str,
    found: Found | None,
) -> list[str]:
    """What a person can check: listeners in common, the same artist or show, genres."""
    reasons = []
    column = int(model.items.to_index([item_id])[0])
    both = len(listeners.intersection(binary[:, column].indices.tolist()))
    if both:
        reasons.append(f"{both:,} listener{'s' if both != 1 else ''} played both")
    if found is not None and found.by and found.by == seed.by:
        parent = "show" if found.kind == ItemKind.PODCAST_EPISODE.value else "artist"
        reasons.append(f"same {parent}: {found.by}")
    genres = model.genres_of.get(seed.item_id, ())
    shared = [g for g in model.genres_of.get(item_id, ()) if g in genres]
    if shared:
        reasons.append(f"same genre: {', '.join(shared[:2])}")
    return reasons

"""Entity linking: slot values (as heard, maybe misspelt or partial) to catalog items.

Matching is fuzzy (rapidfuzz: edit-distance ratio, word order aside, and partial matches of a
short query inside a long title counted at a discount), on catalog titles normalised like the
tagger's words. Many tracks share a title, so the score adds, after the text match, a small
weight for popularity (log plays, scaled to [0, 1]), for the listener's own history, and for
agreeing with the artist the request named. The text match dominates: popularity only breaks
near-ties, and a name that is spelt right always beats a famous one that is not.

Speed: titles are deduplicated, and the thorough scorer only sees a short list
of candidate names: those close to the whole query by plain edit ratio, plus those containing
a word close to one of the query's words (a word index, so "rapsody" finds "bohemian
rhapsody"). One lookup against tens of thousands of titles stays around a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from segue.data.model import Item, ItemKind
from segue.nlu.words import words_of

#: every kind links: requests name podcasts, episodes and audiobooks too (issue 23)
LINKED_KINDS: tuple[ItemKind, ...] = tuple(ItemKind)
POPULARITY_WEIGHT = 0.08
HISTORY_WEIGHT = 0.1
ARTIST_WEIGHT = 0.12
#: names whose text match is below this (0-100) are not candidates at all
MIN_MATCH = 60.0


@dataclass(frozen=True)
class Candidate:
    """A possible referent with the parts of its score (all in [0, 1] except ``score``)."""

    item_id: str
    title: str
    kind: str
    score: float
    match: float
    popularity: float
    in_history: bool


#: words too common to select candidate names by
STOP_WORDS = frozenset({"the", "of", "a", "an", "and", "in", "on", "to", "my", "by", "for"})
#: candidate names taken per close query word (the most popular first)
PER_WORD = 300


@dataclass
class _KindIndex:
    names: list[str]  # distinct normalised titles
    items: list[list[int]]  # per name: catalog positions, most popular first
    words: list[str]  # distinct words of the names
    word_names: list[list[int]]  # per word: rows of names containing it, popular first

    @classmethod
    def build(cls, names: list[str], items: list[list[int]], popularity: np.ndarray) -> _KindIndex:
        by_word: dict[str, list[int]] = {}
        for row, name in enumerate(names):
            for word in set(name.split()):
                by_word.setdefault(word, []).append(row)
        words = sorted(by_word)
        best = [float(popularity[positions[0]]) for positions in items]
        return cls(
            names,
            items,
            words,
            [sorted(by_word[w], key=lambda r: (-best[r], r)) for w in words],
        )

    def candidates(self, query: str, limit: int) -> list[tuple[float, int]]:
        """(match 0-100, name row) of the names worth scoring, best first."""
        rows = {
            row
            for _n, _s, row in process.extract(
                query, self.names, scorer=fuzz.ratio, limit=limit * 2, score_cutoff=50
            )
        }
        for word in set(query.split()):
            if len(word) < 3 or word in STOP_WORDS:
                continue
            for _w, _s, w_row in process.extract(
                word, self.words, scorer=fuzz.ratio, limit=3, score_cutoff=75
            ):
                rows.update(self.word_names[w_row][:PER_WORD])
        scored = [(match_score(query, self.names[r]), r) for r in rows]
        scored = [(m, r) for m, r in scored if m >= MIN_MATCH]
        scored.sort(key=lambda x: (-x[0], x[1]))
        return scored[:limit]


def normalise(text: str) -> str:
    return " ".join(words_of(text))


def match_score(query: str, name: str, **_: object) -> float:
    """How well ``query`` names ``name``, 0-100: the edit ratio, the ratio with words sorted
    (order does not matter much), and, only when the query is the shorter of the two, the
    best partial alignment at a discount ("rapsody" for "bohemian rhapsody"). A short title
    inside a long query is not a match: "sha" is no answer to "shahzdda"."""
    best = max(fuzz.ratio(query, name), 0.95 * fuzz.token_sort_ratio(query, name))
    if len(query) < len(name):
        best = max(best, 0.9 * fuzz.partial_ratio(query, name))
    if query != name and _bare(query) == _bare(name):
        # "play sleepy tigers" names The Sleepy Tigers exactly but for the article (only an
        # exact name: near names gain nothing, so absent ones are not pulled over the line);
        # the form with the article still wins a tie
        best = max(best, 99.0)
    return best


def _bare(text: str) -> str:
    return text[4:] if text.startswith("the ") else text


class EntityIndex:
    """Titles of the catalog's tracks, artists, albums and features (or the kinds asked
    for), plus genre names. Pure Python and rapidfuzz: no torch, so the core install links
    names too (``segue search``, station seeds and picks by name)."""

    def __init__(
        self,
        items: Iterable[Item],
        popularity: Mapping[str, float] | None = None,
        *,
        kinds: Collection[ItemKind] = LINKED_KINDS,
    ):
        """``kinds``: the item kinds to index; requests in words name music (the default),
        names typed on the command line or in search may name any kind (podcasts too)."""
        wanted = frozenset(kinds)
        self.items: list[Item] = [i for i in items if i.kind in wanted]
        popularity = popularity or {}
        plays = np.array([max(0.0, float(popularity.get(i.id, 0.0))) for i in self.items])
        top = math.log1p(plays.max()) if len(plays) and plays.max() > 0 else 1.0
        self.popularity = np.log1p(plays) / top
        self.position = {item.id: p for p, item in enumerate(self.items)}
        #: per artist id, positions of their works, most popular first
        self.works: dict[str, list[int]] = {}
        for p, item in enumerate(self.items):
            if item.artist_id is not None:
                self.works.setdefault(item.artist_id, []).append(p)
            if item.show_id is not None:  # a show's episodes
                self.works.setdefault(item.show_id, []).append(p)
        for positions in self.works.values():
            positions.sort(key=lambda p: (-self.popularity[p], p))
        self._kinds: dict[str, _KindIndex] = {}
        by_kind: dict[str, dict[str, list[int]]] = {}
        genres: set[str] = set()
        moods: set[str] = set()
        for p, item in enumerate(self.items):
            name = normalise(item.title)
            if name:
                by_kind.setdefault(item.kind.value, {}).setdefault(name, []).append(p)
            genres.update(normalise(g) for g in item.genres)
            if item.kind is ItemKind.TRACK:  # a track's tags are moods ("chill", "happy")
                moods.update(normalise(t) for t in item.tags)
        for kind, names in by_kind.items():
            ordered = sorted(names)
            self._kinds[kind] = _KindIndex.build(
                ordered,
                [sorted(names[n], key=lambda p: (-self.popularity[p], p)) for n in ordered],
                self.popularity,
            )
        self.genres = sorted(g for g in genres if g)
        self.moods = frozenset(m for m in moods if m)

    def link(
        self,
        text: str,
        kinds: Sequence[str | ItemKind],
        *,
        history: Collection[str] = (),
        artist_id: str | None = None,
        limit: int = 5,
        per_name: int = 8,
    ) -> list[Candidate]:
        """Best candidates for ``text`` among ``kinds``, highest score first.

        ``history`` holds item ids the listener played; ``artist_id`` favours tracks and
        albums by that artist (from the request's own artist slot).
        """
        query = normalise(text)
        if not query:
            return []
        found: list[Candidate] = []
        for kind in kinds:
            kind = ItemKind(kind).value
            index = self._kinds.get(kind)
            if index is None:
                continue
            for match, row in index.candidates(query, limit * 2):
                for p in index.items[row][:per_name]:
                    found.append(self._candidate(p, match, history, artist_id))
        found.sort(key=lambda c: (-c.score, c.item_id))
        return found[:limit]

    def link_artist_work(
        self, text: str, kinds: Sequence[str | ItemKind], artist_id: str, limit: int = 5
    ) -> list[Candidate]:
        """Candidates among the works of one artist only (a small, exact search space)."""
        wanted = {ItemKind(k) for k in kinds}
        positions = [p for p in self.works.get(artist_id, []) if self.items[p].kind in wanted]
        if not positions:
            return []
        names = [normalise(self.items[p].title) for p in positions]
        hits = process.extract(
            normalise(text), names, scorer=match_score, limit=limit, score_cutoff=MIN_MATCH
        )
        out = [self._candidate(positions[row], match, (), artist_id) for _n, match, row in hits]
        out.sort(key=lambda c: (-c.score, c.item_id))
        return out

    def link_genre(self, text: str) -> str | None:
        """The catalog genre closest to ``text``, or None when nothing is close."""
        query = normalise(text)
        if not query or not self.genres:
            return None
        hit = process.extractOne(query, self.genres, scorer=match_score, score_cutoff=80)
        return hit[0] if hit else None

    def _candidate(
        self, position: int, match: float, history: Collection[str], artist_id: str | None
    ) -> Candidate:
        item = self.items[position]
        popularity = float(self.popularity[position])
        in_history = item.id in history
        same_artist = artist_id is not None and (
            item.artist_id == artist_id or item.id == artist_id
        )
        score = (
            match / 100.0
            + POPULARITY_WEIGHT * popularity
            + HISTORY_WEIGHT * in_history
            + ARTIST_WEIGHT * same_artist
        )
        return Candidate(
            item_id=item.id,
            title=item.title,
            kind=item.kind.value,
            score=round(score, 6),
            match=round(match / 100.0, 6),
            popularity=round(popularity, 6),
            in_history=in_history,
        )

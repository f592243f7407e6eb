"""What the listener products need to know per item column, computed once per catalog.

Mixes and stations ask the same questions of every item (its main genre, its artist's display
name, is it a playable track, how popular is it, which tracks are most popular in each genre).
:class:`ProductCatalog` answers them with arrays built once from an
:class:`~segue.dataset.catalog.ItemCatalog` and the training matrix, so per-user work touches
only small index arrays. The jobs layer caches one per trained model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from segue.data.model import ItemKind
from segue.dataset.catalog import AUDIO_FIELDS, KIND_CODES, ItemCatalog
from segue.serving.session import bounded_z_scores

#: Most popular tracks kept per genre as the fallback pool of discoveries.
GENRE_POOL = 400
#: Genre words written in capitals ("edm" is EDM); "r&b"-like words (single letters joined
#: by & or n) are capitals too.
ACRONYMS = frozenset({"edm", "idm", "ebm", "uk", "us", "dnb", "dj", "mc", "lofi", "jpop", "kpop"})
_SPECIAL = {"lofi": "Lo-fi", "jpop": "J-pop", "kpop": "K-pop", "dnb": "DnB"}


@functools.lru_cache(maxsize=4096)  # a catalog has few genres; the daily batch names millions
def genre_label(name: str) -> str:
    """A genre as a title shows it: "r&b" -> "R&B", "indie rock" -> "Indie rock", "edm" ->
    "EDM", "k-pop" -> "K-pop"; a name that already has capitals ("Hip-Hop") is kept.

    Catalogs and Last.fm tags store genres lower-case; capitalising only the first letter
    gave "R&b mix".
    """
    name = name.strip()
    if not name or any(c.isupper() for c in name):
        return name
    words = []
    for word in name.split(" "):
        letters = [part for part in word.replace("&", " & ").split(" ") if part]
        if "&" in word and all(len(p) == 1 for p in letters):
            words.append(word.upper())  # r&b, r & b
        elif word in _SPECIAL:
            words.append(_SPECIAL[word])
        elif word in ACRONYMS:
            words.append(word.upper())
        else:
            words.append(word)
    first = words[0]
    if first and first[0].isalpha() and first[0].islower():
        words[0] = first[0].upper() + first[1:]
    return " ".join(words)


@dataclass(frozen=True, eq=False)
class ProductCatalog:
    """Per item column: main genre (-1 none), artist code, track flag, popularity, audio."""

    catalog: ItemCatalog
    genre: np.ndarray
    artist_names: tuple[str, ...]
    is_track: np.ndarray
    popularity: np.ndarray
    tempo: np.ndarray
    energy: np.ndarray
    genre_pools: tuple[np.ndarray, ...]
    genre_members: tuple[np.ndarray, ...]
    artist_code: dict[str, int]
    popularity_z: np.ndarray
    #: per-request work worth keeping (stations' mood fits), filled on first use
    cache: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(cls, catalog: ItemCatalog, train: sp.csr_matrix | None = None) -> ProductCatalog:
        """``train``: the model's user×item matrix; its column sums are the popularity."""
        n = len(catalog)
        genres = catalog.genres.tocsr()
        has = np.diff(genres.indptr) > 0
        genre = np.full(n, -1, dtype=np.int64)
        genre[has] = genres.indices[genres.indptr[:-1][has]]
        if train is not None and train.shape[1] == n:
            popularity = np.asarray((train > 0).sum(axis=0), dtype=np.float64).ravel()
        else:
            popularity = np.zeros(n, dtype=np.float64)
        is_track = (catalog.kind == KIND_CODES[ItemKind.TRACK.value]) & catalog.known
        names = []
        columns = catalog.items.to_index(list(catalog.artist_ids), allow_unknown=True)
        for artist_id, col in zip(catalog.artist_ids, columns, strict=True):
            names.append(str(catalog.titles[col]) if col >= 0 else artist_id)
        tempo = catalog.audio[:, AUDIO_FIELDS.index("tempo")].astype(np.float64)
        energy = catalog.audio[:, AUDIO_FIELDS.index("energy")].astype(np.float64)
        pools, members = [], []
        tracks = np.flatnonzero(is_track)
        by_pop = tracks[np.lexsort((tracks, -popularity[tracks]))]
        by_genre = genres.tocsc()
        for g in range(len(catalog.genre_names)):
            inside = by_genre.indices[by_genre.indptr[g] : by_genre.indptr[g + 1]]
            member = np.zeros(n, dtype=bool)
            member[inside] = True
            pools.append(by_pop[member[by_pop]][:GENRE_POOL])
            members.append(np.sort(inside).astype(np.int64))
        return cls(
            catalog=catalog,
            genre=genre,
            artist_names=tuple(names),
            is_track=is_track,
            popularity=popularity,
            tempo=tempo,
            energy=energy,
            genre_pools=tuple(pools),
            genre_members=tuple(members),
            artist_code={a: code for code, a in enumerate(catalog.artist_ids)},
            popularity_z=bounded_z_scores(np.log1p(popularity)),
        )

    def __len__(self) -> int:
        return len(self.catalog)

    def item_ids(self, columns: np.ndarray) -> list[str]:
        return [str(x) for x in self.catalog.items.to_ids(np.asarray(columns, dtype=np.int64))]

    def artist_name(self, column: int) -> str | None:
        code = int(self.catalog.artist[column])
        return self.artist_names[code] if code >= 0 else None

    def genre_name(self, code: int) -> str | None:
        return self.catalog.genre_names[code] if code >= 0 else None

    def in_genre(self, code: int) -> np.ndarray:
        """Boolean mask of items filed under genre ``code`` (any of their genres)."""
        mask = np.zeros(len(self), dtype=bool)
        mask[self.genre_members[code]] = True
        return mask

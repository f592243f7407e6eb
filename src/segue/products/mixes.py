""" "Made for you" daily mixes: one playlist per cluster of the listener's taste.

How a user's mixes are made (:func:`build_mixes`):

1. **Clusters.** The tracks of the user's history are grouped by their main genre (tracks
   without a genre by their artist); each cluster weighs the user's plays in it. The heaviest
   clusters, up to ``n_mixes``, each holding at least ``MIN_CLUSTER_SHARE`` of the listening,
   become mixes; the first always does.
2. **Familiar favourites.** About ``familiar_share`` of the ``length`` slots go to tracks the
   user played in the cluster, drawn without replacement with chances in proportion to their
   plays (Gumbel top-k), so the favourites lead but the mix changes from day to day.
3. **Discoveries.** The rest are tracks the user has never played: first the model's
   candidates for the user that fall in the cluster, then the cluster's most popular tracks,
   drawn with chances falling with rank. At most ``max_per_artist`` tracks per artist.
4. **Order.** :func:`segue.products.ordering.flow_order`, the top favourite opening.
5. **Words.** "Indie rock mix" and "Indie rock mix: Arctic Monkeys, The Strokes and more",
   naming the artists the user plays most in it.

Every random draw comes from one generator per user seeded by (user, date): a mix is the same
all day and new the next. Only allowed items are used (the caller's mask: tracks only, and no
explicit ones for a kids profile), familiar ones included. A cluster that cannot fill
``MIN_LENGTH`` tracks makes no mix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
from pydantic import BaseModel

from segue.errors import SegueError
from segue.products.catalog_view import ProductCatalog, genre_label
from segue.products.ordering import flow_order

MIN_LENGTH = 25
MAX_LENGTH = 50
#: A cluster needs this share of the user's listening to get a mix (the top one always does).
MIN_CLUSTER_SHARE = 0.03
#: Artists named in a mix's description.
NAMED_ARTISTS = 3
#: Discoveries are drawn from the top ``POOL_FACTOR × slots`` of the cluster's pool.
POOL_FACTOR = 3


@dataclass(frozen=True)
class MixConfig:
    """How many mixes, how long, how familiar: ``familiar_share`` 0 = all new, 1 = all known."""

    n_mixes: int = 6
    length: int = 30
    familiar_share: float = 0.5
    max_per_artist: int = 3
    n_candidates: int = 150

    def __post_init__(self) -> None:
        if not MIN_LENGTH <= self.length <= MAX_LENGTH:
            raise SegueError(
                f"mix length must be between {MIN_LENGTH} and {MAX_LENGTH} tracks, "
                f"got {self.length}"
            )
        if not 0.0 <= self.familiar_share <= 1.0:
            raise SegueError(f"familiar_share must be in [0, 1], got {self.familiar_share}")
        if self.n_mixes < 1:
            raise SegueError(f"n_mixes must be at least 1, got {self.n_mixes}")
        if self.max_per_artist < 1:
            raise SegueError(f"max_per_artist must be at least 1, got {self.max_per_artist}")
        if self.n_candidates < 1:
            raise SegueError(f"n_candidates must be at least 1, got {self.n_candidates}")


class MixTrack(BaseModel):
    item_id: str
    title: str
    artist: str | None
    familiar: bool


class Mix(BaseModel):
    """One daily mix, JSON-ready."""

    user_id: str
    date: dt.date
    number: int
    title: str
    description: str
    cluster: str
    tracks: list[MixTrack]

    @property
    def familiar_count(self) -> int:
        return sum(t.familiar for t in self.tracks)


@dataclass(frozen=True)
class TasteCluster:
    """Part of a user's taste: a genre (``code`` into genre_names) or, without one, an artist."""

    kind: str  # "genre" | "artist"
    code: int
    weight: float
    items: np.ndarray  # history columns, heaviest first
    weights: np.ndarray


def day_rng(user_id: str, day: dt.date, salt: str = "") -> np.random.Generator:
    """A generator fixed by (user, day, salt): the same draws all day, new ones tomorrow."""
    digest = hashlib.sha256(f"{user_id}|{day.isoformat()}|{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def taste_clusters(
    history_items: np.ndarray,
    history_weights: np.ndarray,
    pc: ProductCatalog,
    allowed: np.ndarray,
    max_clusters: int,
) -> list[TasteCluster]:
    """The user's heaviest genre (or artist) clusters; see the module docstring."""
    items = np.asarray(history_items, dtype=np.int64)
    weights = np.asarray(history_weights, dtype=np.float64)
    keep = pc.is_track[items] & allowed[items] & (weights > 0)
    items, weights = items[keep], weights[keep]
    if len(items) == 0:
        return []
    genre = pc.genre[items]
    n_genres = len(pc.catalog.genre_names)
    # genre g -> key g; no genre -> n_genres + 1 + artist code; neither -> n_genres (skipped)
    artist = pc.catalog.artist[items]
    key = np.where(genre >= 0, genre, n_genres + 1 + artist)
    unique, inverse = np.unique(key, return_inverse=True)
    totals = np.bincount(inverse, weights=weights)
    order = np.lexsort((unique, -totals))
    total = float(totals.sum())
    clusters = []
    for rank, c in enumerate(order[: max(max_clusters, 0)]):
        if rank > 0 and totals[c] < MIN_CLUSTER_SHARE * total:
            break
        if unique[c] == n_genres:  # neither genre nor artist: nothing to name a mix after
            continue
        member = inverse == c
        its_items, its_weights = items[member], weights[member]
        by_weight = np.lexsort((its_items, -its_weights))
        is_genre = unique[c] < n_genres
        clusters.append(
            TasteCluster(
                kind="genre" if is_genre else "artist",
                code=int(unique[c] if is_genre else unique[c] - n_genres - 1),
                weight=float(totals[c]),
                items=its_items[by_weight],
                weights=its_weights[by_weight],
            )
        )
    return clusters


@dataclass(frozen=True, eq=False)
class MixPlan:
    """A mix in index space (what the daily batch stores): columns in play order and words.

    :func:`to_mix` turns it into the JSON-ready :class:`Mix` with ids, titles and artists;
    the batch keeps plans, because building tens of millions of track objects would cost more
    than choosing the tracks.
    """

    number: int
    cluster: str
    title: str
    description: str
    tracks: np.ndarray
    familiar: np.ndarray


@dataclass(frozen=True, eq=False)
class MixInputs:
    """What a listener's mixes are drawn from, before any draw: the taste clusters and, per
    cluster, its discoveries in rank order. Listeners without history who share their cold
    segment's candidates share these too (:class:`segue.jobs.mix_builder.MixBuilder` makes
    them once per segment), so only the draws are theirs."""

    clusters: list[TasteCluster]
    pools: list[np.ndarray]


def build_mixes(
    user_id: str,
    day: dt.date,
    history_items: np.ndarray,
    history_weights: np.ndarray,
    candidates: np.ndarray,
    pc: ProductCatalog,
    allowed: np.ndarray,
    config: MixConfig = MixConfig(),
) -> list[MixPlan]:
    """The user's mixes for ``day``; ``candidates``: the model's ranked item columns for the
    user (best first, -1 padding). A user without history gets mixes of discoveries only,
    clustered by the candidates' genres (cold start)."""
    inputs = mix_inputs(history_items, history_weights, candidates, pc, allowed, config)
    return draw_mixes(user_id, day, inputs, pc, config)


def mix_inputs(
    history_items: np.ndarray,
    history_weights: np.ndarray,
    candidates: np.ndarray,
    pc: ProductCatalog,
    allowed: np.ndarray,
    config: MixConfig = MixConfig(),
) -> MixInputs:
    """The clusters and discovery pools of :func:`build_mixes`, which draws from them."""
    history_items = np.asarray(history_items, dtype=np.int64)
    candidates = np.asarray(candidates, dtype=np.int64)
    candidates = candidates[candidates >= 0]
    clusters = taste_clusters(history_items, history_weights, pc, allowed, config.n_mixes)
    if not clusters:  # cold start: the candidates' genres, weighted by rank
        n = len(candidates)
        clusters = [
            TasteCluster(c.kind, c.code, c.weight, c.items[:0], c.weights[:0])
            for c in taste_clusters(
                candidates, 1.0 / (1.0 + np.arange(n)), pc, allowed, config.n_mixes
            )
        ]
    heard = np.zeros(len(pc), dtype=bool)
    heard[history_items] = True
    fresh = candidates[allowed[candidates] & pc.is_track[candidates] & ~heard[candidates]]
    return MixInputs(clusters, [_pool(c, fresh, heard, pc, allowed) for c in clusters])


def draw_mixes(
    user_id: str,
    day: dt.date,
    inputs: MixInputs,
    pc: ProductCatalog,
    config: MixConfig = MixConfig(),
) -> list[MixPlan]:
    """The user's mixes for ``day`` from ``inputs``: their draws come from the (user, day)
    generator, so the same inputs give each listener their own mixes."""
    rng = day_rng(user_id, day)
    mixes: list[MixPlan] = []
    for cluster, pool in zip(inputs.clusters, inputs.pools, strict=True):
        tracks, familiar, strength = _fill(cluster, pool, pc, config, rng)
        if len(tracks) < MIN_LENGTH:
            continue
        order = flow_order(pc.catalog.artist[tracks], strength, pc.tempo[tracks], pc.energy[tracks])
        tracks, familiar = tracks[order], familiar[order]
        mixes.append(_plan(len(mixes) + 1, cluster, tracks, familiar, pc))
    return mixes


def _cluster_mask(cluster: TasteCluster, pc: ProductCatalog, items: np.ndarray) -> np.ndarray:
    if cluster.kind == "genre":
        return pc.genre[items] == cluster.code
    return (pc.genre[items] < 0) & (pc.catalog.artist[items] == cluster.code)


def _pool(
    cluster: TasteCluster,
    fresh: np.ndarray,
    heard: np.ndarray,
    pc: ProductCatalog,
    allowed: np.ndarray,
) -> np.ndarray:
    """The cluster's discoveries: the model's candidates in it, then (a genre's) popular
    tracks; ``heard``: mask of the user's history columns."""
    pool = fresh[_cluster_mask(cluster, pc, fresh)]
    if cluster.kind == "genre":
        popular = pc.genre_pools[cluster.code]
        heard[pool] = True  # briefly: the model's picks are not repeated from the popular list
        popular = popular[allowed[popular] & ~heard[popular]]
        heard[pool] = False  # (pool holds no heard item, so this restores the mask)
        pool = np.concatenate([pool, popular])
    return pool


def _fill(
    cluster: TasteCluster,
    pool: np.ndarray,
    pc: ProductCatalog,
    config: MixConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tracks, familiar flags, strength) for one cluster, before ordering; ``pool``: its
    discoveries (:func:`_pool`)."""
    length = config.length
    want_familiar = min(round(length * config.familiar_share), len(cluster.items))
    want_new = min(length - want_familiar, len(pool))
    if want_familiar + want_new < length:  # too few discoveries: more favourites
        want_familiar = min(length - want_new, len(cluster.items))
    cap = _ArtistCap.empty(length)  # tracks per artist in this mix
    picked = _draw(cluster.items, np.log(cluster.weights), want_familiar, rng, pc, config, cap)
    familiar = cluster.items[picked]
    want_new = min(length - len(familiar), len(pool))  # the artist cap may have cut favourites
    top = pool[: POOL_FACTOR * max(want_new, 1)]
    new = top[_draw(top, -np.log1p(np.arange(len(top))), want_new, rng, pc, config, cap)]
    if len(new) < want_new:  # the artist cap bit: look further down the pool
        rest = pool[len(top) :]
        more = _draw(rest, -np.log1p(np.arange(len(rest))), want_new - len(new), rng, pc,
                     config, cap)  # fmt: skip
        new = np.concatenate([new, rest[more]])
    tracks = np.concatenate([familiar, new]).astype(np.int64)
    flags = np.concatenate([np.ones(len(familiar), bool), np.zeros(len(new), bool)])
    # strength: favourites by plays (1..2), discoveries by rank (0..1); the top favourite opens
    top_w = float(cluster.weights.max()) if len(cluster.weights) else 1.0
    strength = np.concatenate(
        [1.0 + cluster.weights[picked] / top_w, 1.0 - np.arange(len(new)) / max(len(new), 1)]
    ).astype(np.float64)
    return tracks, flags, strength


class _ArtistCap(NamedTuple):
    """Tracks per artist so far in one mix: the artists met (at most one per track, so a mix's
    length bounds them, whatever the catalog's size), their counts, and how many there are."""

    artists: np.ndarray
    counts: np.ndarray
    used: np.ndarray  # shape (1,)

    @classmethod
    def empty(cls, length: int) -> _ArtistCap:
        return cls(np.empty(length, np.int64), np.zeros(length, np.int64), np.zeros(1, np.int64))


def _draw(
    items: np.ndarray,
    log_weights: np.ndarray,
    k: int,
    rng: np.random.Generator,
    pc: ProductCatalog,
    config: MixConfig,
    cap: _ArtistCap,
) -> np.ndarray:
    """Positions in ``items`` of up to ``k`` of them drawn without replacement (Gumbel top-k),
    within the artist cap (``cap``: the mix's counts so far, updated)."""
    if k <= 0 or len(items) == 0:
        return np.zeros(0, dtype=np.int64)
    keys = -(log_weights + rng.gumbel(size=len(items)))
    artists = pc.catalog.artist[items].astype(np.int64, copy=False)
    chosen = np.empty(k, dtype=np.int64)
    taken = 0
    for span in _ascending(keys, head=2 * k + 8):  # the cap rarely skips far
        taken = _take_capped(span, artists, config.max_per_artist, *cap, chosen, taken)
        if taken == k:
            break
    return chosen[:taken]


@numba.njit(cache=True, nogil=True)
def _take_capped(span, artists, cap, met, counts, used, chosen, taken):  # pragma: no cover
    """Append to ``chosen`` the positions of ``span`` in order whose artist has fewer than
    ``cap`` tracks so far (an unknown artist, < 0, always passes), until it is full; returns
    how many it holds. Compiled (tested through :func:`build_mixes`): as a Python loop it was
    40 % of the daily batch's mix building."""
    for j in range(len(span)):
        if taken == len(chosen):
            break
        position = span[j]
        artist = artists[position]
        if artist >= 0:
            at = -1
            for m in range(used[0]):
                if met[m] == artist:
                    at = m
                    break
            if at < 0:
                at = used[0]
                met[at] = artist
                counts[at] = 0
                used[0] += 1
            if counts[at] >= cap:
                continue
            counts[at] += 1
        chosen[taken] = position
        taken += 1
    return taken


def _ascending(keys: np.ndarray, head: int) -> Iterator[np.ndarray]:
    """Positions of ``keys`` in ascending order, the first ``head`` found by a partition: a
    draw usually stops within them, and a sort of a long pool is paid only when it does not."""
    if head >= len(keys):
        yield np.argsort(keys, kind="stable")
        return
    first = np.argpartition(keys, head)[:head]
    yield first[np.argsort(keys[first], kind="stable")]
    yield np.argsort(keys, kind="stable")[head:]


def _plan(
    number: int,
    cluster: TasteCluster,
    tracks: np.ndarray,
    familiar: np.ndarray,
    pc: ProductCatalog,
) -> MixPlan:
    if cluster.kind == "genre":
        name = pc.catalog.genre_names[cluster.code]
        title = f"{genre_label(name)} mix"  # "R&B mix", not "R&b mix"
    else:
        name = pc.artist_names[cluster.code]
        title = f"{name[:1].upper()}{name[1:]} mix"
    # artists the user plays most in this cluster, among those in the mix
    in_mix = set(pc.catalog.artist[tracks].tolist())
    named: list[str] = []
    for artist in pc.catalog.artist[cluster.items].tolist():
        label = pc.artist_names[artist] if artist >= 0 else None
        if artist in in_mix and label and label not in named:
            named.append(label)
        if len(named) == NAMED_ARTISTS:
            break
    if len(named) < NAMED_ARTISTS:  # a cold mix: its first artists
        for t in tracks:
            label = pc.artist_name(int(t))
            if label and label not in named:
                named.append(label)
            if len(named) == NAMED_ARTISTS:
                break
    description = f"{title}: {', '.join(named)} and more" if named else title
    return MixPlan(number, name, title, description, tracks, familiar)


def to_mix(plan: MixPlan, user_id: str, day: dt.date, pc: ProductCatalog) -> Mix:
    """The JSON-ready mix of a plan: item ids, titles and artist names."""
    ids = pc.item_ids(plan.tracks)
    return Mix(
        user_id=user_id,
        date=day,
        number=plan.number,
        title=plan.title,
        description=plan.description,
        cluster=plan.cluster,
        tracks=[
            MixTrack(
                item_id=item_id,
                title=str(pc.catalog.titles[t]),
                artist=pc.artist_name(t),
                familiar=f,
            )
            for item_id, t, f in zip(ids, plan.tracks.tolist(), plan.familiar.tolist(), strict=True)
        ],
    )

"""The synthetic world as one object: catalog, users, friends, streamed events, ground truth.

``generate_world`` draws everything except the events, which :meth:`World.iter_event_chunks`
generates lazily block by block; the same world always streams the same events, whatever chunk
size is asked for. Item and user records are built on first access (a million pydantic users
take a while and are not needed to stream events).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from segue.data.log import InteractionLog
from segue.data.model import Friendship, Item, User
from segue.data.synth.catalog import Catalog, build_catalog
from segue.data.synth.params import SynthParamError, SynthParams
from segue.data.synth.records import build_friendships, build_items, build_users
from segue.data.synth.sessions import Block, Calibration, EventEngine, Plan, plan_sessions
from segue.data.synth.tables import DEVICES, SURFACES
from segue.data.synth.users import Population, build_population, expected_genre_demand
from segue.errors import SegueError

_SURFACE_NAMES = np.array(SURFACES, dtype=object)
_DEVICE_NAMES = np.array([d for d, _ in DEVICES], dtype=object)
_COLUMNS = ("user", "item", "type", "ts_ms", "ms_played", "focus", "session", "surface", "device")


@dataclass(frozen=True)
class WorldTruth:
    """What generated the world, kept so that later code can simulate its users.

    ``user_latent``/``item_latent`` are rows by world position (``World.user_ids`` /
    ``World.item_ids``); ``user_latent`` is the taste at the period's end, where later
    responses (the simulator's) are drawn, which differs from the first only where taste
    drifts; ``calibration`` holds the solved skip and like intercepts. The full
    catalog and population arrays are there too for anything the docs promise.
    """

    params: SynthParams
    user_latent: np.ndarray
    item_latent: np.ndarray
    item_popularity: np.ndarray
    catalog: Catalog
    population: Population
    plan: Plan
    calibration: Calibration

    def affinity(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Raw ``u·v`` for paired user and item positions."""
        u = self.user_latent[np.asarray(users)]
        v = self.item_latent[np.asarray(items)]
        return np.einsum("...j,...j->...", u, v, dtype=np.float64)

    def standardized_affinity(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``z = (u·v - mean) / sd``, the scale every outcome model uses."""
        c = self.calibration
        return (self.affinity(users, items) - c.affinity_mean) / c.affinity_std


class World:
    """A generated world; see the module docstring."""

    def __init__(self, params: SynthParams, truth: WorldTruth, engine: EventEngine) -> None:
        self.params = params
        self.truth = truth
        self._engine = engine

    # -- ids and records ----------------------------------------------------------------
    @property
    def user_ids(self) -> np.ndarray:
        """User ids by position (object array); the user vocabulary of every event chunk."""
        return self.truth.population.ids

    @property
    def item_ids(self) -> np.ndarray:
        """Item ids by position; the item vocabulary of every event chunk."""
        return self.truth.catalog.ids

    @cached_property
    def items(self) -> list[Item]:
        return build_items(self.truth.catalog)

    @cached_property
    def users(self) -> list[User]:
        return build_users(self.truth.population)

    @cached_property
    def friendships(self) -> list[Friendship]:
        """Friend links, each listed in both directions."""
        return build_friendships(self.truth.population)

    @cached_property
    def _user_positions(self) -> dict[str, int]:
        return {uid: i for i, uid in enumerate(self.user_ids)}

    @cached_property
    def _item_positions(self) -> dict[str, int]:
        return {iid: i for i, iid in enumerate(self.item_ids)}

    def user_index(self, user_id: str) -> int:
        try:
            return self._user_positions[user_id]
        except KeyError:
            raise SegueError(f"unknown user id {user_id!r} in the synthetic world") from None

    def item_index(self, item_id: str) -> int:
        try:
            return self._item_positions[item_id]
        except KeyError:
            raise SegueError(f"unknown item id {item_id!r} in the synthetic world") from None

    # -- events -------------------------------------------------------------------------
    def iter_event_chunks(
        self,
        chunk_size: int = 1_000_000,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[InteractionLog]:
        """Every event, ``chunk_size`` at a time (the last chunk may be shorter).

        Events are ordered by user, then time (users in position order). ``progress`` is
        called with (users done, users in total) after each block of users.
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise SynthParamError(f"chunk_size must be a positive integer, not {chunk_size!r}")
        engine = self._engine
        pending: list[dict[str, np.ndarray]] = []
        buffered = 0
        next_event = 0
        session_offset = 0
        for b in range(engine.n_blocks):
            block = engine.generate_block(b)
            pending.append(_block_columns(block, session_offset))
            session_offset += block.n_sessions
            buffered += len(block)
            while buffered >= chunk_size:
                columns, pending = _take(pending, chunk_size)
                yield self._log(columns, next_event)
                next_event += chunk_size
                buffered -= chunk_size
            if progress is not None:
                progress(engine.block_bounds(b)[1], self.params.n_users)
        if buffered:
            columns, pending = _take(pending, buffered)
            yield self._log(columns, next_event)

    def events(self) -> InteractionLog:
        """All events in one log: convenient for small worlds, avoid for large ones."""
        chunks = list(self.iter_event_chunks(chunk_size=2**62))
        if chunks:
            return chunks[0]
        empty = {name: np.zeros(0, dtype=np.int64) for name in _COLUMNS}
        return self._log(empty, 0)

    def _log(self, c: dict[str, np.ndarray], first_event: int) -> InteractionLog:
        n = len(c["user"])
        seed = self.params.seed
        event_id = np.array([f"s{seed}-{i}" for i in range(first_event, first_event + n)], object)
        if n:
            lo, hi = int(c["session"].min()), int(c["session"].max())
            names = np.array([f"s{seed}-sess-{j}" for j in range(lo, hi + 1)], dtype=object)
            session_id = names[c["session"] - lo]
        else:
            session_id = np.zeros(0, dtype=object)
        return InteractionLog(
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            user=c["user"],
            item=c["item"],
            type=c["type"],
            ts_ms=c["ts_ms"],
            ms_played=c["ms_played"],
            count=np.ones(n, dtype=np.int32),
            focus=c["focus"],
            rating=np.full(n, np.nan),
            event_id=event_id,
            session_id=session_id,
            surface=_SURFACE_NAMES[c["surface"].astype(np.int64)],
            device=_DEVICE_NAMES[c["device"].astype(np.int64)],
        )


def _block_columns(block: Block, session_offset: int) -> dict[str, np.ndarray]:
    columns = {name: getattr(block, name) for name in _COLUMNS}
    columns["session"] = block.session + session_offset
    return columns


def _take(
    pending: list[dict[str, np.ndarray]], n: int
) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """The first ``n`` buffered rows, and what remains buffered."""
    joined = {
        name: pending[0][name] if len(pending) == 1 else np.concatenate([p[name] for p in pending])
        for name in _COLUMNS
    }
    head = {name: col[:n] for name, col in joined.items()}
    rest = {name: col[n:] for name, col in joined.items()}
    return head, ([rest] if len(rest["user"]) else [])


def generate_world(
    params: SynthParams | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> World:
    """Draw the catalog, the users and the ground truth; events stream from the result.

    ``progress`` is called as (steps done, 4) after the catalog, the users, the session plan
    and the calibration.
    """
    params = SynthParams() if params is None else params
    if not isinstance(params, SynthParams):
        raise SynthParamError(f"generate_world needs SynthParams, not {type(params).__name__}")
    report = progress or (lambda done, total: None)
    catalog = build_catalog(params, expected_genre_demand(params))
    report(1, 4)
    population = build_population(params, catalog)
    report(2, 4)
    plan = plan_sessions(params, population)
    engine = EventEngine(params, catalog, population, plan)
    report(3, 4)
    calibration = engine.calibrate()
    report(4, 4)
    truth = WorldTruth(
        params=params,
        user_latent=_taste_at_end(params, population),
        item_latent=catalog.latent,
        item_popularity=catalog.popularity,
        catalog=catalog,
        population=population,
        plan=plan,
        calibration=calibration,
    )
    return World(params, truth, engine)


def _taste_at_end(params: SynthParams, population: Population) -> np.ndarray:
    """Each listener's latent taste at the end of the period (``taste_drift`` of the way)."""
    if population.later_latent is None:
        return population.latent
    n = len(population)
    return population.taste_at(np.arange(n), np.full(n, params.taste_drift))[1]

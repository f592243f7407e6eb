"""The closed loop: each simulated day, every visiting listener gets a list from their arm's
recommender, reacts (:mod:`segue.simulation.listeners`), and what they played is added to the
data the recommenders are retrained on overnight.

The recommenders are segue's own models (``segue.models.MODELS`` by name), fitted on the
world's history plus everything the loop has produced so far, over the world's tracks. An
experiment's arms share that data, as arms of a real experiment share the store: the lists of
one arm are trained partly on listening the other arm's lists caused. Arms that name the same
model are served by one model object, fitted once a day on everyone's plays, as one deployed
model serves both arms of a real A/A test: their lists differ only by listener, never by arm,
so an A/A run is the everyone-in-one-arm run with labels on it.

:func:`true_effect` runs the loop twice more, everyone in control and everyone in treatment,
with the same coins: the per-listener difference is the effect the experiment estimates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.data.log import InteractionLog
from segue.data.model import EVENT_CODES, EventType, ItemKind
from segue.data.synth.catalog import KIND_CODE
from segue.data.synth.world import World
from segue.errors import SegueError
from segue.models.names import model_spec
from segue.progress import Progress, no_progress
from segue.simulation.listeners import Listeners, ReactionParams

DAY_MS = 86_400_000


@dataclass
class LoopResult:
    """Per listener (world positions) over the run, and per day and arm."""

    arm: np.ndarray  # arm index per listener
    arms: tuple[str, ...]
    conversions: np.ndarray
    plays: np.ndarray
    minutes: np.ndarray
    active_days: np.ndarray
    last_visit: np.ndarray  # day index, -1: never
    exposures: np.ndarray  # lists shown (one per visit)
    daily_minutes: np.ndarray  # (days, listeners)
    days: int
    #: (days, listeners): what the daily looks of a sequential test accumulate
    daily_conversions: np.ndarray | None = None
    daily_visits: np.ndarray | None = None  # bool


def tracks_of(world: World) -> np.ndarray:
    """World positions of the tracks (what the loop recommends)."""
    return np.flatnonzero(world.truth.catalog.kind == KIND_CODE[ItemKind.TRACK])


def history_matrix(world: World, history: InteractionLog, tracks: np.ndarray) -> sp.csr_matrix:
    """Play counts (listeners × tracks) of the world's history."""
    column = np.full(len(world.item_ids), -1, dtype=np.int64)
    column[tracks] = np.arange(len(tracks))
    plays = history.type == EVENT_CODES[EventType.PLAY]
    cols = column[history.item[plays]]
    keep = cols >= 0
    users = history.user[plays][keep]
    shape = (len(world.user_ids), len(tracks))
    data = np.ones(len(users), dtype=np.float32)
    return sp.csr_matrix((data, (users, cols[keep])), shape=shape)


def run_loop(
    world: World,
    history: InteractionLog,
    arms: Sequence[str],
    assignment: np.ndarray,
    days: int,
    params: ReactionParams | None = None,
    *,
    seed: int = 0,
    progress: Progress = no_progress,
    fit: Callable[[str, sp.csr_matrix], object] | None = None,
) -> LoopResult:
    """Run ``days`` of the loop; ``assignment[u]`` is listener ``u``'s index into ``arms``
    (each a model name)."""
    params = params or ReactionParams()
    n_users = len(world.user_ids)
    assignment = np.asarray(assignment)
    if assignment.shape != (n_users,) or assignment.min() < 0 or assignment.max() >= len(arms):
        raise SegueError(f"give every listener an arm index in 0..{len(arms) - 1}")
    for name in arms:
        model_spec(name)  # unknown names fail before any work
    tracks = tracks_of(world)
    matrix = history_matrix(world, history, tracks)
    listeners = Listeners(world, params, days, seed=seed)
    played_users, played_columns = matrix.nonzero()
    listeners.remember_history(played_users, tracks[played_columns])
    fit = fit or _fit
    conversions, plays, exposures, active = (np.zeros(n_users, dtype=np.int64) for _ in range(4))
    minutes = np.zeros(n_users)
    daily = np.zeros((days, n_users))
    daily_conversions = np.zeros((days, n_users), dtype=np.int64)
    daily_visits = np.zeros((days, n_users), dtype=bool)
    last = np.full(n_users, -1, dtype=np.int64)
    for day in range(days):
        progress("simulated days", day, days)
        # one model per distinct name: identical arms share it (see the module docstring)
        models = {name: fit(name, matrix) for name in dict.fromkeys(arms)}
        visitors = listeners.visitors(day)
        shown = np.full((len(visitors), params.k), -1, dtype=np.int64)
        for index, name in enumerate(arms):
            mine = assignment[visitors] == index
            if mine.any():
                recs = models[name].recommend(visitors[mine], params.k)  # type: ignore[attr-defined]
                cols = np.asarray(recs.items)
                shown[mine, : cols.shape[1]] = np.where(cols >= 0, tracks[np.maximum(cols, 0)], -1)
        outcome = listeners.react(day, visitors, shown)
        away = np.setdiff1d(np.arange(n_users), visitors)
        listeners.satisfaction[away] += (params.satisfaction_ref - listeners.satisfaction[away]) * (
            params.memory / 4
        )
        converted = outcome.converted.sum(axis=1)
        conversions[visitors] += converted
        daily_conversions[day, visitors] = converted
        daily_visits[day, visitors] = True
        plays[visitors] += outcome.played.sum(axis=1)
        spent = outcome.ms_played.sum(axis=1) / 60_000
        minutes[visitors] += spent
        daily[day, visitors] = spent
        exposures[visitors] += 1
        active[visitors] += 1
        last[visitors] = day
        rows, cols = np.nonzero(outcome.played)
        column = np.searchsorted(tracks, outcome.shown[rows, cols])
        matrix = matrix + sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (visitors[rows], column)), shape=matrix.shape
        )
    progress("simulated days", days, days)
    return LoopResult(
        assignment, tuple(arms), conversions, plays, minutes, active, last, exposures, daily,
        days, daily_conversions, daily_visits,
    )  # fmt: skip


def _fit(name: str, counts: sp.csr_matrix) -> object:
    spec = model_spec(name)
    return spec.factory().fit(spec.weighting.apply(counts.tocsr()))


def true_effect(
    world: World,
    history: InteractionLog,
    control: str,
    treatment: str,
    days: int,
    params: ReactionParams | None = None,
    *,
    seed: int = 0,
    progress: Progress = no_progress,
) -> tuple[LoopResult, LoopResult]:
    """The loop with everyone in ``control``, then everyone in ``treatment``, same coins."""
    n = len(world.user_ids)
    everyone = np.zeros(n, dtype=np.int64)
    a = run_loop(world, history, [control], everyone, days, params, seed=seed, progress=progress)
    b = run_loop(world, history, [treatment], everyone, days, params, seed=seed, progress=progress)
    return a, b

"""Building many listeners' daily mixes, in this process or in worker processes.

:func:`segue.products.mixes.build_mixes` is a few hundred small array steps per listener,
held by the interpreter lock: on the 1M-listener world it was two thirds of the daily batch's
mix time, on one core while the other idled. :class:`MixBuilder` takes a block of listeners'
inputs (history, candidates, the kids flag) and returns their plans; with ``workers > 0`` the
blocks go to that many processes (``forkserver``: no fork of a process whose model holds
threads), each given the catalog arrays once, while the caller scores the next block.
Plans come back in the order blocks were given, so files stay sorted by listener. Listeners
without history who share their cold segment's candidates share its clusters and discovery
pools (:func:`segue.products.mixes.mix_inputs`, made once per process); only their draws are
theirs (539 → 377 µs per such listener on the 1M world).

The mixes are the same either way: each listener's draws come from their own (user, day)
generator, whatever process builds them.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from segue.errors import SegueError
from segue.products.catalog_view import ProductCatalog
from segue.products.mixes import MixConfig, MixInputs, MixPlan, draw_mixes, mix_inputs


@dataclass(frozen=True, eq=False)
class MixJob:
    """One listener's inputs: ``candidates`` are the model's (or their segment's) ranked
    columns; an empty history means cold start."""

    user_id: str
    kids: bool
    history_items: np.ndarray
    history_weights: np.ndarray
    candidates: np.ndarray


#: Cold segments' mix inputs kept per process; a world has a few hundred segments at most
#: (country × age band × gender × kids), and the cache starts over past this.
COLD_SEGMENTS = 4096


@dataclass(frozen=True, eq=False)
class _Setting:
    """What every block needs and is sent once per worker."""

    pc: ProductCatalog
    allowed_adult: np.ndarray
    allowed_kids: np.ndarray
    config: MixConfig
    date: dt.date
    #: (kids, candidates' bytes) -> the clusters and pools of listeners without history who
    #: share those candidates (their segment's): half the 1M world; only the draws are each
    #: listener's own
    cold: dict[tuple[bool, bytes], MixInputs] = field(default_factory=dict)

    def build(self, jobs: Sequence[MixJob]) -> list[list[MixPlan]]:
        plans = []
        for job in jobs:
            allowed = self.allowed_kids if job.kids else self.allowed_adult
            if len(job.history_items):
                inputs = mix_inputs(job.history_items, job.history_weights, job.candidates,
                                    self.pc, allowed, self.config)  # fmt: skip
            else:
                inputs = self._cold(job, allowed)
            plans.append(draw_mixes(job.user_id, self.date, inputs, self.pc, self.config))
        return plans

    def _cold(self, job: MixJob, allowed: np.ndarray) -> MixInputs:
        """The inputs of a listener without history: their segment's, made on first use."""
        key = (job.kids, np.asarray(job.candidates, dtype=np.int64).tobytes())
        inputs = self.cold.get(key)
        if inputs is None:
            if len(self.cold) >= COLD_SEGMENTS:
                self.cold.clear()
            inputs = mix_inputs(job.history_items, job.history_weights, job.candidates,
                                self.pc, allowed, self.config)  # fmt: skip
            self.cold[key] = inputs
        return inputs


_WORKER_SETTING: _Setting | None = None


def _start_worker(setting: _Setting) -> None:
    global _WORKER_SETTING
    _WORKER_SETTING = setting


def _build_in_worker(jobs: Sequence[MixJob]) -> list[list[MixPlan]]:
    assert _WORKER_SETTING is not None, "the worker was not started with its setting"
    return _WORKER_SETTING.build(jobs)


class MixBuilder:
    """Builds blocks of :class:`MixJob` here (``workers=0``) or in ``workers`` processes.

    A context manager: the processes stop when it exits, queued blocks cancelled on an error.
    """

    def __init__(
        self,
        pc: ProductCatalog,
        allowed_adult: np.ndarray,
        allowed_kids: np.ndarray,
        config: MixConfig,
        date: dt.date,
        workers: int = 0,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise SegueError(f"mix workers must be an integer >= 0, got {workers!r}")
        self._setting = _Setting(pc, allowed_adult, allowed_kids, config, date)
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    @property
    def depth(self) -> int:
        """Blocks worth keeping in flight: one per worker and one queued behind them."""
        return self.workers + 1 if self.workers else 0

    def __enter__(self) -> MixBuilder:
        if self.workers:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_start_worker,
                initargs=(self._setting,),
            )
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=kind is not None)
            self._pool = None

    def submit(self, jobs: Sequence[MixJob]) -> Future[list[list[MixPlan]]]:
        """The plans of ``jobs``, in order, when the returned future is done."""
        if self._pool is not None:
            return self._pool.submit(_build_in_worker, list(jobs))
        if self.workers:
            raise SegueError("MixBuilder with workers is used as a context manager")
        done: Future[list[list[MixPlan]]] = Future()
        done.set_result(self._setting.build(jobs))
        return done

"""What the PyTorch recommenders (``ncf.py``, ``twotower.py``) share: torch on demand, threads,
seeds, the inner validation split their early stopping reads, and NDCG@10 on it.

torch is imported inside functions only (:func:`load_torch`), so ``import segue.models`` and
every classical model stay torch-free; torch comes with the ``nlu`` extra, and a missing torch
is one line naming it.

Threads: a fit uses ``num_threads`` torch intra-op threads (the models default to 1), or with
0 as many as torch would use but never more than a ``threadpoolctl`` limit in force (the API
server holds every pool to one thread) nor the cores this process may run on; the previous
setting is restored afterwards, so a fit never changes the threads of whatever else runs in
the process. One thread is the default because these models are small and, on a machine other
work shares, torch's OpenMP threads spinning against other processes were far slower than one
(an NCF epoch on Last.fm 2K: 8 s on one thread, about 100 s on two, with the 2-core machine's
load at 8, measured).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from segue.errors import SegueError
from segue.extras import MissingExtra, install_hint
from segue.models.base import checked_matrix as base_checked_matrix
from segue.ranking import hit_matrix, ndcg_per_user

if TYPE_CHECKING:
    import torch

#: The extra that installs torch (see ``segue.extras``).
TORCH_EXTRA = "nlu"


def load_torch(what: str) -> Any:
    """The ``torch`` module, or a one-line :class:`MissingExtra` naming the extra to install."""
    try:
        import torch
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        raise MissingExtra(f"{install_hint(TORCH_EXTRA, what)}; missing: torch") from None
    return torch


def thread_count(requested: int, torch_module: Any) -> int:
    """Threads for a fit: ``requested`` if > 0, else torch's own count held to any
    ``threadpoolctl`` limit in force and to the cores this process may use."""
    if requested < 0:
        raise SegueError(f"num_threads must be >= 0 (0: automatic), got {requested}")
    if requested > 0:
        return requested
    count = torch_module.get_num_threads()
    try:
        count = min(count, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        count = min(count, os.cpu_count() or 1)
    from threadpoolctl import threadpool_info

    limits = [
        info["num_threads"]
        for info in threadpool_info()
        if info.get("user_api") in ("openmp", "blas") and info.get("num_threads")
    ]
    if limits:
        count = min(count, min(limits))
    return max(1, count)


@contextmanager
def torch_threads(requested: int, torch_module: Any) -> Iterator[int]:
    """Run a block with :func:`thread_count` torch threads; restores the previous count."""
    previous = torch_module.get_num_threads()
    count = thread_count(requested, torch_module)
    torch_module.set_num_threads(count)
    try:
        yield count
    finally:
        torch_module.set_num_threads(previous)


def seeded_generator(torch_module: Any, seed: int) -> torch.Generator:
    """A torch RNG of its own (initial weights), so a fit never reads or moves the global one."""
    generator = torch_module.Generator()
    generator.manual_seed(int(seed))
    return generator


def validation_ndcg(
    score: Callable[[np.ndarray], np.ndarray],
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    users: np.ndarray,
    k: int = 10,
) -> float:
    """Mean NDCG@k of ``score(users)`` on ``valid``, the users' ``train`` items masked."""
    if len(users) == 0:
        return float("nan")
    total = 0.0
    for start in range(0, len(users), 256):
        block = users[start : start + 256]
        scores = np.asarray(score(block), dtype=np.float32)
        seen = train[block]
        rows = np.repeat(np.arange(len(block)), np.diff(seen.indptr))
        scores[rows, seen.indices] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)
        relevant = valid[block]
        total += float(ndcg_per_user(hit_matrix(top, relevant), np.diff(relevant.indptr)).sum())
    return total / len(users)


def validation_users(valid: sp.csr_matrix, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` users with held-out items, a seeded sample: keeps each check cheap."""
    users = np.flatnonzero(np.diff(valid.indptr) > 0)
    if len(users) > limit:
        users = np.sort(np.random.default_rng(seed).choice(users, limit, replace=False))
    return users


def checked_matrix(matrix: sp.spmatrix, where: str) -> sp.csr_matrix:
    """The models' checked copy (:func:`segue.models.base.checked_matrix`) with negative
    values dropped: the neural models learn from positive interactions only."""
    csr = base_checked_matrix(matrix, where)
    csr.data[csr.data < 0] = 0.0
    csr.eliminate_zeros()
    return csr


def check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise SegueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_positive_float(name: str, value: Any, *, allow_zero: bool = False) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise SegueError(f"{name} must be a finite number {bound}, got {value!r}")


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)

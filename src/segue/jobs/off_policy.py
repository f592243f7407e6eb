"""What another ordering of the lists would have earned, read off serving's own exposure log:
``segue metrics off-policy``.

Where the top-slot bandit explores (``segue.serving.explore``), each served list records the
probability its first slot had of showing what it showed, whether the request explored, the
model's own first item and the bandit's greedy choice. The first slot's reward is a play of
its item within ``window_s``. For a deterministic target policy that would have put item
``t`` first, each logged list weighs ``[shown == t] / propensity``; the mean of weighted
rewards is the inverse-propensity (IPS) estimate of the target's first-slot CTR and the
weighted mean its self-normalised (SNIPS) form. Unbiased while the logger gave every item a
chance — which ε-uniform exploration does, with probability ε/k.

The logged policy's own first-slot CTR is printed beside them: the two targets are the
model's order (the bandit switched off) and the greedy policy (exploration switched off).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from segue.errors import SegueError
from segue.experiments.stats import ips
from segue.jobs.online_metrics import lists_on_days
from segue.store import Store

#: Target policies, by the context key naming the item each would have put first.
TARGETS = {"model order": "model_top", "greedy bandit": "greedy_top"}


@dataclass(frozen=True)
class PolicyValue:
    policy: str
    lists: int
    #: lists whose first slot showed what the policy would have shown
    matched: int
    ctr_ips: float
    ctr_se: float
    ctr_snips: float


@dataclass(frozen=True)
class OffPolicyReport:
    lists: int
    explored: int
    logged_ctr: float
    values: list[PolicyValue]


def off_policy(
    store: Store, start: dt.date, end: dt.date, *, window_s: int = 1_800
) -> OffPolicyReport:
    """First-slot CTR of the logged policy and, off-policy, of each of ``TARGETS``."""
    table = lists_on_days(store, start, end, window_s=window_s, conversion_ms=0)
    if not table.empty:
        table = table[[p is not None and len(p) > 0 for p in table["propensities"]]]
    if table.empty:
        raise SegueError(
            f"no list served from {start} to {end} logged a propensity: the top-slot bandit "
            "explores only with explore_share > 0 (SEGUE_EXPLORE_SHARE, or an experiment "
            "variant's explore_share=…)"
        )
    if len(table) < 2:
        raise SegueError(f"only {len(table)} list with propensities from {start} to {end}")
    first = np.array([items[0] for items in table["items"]], dtype=object)
    reward = np.array(
        [item in played for item, played in zip(first, table["played_items"], strict=True)],
        dtype=np.float64,
    )
    logged = np.array([p[0] for p in table["propensities"]], dtype=np.float64)
    values = []
    for policy, key in TARGETS.items():
        chosen = np.array([c.get(key) for c in table["context"]], dtype=object)
        target = (chosen == first).astype(np.float64)
        estimate, se, snips = ips(reward, target, logged)
        values.append(
            PolicyValue(policy, len(table), int(target.sum()), estimate, se, snips)
        )
    explored = sum(c.get("explored") == "1" for c in table["context"])
    return OffPolicyReport(len(table), int(explored), float(reward.mean()), values)

"""Next best action in real time: one listener's best allowed suggestion right now.

The models and the catalog are loaded once per process (:class:`NBAService`); each call
reads one listener's history and recent messages — not the history of a listener without
personalisation consent: they are scored as nobody in particular (no history, no age band or
gender; their country, time zone and allowed channels only) and offered only non-personal
actions (popular items, app features), the same for all of them in that context. The HTTP
response model is ``segue.api.schemas.NextBestActionResponse``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segue.data.consent import personalised
from segue.data.log import InteractionLog
from segue.data.model import EVENT_CODES
from segue.errors import SegueError
from segue.nba.actions import Action
from segue.nba.artifacts import click_model_path
from segue.nba.campaign import action_at
from segue.nba.candidates import generate_candidates
from segue.nba.cf import CFScorer
from segue.nba.clickmodel import ClickModel
from segue.nba.features import (
    DAY_MS,
    HISTORY_TYPES,
    ITEM_COLUMNS,
    Audience,
    ItemTable,
    Profiles,
)
from segue.nba.policy import PolicySettings, Scored, decide, neutral_view
from segue.nba.training import (
    NBAContext,
)
from segue.registry.trained import load_trained
from segue.store import Store


# -- real time ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Suggestion:
    action: Action
    channel: str
    p_click: float
    expected_value: float
    send_at: dt.datetime


@dataclass(frozen=True)
class NextBestAction:
    """The answer of ``GET /v1/users/{id}/next-best-action``: the best allowed suggestion (or
    none, with why), and the other allowed ones best first."""

    user_id: str
    best: Suggestion | None
    alternatives: list[Suggestion]
    note: str = ""


class NBAService:
    """Models and catalog loaded once; each call reads one user's history and outbox rows.

    Live answers apply every rule of :class:`PolicySettings` except the holdout, which only
    campaigns have (their report compares against it)."""

    def __init__(
        self,
        store: Store,
        model_dir: Path,
        *,
        cf_name: str = "als",
        policy: PolicySettings | None = None,
    ) -> None:
        self.store = store
        self.model = ClickModel.load(click_model_path(model_dir))
        self.policy = policy or PolicySettings(holdout_share=0.0)
        columns = store.table_columns("items", ITEM_COLUMNS)
        self.items = ItemTable.from_columns(np.asarray(columns["id"], dtype=object), columns)
        trained = load_trained(model_dir, cf_name)
        self._cf = trained
        self._cf_items = trained.items

    def next_best_action(
        self,
        user_id: str,
        now: dt.datetime | None = None,
        alternatives: int = 3,
        policy: PolicySettings | None = None,
    ) -> NextBestAction:
        """``policy`` replaces the service's rules for this answer (an experiment's variant)."""
        policy = policy or self.policy
        now_ms = int((now or dt.datetime.now(dt.UTC)).timestamp() * 1000)
        user = self.store.get_user(user_id)
        if user is None:
            raise SegueError(f"unknown user {user_id!r}")
        ids = np.array([user_id], dtype=object)
        personal = personalised(user)
        log = self.store.user_events(user_id, end_ms=now_ms)
        log = _realign(log, self.items)
        log = log.select(np.isin(log.type, [EVENT_CODES[t] for t in HISTORY_TYPES]))
        profiles = Profiles.build(log, self.items, now_ms)
        audience = Audience.from_users([user], ids)
        profiles, audience = neutral_view(profiles, audience, np.array([not personal]))
        cf = CFScorer(self._cf.model, self._cf.users, self._cf_items, ids, self.items.ids)
        cands = generate_candidates(
            np.array([0]), self.items, profiles, cf, self.model.ctr, personal=np.array([personal])
        )
        recent = self.store.outbox_recent(
            now_ms - max(policy.no_repeat_days, 1) * DAY_MS, [user_id]
        )
        scored = decide(cands, audience, self.items, profiles, self.model, now_ms, recent, policy)
        ctx = NBAContext(self.items, audience, profiles)
        allowed = np.flatnonzero(scored.allowed)
        order = allowed[np.argsort(-scored.ev[allowed], kind="stable")]
        _, first = np.unique(scored.item[order], return_index=True)  # best channel per item
        order = order[np.sort(first)]
        suggestions = [_suggestion(scored, ctx, int(r)) for r in order[: alternatives + 1]]
        note = "" if personal else NOT_PERSONAL_NOTE
        if not suggestions:
            note = _why_nothing(user, len(cands), len(scored))
        return NextBestAction(
            user_id=user_id,
            best=suggestions[0] if suggestions else None,
            alternatives=suggestions[1:],
            note=note,
        )


#: The note on the answer for a listener without personalisation consent.
NOT_PERSONAL_NOTE = "personalisation is off: popular items and app features only"


def _why_nothing(user: object, n_candidates: int, n_scored: int) -> str:
    if getattr(user, "kids_profile", False):
        return "kids profiles get no suggestions"
    if n_candidates == 0:
        return "no candidates for this user"
    if n_scored == 0:
        return "no channel allowed (consent)"
    return "every candidate is below the thresholds, capped today or sent recently"


def _suggestion(scored: Scored, ctx: NBAContext, r: int) -> Suggestion:
    action, channel, _ = action_at(scored, ctx, r)
    return Suggestion(
        action=action,
        channel=channel,
        p_click=float(scored.p[r]),
        expected_value=float(scored.ev[r]),
        send_at=dt.datetime.fromtimestamp(int(scored.scheduled_ms[r]) / 1000, tz=dt.UTC),
    )


def _realign(log: InteractionLog, items: ItemTable) -> InteractionLog:
    """A one-user log re-encoded in the catalog's item vocabulary (unknown items dropped)."""
    position = items.index(log.item_ids)
    mapped = position[log.item] if len(log) else np.zeros(0, dtype=np.int64)
    kept = log.select(mapped >= 0)
    kept.item = mapped[mapped >= 0].astype(np.int32)
    kept.item_ids = items.ids
    return kept


def next_best_action(
    store: Store,
    model_dir: Path,
    user_id: str,
    now: dt.datetime | None = None,
    *,
    service: NBAService | None = None,
) -> NextBestAction:
    """One user's next best action right now; pass a long-lived ``service`` when serving."""
    return (service or NBAService(store, model_dir)).next_best_action(user_id, now)

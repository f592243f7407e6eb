"""A campaign: at most one message per user, chosen by the click model and the rules, queued in
the outbox (``run_campaign``) or written as the day's Parquet inputs (``campaign_inputs``).

Rerunning a campaign queues nothing twice: each message's id is derived from the campaign
and the user.

Users without personalisation consent get no taste-based message: no CF candidates, and they
are scored as nobody in particular (:func:`segue.nba.policy.neutral_view`), so all of them in
the same country and time zone, allowing the same channels, get the same message (a popular
item or an app feature), or none.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from segue.errors import SegueError
from segue.nba.actions import Action, make_action
from segue.nba.artifacts import cf_scorer, click_model_path
from segue.nba.candidates import REASONS, generate_candidates
from segue.nba.cf import CFScorer
from segue.nba.clickmodel import ClickModel
from segue.nba.features import (
    CHANNELS,
    DAY_MS,
)
from segue.nba.policy import PolicySettings, Scored, decide, in_holdout, neutral_view
from segue.nba.render import DEFAULT_EMAIL, Recipient, render
from segue.nba.training import (
    NBAContext,
    load_context,
)
from segue.progress import Progress, no_progress
from segue.store import Store
from segue.store.outbox import OutboxMessage


# -- campaigns ----------------------------------------------------------------------------
@dataclass
class CampaignResult:
    campaign: str
    users: int
    holdout: int
    queued: int
    by_channel: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def message_id(campaign: str, user_id: str) -> str:
    """Idempotency key: one message per user and campaign, whatever reruns happen."""
    digest = hashlib.blake2b(f"{campaign}\x00{user_id}".encode(), digest_size=16).hexdigest()
    return f"m-{digest}"


def run_campaign(
    store: Store,
    model_dir: Path,
    campaign: str,
    now_ms: int | None = None,
    *,
    policy: PolicySettings | None = None,
    cf_name: str = "als",
    chunk: int = 20_000,
    email_template: str = DEFAULT_EMAIL,
    progress: Progress = no_progress,
) -> CampaignResult:
    """Choose at most one message per user and queue it in the outbox, ``chunk`` users at a
    time (one transaction each); rerunning the same campaign queues nothing twice."""
    started = time.perf_counter()
    policy = policy or PolicySettings()
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    run = _prepare_campaign(store, model_dir, campaign, now_ms, policy, cf_name, progress)
    result = CampaignResult(campaign, len(run.users), int(run.holdout[run.users].sum()), 0)
    for done, scored in _scored_blocks(run, now_ms, policy, chunk):
        messages = _messages(scored, run.ctx, campaign, now_ms, policy, email_template)
        with store.transaction():
            result.queued += store.outbox_add(messages)
        for m in messages:
            result.by_channel[m.channel] = result.by_channel.get(m.channel, 0) + 1
        progress("campaign", done, len(run.users))
    result.seconds = time.perf_counter() - started
    return result


@dataclass(frozen=True, eq=False)
class _CampaignRun:
    """What every block of a campaign reads: models, histories, recent messages, holdout."""

    model: ClickModel
    ctx: NBAContext
    cf: CFScorer
    recent: dict[str, np.ndarray]
    users: np.ndarray
    holdout: np.ndarray
    personal: np.ndarray  # per user position: personalisation consent


def _prepare_campaign(
    store: Store,
    model_dir: Path,
    campaign: str,
    now_ms: int,
    policy: PolicySettings,
    cf_name: str,
    progress: Progress,
) -> _CampaignRun:
    if not campaign.strip():
        raise SegueError("a campaign needs a name (--campaign)")
    model = ClickModel.load(click_model_path(model_dir))
    progress("loading histories", 0, None)
    ctx = load_context(store, now_ms)
    personal = consent_of(store, ctx.audience.ids)
    profiles, audience = neutral_view(ctx.profiles, ctx.audience, ~personal)
    ctx = NBAContext(ctx.items, audience, profiles)
    cf = cf_scorer(store, model_dir, cf_name, ctx, progress)
    recent = store.outbox_recent(now_ms - max(policy.no_repeat_days, 1) * DAY_MS)
    users = np.flatnonzero(ctx.audience.known)
    holdout = in_holdout(ctx.audience.ids, campaign, policy.holdout_share)
    return _CampaignRun(model, ctx, cf, recent, users, holdout, personal)


def consent_of(store: Store, user_ids: np.ndarray) -> np.ndarray:
    """Personalisation consent per id of ``user_ids`` (True for ids without a record)."""
    columns = store.table_columns("users", ["id", "consent_personalisation"])
    refused = {
        str(u)
        for u, ok in zip(columns["id"], columns["consent_personalisation"], strict=True)
        if not ok
    }
    return np.array([str(u) not in refused for u in user_ids], dtype=bool)


def _scored_blocks(
    run: _CampaignRun, now_ms: int, policy: PolicySettings, chunk: int
) -> Iterator[tuple[int, Scored]]:
    """(users done, scored candidates) per ``chunk`` of the audience; holdout and kids get
    no candidates at all."""
    ctx, users = run.ctx, run.users
    for start in range(0, len(users), chunk):
        block = users[start : start + chunk]
        block = block[~run.holdout[block] & ~ctx.audience.kids[block]]
        cands = generate_candidates(
            block, ctx.items, ctx.profiles, run.cf, run.model.ctr, personal=run.personal[block]
        )
        scored = decide(
            cands,
            ctx.audience,
            ctx.items,
            ctx.profiles,
            run.model,
            now_ms,
            run.recent,
            policy,
            run.holdout,
        )
        yield min(start + chunk, len(users)), scored


#: Columns of the campaign inputs a daily run publishes (one row per user and action).
CAMPAIGN_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("date", pa.date32()),
        ("rank", pa.int16()),
        ("chosen", pa.bool_()),
        ("action_type", pa.string()),
        ("item_id", pa.string()),
        ("title", pa.string()),
        ("reason", pa.string()),
        ("channel", pa.string()),
        ("p_click", pa.float32()),
        ("expected_value", pa.float32()),
        ("send_at_ms", pa.int64()),
    ]
)


@dataclass(frozen=True)
class CampaignInputs:
    users: int
    holdout: int
    rows: int
    chosen: int
    seconds: float


def campaign_inputs(
    store: Store,
    model_dir: Path,
    campaign: str,
    path: Path,
    date: dt.date,
    now_ms: int | None = None,
    *,
    per_user: int = 4,
    policy: PolicySettings | None = None,
    cf_name: str = "als",
    chunk: int = 20_000,
    progress: Progress = no_progress,
) -> CampaignInputs:
    """A campaign's decisions as Parquet instead of outbox messages (nothing is queued).

    The same candidates, click model and rules as :func:`run_campaign`; per user, the message
    the campaign would send (``chosen``, rank 1) and then the other allowed actions by expected
    value, one channel per item (the best), ``per_user`` in all. Written to a temporary file
    and renamed: readers see the previous file or the complete new one.
    """
    if per_user < 1:
        raise SegueError(f"per_user must be at least 1, got {per_user}")
    started = time.perf_counter()
    policy = policy or PolicySettings()
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    run = _prepare_campaign(store, model_dir, campaign, now_ms, policy, cf_name, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    rows = chosen = 0
    try:
        with pq.ParquetWriter(tmp, CAMPAIGN_SCHEMA) as writer:
            for done, scored in _scored_blocks(run, now_ms, policy, chunk):
                table = _ranked_actions(scored, run.ctx, date, per_user)
                writer.write_table(table)
                rows += table.num_rows
                chosen += int(table.column("chosen").to_numpy().sum())
                progress("campaign inputs", done, len(run.users))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    holdout = int(run.holdout[run.users].sum())
    return CampaignInputs(len(run.users), holdout, rows, chosen, time.perf_counter() - started)


def _ranked_actions(scored: Scored, ctx: NBAContext, date: dt.date, per_user: int) -> pa.Table:
    allowed = np.flatnonzero(scored.allowed)
    # per user: the chosen message first, then by expected value (ties: candidate order)
    order = allowed[
        np.lexsort((allowed, -scored.ev[allowed], ~scored.chosen[allowed], scored.user[allowed]))
    ]
    n_items = len(ctx.items.ids)
    key = scored.user[order].astype(np.int64) * n_items + scored.item[order]
    _, first = np.unique(key, return_index=True)  # one channel per item: its best row
    order = order[np.sort(first)]
    users = scored.user[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(order) else order
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep = rank < per_user
    order, rank = order[keep], rank[keep]
    cache: dict[tuple[int, int], Action] = {}
    actions = [action_at(scored, ctx, int(r), cache)[0] for r in order]
    return pa.table(
        {
            "user_id": [str(ctx.audience.ids[u]) for u in scored.user[order]],
            "date": np.full(len(order), np.datetime64(date, "D")),
            "rank": (rank + 1).astype(np.int16),
            "chosen": scored.chosen[order],
            "action_type": [a.type.value for a in actions],
            "item_id": [a.item_id for a in actions],
            "title": [a.title for a in actions],
            "reason": [a.reason.value for a in actions],
            "channel": [CHANNELS[int(c)] for c in scored.channel[order]],
            "p_click": scored.p[order].astype(np.float32),
            "expected_value": scored.ev[order].astype(np.float32),
            "send_at_ms": scored.scheduled_ms[order].astype(np.int64),
        },
        schema=CAMPAIGN_SCHEMA,
    )


def _messages(
    scored: Scored,
    ctx: NBAContext,
    campaign: str,
    now_ms: int,
    policy: PolicySettings,
    email_template: str,
) -> list[OutboxMessage]:
    out = []
    actions: dict[tuple[int, int], Action] = {}
    shared: dict[tuple[int, int, str], dict] = {}
    for r in np.flatnonzero(scored.chosen):
        action, channel, user_id = action_at(scored, ctx, r, actions)
        if channel == "email":  # the address and the unsubscribe link are the user's own
            payload = render(action, channel, Recipient(user_id, email_template))
        else:  # push and in-app parts depend on the action only: render once per action
            key = (int(scored.item[r]), int(scored.reason[r]), channel)
            if key not in shared:
                shared[key] = render(action, channel, Recipient(user_id, email_template))
            payload = {**shared[key], "to": user_id}
        payload["holdout_share"] = policy.holdout_share
        out.append(
            OutboxMessage(
                message_id=message_id(campaign, user_id),
                campaign=campaign,
                user_id=user_id,
                channel=channel,
                action_type=action.type.value,
                item_id=action.item_id,
                payload=payload,
                scheduled_ms=int(scored.scheduled_ms[r]),
                created_ms=now_ms,
                p_click=float(scored.p[r]),
                value=float(action.value),
            )
        )
    return out


def action_at(
    scored: Scored, ctx: NBAContext, r: int, cache: dict[tuple[int, int], Action] | None = None
) -> tuple[Action, str, str]:
    item, reason = int(scored.item[r]), int(scored.reason[r])
    action = None if cache is None else cache.get((item, reason))
    if action is None:
        action = make_action(
            ctx.items.kind_of(item),
            str(ctx.items.ids[item]),
            str(ctx.items.titles[item]),
            REASONS[reason],
        )
        if cache is not None:
            cache[(item, reason)] = action
    return action, CHANNELS[int(scored.channel[r])], str(ctx.audience.ids[int(scored.user[r])])

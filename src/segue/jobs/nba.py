"""Next-best-action jobs: simulate logged messages, train and evaluate the click model, run a
campaign into the outbox, deliver it, report on it, and answer for one user in real time.

The click model is saved as ``<model_dir>/nba/click_model.pkl``; the CF model it uses for
candidates and for the CF-score feature is the registry model ``cf_name`` (default ``als``)
saved by ``segue train`` in the same folder, trained here if missing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from segue.config import load_settings
from segue.data.log import InteractionLog
from segue.data.model import EVENT_CODES, EventType
from segue.data.synth import SynthParams, generate_world
from segue.data.synth.nba import (
    ClickTruth,
    NBASimParams,
    reactivation_plays,
    respond,
    simulate_impressions,
)
from segue.errors import SegueError
from segue.jobs.ingest import load_synthetic_world
from segue.jobs.progress import Progress, no_progress
from segue.jobs.train import load_interactions, load_trained, train_models
from segue.nba.actions import Action, make_action
from segue.nba.candidates import REASONS, generate_candidates
from segue.nba.cf import CFScorer
from segue.nba.clickmodel import ClickModel
from segue.nba.delivery import DeliverySettings, SendReport, send_outbox
from segue.nba.features import (
    CHANNELS,
    DAY_MS,
    HISTORY_TYPES,
    ITEM_COLUMNS,
    Audience,
    ItemTable,
    Profiles,
)
from segue.nba.metrics import write_report
from segue.nba.policy import PolicySettings, Scored, decide, in_holdout
from segue.nba.render import DEFAULT_EMAIL, Recipient, render
from segue.nba.training import (
    NBAContext,
    TrainingResult,
    impressions_from_events,
    load_context,
    train_and_evaluate,
)
from segue.store import Store
from segue.store.outbox import OutboxMessage

CLICK_MODEL = Path("nba") / "click_model.pkl"
TRUTH = Path("nba") / "truth.parquet"


def click_model_path(model_dir: Path) -> Path:
    return Path(model_dir) / CLICK_MODEL


# -- simulation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SimulationResult:
    impressions: int
    clicks: int
    events_inserted: int
    truth_path: Path


def simulate_nba(
    store: Store,
    params: SynthParams,
    sim: NBASimParams,
    truth_path: Path,
    progress: Progress = no_progress,
) -> SimulationResult:
    """Put a synthetic world and its logged messages into the store; keep the true click
    probabilities beside it (``truth_path``, Parquet: message_id, p_click) for the ceiling."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    load_synthetic_world(store, params, progress=progress)
    world = generate_world(params)
    truth = ClickTruth(world, world.events(), sim)
    log = simulate_impressions(truth)
    inserted = store.add_event_log(log.events())
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"message_id": list(log.message_id), "p_click": log.p_click})
    pq.write_table(table, truth_path)
    return SimulationResult(len(log), int(log.clicked.sum()), inserted, truth_path)


def simulate_responses(
    store: Store,
    params: SynthParams,
    sim: NBASimParams,
    campaign: str,
    days: int = 14,
    seed: int = 0,
) -> int:
    """How the synthetic world's users react to the campaign's sent messages: impressions,
    opens, clicks and conversions from the same true click model, and the plays of inactive
    users who came back (a small base rate for everyone, more after a click). Returns the
    number of events added."""
    world = generate_world(params)
    sent = store.outbox_messages(campaign=campaign, status="sent")
    if not sent:
        raise SegueError(f"campaign {campaign!r} has no sent messages to respond to")
    start = min(m.created_ms for m in sent)
    truth = ClickTruth(world, world.events(), sim, cutoff_ms=start)
    users = np.array([world.user_index(m.user_id) for m in sent])
    items = np.array([world.item_index(m.item_id) for m in sent])
    channels = np.array([CHANNELS.index(m.channel) for m in sent])
    # simulated time: a message is seen when it was due, whenever the sender really ran
    ts = np.array([m.scheduled_ms for m in sent])
    log = respond(truth, users, items, channels, ts, seed=seed, prefix=f"{campaign}-r")
    # the events belong to the outbox messages: their ids replace the simulator's
    order = np.argsort(ts, kind="stable")
    log.message_id = np.array([sent[k].message_id for k in order], dtype=object)
    clicked = log.clicked
    plays = reactivation_plays(truth, log.user[clicked], log.ts_ms[clicked], days, seed=seed)
    log.extra_plays = plays
    return store.add_event_log(log.events())


def _true_probabilities(truth_path: Path | None, message_ids: np.ndarray) -> np.ndarray | None:
    if truth_path is None or not Path(truth_path).is_file():
        return None
    import pyarrow.parquet as pq

    table = pq.read_table(truth_path).to_pydict()
    known = dict(zip(table["message_id"], table["p_click"], strict=True))
    values = np.array([known.get(m, np.nan) for m in message_ids], dtype=np.float64)
    return None if np.isnan(values).any() else values


# -- training -----------------------------------------------------------------------------
def cf_scorer(
    store: Store, model_dir: Path, cf_name: str, ctx: NBAContext, progress: Progress = no_progress
) -> CFScorer:
    """The saved CF model (trained and saved now if missing), aligned to the context."""
    try:
        trained = load_trained(model_dir, cf_name)
    except SegueError:
        progress(f"training {cf_name}", 0, 1)
        trained = train_models(load_interactions(store), [cf_name], model_dir)[cf_name]
    return CFScorer(trained.model, trained.users, trained.items, ctx.audience.ids, ctx.items.ids)


def train_click_model(
    store: Store,
    model_dir: Path,
    *,
    cf_name: str = "als",
    truth_path: Path | None = None,
    report: Path | None = None,
    save: bool = True,
    seed: int = 0,
    progress: Progress = no_progress,
) -> TrainingResult:
    """Train on the logged messages in the store, evaluate on held-out users, save."""
    progress("reading message events", 0, None)
    imp = impressions_from_events(store.message_events())
    if len(imp) == 0:
        raise SegueError(
            "the store holds no impression events; log messages first (or run "
            "`segue nba simulate` for a synthetic world)"
        )
    ctx = load_context(store, int(imp.ts_ms.min()))
    cf = cf_scorer(store, model_dir, cf_name, ctx, progress)
    progress("fitting the click model", 0, None)
    result = train_and_evaluate(
        ctx, imp, cf, _true_probabilities(truth_path, imp.message_id), seed=seed
    )
    if save:
        result.model.save(click_model_path(model_dir))
    if report is not None:
        write_report(result.evaluation, report)
    return result


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
    cf = cf_scorer(store, model_dir, cf_name, ctx, progress)
    recent = store.outbox_recent(now_ms - max(policy.no_repeat_days, 1) * DAY_MS)
    users = np.flatnonzero(ctx.audience.known)
    holdout = in_holdout(ctx.audience.ids, campaign, policy.holdout_share)
    return _CampaignRun(model, ctx, cf, recent, users, holdout)


def _scored_blocks(
    run: _CampaignRun, now_ms: int, policy: PolicySettings, chunk: int
) -> Iterator[tuple[int, Scored]]:
    """(users done, scored candidates) per ``chunk`` of the audience; holdout and kids get
    no candidates at all."""
    ctx, users = run.ctx, run.users
    for start in range(0, len(users), chunk):
        block = users[start : start + chunk]
        block = block[~run.holdout[block] & ~ctx.audience.kids[block]]
        cands = generate_candidates(block, ctx.items, ctx.profiles, run.cf, run.model.ctr)
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
    actions = [_action(scored, ctx, int(r), cache)[0] for r in order]
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
        action, channel, user_id = _action(scored, ctx, r, actions)
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


def _action(
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


def deliver(
    store: Store,
    settings: DeliverySettings | None = None,
    *,
    now_ms: int | None = None,
    limit: int | None = None,
    progress: Progress = no_progress,
) -> SendReport:
    """Send every due message of the outbox (see :mod:`segue.nba.delivery`)."""
    clock = None if now_ms is None else (lambda: now_ms)
    return send_outbox(
        store,
        settings or load_settings().delivery,
        now=clock,
        limit=limit,
        progress=lambda r: progress("sending", r.sent + r.failed + r.retried, None),
    )


# -- the campaign report ------------------------------------------------------------------
@dataclass(frozen=True)
class GroupOutcome:
    users: int
    inactive: int
    reactivated: int

    @property
    def rate(self) -> float:
        return self.reactivated / self.inactive if self.inactive else float("nan")


@dataclass(frozen=True)
class CampaignReport:
    campaign: str
    messages: int
    sent: int
    by_status: dict[str, int]
    impressions: int
    opens: int
    clicks: int
    conversions: int
    treated: GroupOutcome
    holdout: GroupOutcome
    window_days: int

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else float("nan")

    @property
    def conversion_rate(self) -> float:
        return self.conversions / self.clicks if self.clicks else float("nan")

    def lift(self, z: float = 1.96) -> tuple[float, float, float]:
        """Treated minus holdout reactivation rate, with a normal-approximation 95% interval."""
        t, h = self.treated, self.holdout
        if not t.inactive or not h.inactive:
            return float("nan"), float("nan"), float("nan")
        diff = t.rate - h.rate
        se = math.sqrt(t.rate * (1 - t.rate) / t.inactive + h.rate * (1 - h.rate) / h.inactive)
        return diff, diff - z * se, diff + z * se

    def markdown(self) -> str:
        diff, lo, hi = self.lift()
        statuses = ", ".join(f"{k} {v:,}" for k, v in self.by_status.items())
        rows = [
            f"# Campaign {self.campaign}",
            "",
            f"Messages {self.messages:,} ({statuses}).",
            "",
            "| measure | value |",
            "|---|---|",
            f"| impressions | {self.impressions:,} |",
            f"| opens | {self.opens:,} |",
            f"| clicks | {self.clicks:,} |",
            f"| click-through rate | {self.ctr:.4f} |",
            f"| conversions | {self.conversions:,} |",
            f"| conversion rate (per click) | {self.conversion_rate:.4f} |",
            "",
            f"## Reactivation within {self.window_days} days (users without a play in the 28 "
            "days before the campaign)",
            "",
            "| group | users | inactive | reactivated | rate |",
            "|---|---|---|---|---|",
        ]
        for name, g in (("treated", self.treated), ("holdout", self.holdout)):
            rows.append(
                f"| {name} | {g.users:,} | {g.inactive:,} | {g.reactivated:,} | {g.rate:.4f} |"
            )
        rows += ["", f"Lift (treated − holdout): {diff:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}].", ""]
        return "\n".join(rows)


def campaign_report(store: Store, campaign: str, window_days: int = 14) -> CampaignReport:
    """CTR and conversions of the campaign's messages, and reactivation treated vs holdout
    (intent to treat: every non-holdout user counts as treated, messaged or not)."""
    messages = store.outbox_messages(campaign=campaign)
    if not messages:
        raise SegueError(f"no messages of campaign {campaign!r} in the outbox")
    start = min(m.created_ms for m in messages)
    share = float(messages[0].payload.get("holdout_share", 0.0))
    ids = {m.message_id for m in messages}
    events = store.message_events(start_ms=start)
    ours = np.fromiter((s in ids for s in events.session_id), dtype=bool, count=len(events))

    def count(kind: EventType) -> int:
        mask = ours & (events.type == EVENT_CODES[kind])
        return len(set(events.session_id[mask]))

    plays = store.interactions(
        types=[EventType.PLAY],
        start_ms=start - 28 * DAY_MS,
        end_ms=start + window_days * DAY_MS,
    )
    users = plays.user_ids
    audience = Audience.from_users(store.iter_users(), users)
    before = np.zeros(len(users), dtype=bool)
    before[plays.user[plays.ts_ms < start]] = True
    after = np.zeros(len(users), dtype=bool)
    after[plays.user[plays.ts_ms >= start]] = True
    population = audience.known & ~audience.kids
    holdout = in_holdout(users, campaign, share)

    def outcome(group: np.ndarray) -> GroupOutcome:
        inactive = group & ~before
        return GroupOutcome(int(group.sum()), int(inactive.sum()), int((inactive & after).sum()))

    statuses = store.outbox_counts(campaign)
    return CampaignReport(
        campaign=campaign,
        messages=len(messages),
        sent=statuses["sent"],
        by_status=statuses,
        impressions=count(EventType.IMPRESSION),
        opens=count(EventType.OPEN),
        clicks=count(EventType.CLICK),
        conversions=count(EventType.CONVERSION),
        treated=outcome(population & ~holdout),
        holdout=outcome(population & holdout),
        window_days=window_days,
    )


# -- real time ----------------------------------------------------------------------------
class Suggestion(BaseModel):
    action: Action
    channel: str
    p_click: float
    expected_value: float
    send_at: dt.datetime


class NextBestAction(BaseModel):
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
        self, user_id: str, now: dt.datetime | None = None, alternatives: int = 3
    ) -> NextBestAction:
        now_ms = int((now or dt.datetime.now(dt.UTC)).timestamp() * 1000)
        user = self.store.get_user(user_id)
        if user is None:
            raise SegueError(f"unknown user {user_id!r}")
        ids = np.array([user_id], dtype=object)
        log = self.store.user_events(user_id, end_ms=now_ms)
        log = _realign(log, self.items)
        log = log.select(np.isin(log.type, [EVENT_CODES[t] for t in HISTORY_TYPES]))
        profiles = Profiles.build(log, self.items, now_ms)
        audience = Audience.from_users([user], ids)
        cf = CFScorer(self._cf.model, self._cf.users, self._cf_items, ids, self.items.ids)
        cands = generate_candidates(np.array([0]), self.items, profiles, cf, self.model.ctr)
        recent = self.store.outbox_recent(
            now_ms - max(self.policy.no_repeat_days, 1) * DAY_MS, [user_id]
        )
        scored = decide(
            cands, audience, self.items, profiles, self.model, now_ms, recent, self.policy
        )
        ctx = NBAContext(self.items, audience, profiles)
        allowed = np.flatnonzero(scored.allowed)
        order = allowed[np.argsort(-scored.ev[allowed], kind="stable")]
        _, first = np.unique(scored.item[order], return_index=True)  # best channel per item
        order = order[np.sort(first)]
        suggestions = [_suggestion(scored, ctx, int(r)) for r in order[: alternatives + 1]]
        note = ""
        if not suggestions:
            note = _why_nothing(user, len(cands), len(scored))
        return NextBestAction(
            user_id=user_id,
            best=suggestions[0] if suggestions else None,
            alternatives=suggestions[1:],
            note=note,
        )


def _why_nothing(user: object, n_candidates: int, n_scored: int) -> str:
    if getattr(user, "kids_profile", False):
        return "kids profiles get no suggestions"
    if n_candidates == 0:
        return "no candidates for this user"
    if n_scored == 0:
        return "no channel allowed (consent)"
    return "every candidate is below the thresholds, capped today or sent recently"


def _suggestion(scored: Scored, ctx: NBAContext, r: int) -> Suggestion:
    action, channel, _ = _action(scored, ctx, r)
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


__all__ = [
    "CAMPAIGN_SCHEMA",
    "CampaignInputs",
    "CampaignReport",
    "CampaignResult",
    "NBAService",
    "NextBestAction",
    "Suggestion",
    "campaign_inputs",
    "campaign_report",
    "deliver",
    "next_best_action",
    "run_campaign",
    "simulate_nba",
    "train_click_model",
]

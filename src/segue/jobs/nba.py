"""Next-best-action use cases the CLI shares: simulate logged messages in a synthetic world,
train and evaluate the click model, deliver the outbox.

Campaigns, their report and the real-time service live in :mod:`segue.nba` (``campaign``,
``report``, ``service``); where the models are kept, in :mod:`segue.nba.artifacts`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from segue.config import load_settings
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
from segue.nba.artifacts import cf_scorer, click_model_path
from segue.nba.delivery import DeliverySettings, SendReport, send_outbox
from segue.nba.features import (
    CHANNELS,
)
from segue.nba.metrics import write_report
from segue.nba.training import (
    TrainingResult,
    impressions_from_events,
    load_context,
    train_and_evaluate,
)
from segue.progress import Progress, no_progress
from segue.store import Store

TRUTH = Path("nba") / "truth.parquet"


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

    table = pq.read_table(truth_path).to_pydict()
    known = dict(zip(table["message_id"], table["p_click"], strict=True))
    values = np.array([known.get(m, np.nan) for m in message_ids], dtype=np.float64)
    return None if np.isnan(values).any() else values


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


def deliver(
    store: Store,
    settings: DeliverySettings | None = None,
    *,
    now_ms: int | None = None,
    limit: int | None = None,
    progress: Progress = no_progress,
    follow_s: float | None = None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Send every due message of the outbox (see :mod:`segue.nba.delivery`).

    With ``follow_s`` it keeps going, looking for due messages every ``follow_s`` seconds
    (new campaigns, retries whose back-off has run out, a dead sender's claims) until
    ``stop`` is set: what a deployment runs as a service next to the API.
    """
    clock = None if now_ms is None else (lambda: now_ms)
    chosen = settings or load_settings().delivery
    stop = stop or threading.Event()
    total = SendReport()
    while True:
        done = total.sent + total.failed + total.retried
        report = send_outbox(
            store,
            chosen,
            now=clock,
            limit=None if limit is None else limit - (done + total.lost_claims),
            progress=lambda r, done=done: progress(
                "sending", done + r.sent + r.failed + r.retried, None
            ),
        )
        for name in ("sent", "retried", "failed", "lost_claims"):
            setattr(total, name, getattr(total, name) + getattr(report, name))
        total.errors.extend(report.errors)
        handled = total.sent + total.failed + total.retried + total.lost_claims
        if follow_s is None or (limit is not None and handled >= limit):
            return total
        if stop.wait(follow_s):
            return total

"""Next-best-action benchmarks: click-model quality against the synthetic ceiling, campaign
speed into the outbox, delivery throughput, and the campaign's reactivation lift.

Prints figures; record them in docs/benchmarks.md ("Next Best Action"). Not a test.

    .venv/bin/python benchmarks/bench_nba.py quality            # AUC vs ceiling, ECE
    .venv/bin/python benchmarks/bench_nba.py campaign           # 100k users into the outbox
    .venv/bin/python benchmarks/bench_nba.py campaign --postgres
    .venv/bin/python benchmarks/bench_nba.py quality --users 10000 --impressions 400000

``quality`` evaluates on held-out users (C and calibration chosen on validation users only).
``campaign`` trains the models first (not timed: a campaign uses trained models), then times
``run_campaign`` end to end (reading every history from the store, candidates, scoring,
rules, rendering, writing the outbox), sends the messages to a loopback push gateway, SMTP
server and the in-app store, lets the simulated users respond, and prints the campaign report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import sqlalchemy as sa

from segue.data.synth import SynthParams
from segue.data.synth.nba import NBASimParams
from segue.jobs import nba
from segue.nba.delivery import DeliverySettings
from segue.store import open_store

PG_ADMIN = os.environ.get(
    "SEGUE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@localhost:5432/test"
)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _store_url(postgres: bool, folder: Path) -> tuple[str, str | None]:
    if not postgres:
        return f"sqlite:///{folder / 'segue.sqlite'}", None
    name = f"segue_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", name


def _drop(name: str | None) -> None:
    if name is None:
        return
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def quality(args: argparse.Namespace) -> None:
    params = SynthParams(
        seed=args.seed, n_users=args.users, n_tracks=args.tracks, n_events=args.events
    )
    sim = NBASimParams(n_impressions=args.impressions)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url, db = _store_url(args.postgres, folder)
        try:
            with open_store(url) as store:
                started = time.perf_counter()
                nba.simulate_nba(store, params, sim, folder / "truth.parquet")
                print(f"world + {args.impressions:,} logged messages: "
                      f"{time.perf_counter() - started:.1f}s")  # fmt: skip
                started = time.perf_counter()
                result = nba.train_click_model(
                    store,
                    folder / "models",
                    truth_path=folder / "truth.parquet",
                    report=Path(args.report) if args.report else None,
                )
                seconds = time.perf_counter() - started
        finally:
            _drop(db)
    e = result.evaluation
    assert e.ceiling is not None
    print(f"splits {result.sizes}; C = {result.model.C}; Platt {result.model.platt}")
    print(f"training incl. ALS and features: {seconds:.1f}s (load {_load()})")
    print(f"{'metric':<10} {'model':>8} {'ceiling':>8}")
    for key in ("auc_roc", "pr_auc", "log_loss", "ece", "f1", "base_rate"):
        print(f"{key:<10} {getattr(e.model, key):8.4f} {getattr(e.ceiling, key):8.4f}")
    gap = e.ceiling.auc_roc - e.model.auc_roc
    print(f"AUC gap to ceiling {gap:.4f} (bar 0.02): {'PASS' if gap <= 0.02 else 'FAIL'}")
    print(f"ECE {e.model.ece:.4f} (bar 0.02): {'PASS' if e.model.ece <= 0.02 else 'FAIL'}")


class _Gateway(BaseHTTPRequestHandler):
    keys: ClassVar[set[str]] = set()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        _Gateway.keys.add(self.headers["Idempotency-Key"])
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _Mailbox:
    count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        _Mailbox.count += 1
        return "250 OK"


def campaign(args: argparse.Namespace) -> None:
    params = SynthParams(
        seed=args.seed, n_users=args.users, n_tracks=args.tracks, n_events=args.events
    )
    sim = NBASimParams(n_impressions=args.impressions)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        ready = args.keep is not None and (folder / "models" / nba.CLICK_MODEL).is_file()
        url, db = _store_url(args.postgres, folder) if not ready else (args.keep_url, None)
        try:
            with open_store(url) as store:
                if not ready:
                    started = time.perf_counter()
                    nba.simulate_nba(store, params, sim, folder / "truth.parquet")
                    print(f"world ({args.users:,} users, {args.events:,} events) + messages: "
                          f"{time.perf_counter() - started:.1f}s")  # fmt: skip
                    started = time.perf_counter()
                    nba.train_click_model(store, folder / "models")
                    print(f"ALS + click model: {time.perf_counter() - started:.1f}s")
                    print(f"store {url}")
                # the campaign runs when the world's listening history ends (T), so the
                # report sees active and inactive users as they were then
                now = params.end_ms + 3_600_000
                print(f"load before the campaign: {_load()}")
                name = f"bench-{uuid.uuid4().hex[:6]}"
                cpu = time.process_time()
                result = nba.run_campaign(store, folder / "models", name, now)
                cpu = time.process_time() - cpu
                print(
                    f"campaign: {result.users:,} users ({result.holdout:,} holdout) -> "
                    f"{result.queued:,} messages {result.by_channel} in {result.seconds:.1f}s "
                    f"wall, {cpu:.1f}s CPU ({result.users / result.seconds:,.0f} users/s; "
                    f"load {_load()})"
                )
                if not args.no_send:
                    _deliver_and_report(store, params, sim, now, name)
        finally:
            _drop(db)


def _deliver_and_report(store, params: SynthParams, sim: NBASimParams, now: int, name: str) -> None:
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        smtp_port = s.getsockname()[1]
    controller = Controller(_Mailbox(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = DeliverySettings(
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            push_url=f"http://127.0.0.1:{server.server_address[1]}/push",
            batch=500,
        )
        started = time.perf_counter()
        report = nba.deliver(store, settings, now_ms=now + 86_400_000)
        seconds = time.perf_counter() - started
    finally:
        controller.stop()
        server.shutdown()
    print(
        f"send: {report.sent:,} sent ({len(_Gateway.keys):,} push, {_Mailbox.count:,} e-mail) "
        f"in {seconds:.1f}s ({report.sent / max(seconds, 1e-9):,.0f} msg/s), "
        f"failed {report.failed}"
    )
    added = nba.simulate_responses(store, params, sim, name, days=14)
    print(f"simulated responses: {added:,} events")
    print(nba.campaign_report(store, name, window_days=14).markdown())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["quality", "campaign"])
    parser.add_argument("--users", type=int)
    parser.add_argument("--tracks", type=int, default=20_000)
    parser.add_argument("--events", type=int)
    parser.add_argument("--impressions", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--report", help="folder for the evaluation report (quality)")
    parser.add_argument("--keep", help="campaign: build the world here once and reuse it")
    parser.add_argument("--keep-url", help="campaign: the store URL printed by the --keep run")
    parser.add_argument("--no-send", action="store_true", help="campaign: stop after the outbox")
    args = parser.parse_args()
    if args.what == "quality":
        args.users = args.users or 10_000
        args.events = args.events or 1_000_000
        args.impressions = args.impressions or 400_000
        quality(args)
    else:
        args.users = args.users or 100_000
        args.events = args.events or 3_000_000
        args.impressions = args.impressions or 200_000
        campaign(args)
    print(f"date {dt.date.today()}, load {_load()}")


if __name__ == "__main__":
    main()

"""The outbox when a sender dies: SIGKILL a ``segue nba send`` process half-way through its
batch and measure how soon a second sender re-sends what it had claimed, and whether any
message reached a receiver twice under different ids. Not a test (see
tests/test_nba_outbox_crash.py for the asserted version with a short lease).

    .venv/bin/python benchmarks/bench_outbox_crash.py              # SQLite, default lease
    .venv/bin/python benchmarks/bench_outbox_crash.py --postgres

A loopback SMTP server (aiosmtpd) and an HTTP push receiver take ``--delay`` seconds per
message, so the batch of ``--messages`` outlasts the lease: only heartbeats keep it with the
first sender. A second sender polls the outbox every ``--poll`` seconds from the start: what it
sends before the kill is a stolen claim; after the kill it takes the dead sender's messages
over once their lease runs out. The first sender is killed ``--kill-after`` seconds after its
first delivery. Prints the figures recorded in docs/benchmarks.md ("Reliability").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from segue.nba.actions import Reason, make_action
from segue.nba.delivery import DeliverySettings, email_message_id, send_outbox
from segue.nba.render import Recipient, render
from segue.store import open_store
from segue.store.outbox import OutboxMessage

PG_ADMIN = os.environ.get(
    "SEGUE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@localhost:5432/test"
)
CLI = "from segue.cli.main import main; main()"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receivers:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.arrivals: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()

    def record(self, outbox_id: str, key: str) -> None:
        with self.lock:
            self.arrivals.append((time.monotonic(), outbox_id, key))

    def start(self) -> tuple[int, str]:
        got = self

        class Mailbox:
            async def handle_DATA(self, server, session, envelope) -> str:
                await asyncio.sleep(got.delay)
                mail = message_from_bytes(envelope.content)
                got.record(str(mail["X-Segue-Message-Id"]), str(mail["Message-ID"]))
                return "250 OK"

        class Gateway(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(got.delay)
                got.record(body["message_id"], self.headers["Idempotency-Key"])
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        port = _free_port()
        self.smtp = Controller(Mailbox(), hostname="127.0.0.1", port=port)
        self.smtp.start()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        return port, f"http://127.0.0.1:{self.http.server_address[1]}/push"

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.smtp.stop()


def _messages(n: int) -> list[OutboxMessage]:
    out = []
    for i in range(n):
        channel = "push" if i % 3 == 0 else "email"
        user = f"usr-{i}"
        action = make_action("track", f"trk-{i}", f"Song {i}", Reason.LIKED_BY_SIMILAR)
        out.append(
            OutboxMessage(
                message_id=f"m-{channel}-{i}",
                campaign="bench",
                user_id=user,
                channel=channel,
                action_type="play_track",
                item_id=f"trk-{i}",
                payload=render(action, channel, Recipient(user)),
                scheduled_ms=1_000,
                created_ms=1_000,
            )
        )
    return out


def run(args: argparse.Namespace) -> None:
    lease_s = DeliverySettings().lease_s
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = None
        if args.postgres:
            db = f"segue_bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db}"
        else:
            url = f"sqlite:///{folder / 'segue.sqlite'}"
        got = Receivers(args.delay)
        port, push_url = got.start()
        try:
            _measure(args, url, folder, got, port, push_url, lease_s)
        finally:
            got.stop()
            if db is not None:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
                admin.dispose()


def _measure(
    args: argparse.Namespace,
    url: str,
    folder: Path,
    got: Receivers,
    port: int,
    push_url: str,
    lease_s: float,
) -> None:
    n = args.messages
    store = open_store(url)
    store.outbox_add(_messages(n))
    env = {
        **os.environ,
        "SEGUE_DATA_DIR": str(folder / "data"),
        "SEGUE_SMTP_HOST": "127.0.0.1",
        "SEGUE_SMTP_PORT": str(port),
        "SEGUE_PUSH_URL": push_url,
        "SEGUE_DELIVERY_BATCH": str(n),  # one claim holds the whole outbox
    }
    for name in ("SEGUE_CONFIG", "SEGUE_DELIVERY_LEASE_S"):
        env.pop(name, None)
    settings = DeliverySettings(
        smtp_host="127.0.0.1", smtp_port=port, push_url=push_url, timeout_s=10
    )
    err = open(folder / "sender.err", "w+")  # noqa: SIM115 - read back on failure
    sender = subprocess.Popen(
        [sys.executable, "-c", CLI, "--database-url", url, "nba", "send"],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    stolen = 0
    killed_at = None
    second = open_store(url)
    try:
        while not got.arrivals:
            if sender.poll() is not None:
                err.seek(0)
                raise SystemExit(f"segue nba send ended with {sender.returncode}: {err.read()}")
            time.sleep(0.01)
        first_at = got.arrivals[0][0]
        while time.monotonic() < first_at + args.kill_after:
            stolen += send_outbox(second, settings).sent  # a live sender's claims: none
            time.sleep(args.poll)
        sender.send_signal(signal.SIGKILL)
        sender.wait()
        killed_at = time.monotonic()
    finally:
        if sender.poll() is None:
            sender.kill()
    with got.lock:
        before = {a[1] for a in got.arrivals}
    counts = store.outbox_counts()
    claimed_left = counts["sending"]
    deadline = killed_at + 120
    while store.outbox_counts()["sent"] < n and time.monotonic() < deadline:
        send_outbox(second, settings)
        time.sleep(args.poll)
    second.close()
    final = store.outbox_counts()
    store.close()
    first_after: dict[str, float] = {}
    ids: dict[str, set[str]] = {}
    per_message: dict[str, int] = {}
    for at, outbox_id, key in got.arrivals:
        ids.setdefault(outbox_id, set()).add(key)
        per_message[outbox_id] = per_message.get(outbox_id, 0) + 1
        if outbox_id not in before:
            first_after.setdefault(outbox_id, at - killed_at)
    wrong = sum(keys != {email_message_id(m) if "-email-" in m else m} for m, keys in ids.items())
    double = sum(len(keys) > 1 for keys in ids.values())
    retries = sum(c - 1 for c in per_message.values())
    after = np.array(sorted(first_after.values()))
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"backend {backend}; lease {lease_s:g} s (default), heartbeat every {lease_s / 3:.1f} s; "
        f"{settings.parallel} connections per sender (default)"
    )
    print(
        f"{n} messages, receivers {args.delay * 1000:.0f} ms each; sender killed "
        f"{args.kill_after:g} s after its first delivery, {len(before)} delivered by then"
    )
    print(
        f"claims taken from the live sender by a second one polling every {args.poll:g} s: {stolen}"
    )
    print(f"claimed by the dead sender and not marked: {claimed_left}")
    if len(after):
        print(
            f"re-sent after the kill: first at +{after[0]:.1f} s, median +"
            f"{np.median(after):.1f} s, all {len(after)} by +{after[-1]:.1f} s"
        )
    print(
        f"delivered {len(ids)}/{n}; outbox sent {final['sent']}; messages under two ids "
        f"(double e-mails): {double}; wrong ids: {wrong}; same-id retries at the receiver: "
        f"{retries}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--kill-after", type=float, default=20.0)
    parser.add_argument("--poll", type=float, default=1.0)
    run(parser.parse_args())


if __name__ == "__main__":
    main()

"""The outbox under a sender's death, on SQLite and PostgreSQL, with a real SMTP server
(aiosmtpd) and a real HTTP push receiver on loopback that both take their time per message.

* A ``segue nba send`` process is SIGKILLed half-way through its batch: a second sender has
  every message it had claimed and not delivered out within the lease (seconds), and the
  receivers never get one message under two different ids (``Message-ID`` for e-mail,
  ``Idempotency-Key`` for push): a message may arrive twice, the second time as a retry of the
  same id, never as a second e-mail.
* A live sender slower than the lease keeps its claims through heartbeats: a second sender
  polling all the while gets nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from segue.nba.actions import Reason, make_action
from segue.nba.delivery import DeliverySettings, Heartbeat, email_message_id, send_outbox
from segue.nba.render import Recipient, render
from segue.store import open_store
from segue.store.outbox import OutboxMessage

_CLI = "from segue.cli.main import main; main()"
#: Seconds the receivers take per message (a slow server: a batch outlasts the lease).
DELAY_S = 0.25


class _Receivers:
    """What arrived, when (monotonic seconds): (time, outbox id, the id the receiver keys on)."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()

    def record(self, outbox_id: str, key: str) -> None:
        with self.lock:
            self.arrivals.append((time.monotonic(), outbox_id, key))

    def ids(self) -> set[str]:
        with self.lock:
            return {a[1] for a in self.arrivals}

    def keys_per_message(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        with self.lock:
            for _, outbox_id, key in self.arrivals:
                out.setdefault(outbox_id, set()).add(key)
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receivers() -> Iterator[tuple[_Receivers, int, str]]:
    """A slow SMTP server and a slow push gateway recording into one ``_Receivers``."""
    got = _Receivers()

    class Mailbox:
        async def handle_DATA(self, server, session, envelope) -> str:
            await asyncio.sleep(DELAY_S)
            mail = message_from_bytes(envelope.content)
            got.record(str(mail["X-Segue-Message-Id"]), str(mail["Message-ID"]))
            return "250 OK"

    class Gateway(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(DELAY_S)
            got.record(body["message_id"], self.headers["Idempotency-Key"])
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = _free_port()
    controller = Controller(Mailbox(), hostname="127.0.0.1", port=port)
    controller.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield got, port, f"http://127.0.0.1:{http.server_address[1]}/push"
    finally:
        http.shutdown()
        http.server_close()
        controller.stop()


def _queued(n: int, channel: str) -> OutboxMessage:
    user = f"usr-{n}"
    action = make_action("track", f"trk-{n}", f"Song {n}", Reason.LIKED_BY_SIMILAR)
    return OutboxMessage(
        message_id=f"m-{channel}-{n}",
        campaign="crash",
        user_id=user,
        channel=channel,
        action_type="play_track",
        item_id=f"trk-{n}",
        payload=render(action, channel, Recipient(user)),
        scheduled_ms=1_000,
        created_ms=1_000,
    )


def _messages(n: int) -> list[OutboxMessage]:
    return [_queued(i, "push" if i % 3 == 0 else "email") for i in range(n)]


def _settings(port: int, url: str, lease_s: float, parallel: int = 4) -> DeliverySettings:
    return DeliverySettings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        push_url=url,
        timeout_s=10,
        lease_s=lease_s,
        parallel=parallel,
    )


def _no_double_messages(got: _Receivers) -> None:
    """Each message arrived under exactly one receiver id, and the e-mail one is derived from
    the message's id (a repeat, if any, is a retry of the same id)."""
    for outbox_id, keys in got.keys_per_message().items():
        expected = email_message_id(outbox_id) if "-email-" in outbox_id else outbox_id
        assert keys == {expected}, f"{outbox_id} arrived as {keys}"


def test_a_killed_sender_s_claims_are_sent_again_within_the_lease(
    store, database_url: str, receivers, tmp_path: Path
) -> None:
    got, port, url = receivers
    lease_s, n = 2.0, 16
    store.outbox_add(_messages(n))
    env = {
        **os.environ,
        "SEGUE_DATA_DIR": str(tmp_path / "data"),
        "SEGUE_SMTP_HOST": "127.0.0.1",
        "SEGUE_SMTP_PORT": str(port),
        "SEGUE_PUSH_URL": url,
        "SEGUE_DELIVERY_LEASE_S": str(lease_s),
        "SEGUE_DELIVERY_BATCH": "100",  # one claim: the whole outbox
        "SEGUE_DELIVERY_PARALLEL": "1",  # one at a time: still at work a lease later
    }
    env.pop("SEGUE_CONFIG", None)
    sender = subprocess.Popen(
        [sys.executable, "-c", _CLI, "--database-url", database_url, "nba", "send"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    settings = _settings(port, url, lease_s)
    stolen = 0
    try:
        deadline = time.monotonic() + 120
        while not got.ids():
            assert sender.poll() is None, "the sender ended before it could be killed"
            assert time.monotonic() < deadline, "the sender delivered nothing"
            time.sleep(0.02)
        # a second sender polls while the first works for over a lease: its heartbeats keep
        # the batch its own; then, half-way through, it is killed
        started = time.monotonic()
        while time.monotonic() < started + lease_s + 0.5:
            stolen += send_outbox(store, settings).sent
            time.sleep(0.1)
        assert len(got.ids()) < n
        sender.send_signal(signal.SIGKILL)
        sender.wait()
    finally:
        if sender.poll() is None:
            sender.kill()
    killed_at = time.monotonic()
    before = got.ids()
    assert stolen == 0
    assert store.outbox_counts()["sending"] > 0  # claimed and never marked
    assert store.outbox_counts()["pending"] == 0  # the dead sender had claimed everything

    # the second sender goes on polling, as a deployment's would
    while store.outbox_counts()["sent"] < n and time.monotonic() < killed_at + 30:
        send_outbox(store, settings)
        time.sleep(0.05)
    assert store.outbox_counts()["sent"] == n
    assert got.ids() == {m.message_id for m in _messages(n)}
    first_after = {}
    for at, outbox_id, _ in got.arrivals:
        if outbox_id not in before:
            first_after.setdefault(outbox_id, at - killed_at)
    assert first_after, "nothing was left to re-send"
    # due again one lease after the last heartbeat; then DELAY_S per message on each of the
    # second sender's parallel connections
    rounds = -(-len(first_after) // settings.parallel)
    assert max(first_after.values()) <= lease_s + DELAY_S * rounds + 3.0
    _no_double_messages(got)


def test_a_live_slow_sender_keeps_its_claims(store, database_url: str, receivers) -> None:
    got, port, url = receivers
    lease_s, n = 1.5, 16  # the batch takes n × DELAY_S = 4 s one at a time: over two leases
    store.outbox_add(_messages(n))
    settings = _settings(port, url, lease_s, parallel=1)
    result: dict[str, object] = {}
    slow = threading.Thread(target=lambda: result.setdefault("a", send_outbox(store, settings)))
    slow.start()
    other = open_store(database_url)
    stolen = 0
    try:
        while store.outbox_counts()["pending"]:  # sender A has claimed the batch
            time.sleep(0.01)
        while slow.is_alive():
            stolen += send_outbox(other, settings).sent
            time.sleep(0.05)
    finally:
        slow.join()
        other.close()
    report = result["a"]
    assert stolen == 0
    assert (report.sent, report.lost_claims) == (n, 0)  # type: ignore[attr-defined]
    assert len(got.arrivals) == n  # each message once
    _no_double_messages(got)


def test_a_batch_goes_out_over_parallel_connections(store, receivers) -> None:
    got, port, url = receivers
    n, parallel = 16, 4
    store.outbox_add(_messages(n))
    started = time.monotonic()
    report = send_outbox(store, _settings(port, url, lease_s=10.0, parallel=parallel))
    took = time.monotonic() - started
    assert (report.sent, report.lost_claims, report.failed) == (n, 0, 0)
    assert store.outbox_counts()["sent"] == n
    assert len(got.arrivals) == n  # each message once
    _no_double_messages(got)
    # one at a time takes n × DELAY_S = 4 s; four connections a quarter of that (+ slack)
    assert took < n * DELAY_S / 2, f"{took:.2f} s: not sent in parallel"


def test_heartbeats_extend_only_the_claims_still_held(store) -> None:
    store.outbox_add([_queued(1, "in_app"), _queued(2, "in_app")])
    claimed = store.outbox_claim(10_000, 1_000, 10)
    token = claimed[0].claim_token
    assert store.outbox_mark_sent(claimed[0].message_id, token, 10_500)
    beat = Heartbeat(store, lambda: 10_900, 1_000)
    beat.hold(token)
    beat.beat()
    beat.stop()
    assert beat.beats == 1
    # leased until 11_900 now: not due at 11_500 (the original lease ran out at 11_000)
    assert store.outbox_claim(11_500, 1_000, 10) == []
    assert store.outbox_extend(token, 11_000, 1_000) == 1  # only the unsent one is held
    assert not beat.lost(token)
    (taken,) = store.outbox_claim(12_500, 1_000, 10)  # no beat since: due again
    assert taken.message_id == claimed[1].message_id
    assert store.outbox_extend(token, 12_600, 1_000) == 0  # the old claim holds nothing
    beat.beat()  # (called directly: the thread has stopped)
    assert beat.lost(token)  # the sender skips the rest of its batch
    beat.release(token)
    assert not beat.lost(token)


def test_the_message_id_is_the_same_on_every_send() -> None:
    assert email_message_id("m-0123abcd") == "<m-0123abcd@segue.invalid>"
    assert email_message_id("m-0123abcd") == email_message_id("m-0123abcd")
    odd = email_message_id("a b<c>@d")
    assert odd == email_message_id("a b<c>@d") and odd.endswith("@segue.invalid>")
    assert " " not in odd and odd.count("@") == 1


def test_a_sender_that_lost_its_whole_claim_skips_the_rest_of_its_batch(store) -> None:
    """A sender stalled past its lease (here: a push gateway that hangs while another sender
    takes the batch over) sends nothing more of that batch: no second copy of each message."""
    requests: list[str] = []

    class Gateway(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(body["message_id"])
            if len(requests) == 1:  # meanwhile another sender claims what is left
                taken = store.outbox_claim(int(time.time() * 1000) + 10**9, 60_000, 100)
                assert len(taken) == 4
                time.sleep(0.6)  # two beats of the first sender find nothing held
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        store.outbox_add([_queued(i, "push") for i in range(4)])
        url = f"http://127.0.0.1:{http.server_address[1]}/push"
        settings = _settings(1, url, 0.3, parallel=1)  # the rest waits behind the first
        report = send_outbox(store, settings)
    finally:
        http.shutdown()
        http.server_close()
    assert requests == ["m-push-0"]
    assert (report.sent, report.lost_claims) == (0, 4)


def test_send_follow_delivers_what_falls_due_until_stopped(
    store, database_url: str, receivers, tmp_path: Path
) -> None:
    """``segue nba send --follow`` is the long-running sender: messages queued after it
    started go out within a poll or two, and SIGTERM ends it cleanly with its counts."""
    got, port, url = receivers
    env = {
        **os.environ,
        "SEGUE_DATA_DIR": str(tmp_path / "data"),
        "SEGUE_SMTP_HOST": "127.0.0.1",
        "SEGUE_SMTP_PORT": str(port),
        "SEGUE_PUSH_URL": url,
    }
    env.pop("SEGUE_CONFIG", None)
    command = ["nba", "send", "--follow", "--poll-s", "0.2"]
    sender = subprocess.Popen(
        [sys.executable, "-c", _CLI, "--database-url", database_url, *command],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # started, found nothing, still polling
        assert sender.poll() is None
        store.outbox_add(_messages(6))
        deadline = time.monotonic() + 30
        while len(got.ids()) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got.ids() == {m.message_id for m in _messages(6)}
        while store.outbox_counts()["sent"] < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        sender.send_signal(signal.SIGTERM)
        out, err = sender.communicate(timeout=30)
    finally:
        if sender.poll() is None:
            sender.kill()
    assert sender.returncode == 0, err
    assert "sent 6," in out
    assert store.outbox_counts()["sent"] == 6
    _no_double_messages(got)

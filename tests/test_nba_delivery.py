"""Delivery through a real SMTP server (aiosmtpd) and a real HTTP push receiver on loopback,
on SQLite and PostgreSQL: messages arrive once with their idempotency keys, a sender that dies
after sending is repaired by the next one without a second delivery at the receiver, and an
unreachable channel is retried and then given up."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from segue.nba.actions import Action, Reason, make_action
from segue.nba.delivery import DeliverySettings, PushSender, send_outbox
from segue.nba.render import Recipient, render
from segue.store.outbox import OutboxMessage


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[_Mailbox, int]]:
    box = _Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


class _Gateway:
    """A push gateway's shape: POST JSON, de-duplicated by the Idempotency-Key header."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict]] = []
        self.delivered: dict[str, dict] = {}
        self.fail_next = 0


@pytest.fixture
def gateway() -> Iterator[tuple[_Gateway, str]]:
    state = _Gateway()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append((dict(self.headers), body))
            if state.fail_next:
                state.fail_next -= 1
                self.send_response(503)
                self.end_headers()
                return
            state.delivered.setdefault(self.headers["Idempotency-Key"], body)
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/push"
    finally:
        server.shutdown()
        server.server_close()


def _action(n: int) -> Action:
    return make_action("track", f"trk-{n}", f"Song <{n}> & co", Reason.LIKED_BY_SIMILAR)


def _queued(n: int, channel: str) -> OutboxMessage:
    user = f"usr-{n}"
    return OutboxMessage(
        message_id=f"m-{channel}-{n}",
        campaign="c",
        user_id=user,
        channel=channel,
        action_type="play_track",
        item_id=f"trk-{n}",
        payload=render(_action(n), channel, Recipient(user)),
        scheduled_ms=1_000,
        created_ms=1_000,
    )


def _settings(smtp_port: int, push_url: str, **extra: object) -> DeliverySettings:
    return DeliverySettings(
        smtp_host="127.0.0.1", smtp_port=smtp_port, push_url=push_url, timeout_s=5, **extra
    )


def test_email_and_push_arrive_once_with_their_keys(store, smtp, gateway) -> None:
    box, port = smtp
    gw, url = gateway
    store.outbox_add([_queued(1, "email"), _queued(2, "push"), _queued(3, "in_app")])
    report = send_outbox(store, _settings(port, url), now=lambda: 2_000)
    assert (report.sent, report.failed, report.retried) == (3, 0, 0)
    assert store.outbox_counts()["sent"] == 3

    (mail,) = box.messages
    assert box.envelopes[0][1] == ["usr-1@users.segue.invalid"]
    assert mail["X-Segue-Message-Id"] == "m-email-1"
    assert mail["Message-ID"] == "<m-email-1@segue.invalid>"  # stable: the same on every send
    assert mail["Subject"].startswith("Play Song <1> & co")
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in mail.walk()
        if not p.is_multipart()
    }
    assert "Song &lt;1&gt; &amp; co" in parts["text/html"]  # HTML is escaped
    assert "Song <1> & co" in parts["text/plain"]  # plain text is not
    assert "segue://track/trk-1" in parts["text/plain"]

    ((headers, body),) = gw.requests
    assert headers["Idempotency-Key"] == "m-push-2"
    assert body["deep_link"] == "segue://track/trk-2"
    assert body["title"] == "Play Song <2> & co" and body["to"] == "usr-2"
    # nothing is due any more: a second sender finds no work
    assert send_outbox(store, _settings(port, url), now=lambda: 3_000).sent == 0
    assert len(gw.requests) == 1 and len(box.messages) == 1


def test_a_sender_crash_after_sending_is_repaired_without_a_second_delivery(
    store, smtp, gateway
) -> None:
    _, port = smtp
    gw, url = gateway
    settings = _settings(port, url, lease_s=60)
    store.outbox_add([_queued(1, "push"), _queued(2, "push")])
    # sender A claims both, delivers the first, and dies before marking anything
    claimed = store.outbox_claim(2_000, 60_000, 10)
    PushSender(settings).send(claimed[0])
    # within the lease nobody else touches them
    assert send_outbox(store, settings, now=lambda: 30_000).sent == 0
    # after the lease, sender B sends both; the gateway sees m-push-1 twice, delivers it once
    report = send_outbox(store, settings, now=lambda: 70_000)
    assert report.sent == 2
    keys = [h["Idempotency-Key"] for h, _ in gw.requests]
    assert sorted(keys) == ["m-push-1", "m-push-1", "m-push-2"]
    assert sorted(gw.delivered) == ["m-push-1", "m-push-2"]
    assert store.outbox_counts()["sent"] == 2
    # A's late mark is refused: B's claim replaced it
    assert store.outbox_mark_sent(claimed[0].message_id, claimed[0].claim_token, 80_000) is False


def test_unreachable_channels_are_retried_then_given_up(store, gateway) -> None:
    gw, url = gateway
    gw.fail_next = 1
    settings = _settings(_free_port(), url, max_attempts=2, backoff_s=10)
    store.outbox_add([_queued(1, "push"), _queued(2, "email")])
    first = send_outbox(store, settings, now=lambda: 2_000)
    assert (first.sent, first.retried, first.failed) == (0, 2, 0)
    assert send_outbox(store, settings, now=lambda: 5_000).sent == 0  # backing off
    second = send_outbox(store, settings, now=lambda: 20_000)
    # the gateway is back: push goes out; the SMTP port has no server: e-mail gives up
    assert (second.sent, second.retried, second.failed) == (1, 0, 1)
    (failed,) = store.outbox_messages(status="failed")
    assert failed.channel == "email" and "SMTP" in failed.last_error
    assert list(gw.delivered) == ["m-push-1"]

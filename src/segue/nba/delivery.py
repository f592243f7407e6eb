"""Delivering the outbox: e-mail over SMTP, push as an HTTP POST to a gateway, in-app cards.

The protocol (claim → send → mark sent, leases, retries) lives in :mod:`segue.store.outbox`;
this module only talks to the channels. Every message carries its idempotency key to the
receiver — the ``Idempotency-Key`` header of the push request, the ``Message-ID`` (and
``X-Segue-Message-Id``) header of the e-mail — because a sender that dies after the channel
accepted a message but before marking it sent will have it sent again by the next sender:
delivery is at-least-once, and the receiver's de-duplication by key makes it exactly-once.

The e-mail ``Message-ID`` is derived from the message's id alone (:func:`email_message_id`,
``<{message_id}@segue.invalid>``), so a re-send after a crash carries the very same header and
the receiving side sees a retry of one message, never a second e-mail.

While a sender works through a claimed batch, a heartbeat thread extends the lease of the
messages it still holds every third of the lease (:class:`Heartbeat`), so the lease
(``lease_s``, 15 s by default) only has to outlast a missed beat or two: a slow channel or a
long batch never loses its claim, and a killed sender's messages are due again within one
lease of its death.

In-app cards need no transport: the app fetches them, so "sending" one marks it available.

Where messages go (SMTP server, push gateway, ...) is :class:`segue.config.DeliverySettings`,
the ``delivery`` part of the one settings object (``load_settings().delivery``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import smtplib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage

from segue.config import DeliverySettings
from segue.store import Store
from segue.store.outbox import FAILED, OutboxMessage

__all__ = [
    "DeliveryError",
    "DeliverySettings",
    "EmailSender",
    "Heartbeat",
    "InAppSender",
    "PushSender",
    "SendReport",
    "email_message_id",
    "send_outbox",
]

log = logging.getLogger(__name__)
#: Domain of the derived e-mail ``Message-ID`` (``.invalid``: never a real host).
MESSAGE_ID_DOMAIN = "segue.invalid"
#: What may stand left of the ``@`` of a Message-ID as it is (RFC 5322 dot-atom-text).
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
#: Heartbeats per lease: two can be missed before the lease runs out.
BEATS_PER_LEASE = 3


class DeliveryError(Exception):
    """A channel refused or could not take a message (retried later)."""


def email_message_id(message_id: str) -> str:
    """The e-mail ``Message-ID`` of an outbox message: ``<{message_id}@segue.invalid>``, the
    same on every send (ids that are not a dot-atom are replaced by a hash of themselves)."""
    left = message_id
    if not _DOT_ATOM.fullmatch(left) or len(left) > 200:
        left = "h-" + hashlib.sha256(message_id.encode()).hexdigest()[:40]
    return f"<{left}@{MESSAGE_ID_DOMAIN}>"


class EmailSender:
    """One SMTP connection per batch; a message is accepted when the server says 250."""

    def __init__(self, settings: DeliverySettings) -> None:
        self.s = settings
        self._smtp: smtplib.SMTP | None = None

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            try:
                smtp = smtplib.SMTP(self.s.smtp_host, self.s.smtp_port, timeout=self.s.timeout_s)
                if self.s.smtp_starttls:
                    smtp.starttls()
                if self.s.smtp_user:
                    smtp.login(self.s.smtp_user, self.s.smtp_password)
            except (OSError, smtplib.SMTPException) as exc:
                raise DeliveryError(
                    f"SMTP server {self.s.smtp_host}:{self.s.smtp_port}: {exc}"
                ) from exc
            self._smtp = smtp
        return self._smtp

    def send(self, message: OutboxMessage) -> None:
        p = message.payload
        mail = EmailMessage()
        mail["From"] = self.s.email_from
        mail["To"] = p["to"]
        mail["Subject"] = p["subject"]
        mail["Message-ID"] = email_message_id(message.message_id)
        mail["X-Segue-Message-Id"] = message.message_id
        mail.set_content(p["text"])
        mail.add_alternative(p["html"], subtype="html")
        try:
            self._connection().send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise DeliveryError(f"SMTP: {exc}") from exc

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
            self._smtp = None


class PushSender:
    """POST ``{"to", "title", "body", "deep_link", "message_id"}`` as JSON; 2xx = accepted."""

    def __init__(self, settings: DeliverySettings) -> None:
        self.s = settings

    def send(self, message: OutboxMessage) -> None:
        body = json.dumps({**message.payload, "message_id": message.message_id}).encode()
        request = urllib.request.Request(self.s.push_url, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("Idempotency-Key", message.message_id)
        if self.s.push_token:
            request.add_header("Authorization", f"Bearer {self.s.push_token}")
        try:
            with urllib.request.urlopen(request, timeout=self.s.timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"push gateway answered {exc.code}") from exc
        except (OSError, urllib.error.URLError) as exc:
            raise DeliveryError(f"push gateway {self.s.push_url}: {exc}") from exc
        if not 200 <= status < 300:
            raise DeliveryError(f"push gateway answered {status}")

    def close(self) -> None:
        pass


class InAppSender:
    """Nothing to transport: the app fetches available cards."""

    def send(self, message: OutboxMessage) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    lost_claims: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, outcome: str, error: str | None = None) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        if error is not None:
            self.errors.append(error)


Senders = dict[str, "EmailSender | PushSender | InAppSender"]


def _senders(settings: DeliverySettings) -> Senders:
    return {"email": EmailSender(settings), "push": PushSender(settings), "in_app": InAppSender()}


def send_outbox(
    store: Store,
    settings: DeliverySettings,
    *,
    now: Callable[[], int] | None = None,
    limit: int | None = None,
    channels: tuple[str, ...] | None = None,
    progress: Callable[[SendReport], None] | None = None,
) -> SendReport:
    """Deliver due messages until none is left (or ``limit`` were handled).

    A claimed batch goes out over ``settings.parallel`` connections at once (threads, each
    with its own SMTP session): a slow channel then costs a batch ``batch / parallel``
    round trips, which is what bounds how long a dead sender's messages take to go out again
    once their lease has run out.
    """
    clock = now or (lambda: int(time.time() * 1000))
    report = SendReport()
    lock = threading.Lock()
    local = threading.local()
    opened: list[Senders] = []

    def senders_here() -> Senders:
        senders = getattr(local, "senders", None)
        if senders is None:
            senders = local.senders = _senders(settings)
            with lock:
                opened.append(senders)
        return senders

    handled = 0
    lease_ms = int(settings.lease_s * 1000)
    heartbeat = Heartbeat(store, clock, lease_ms)
    pool = ThreadPoolExecutor(settings.parallel, thread_name_prefix="outbox-send")
    try:
        while limit is None or handled < limit:
            size = settings.batch if limit is None else min(settings.batch, limit - handled)
            batch = store.outbox_claim(clock(), lease_ms, size, channels)
            if not batch:
                break
            token = batch[0].claim_token
            assert token is not None
            heartbeat.hold(token)

            def one(message: OutboxMessage, token: str = token) -> None:
                if heartbeat.lost(token):  # stalled past the lease: all taken over
                    outcome, error = "lost_claims", None
                else:
                    outcome, error = _deliver(store, senders_here(), message, settings, clock)
                with lock:
                    report.count(outcome, error)

            try:
                for future in [pool.submit(one, message) for message in batch]:
                    future.result()
            finally:
                heartbeat.release(token)
            handled += len(batch)
            if progress is not None:
                progress(report)
    finally:
        pool.shutdown(wait=True)
        heartbeat.stop()
        for senders in opened:
            for sender in senders.values():
                sender.close()
    return report


class Heartbeat:
    """Keeps a live sender's claims: every ``lease / BEATS_PER_LEASE`` it extends the lease of
    the messages still ``sending`` under each held claim token (one UPDATE per token).

    A thread of its own, so a send blocked on a slow server does not stop the beat; it starts
    with the first claim and ends with :meth:`stop`. A failed beat (the store unreachable) is
    logged and tried again at the next one: if the lease runs out meanwhile, another sender
    takes the messages over and this one's marks are refused, as the protocol has it. A beat
    that finds none of a held claim's messages left (:meth:`lost`: the sender stalled past its
    lease and another took them all) tells the sender to skip the rest of that batch rather
    than send them a second time.
    """

    def __init__(
        self, store: Store, clock: Callable[[], int], lease_ms: int, interval_s: float | None = None
    ) -> None:
        self.store, self.clock, self.lease_ms = store, clock, lease_ms
        self.interval_s = (
            interval_s if interval_s is not None else max(lease_ms / 1000 / BEATS_PER_LEASE, 0.01)
        )
        self.beats = 0
        self._tokens: set[str] = set()
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, token: str) -> None:
        with self._lock:
            self._tokens.add(token)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="outbox-heartbeat", daemon=True
                )
                self._thread.start()

    def release(self, token: str) -> None:
        with self._lock:
            self._tokens.discard(token)
            self._lost.discard(token)

    def lost(self, token: str) -> bool:
        """Whether the last beat found no message left under ``token``."""
        with self._lock:
            return token in self._lost

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=max(self.interval_s * 2, 1.0))

    def beat(self) -> None:
        """Extend every held claim once (what the thread does each interval)."""
        with self._lock:
            tokens = sorted(self._tokens)
        for token in tokens:
            try:
                held = self.store.outbox_extend(token, self.clock(), self.lease_ms)
            except Exception as exc:  # never kill the sender: the lease protocol stays safe
                log.warning("outbox heartbeat failed (%s: %s)", type(exc).__name__, exc)
                continue
            if held == 0:
                with self._lock:
                    if token in self._tokens:
                        self._lost.add(token)
        self.beats += 1

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.beat()


def _deliver(
    store: Store,
    senders: Senders,
    message: OutboxMessage,
    settings: DeliverySettings,
    clock: Callable[[], int],
) -> tuple[str, str | None]:
    """Send one message and mark it; the outcome names the :class:`SendReport` counter."""
    assert message.claim_token is not None
    try:
        senders[message.channel].send(message)
    except (DeliveryError, KeyError) as exc:
        error = str(exc) if isinstance(exc, DeliveryError) else f"unknown channel {exc}"
        delay = settings.backoff_s * 2 ** max(message.attempts - 1, 0)
        status = store.outbox_mark_failed(
            message.message_id,
            message.claim_token,
            error,
            clock() + int(delay * 1000),
            settings.max_attempts,
        )
        if status is None:
            return "lost_claims", None
        if status == FAILED:
            return "failed", f"{message.message_id}: {error}"
        return "retried", None
    if store.outbox_mark_sent(message.message_id, message.claim_token, clock()):
        return "sent", None
    return "lost_claims", None

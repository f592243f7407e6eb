"""Delivering the outbox: e-mail over SMTP, push as an HTTP POST to a gateway, in-app cards.

The protocol (claim → send → mark sent, leases, retries) lives in :mod:`segue.store.outbox`;
this module only talks to the channels. Every message carries its idempotency key to the
receiver — the ``Idempotency-Key`` header of the push request, the ``Message-ID`` (and
``X-Segue-Message-Id``) header of the e-mail — because a sender that dies after the channel
accepted a message but before marking it sent will have it sent again by the next sender:
delivery is at-least-once, and the receiver's de-duplication by key makes it exactly-once.

In-app cards need no transport: the app fetches them, so "sending" one marks it available.

Where messages go (SMTP server, push gateway, ...) is :class:`segue.config.DeliverySettings`,
the ``delivery`` part of the one settings object (``load_settings().delivery``).
"""

from __future__ import annotations

import contextlib
import json
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid

from segue.config import DeliverySettings
from segue.store import Store
from segue.store.outbox import FAILED, OutboxMessage

__all__ = [
    "DeliveryError",
    "DeliverySettings",
    "EmailSender",
    "InAppSender",
    "PushSender",
    "SendReport",
    "send_outbox",
]


class DeliveryError(Exception):
    """A channel refused or could not take a message (retried later)."""


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
        mail["Message-ID"] = make_msgid(idstring=message.message_id, domain="segue.invalid")
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


def send_outbox(
    store: Store,
    settings: DeliverySettings,
    *,
    now: Callable[[], int] | None = None,
    limit: int | None = None,
    channels: tuple[str, ...] | None = None,
    progress: Callable[[SendReport], None] | None = None,
) -> SendReport:
    """Deliver due messages until none is left (or ``limit`` were handled)."""
    clock = now or (lambda: int(time.time() * 1000))
    senders = {
        "email": EmailSender(settings),
        "push": PushSender(settings),
        "in_app": InAppSender(),
    }
    report = SendReport()
    handled = 0
    try:
        while limit is None or handled < limit:
            size = settings.batch if limit is None else min(settings.batch, limit - handled)
            batch = store.outbox_claim(clock(), int(settings.lease_s * 1000), size, channels)
            if not batch:
                break
            for message in batch:
                handled += 1
                _deliver(store, senders, message, settings, clock, report)
            if progress is not None:
                progress(report)
    finally:
        for sender in senders.values():
            sender.close()
    return report


def _deliver(
    store: Store,
    senders: dict[str, EmailSender | PushSender | InAppSender],
    message: OutboxMessage,
    settings: DeliverySettings,
    clock: Callable[[], int],
    report: SendReport,
) -> None:
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
            report.lost_claims += 1
        elif status == FAILED:
            report.failed += 1
            report.errors.append(f"{message.message_id}: {error}")
        else:
            report.retried += 1
        return
    if store.outbox_mark_sent(message.message_id, message.claim_token, clock()):
        report.sent += 1
    else:
        report.lost_claims += 1

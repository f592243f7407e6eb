"""Messages rendered from Jinja2 templates (``segue/nba/templates``), per channel.

Push and in-app cards get a title, a body and the deep link; e-mail gets a subject, an HTML
part (autoescaped: titles come from imported catalogs) and a plain-text part. Templates are
loaded as package data through ``importlib.resources`` and compiled once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2

from segue.errors import SegueError
from segue.nba.actions import CATALOGUE, REASON_TEXT, Action

#: Default address of a user's e-mail when no directory is configured (``.invalid`` never
#: resolves, so a misconfigured test cannot mail anyone).
DEFAULT_EMAIL = "{user_id}@users.segue.invalid"
UNSUBSCRIBE = "segue://settings/notifications?user={user_id}"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("segue.nba", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )


@lru_cache(maxsize=16)
def _template(name: str) -> jinja2.Template:
    try:
        return _environment().get_template(name)
    except jinja2.TemplateNotFound:
        raise SegueError(f"message template {name!r} is missing from segue/nba/templates") from None


@dataclass(frozen=True)
class Recipient:
    user_id: str
    email_template: str = DEFAULT_EMAIL

    @property
    def email(self) -> str:
        return self.email_template.format(user_id=self.user_id)


def render(action: Action, channel: str, recipient: Recipient) -> dict[str, Any]:
    """The payload stored in the outbox: what the sender needs, nothing else."""
    values = {
        "verb": CATALOGUE[action.type].verb,
        "title": action.title,
        "reason": REASON_TEXT[action.reason],
        "deep_link": action.deep_link,
        "unsubscribe_link": UNSUBSCRIBE.format(user_id=recipient.user_id),
    }
    if channel in ("push", "in_app"):
        return {
            "to": recipient.user_id,
            "title": _template("push_title.txt.j2").render(values).strip(),
            "body": _template("push_body.txt.j2").render(values).strip(),
            "deep_link": action.deep_link,
        }
    if channel == "email":
        return {
            "to": recipient.email,
            "subject": _template("email_subject.txt.j2").render(values).strip(),
            "html": _template("email.html.j2").render(values),
            "text": _template("email.txt.j2").render(values),
            "deep_link": action.deep_link,
        }
    raise SegueError(f"unknown channel {channel!r}; known: push, email, in_app")

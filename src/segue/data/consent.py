"""Personalisation consent, one rule for every surface.

A listener with ``User.consent_personalisation`` off gets nothing shaped by what they did or
who they are beyond their *context*: the country and whether the profile is a kids one. No
history, no session (skips, likes), no onboarding answers kept from sign-up, no age band or
gender, no model score of them. So every such listener in the same context gets the same
list, mix, station page or suggestion; what a request itself names (a track to start a radio
from, a genre asked for in words) still counts, as it would for anyone asking the same.

A listener the store has no record of (``user is None``) has refused nothing: the defaults
hold (``User.consent_personalisation`` defaults to True).
"""

from __future__ import annotations

from dataclasses import dataclass

from segue.data.model import User

#: What a non-personal answer says about itself (``degraded``, notes, messages).
NOT_PERSONAL = "personalisation is off: the same for every listener in this country"


def personalised(user: User | None) -> bool:
    """Whether anything about this listener may shape what they get."""
    return user is None or bool(user.consent_personalisation)


@dataclass(frozen=True)
class Context:
    """All a non-personal answer may depend on."""

    country: str | None = None
    kids: bool = False

    @classmethod
    def of(cls, user: User | None) -> Context:
        if user is None:
            return cls()
        return cls(country=user.country, kids=bool(user.kids_profile))

    def key(self) -> str:
        """A stable text key (seeds of non-personal draws: the same for the whole context)."""
        return f"context|{self.country or '-'}|{'kids' if self.kids else 'all'}"

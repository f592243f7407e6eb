"""The faces for people, served by ``segue serve``: the listener app at ``/`` and the admin
console at ``/admin``.

Server-rendered Jinja2 shells with a small amount of vanilla JavaScript (no build step, no
CDN: every asset is in this package, served under ``/web/static``). The pages do no business
logic of their own: their scripts call the ``/v1`` JSON API with the listener's or operator's
API key, so every rule (scopes, consent, Focus Mode, the gate) is the API's.
"""

from __future__ import annotations

from segue.web.pages import STATIC_PATH, install, router

__all__ = ["STATIC_PATH", "install", "router"]

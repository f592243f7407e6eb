"""API keys with scopes: who may read, who may write events and users, who may administer.

Keys come from ``SEGUE_API_KEYS`` as ``KEY=scope+scope,KEY2=scope``. The ``admin`` scope
implies the others. With no keys configured the API is open (a development setup); the
readiness endpoint says so, and ``segue serve`` warns at startup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from segue.errors import ConfigError

SCOPES = ("read", "ingest", "admin")

#: The two ways to present a key, as OpenAPI security schemes (either one will do). They
#: only document and parse: :func:`require` decides, and lets everything through when no keys
#: are configured.
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="A key from SEGUE_API_KEYS; its scopes (read, ingest, admin) decide what it may do",
    auto_error=False,
)
BEARER = HTTPBearer(
    scheme_name="Bearer",
    description="The same key as `Authorization: Bearer KEY`",
    auto_error=False,
)
#: Sent with a 401, as RFC 9110 asks.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="segue"'}


@dataclass(frozen=True)
class ApiKeys:
    keys: dict[str, frozenset[str]]

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    @classmethod
    def parse(cls, text: str) -> ApiKeys:
        keys: dict[str, frozenset[str]] = {}
        for n, part in enumerate(p.strip() for p in text.split(",")):
            if not part:
                continue
            key, sep, scopes_text = part.partition("=")
            scopes = frozenset(s.strip() for s in scopes_text.split("+") if s.strip())
            bad = scopes - set(SCOPES)
            if not sep or not key.strip() or not scopes or bad:
                raise ConfigError(
                    f"SEGUE_API_KEYS entry {n + 1} ({key.strip()[:4] + '…' if key else '?'}) "
                    f"must look like KEY=scope+scope with scopes from {SCOPES}"
                    + (f"; unknown {sorted(bad)}" if bad else "")
                )
            keys[key.strip()] = scopes
        return cls(keys)

    def scopes_of(self, key: str | None) -> frozenset[str]:
        if key is None:
            return frozenset()
        return self.keys.get(key, frozenset())


def presented_key(request: Request) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer …``."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return None


def require(scope: str) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency that lets the request through only with ``scope``; in OpenAPI
    it shows as the two security schemes."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def check(  # async: no thread-pool hand-off
        request: Request,
        _header: str | None = Security(API_KEY_HEADER),
        _bearer: HTTPAuthorizationCredentials | None = Security(BEARER),
    ) -> None:
        keys: ApiKeys = request.app.state.services.api_keys
        if not keys.enabled:
            return
        key = presented_key(request)
        if key is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"this endpoint needs an API key with the {scope!r} scope "
                "(header X-API-Key or Authorization: Bearer)",
                headers=CHALLENGE,
            )
        granted = keys.scopes_of(key)
        if not granted:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown API key", headers=CHALLENGE)
        if scope not in granted and "admin" not in granted:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this API key lacks the {scope!r} scope (it has {sorted(granted)})",
            )

    return check

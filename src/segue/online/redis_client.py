"""Redis clients whose every call is bounded in time: the one way segue opens Redis.

Why: redis-py's defaults wait on a frozen server as long as TCP lets them (no socket timeout)
and retry a failed call ten times with exponential back-off, so one call on a stopped (SIGSTOP)
Redis took seconds (an event post: 9.4 s). Here a command's reply must arrive within
``socket_timeout_s`` (a blocking ``XREAD``/``XREADGROUP ... BLOCK ms`` gets its block time on
top), connecting within ``connect_timeout_s``, and a call is retried once and only on a broken
connection (a pooled socket that a restarted Redis closed), never on a timeout.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

_BLOCKING = frozenset({b"XREAD", b"XREADGROUP", "XREAD", "XREADGROUP"})


def _block_s(args: tuple[Any, ...]) -> float | None:
    """Seconds a blocking stream read may wait on the server (None: not a blocking read)."""
    if not args or args[0] not in _BLOCKING:
        return None
    for i, arg in enumerate(args[:-1]):
        if arg in ("BLOCK", b"BLOCK"):
            ms = int(args[i + 1])
            return None if ms == 0 else ms / 1000  # BLOCK 0 waits forever: not offered here
    return None


class _Bounded:
    """Mixin for a redis-py connection class: a blocking read's reply may take its block
    time plus the socket timeout; everything else just the socket timeout."""

    _extra_s: float | None = None

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self._extra_s = _block_s(args)
        super().send_command(*args, **kwargs)  # type: ignore[misc]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        extra, self._extra_s = self._extra_s, None
        timeout = self.socket_timeout  # type: ignore[attr-defined]
        if extra is not None and timeout is not None and "timeout" not in kwargs:
            kwargs["timeout"] = timeout + extra
        return super().read_response(*args, **kwargs)  # type: ignore[misc]


_CLASSES: dict[type, type] = {}


def _bounded(base: type) -> type:
    if base not in _CLASSES:
        _CLASSES[base] = type(f"Bounded{base.__name__}", (_Bounded, base), {})
    return _CLASSES[base]


def redis_client(
    url: str, *, connect_timeout_s: float = 2.0, socket_timeout_s: float | None = 2.0
) -> redis.Redis:
    """A client for ``url`` with bounded calls (see the module docstring).

    Raises ValueError for a URL redis-py cannot parse. Connects lazily, on the first command.
    """
    base = parse_url(url).get("connection_class", redis.Connection)
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=socket_timeout_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
        connection_class=_bounded(base),
    )

"""Choosing the online state's backend from the settings: Redis when configured, else memory.

Lives apart from both implementations so that neither imports the other.
"""

from __future__ import annotations

from segue.online.redis_state import RedisState
from segue.online.state import SESSION_TIMEOUT_MS, InProcessState, OnlineState


def open_state(
    redis_url: str | None,
    prefix: str = "segue:",
    *,
    session_timeout_ms: int = SESSION_TIMEOUT_MS,
) -> OnlineState:
    """Redis-backed state when ``redis_url`` is set (``SEGUE_REDIS_URL``), else in-process."""
    if redis_url:
        return RedisState(redis_url, prefix, session_timeout_ms=session_timeout_ms)
    return InProcessState(session_timeout_ms=session_timeout_ms)

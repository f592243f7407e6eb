"""Process entry for uvicorn workers: each worker builds its app from the environment.

``segue serve`` puts the chosen settings into ``SEGUE_*`` variables before starting uvicorn,
so every worker process (``--workers N``) builds the same service.
"""

from __future__ import annotations

import os
import socket

import uvicorn
from fastapi import FastAPI
from threadpoolctl import threadpool_limits

from segue.api.app import create_app
from segue.config import load_settings

MODEL_VAR = "SEGUE_SERVE_MODEL"
#: "0": this process persists nothing itself (separate ``segue worker`` processes do).
WORKER_VAR = "SEGUE_SERVE_WORKER"


def app_from_env() -> FastAPI:
    # One BLAS thread per process: requests run concurrently, and a multi-threaded product
    # of one user vector with the item matrix spends more time waking threads than computing
    # (measured: 15 ms instead of 2 ms per request on a busy 2-core machine).
    threadpool_limits(1)
    return create_app(
        load_settings(),
        model=os.environ.get(MODEL_VAR, "als"),
        run_worker=os.environ.get(WORKER_VAR, "1") != "0",
        warm=True,
    )


class TcpConfig(uvicorn.Config):
    """uvicorn's config, binding the socket that several workers share as a TCP socket.

    Why: uvicorn creates that socket as ``socket.socket(family)``, whose protocol number is 0,
    and asyncio only sets TCP_NODELAY on accepted connections whose listening socket says
    IPPROTO_TCP. Without it, Nagle's algorithm and delayed ACKs add ~40 ms to every request on
    a kept-alive connection (measured: 44 ms per request with two workers, 1-2 ms with one).
    """

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, sock.detach())
        return sock


def serve_config(host: str, port: int, workers: int, log_level: str) -> TcpConfig:
    """How ``segue serve`` runs uvicorn: the app factory on uvloop with the httptools parser.

    Named rather than left to uvicorn's "auto", which quietly falls back to the pure-Python
    h11 parser and asyncio's loop when those are missing; they roughly halve the time the
    HTTP layer takes per request, part of the latency budget in docs/benchmarks.md.
    """
    return TcpConfig(
        "segue.api.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )

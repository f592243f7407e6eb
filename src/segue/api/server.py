"""Process entry for uvicorn workers: each worker builds its app from the environment.

``segue serve`` puts the chosen settings into ``SEGUE_*`` variables before starting uvicorn,
so every worker process (``--workers N``) builds the same service.
"""

from __future__ import annotations

import os

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
    )

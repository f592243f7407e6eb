"""Process entry for uvicorn workers: each worker builds its app from the environment.

``segue serve`` puts the chosen settings into ``SEGUE_*`` variables before starting uvicorn,
so every worker process (``--workers N``) builds the same service.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from segue.api.app import create_app
from segue.config import load_settings

MODEL_VAR = "SEGUE_SERVE_MODEL"


def app_from_env() -> FastAPI:
    return create_app(load_settings(), model=os.environ.get(MODEL_VAR, "als"))

"""The HTTP face of segue: FastAPI routes over the serving jobs (``segue serve``)."""

from segue.api.app import create_app

__all__ = ["create_app"]

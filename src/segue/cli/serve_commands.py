"""``segue serve``: the HTTP API under uvicorn, one or several worker processes."""

from __future__ import annotations

import os
import tempfile
from typing import Annotated

import typer

from segue.cli.console import console, err_console
from segue.cli.context import state
from segue.errors import SegueError


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes (needs SEGUE_REDIS_URL if > 1).")
    ] = 1,
    model: Annotated[
        str, typer.Option(help="Model (als, ease, ...) or model-registry name to serve.")
    ] = "als",
    fallback: Annotated[
        str,
        typer.Option(
            help="What answers while the model is not trained: none (refuse to start) or "
            "popularity (serve the popularity list until `segue train` makes the model)."
        ),
    ] = "none",
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    persist: Annotated[
        bool,
        typer.Option(
            help="Run an event worker in each process; --no-persist leaves persisting to "
            "separate `segue worker` processes (Redis mode)."
        ),
    ] = True,
) -> None:
    """Serve recommendations, events and users over HTTP (OpenAPI at /docs)."""
    import uvicorn

    from segue.api.server import MODEL_VAR, WORKER_VAR, serve_config
    from segue.models.names import MODELS, model_spec
    from segue.serving.holder import locate_model

    st = state(ctx)
    settings = st.settings
    if fallback not in ("none", "popularity"):
        raise SegueError(f"--fallback must be none or popularity, not {fallback!r}")
    st.require_data_dir()  # a mistyped --data-dir would serve an empty store
    located = locate_model(settings, model)
    if model not in MODELS and located is None:
        model_spec(model)  # neither a model nor a registry name: fails with the known names
    if located is None and fallback == "none":
        raise SegueError(
            f"model {model!r} is not trained in {settings.data_dir / 'models'}: run "
            f"`segue train --models {model}` first, or pass --fallback popularity to serve "
            "the popularity list until it is"
        )
    if not persist and not settings.redis_url:
        raise SegueError(
            "--no-persist needs SEGUE_REDIS_URL: in embedded mode only this process can "
            "persist the events it accepts"
        )
    if workers > 1 and not settings.redis_url:
        raise SegueError(
            "--workers > 1 needs SEGUE_REDIS_URL: without Redis each process would have its own "
            "bus and live state, and a listener's skip would only count on one of them"
        )
    env = {
        "SEGUE_DATA_DIR": str(settings.data_dir.resolve()),
        "SEGUE_DATABASE_URL": settings.database_url,
        "SEGUE_REDIS_URL": settings.redis_url,
        "SEGUE_REDIS_PREFIX": settings.redis_prefix,
        "SEGUE_API_KEYS": settings.api_keys,
        MODEL_VAR: model,
        WORKER_VAR: "1" if persist else "0",
    }
    os.environ.update({k: v for k, v in env.items() if v})
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="segue-metrics-")
    if not settings.api_keys:
        err_console.print(
            "[yellow]warning:[/] no SEGUE_API_KEYS: every endpoint is open (fine on a laptop)"
        )
    mode = "redis" if settings.redis_url else "embedded"
    console.print(f"serving {model!r} on http://{host}:{port} ({mode}, {workers} worker(s))")
    config = serve_config(host, port, workers, log_level)
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()

"""Where Metaflow keeps its runs, and reading them back for ``segue runs``.

Everything stays local under the data directory (``<data_dir>/metaflow``): the local
datastore and local metadata, no cloud account. The settings travel to the flow's step
processes through the environment, so steps open the same store the command line does.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segue.config import Settings
from segue.errors import SegueError
from segue.extras import require

FLOW_MODULE = "segue.batch.flow"
FLOW_NAME = "DailyFlow"


def metaflow_root(settings: Settings) -> Path:
    return (settings.data_dir / "metaflow").resolve()


def metaflow_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a flow process: local datastore and metadata in the data dir."""
    env = dict(os.environ if base is None else base)
    root = metaflow_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    env.update(
        METAFLOW_DEFAULT_DATASTORE="local",
        METAFLOW_DEFAULT_METADATA="local",
        METAFLOW_DATASTORE_SYSROOT_LOCAL=str(root),
        METAFLOW_DEFAULT_ENVIRONMENT="local",
        SEGUE_DATA_DIR=str(settings.data_dir.resolve()),
    )
    # every setting the command line may have overridden travels to the steps
    for var, value in (
        ("SEGUE_DATABASE_URL", settings.database_url),
        ("SEGUE_REDIS_URL", settings.redis_url),
        ("SEGUE_REDIS_PREFIX", settings.redis_prefix),
    ):
        if value:
            env[var] = value
    # Metaflow asks who runs the flow; a scheduler's environment may not say.
    env.setdefault("USERNAME", env.get("USER") or "segue")
    return env


def flow_command(args: list[str]) -> list[str]:
    """The command line that runs the daily flow with Metaflow's own CLI."""
    require("flows", "the daily flow (segue flow run)")
    from importlib.util import find_spec

    spec = find_spec(FLOW_MODULE)
    if spec is None or spec.origin is None:
        raise SegueError(f"cannot find the flow module {FLOW_MODULE}")
    return [sys.executable, spec.origin, "--no-pylint", *args]


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    status: str  # ok, failed (a step failed), running (or killed without a trace)
    successful: bool
    created_at: str
    parameters: dict[str, Any]
    metrics: dict[str, Any]
    artifacts: list[str]


def list_runs(settings: Settings, limit: int = 20, flow: str = FLOW_NAME) -> list[RunInfo]:
    """The latest runs with their parameters, the chosen model's metrics and artifact names."""
    require("flows", "segue runs")
    root = metaflow_root(settings)
    if not (root / ".metaflow" / flow).is_dir():
        return []
    os.environ.setdefault("USERNAME", os.environ.get("USER") or "segue")
    from metaflow import Flow, metadata, namespace

    metadata(f"local@{root}")
    namespace(None)
    out = []
    for run in list(Flow(flow).runs())[:limit]:
        params: dict[str, Any] = {}
        metrics: dict[str, Any] = {}
        names: list[str] = []
        try:
            start = run["start"].task
            params = {a.id: a.data for a in start.artifacts if a.id in _parameter_names(start)}
        except Exception:
            pass
        if run.successful:
            end = run["end"].task
            names = sorted(a.id for a in end.artifacts if not a.id.startswith("_"))
            summary = end.data.summary if "summary" in names else {}
            metrics = dict(summary)
        out.append(
            RunInfo(
                run_id=run.id,
                status="ok" if run.successful else _failed_or_running(run),
                successful=run.successful,
                created_at=str(run.created_at),
                parameters=params,
                metrics=metrics,
                artifacts=names,
            )
        )
    return out


def _failed_or_running(run: Any) -> str:
    """Metaflow calls only successful tasks finished; one that stopped unsuccessfully (it has
    a ``finished_at``) failed the run."""
    for run_step in run:
        for task in run_step:
            if not task.successful and getattr(task, "finished_at", None) is not None:
                return "failed"
    return "running"


def _parameter_names(task: Any) -> set[str]:
    try:
        return set(task.data.parameter_names)
    except Exception:
        return set()

"""Where Metaflow keeps its runs, running one with its output kept, and reading runs back.

Everything stays local under the data directory (``<data_dir>/metaflow``): the local
datastore and local metadata, no cloud account. The settings travel to the flow's step
processes through the environment, so steps open the same store the command line does.

Metaflow prints every step's start and end and, when a step raises, a 40-line traceback of
its own internals, even for an expected outcome such as the gate refusing a worse model.
:func:`run_flow` writes all of it to a log file and lets the caller show only what a person
needs (the steps as they start, the steps' own lines) and, on failure, one line: which step,
what it said (:class:`FlowOutput`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segue.config import Settings, make_data_dir
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
    make_data_dir(settings, "metaflow")
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


@dataclass(frozen=True)
class StepInfo:
    """One step of a run, in the order it ran: ``status`` ok, failed or running."""

    name: str
    status: str
    tasks: int
    started_at: str | None
    finished_at: str | None
    seconds: float | None
    error: str | None


def run_steps(settings: Settings, run_id: str, flow: str = FLOW_NAME) -> list[StepInfo]:
    """The steps a run reached, first to last, with their times and a failed step's error
    (the exception's type and first line; the full traceback is in the run's log)."""
    require("flows", "segue runs")
    root = metaflow_root(settings)
    if not (root / ".metaflow" / flow).is_dir():
        raise SegueError(f"no runs of {flow} under {root}")
    os.environ.setdefault("USERNAME", os.environ.get("USER") or "segue")
    from metaflow import Run, metadata, namespace
    from metaflow.exception import MetaflowNotFound

    metadata(f"local@{root}")
    namespace(None)
    try:
        run = Run(f"{flow}/{run_id}")
    except MetaflowNotFound:
        raise SegueError(f"no run {run_id!r} of {flow}") from None
    steps = []
    for step in run:
        tasks = list(step)  # a foreach step (training: two per model) has several
        starts = [t.created_at for t in tasks if t.created_at]
        ends = [getattr(t, "finished_at", None) for t in tasks]
        started = min(starts) if starts else None
        done = all(e is not None for e in ends)
        finished = max(e for e in ends if e is not None) if done and ends else None
        failed = [t for t in tasks if not t.successful and getattr(t, "finished_at", None)]
        error = None
        if failed:
            status = "failed"
            exc = failed[0].exception
            if exc is not None:
                # Metaflow's wrapper holds the whole traceback: its last line is the error
                text = [line for line in str(exc).strip().splitlines() if line.strip()]
                error = text[-1].strip() if text else type(exc).__name__
        else:
            status = "ok" if tasks and all(t.successful for t in tasks) else "running"
        steps.append(
            StepInfo(
                name=step.id,
                status=status,
                tasks=len(tasks),
                started_at=str(started) if started else None,
                finished_at=str(finished) if finished else None,
                seconds=(finished - started).total_seconds() if started and finished else None,
                error=error,
            )
        )
    return sorted(steps, key=lambda s: s.started_at or "")


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


# -- running a flow, its output kept in a log ---------------------------------------------------
#: "2026-12-03 09:39:38.976 [1796290763233250/gate/5 (pid 20467)] text"
_TASK_LINE = re.compile(
    r"^\S+ \S+ \[(?P<run>[^/\]]+)/(?P<step>[^/\]]+)/(?P<task>[^ \]]+) \(pid \d+\)\] ?(?P<text>.*)$"
)
#: the last line of a Python traceback: "segue.batch.lifecycle.GateRefused: refused: ..."
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*): (?P<message>.+)$")
#: what Metaflow itself says in a task, never a step's own line
_METAFLOW_OWN = ("Task is starting.", "Task finished successfully.", "Task failed.",
                 "Foreach yields", "Internal error", "<flow ")  # fmt: skip
GATE_REFUSED = "GateRefused"


@dataclass
class FlowOutput:
    """A flow's output read line by line: what to show, and why the run failed if it did.

    :meth:`feed` takes each line and returns what a person should see (a step starting, a
    step's own ``print``) or None for Metaflow's internals, tracebacks included, which only
    the log keeps. After a failed run, :attr:`failed_step` and :attr:`error` say where and
    what (the exception's message, without its traceback).
    """

    steps: list[str] = field(default_factory=list)
    failed_step: str | None = None
    error_type: str | None = None
    error: str | None = None
    _traceback: set[str] = field(default_factory=set)

    def feed(self, line: str) -> str | None:
        match = _TASK_LINE.match(line.rstrip("\n"))
        if match is None:
            return None  # Metaflow's banner and summary: the log has them
        step, task, text = match["step"], match["task"], match["text"].strip()
        if text == "Task is starting.":
            if step not in self.steps:
                self.steps.append(step)
                return f"step {step}"
            return None
        if text == "Task failed.":
            self.failed_step = self.failed_step or step
            return None
        if text in ("Internal error", "Traceback (most recent call last):") or text.endswith(
            "failed:"
        ):
            self._traceback.add(task)
            return None
        if task in self._traceback:
            error = _EXCEPTION.match(text)
            if error is not None and not text.startswith("File "):
                self.error_type, self.error = error["type"].rsplit(".", 1)[-1], error["message"]
            return None
        if not text or text.startswith(_METAFLOW_OWN):
            return None
        return f"  {text}"

    @property
    def refused_by_gate(self) -> bool:
        return self.error_type == GATE_REFUSED


def flow_log_path(settings: Settings, day: dt.date) -> Path:
    """``<data_dir>/logs/flow-<day>-<UTC time>.log``: one file per run."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return settings.data_dir.resolve() / "logs" / f"flow-{day.isoformat()}-{stamp}.log"


def run_flow(
    command: list[str], env: dict[str, str], log_path: Path, show: Callable[[str], None]
) -> tuple[int, FlowOutput]:
    """Run the flow, every line of its output into ``log_path``, the lines worth seeing to
    ``show``; (exit status, what the output said)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    output = FlowOutput()
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1, errors="replace",
        )  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            shown = output.feed(line)
            if shown is not None:
                show(shown)
        status = process.wait()
    return status, output

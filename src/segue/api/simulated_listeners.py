"""An experiment run on simulated listeners through the real service: ``segue simulate
--experiment ID``.

:mod:`segue.jobs.simulate` compares two models in-process; this runs an experiment of the
installation's book the way production would: a scratch data directory under
``<data_dir>/simulations/`` with the synthetic world in its store, the served model trained
and published as registry version v0001, the experiment started there, and ``segue serve``'s
app (uvicorn on a loopback port, in a thread of this process) answering every simulated
listener's recommendation request over HTTP: experiment assignment, variant settings, the
top-slot bandit, the exposure log. The listeners (:mod:`segue.simulation.listeners`) react
by their latent tastes, and their plays and skips go back through ``POST /v1/events`` — the
event bus, the worker, the store and the online state. Between days the model is retrained
on everything played, published and promoted, and serving swaps to it. The report at the
end is ``segue experiments report``'s, from the scratch installation's exposure log.

Simulated days pass in seconds of real time, so each reaction is timed one second after its
list and attribution uses a window of ``window_s`` seconds, not half an hour. A variant's
``version`` names a version of the scratch registry (v0001 is the first model, each day
adds one).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI

from segue.api.app import create_app
from segue.batch.lifecycle import build_manifest
from segue.config import Settings, make_data_dir
from segue.data.synth import SynthParams, generate_world
from segue.dataset.from_store import load_interactions, load_side_info
from segue.errors import SegueError
from segue.experiments.book import EXPERIMENTS_FILE, RUNNING, ExperimentBook, Plan
from segue.jobs.experiments import ExperimentReport, experiment_report
from segue.jobs.ingest import load_synthetic_world
from segue.progress import Progress, no_progress
from segue.registry import ModelRegistry
from segue.registry.trained import save_trained, train_models
from segue.simulation.listeners import Listeners, ReactionParams
from segue.store import open_store

#: Attribution window (s) in the report: shorter than the real seconds between simulated days.
WINDOW_S = 5


@dataclass
class ServedSimulation:
    report: ExperimentReport
    folder: Path
    lists: int
    events: int


def simulate_served(
    settings: Settings,
    experiment_id: str,
    world_params: SynthParams,
    days: int,
    *,
    model: str = "als",
    reaction: ReactionParams | None = None,
    progress: Progress = no_progress,
) -> ServedSimulation:
    """Run ``experiment_id`` of ``settings``' book on simulated listeners; see the module."""
    if days < 1:
        raise SegueError(f"simulate at least one day, got {days}")
    plan = ExperimentBook(settings.data_dir / EXPERIMENTS_FILE).get(experiment_id)
    root = settings.data_dir / "simulations"
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{experiment_id}-", dir=root))
    scratch = Settings(data_dir=folder, redis_url="", api_keys="", explore_share=0.0)
    make_data_dir(scratch)
    reaction = reaction or ReactionParams(k=10)
    progress("generating the world", 0, None)
    world = generate_world(world_params)
    history = world.events()
    listeners = Listeners(world, reaction, days=days, seed=world_params.seed)
    listeners.remember_history(history.user, history.item)
    user_ids = [str(u) for u in world.user_ids]
    column = {str(i): n for n, i in enumerate(world.item_ids)}
    registry = ModelRegistry(folder / "registry")
    with open_store(scratch.resolved_database_url) as store:
        load_synthetic_world(store, world_params)
        _retrain(store, registry, model)
    book = ExperimentBook(folder / EXPERIMENTS_FILE)
    book.create(Plan(plan.experiment, plan.settings))
    book.set_status(experiment_id, RUNNING, 0)
    lists = events_sent = 0
    app = create_app(scratch, model=model, watch_s=None)
    with _serving(app) as client:
        services = app.state.services
        for day in range(days):
            progress("simulated days", day, days)
            visitors = listeners.visitors(day)
            shown = np.full((len(visitors), reaction.k), -1, dtype=np.int64)
            served_at: list[int] = []
            for row, u in enumerate(visitors.tolist()):
                status, answer = client.call(
                    "GET", f"/v1/users/{user_ids[u]}/recommendations?k={reaction.k}"
                )
                if status != 200:
                    raise SegueError(f"serving answered {status}: {answer}")
                items = [column[i["item_id"]] for i in answer["items"]][: reaction.k]
                shown[row, : len(items)] = items
                served_at.append(int(time.time() * 1000))
            lists += len(visitors)
            outcome = listeners.react(day, visitors, shown)
            batch = []
            for row, u in enumerate(visitors.tolist()):
                when = dt.datetime.fromtimestamp(served_at[row] / 1000 + 1, dt.UTC).isoformat()
                for pos in np.flatnonzero(outcome.played[row]).tolist():
                    ms = int(outcome.ms_played[row, pos])
                    skipped = ms < listeners.duration[shown[row, pos]]
                    batch.append({
                        "event_id": uuid.uuid4().hex, "user_id": user_ids[u],
                        "item_id": str(world.item_ids[shown[row, pos]]),
                        "type": "skip" if skipped else "play", "ms_played": ms,
                        "timestamp": when,
                    })  # fmt: skip
            for start in range(0, len(batch), 2_000):
                status, answer = client.call(
                    "POST", "/v1/events", {"events": batch[start : start + 2_000]}
                )
                if status != 202:
                    raise SegueError(f"events refused ({status}): {answer}")
            events_sent += len(batch)
            if services.worker is not None:
                services.worker.drain()
            services.flush_exposures()
            if day + 1 < days:  # the daily retrain, published and served from the next day
                _retrain(services.store, registry, model)
                services.models.refresh()
        progress("simulated days", days, days)
    today = dt.datetime.now(dt.UTC).date()
    with open_store(scratch.resolved_database_url) as store:
        report = experiment_report(store, book, experiment_id, today, today, window_s=WINDOW_S)
    return ServedSimulation(report, folder, lists, events_sent)


def _retrain(store, registry: ModelRegistry, model: str) -> None:
    """Fit ``model`` on everything in the store, publish it and make it production (no gate:
    the simulation compares variants, not days)."""
    data = load_interactions(store)
    trained = train_models(data, [model], side=load_side_info(store, data))[model]
    manifest = build_manifest(trained, {}, data={"events": len(data)})
    with tempfile.TemporaryDirectory(prefix="segue-simulated-") as tmp:
        folder = Path(tmp) / "model"
        save_trained(trained, folder, similar=True)
        version = registry.publish(model, folder, manifest)
    registry.promote(model, version.version)


class _Client:
    """One keep-alive HTTP/1.1 connection to the loopback server."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if payload else {}
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read() or b"null")


@contextmanager
def _serving(app: FastAPI) -> Iterator[_Client]:
    """The app under uvicorn on a free loopback port, in a thread; stopped on exit."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="simulated-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SegueError("the simulated service did not start")
        time.sleep(0.05)
    client = _Client(port)
    try:
        yield client
    finally:
        client.connection.close()
        server.should_exit = True
        thread.join(timeout=30)

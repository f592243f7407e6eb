"""The API fuzzed from its own OpenAPI document, as an attacker would (schemathesis).

Every operation gets a bounded number of generated requests, valid and invalid, against a real
``segue serve``-style server (uvicorn on loopback, the embedded store with everything set up:
a trained recommender, logged messages with a trained click model, a small request-in-words
model): no answer may be a 5xx, not even a 503, and every answer must be one the document
declares — its status code, its content type and its body's schema (errors included).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from segue.api import create_app
from segue.config import Settings
from segue.data.synth import SynthParams
from segue.data.synth.nba import NBASimParams
from segue.dataset.from_store import load_interactions, load_side_info
from segue.jobs.nba import simulate_nba, train_click_model
from segue.registry.trained import train_models
from segue.store import open_store

#: generated requests per operation: bounded so the suite stays within its time; the
#: reliability probe in docs/benchmarks.md sets SEGUE_FUZZ_EXAMPLES=1000
EXAMPLES = int(os.environ.get("SEGUE_FUZZ_EXAMPLES", "25"))
ANSWERS: list[int] = []
#: operation label -> how many of its answers were 2xx
ANSWERED: dict[str, int] = {}
#: a listener of the fuzzed world (fuzzed ids are almost never one)
KNOWN_USER: list[str] = []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{root / 'segue.sqlite'}"
    params = SynthParams(seed=5, n_users=120, n_tracks=300, n_events=6000)
    with open_store(url) as store:
        simulate_nba(store, params, NBASimParams(n_impressions=3000), root / "truth.parquet")
        data = load_interactions(store)
        train_models(data, ["als"], root / "models", side=load_side_info(store, data))
        train_click_model(store, root / "models")
        KNOWN_USER.append(next(store.iter_users()).id)
    _train_small_language_model(root / "nlu" / "joint")
    app = create_app(Settings(data_dir=root, database_url=url), watch_s=None)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _train_small_language_model(out: Path) -> None:
    """The request-in-words model, one MiniLM layer for one epoch on generated requests
    (seconds): it parses badly, but it answers, so ``/v1/query`` is fuzzed for real."""
    from segue.models.text import model_path
    from segue.nlu.generate import Vocabulary, generate
    from segue.nlu.train import TrainConfig, train

    vocab = Vocabulary(
        tracks=("Bohemian Rhapsody", "Early Canyon"),
        artists=("Queen", "Summer Tiger"),
        albums=("Quiet Echo",),
        genres=("rock", "jazz"),
    )
    config = TrainConfig(epochs=1, batch_size=32, layers=1, threads=1, warmup=0.1)
    train(generate(vocab, 6, 0), generate(vocab, 2, 1), model_path(), config, out=out)


@schemathesis.check
def no_server_fault(ctx, response, case) -> None:  # type: ignore[no-untyped-def]
    """No 5xx at all: every part is set up here, so a 503 would be a fault too."""
    ANSWERS.append(response.status_code)
    label = case.operation.label
    ANSWERED[label] = ANSWERED.get(label, 0) + (200 <= response.status_code < 300)
    if response.status_code >= 500:
        raise AssertionError(f"{response.status_code} from {case.operation.label}")


def _operations(server_url: str) -> list:  # type: ignore[type-arg]
    loaded = schemathesis.openapi.from_url(f"{server_url}/openapi.json")
    return [result.ok() for result in loaded.get_all_operations()]


def test_no_5xx_and_every_answer_is_declared(server_url: str) -> None:
    """Each operation in turn (schemathesis' own pytest plugin does not run on pytest 9)."""
    failures: dict[str, str] = {}
    operations = _operations(server_url)
    assert len(operations) >= 15  # the document lists the API, not an empty shell
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(
                checks=[
                    no_server_fault,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ]
            )

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # run all operations, report all
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    by_class = {f"{c}xx": sum(1 for a in ANSWERS if a // 100 == c) for c in (2, 4, 5)}
    print(f"fuzzed {len(ANSWERS):,} requests over {len(operations)} operations: {by_class}")
    assert len(ANSWERS) >= len(operations) * min(EXAMPLES, 5)  # the fuzzing really ran
    # the parts that answer 503 when not set up answered for real here
    assert ANSWERED.get("POST /v1/query", 0) > 0, ANSWERED
    user = KNOWN_USER[0]
    answer = httpx.get(f"{server_url}/v1/users/{user}/next-best-action", timeout=30)
    assert answer.status_code == 200, answer.text

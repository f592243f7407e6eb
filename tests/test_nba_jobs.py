"""Next best action end to end on a small synthetic world: ``segue nba simulate / train /
evaluate / run / send / report / show`` on SQLite, the same campaign on PostgreSQL, and the
real-time answer. Every rule of the decision logic is checked on the queued messages."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from aiosmtpd.controller import Controller
from typer.testing import CliRunner

from segue.api.schemas import NextBestActionResponse
from segue.cli.main import app
from segue.data.synth import SynthParams
from segue.data.synth.nba import NBASimParams
from segue.errors import SegueError
from segue.jobs import nba
from segue.nba.campaign import run_campaign
from segue.nba.policy import PolicySettings, in_holdout
from segue.nba.report import campaign_report
from segue.nba.service import NBAService
from segue.store import open_store

PARAMS = SynthParams(seed=11, n_users=1_500, n_tracks=1_500, n_events=60_000)
SIM = NBASimParams(n_impressions=40_000)
#: Half an hour after the world's history ends: quiet hours in Europe, daytime in Asia.
NOW = dt.datetime(2025, 1, 1, 0, 30, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A store with the world and its logged messages, a trained click model, one campaign."""
    root = tmp_path_factory.mktemp("nba")
    data_dir = root / "data"
    env = {"SEGUE_DATA_DIR": str(data_dir), "SEGUE_DATABASE_URL": ""}
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    cli(
        "nba", "simulate", "--users", str(PARAMS.n_users), "--tracks", str(PARAMS.n_tracks),
        "--events", str(PARAMS.n_events), "--impressions", str(SIM.n_impressions),
        "--seed", str(PARAMS.seed),
    )  # fmt: skip
    trained = cli("nba", "train")
    cli("nba", "run", "--campaign", "spring", "--now", NOW.isoformat())
    yield {"root": root, "data_dir": data_dir, "env": env, "cli": cli, "trained": trained}


def _store(world: dict):
    return open_store(f"sqlite:///{(world['data_dir'] / 'segue.sqlite').resolve()}")


def test_click_model_is_near_the_ceiling_and_calibrated(world: dict) -> None:
    report = world["root"] / "report"
    out = world["cli"]("nba", "evaluate", "--report", str(report))
    assert "confusion matrix at" in out
    text = (report / "report.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0] in ("auc_roc", "ece", "log_loss", "base_rate", "n"):
            rows[cells[0]] = (float(cells[1].replace(",", "")), float(cells[2].replace(",", "")))
    (auc, ceiling), (ece, _) = rows["auc_roc"], rows["ece"]
    # a small log (about 24k training rows): looser than the benchmark's bars (0.02 and 0.02)
    assert ceiling - 0.04 < auc <= ceiling + 0.01
    assert ece < 0.03
    assert rows["log_loss"][0] < rows["log_loss"][1] + 0.01
    assert rows["n"][0] > 5_000
    assert (report / "calibration.png").stat().st_size > 10_000
    assert (report / "roc_pr.png").stat().st_size > 10_000
    assert "auc_roc" in world["trained"]


def test_campaign_obeys_every_rule(world: dict) -> None:
    with _store(world) as store:
        messages = store.outbox_messages(campaign="spring")
        users = {u.id: u for u in store.iter_users()}
        rerun = run_campaign(store, world["data_dir"] / "models", "spring", NOW_MS)
    assert rerun.queued == 0  # idempotent: same campaign, same message ids
    assert len(messages) > 500
    by_user = [m.user_id for m in messages]
    assert len(by_user) == len(set(by_user))  # one message per user
    holdout = in_holdout(by_user, "spring", PolicySettings().holdout_share)
    assert not holdout.any()
    quiet = PolicySettings()
    for m in messages:
        user = users[m.user_id]
        assert not user.kids_profile
        assert m.channel != "push" or user.consent_push
        assert m.channel != "email" or user.consent_email
        local = dt.datetime.fromtimestamp(m.scheduled_ms / 1000, tz=ZoneInfo(user.timezone))
        if m.channel in ("push", "email"):
            assert quiet.quiet_end <= local.hour < quiet.quiet_start, (m, local)
            assert m.scheduled_ms >= NOW_MS
        else:
            assert m.scheduled_ms == NOW_MS
        assert m.p_click >= quiet.min_probability
        assert m.p_click * m.value >= quiet.min_expected_value
        assert m.payload["deep_link"].endswith(m.item_id)
    held = [m for m in messages if m.scheduled_ms > NOW_MS]
    assert held, "some push/e-mail messages fall in quiet hours at 00:30 UTC"
    assert {m.channel for m in messages} >= {"push", "in_app"}
    assert len({m.action_type for m in messages}) >= 3


def test_same_campaign_on_postgres_chooses_the_same_messages(
    world: dict, pg_database_url: str, database_url: str
) -> None:
    if not database_url.startswith("postgres"):
        pytest.skip("the SQLite run is the module fixture")
    from segue.jobs.nba import simulate_nba

    with open_store(database_url) as pg:
        simulate_nba(pg, PARAMS, SIM, world["root"] / "pg-truth.parquet")
        result = run_campaign(pg, world["data_dir"] / "models", "spring", NOW_MS)
        on_pg = {(m.user_id, m.channel, m.item_id) for m in pg.outbox_messages()}
    with _store(world) as store:
        on_sqlite = {(m.user_id, m.channel, m.item_id) for m in store.outbox_messages()}
    assert result.queued == len(on_sqlite)
    assert on_pg == on_sqlite


class _Mailbox:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        return "250 OK"


def test_send_respond_and_report(world: dict) -> None:
    box = _Mailbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    pushes: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            pushes.append(self.headers["Idempotency-Key"])
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**world["env"], "SEGUE_SMTP_HOST": "127.0.0.1", "SEGUE_SMTP_PORT": str(port)}
        env["SEGUE_PUSH_URL"] = f"http://127.0.0.1:{server.server_address[1]}/push"
        runner = CliRunner()
        with _store(world) as store:
            expected = store.outbox_counts("spring")["pending"]
        # `send` runs at the real clock, long after the simulated campaign: everything is due
        result = runner.invoke(app, ["nba", "send"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert f"sent {expected:,}" in result.output
    finally:
        controller.stop()
        server.shutdown()
        server.server_close()
    with _store(world) as store:
        sent = store.outbox_messages("spring", status="sent")
        assert len(sent) == expected
        assert sorted(pushes) == sorted(m.message_id for m in sent if m.channel == "push")
        assert box.count == sum(m.channel == "email" for m in sent)
        added = nba.simulate_responses(store, PARAMS, SIM, "spring", days=14)
        assert added > len(sent)
        report = campaign_report(store, "spring", window_days=14)
    assert report.impressions == len(sent)
    assert 0 < report.clicks < report.impressions
    assert abs(report.ctr - np.mean([m.p_click for m in sent])) < 0.05
    assert report.conversions <= report.clicks
    diff, lo, hi = report.lift()
    assert lo < diff < hi
    assert report.treated.inactive > 0 and report.holdout.inactive > 0
    assert report.treated.rate > report.holdout.rate  # clicks bring inactive users back
    out = runner.invoke(app, ["nba", "report", "--campaign", "spring"], env=world["env"])
    assert out.exit_code == 0 and "Lift (treated − holdout)" in out.output


def test_realtime_answer(world: dict) -> None:
    with _store(world) as store:
        service = NBAService(store, world["data_dir"] / "models")
        adult = next(u for u in store.iter_users() if not u.kids_profile and u.consent_push)
        answer = service.next_best_action(adult.id, NOW + dt.timedelta(days=30))
        payload = json.loads(NextBestActionResponse.model_validate(answer).model_dump_json())
        assert payload["user_id"] == adult.id
        assert answer.best is not None
        evs = [answer.best.expected_value] + [s.expected_value for s in answer.alternatives]
        assert evs == sorted(evs, reverse=True)
        assert len({s.action.item_id for s in [answer.best, *answer.alternatives]}) == len(evs)
        kid = next((u for u in store.iter_users() if u.kids_profile), None)
        if kid is not None:
            none = service.next_best_action(kid.id, NOW)
            assert none.best is None and "kids" in none.note
        with pytest.raises(SegueError, match="unknown user"):
            service.next_best_action("nobody", NOW)


def test_cli_errors_are_one_line(world: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "empty").mkdir()  # a folder that does not exist is refused before this
    env = {"SEGUE_DATA_DIR": str(tmp_path / "empty"), "SEGUE_DATABASE_URL": ""}
    result = runner.invoke(app, ["nba", "train"], env=env)
    assert result.exit_code != 0
    assert "no impression events" in str(result.exception) or "no impression" in result.output


def test_the_api_answers_what_the_service_answers(world: dict) -> None:
    from fastapi.testclient import TestClient

    from segue.api import create_app
    from segue.config import Settings

    when = NOW + dt.timedelta(days=30)
    settings = Settings(data_dir=world["data_dir"])
    with _store(world) as store, TestClient(create_app(settings, watch_s=None)) as client:
        adult = next(u for u in store.iter_users() if not u.kids_profile and u.consent_push)
        r = client.get(f"/v1/users/{adult.id}/next-best-action", params={"now": when.isoformat()})
        assert r.status_code == 200, r.text
        expected = NBAService(store, world["data_dir"] / "models").next_best_action(
            adult.id, when
        )
        assert r.json() == json.loads(
            NextBestActionResponse.model_validate(expected).model_dump_json()
        )
        assert client.get("/v1/users/nobody/next-best-action").status_code == 404

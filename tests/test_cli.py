"""The `segue` command as a user meets it: help everywhere, clear errors, the main job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from segue.cli.main import app
from segue.store import open_store

runner = CliRunner()
SMALL_WORLD = ["--users", "150", "--tracks", "400", "--events", "6000", "--seed", "3"]


def _segue(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real entry point in a subprocess, as a user would."""
    base = {**os.environ, "SEGUE_DATA_DIR": str(data_dir), "COLUMNS": "160"}
    for name in ("SEGUE_DATABASE_URL", "SEGUE_REDIS_URL", "SEGUE_REDIS_PREFIX"):
        base.pop(name, None)
    env = {**base, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from segue.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _all_command_paths() -> list[list[str]]:
    import typer.main

    group = typer.main.get_command(app)
    paths = []

    def walk(command, prefix: list[str]) -> None:
        paths.append(prefix)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(group, [])
    return paths


def test_every_command_has_help() -> None:
    paths = _all_command_paths()
    names = {" ".join(p) for p in paths}
    assert {"synth", "import lastfm-2k", "import csv", "export", "demo", "recommend"} <= names
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_synth_stats_export_train_recommend(tmp_path: Path) -> None:
    data = tmp_path / "data"
    synth = _segue(data, "synth", *SMALL_WORLD)
    assert synth.returncode == 0, synth.stderr
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        events = store.count("events")
        users = store.count("users")
        some_user = next(iter(store.interactions().user_id_array()))
    assert events > 5000
    stats = _segue(data, "stats")
    assert f"{events:,}" in stats.stdout and f"{users:,}" in stats.stdout

    out = tmp_path / "events.parquet"
    assert _segue(data, "export", "events", str(out)).returncode == 0
    assert pq.read_table(out).num_rows == events

    assert _segue(data, "train", "--models", "popularity,itemknn").returncode == 0
    rec = _segue(data, "recommend", str(some_user), "--k", "3")
    assert rec.returncode == 0, rec.stderr
    assert "because you played" in rec.stdout


def test_user_mistakes_get_one_clear_line_and_no_traceback(tmp_path: Path) -> None:
    data = tmp_path / "data"
    missing = _segue(data, "import", "csv", str(tmp_path / "nope.csv"), "--kind", "events")
    assert missing.returncode == 2
    assert "error:" in missing.stderr and "Traceback" not in missing.stderr

    wrong_kind = _segue(data, "import", "csv", str(tmp_path / "x.csv"), "--kind", "plays")
    assert wrong_kind.returncode == 2 and "events, items or users" in wrong_kind.stderr

    unknown_model = _segue(data, "train", "--models", "telepathy")
    assert unknown_model.returncode == 2 and "unknown model 'telepathy'" in unknown_model.stderr

    no_model = _segue(data, "recommend", "someone")
    assert no_model.returncode == 2 and "segue train" in no_model.stderr


def test_a_bad_row_fails_the_import_with_its_location_and_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _segue(data, "synth", *SMALL_WORLD).returncode == 0
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        before = store.count("events")
        user = store.interactions().user_ids[0]
        item = store.interactions().item_ids[0]
    csv = tmp_path / "plays.csv"
    csv.write_text(
        "uid,track,ts,kind\n"
        f"{user},{item},2024-03-01T10:00:00Z,play\n"
        f"{user},{item},2024-13-45T10:00:00Z,play\n"
    )
    result = _segue(
        data, "import", "csv", str(csv), "--kind", "events",
        "--map", "user_id=uid,item_id=track,timestamp=ts,type=kind",
    )  # fmt: skip
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "plays.csv" in message and "line 3" in message and "'ts'" in message
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        assert store.count("events") == before


@pytest.mark.slow
def test_demo_prints_the_results_table_and_reasons(tmp_path: Path) -> None:
    result = _segue(tmp_path / "data", "demo", "--users", "400", "--tracks", "800",
                    "--events", "20000", "--seed", "5")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "NDCG@10" in result.stdout
    assert (
        "itemknn" in result.stdout and "popularity" in result.stdout and "hybrid" in result.stdout
    )
    assert "because you played" in result.stdout


def test_csv_import_without_a_mapping_and_rating_evaluation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "users.csv").write_text(
        "id,signup_at\n" + "".join(f"u{u},2024-01-01T00:00:00Z\n" for u in range(20))
    )
    (tmp_path / "items.csv").write_text(
        "id,kind,title\n" + "".join(f"i{i},track,Track {i}\n" for i in range(50))
    )
    # user u's ratings are all 1 + u % 5: a per-user bias the baseline must find
    rows = [
        f"u{u},i{i},like,{1_700_000_000 + 100 * u + i},{1 + u % 5}"
        for u in range(20)
        for i in range(50)
    ]
    (tmp_path / "ratings.csv").write_text(
        "user_id,item_id,type,timestamp,rating\n" + "\n".join(rows)
    )
    for name in ("users", "items"):
        assert (
            _segue(data, "import", "csv", str(tmp_path / f"{name}.csv"), "--kind", name).returncode
            == 0
        )
    # the rating column is read because it is named like the field (--auto-map; off by default)
    events = _segue(
        data, "import", "csv", str(tmp_path / "ratings.csv"), "--kind", "events", "--auto-map"
    )
    assert events.returncode == 0, events.stderr
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        assert store.count("events") == 1000
    result = _segue(data, "evaluate", "--protocol", "ratings", "--models", "mean,bias")
    assert result.returncode == 0, result.stderr
    # piped, the table is Markdown: | model | RMSE | MAE | fit s |, mean ± std over 5 folds
    rmse = {}
    for name in ("mean", "bias"):
        row = next(line for line in result.stdout.splitlines() if line.startswith(f"| {name} |"))
        rmse[name] = float(row.strip("|").split("|")[1].split("±")[0])
    assert rmse["bias"] < 0.5 * rmse["mean"]


def test_publish_and_worker_through_redis(tmp_path: Path, redis_prefix: str) -> None:
    from conftest import REDIS_URL

    data = tmp_path / "data"
    assert _segue(data, "synth", *SMALL_WORLD).returncode == 0
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        before = store.count("events")
        item = store.interactions().item_ids[0]
    csv = tmp_path / "live.csv"
    rows = [f"e{i},brand-new-listener,{item},play,2024-06-01T10:0{i}:00Z" for i in range(3)]
    csv.write_text("event_id,user_id,item_id,type,timestamp\n" + "\n".join(rows) + "\n")
    env = {"SEGUE_REDIS_URL": REDIS_URL, "SEGUE_REDIS_PREFIX": redis_prefix}

    no_redis = _segue(data, "publish", str(csv))
    assert no_redis.returncode == 2 and "SEGUE_REDIS_URL" in no_redis.stderr
    for _ in range(2):  # the second round redelivers the same event ids
        published = _segue(data, "publish", str(csv), env=env)
        assert published.returncode == 0, published.stderr
        drained = _segue(data, "worker", "--once", env=env)
        assert drained.returncode == 0, drained.stderr
    assert "received 3" in drained.stdout and "persisted 0" in drained.stdout
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        assert store.count("events") == before + 3
        assert store.get_user("brand-new-listener") is not None  # created from its first event

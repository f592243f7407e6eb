"""`segue mixes`, `segue station`, `segue wrapped` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import products_world as world
from segue.cli.main import app
from segue.store import open_store

runner = CliRunner()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    with open_store(f"sqlite:///{folder / 'segue.sqlite'}") as store:
        world.build(store)
    result = runner.invoke(app, [*_base(folder), "train", "--models", "itemknn"])
    assert result.exit_code == 0, result.output
    return folder


def _base(folder: Path) -> list[str]:
    return ["--data-dir", str(folder), "--database-url", f"sqlite:///{folder / 'segue.sqlite'}"]


def test_mixes_command_prints_the_days_mixes(data_dir: Path) -> None:
    args = [*_base(data_dir), "mixes", "main", "--date", "2024-06-01", "--length", "25"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    mixes = json.loads(result.output)
    assert [m["cluster"] for m in mixes] == ["rock", "jazz"]
    assert all(len(m["tracks"]) == 25 and m["date"] == "2024-06-01" for m in mixes)
    table = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert table.exit_code == 0 and "Rock mix" in table.output and "Rock 0" in table.output


def test_station_command_pages_and_skips_served(data_dir: Path) -> None:
    args = [*_base(data_dir), "station", "main", "--seed", "genre:jazz", "--k", "5", "--json"]
    first = json.loads(runner.invoke(app, args).output)
    assert [t["genre"] for t in first["tracks"]] == ["jazz"] * 5
    served = [x for t in first["tracks"] for x in ("--served", t["item_id"])]
    second = json.loads(runner.invoke(app, [*args, *served]).output)
    assert not {t["item_id"] for t in first["tracks"]} & {t["item_id"] for t in second["tracks"]}


def test_wrapped_command_writes_card_and_page(data_dir: Path) -> None:
    png, html = data_dir / "out" / "main.png", data_dir / "out" / "main.html"
    args = [*_base(data_dir), "wrapped", "main", "--year", "2024", "--png", str(png)]
    result = runner.invoke(app, [*args, "--html", str(html)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rock song 0.0" in html.read_text(encoding="utf-8")
    # 40 plays outside Focus Mode (the 60 focus plays are not counted)
    data = json.loads(runner.invoke(app, [*_base(data_dir), "wrapped", "main", "--year",
                                          "2024", "--json"]).output)  # fmt: skip
    assert data["streams"] == 40 and data["focus_plays_excluded"] == 60


def test_bad_seed_is_one_red_line_and_exit_2(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [sys.executable, "-c", "from segue.cli.main import main; main()", *_base(data_dir),
         "station", "main", "--seed", "mood:angry"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: unknown mood 'angry'; moods: chill, energetic, happy, melancholy, focus, party"
    ]

"""``segue evaluate`` end to end on a small synthetic world in a SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from segue.cli.main import app
from segue.errors import SegueError
from segue.eval.report import REPORT


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("segue")
    args = ["--data-dir", str(folder), "synth", "--users", "80", "--tracks", "300"]
    result = CliRunner().invoke(app, [*args, "--events", "5000", "--seed", "3"])
    assert result.exit_code == 0, result.output
    return folder


def test_evaluate_prints_mean_and_std_and_writes_a_report(data_dir: Path) -> None:
    report = data_dir / "report"
    result = CliRunner().invoke(
        app,
        [
            "--data-dir", str(data_dir), "evaluate", "--models", "popularity,itemknn",
            "--seeds", "0,1", "--k", "5", "--report", str(report),
        ],
        env={"COLUMNS": "220"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "seeds 0, 1" in result.output
    assert "NDCG@5" in result.output and "±" in result.output
    assert "popularity" in result.output and "itemknn" in result.output
    text = (report / REPORT).read_text(encoding="utf-8")
    assert "| itemknn |" in text and "Split seeds: 0, 1" in text


def test_evaluate_names_bad_options(data_dir: Path) -> None:
    runner = CliRunner()
    bad_protocol = runner.invoke(
        app, ["--data-dir", str(data_dir), "evaluate", "--protocol", "tomorrow"]
    )
    assert isinstance(bad_protocol.exception, SegueError)
    assert "unknown evaluation protocol 'tomorrow'" in str(bad_protocol.exception)
    bad_seeds = runner.invoke(app, ["--data-dir", str(data_dir), "evaluate", "--seeds", "x"])
    assert isinstance(bad_seeds.exception, SegueError)
    assert "--seeds" in str(bad_seeds.exception)

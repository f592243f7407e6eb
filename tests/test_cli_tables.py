"""Tables fit the terminal and print as Markdown when piped; plot legends stay off the data."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from segue.cli.console import print_table
from segue.cli.main import app

MODELS = "popularity,trending,popularity_country,itemknn,userknn,content,als,bpr,ease,hybrid"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _wide_table() -> tuple[list[str], list[list[str]]]:
    headers = ["model", "P@10", "R@10", "NDCG@10", "HR@10", "MRR@10", "AUC", "coverage",
               "novelty", "ILD", "pop pct", "Gini", "fit s", "rec s"]  # fmt: skip
    rows = [
        [name, *("0.123±0.004" for _ in range(11)), "12.34", "0.56"] for name in MODELS.split(",")
    ]
    return headers, rows


@pytest.mark.parametrize("width", [80, 120, 200])
def test_a_wide_table_fits_the_terminal_whole(width: int) -> None:
    headers, rows = _wide_table()
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    print_table(headers, rows, title="results", legend="P precision, R recall", out=console)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    text = out.getvalue()
    assert "…" not in text  # nothing truncated
    for name in MODELS.split(","):
        assert name in text
    for header in headers:
        assert all(word in text for word in header.split())
    assert text.count("0.123") == 10 * 11 and text.count("0.004") == 10 * 11


def test_piped_a_table_is_markdown_with_every_cell() -> None:
    headers, rows = _wide_table()
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False)
    print_table(headers, rows, title="results", out=console)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("|")]
    assert lines[0] == "| " + " | ".join(headers) + " |"
    assert lines[1] == "|" + "---|" * len(headers)
    assert len(lines) == 2 + len(rows)
    assert lines[2].startswith("| popularity | 0.123 ± 0.004 |")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tables")
    args = ["--data-dir", str(folder), "synth", "--users", "80", "--tracks", "300"]
    result = CliRunner().invoke(app, [*args, "--events", "5000", "--seed", "3"])
    assert result.exit_code == 0, result.output
    return folder


def _evaluate(data_dir: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    done = subprocess.run(
        [sys.executable, "-c", "from segue.cli.main import main; main()", "--data-dir",
         str(data_dir), "evaluate", "--models", MODELS, "--seeds", "0,1"],
        capture_output=True, text=True, env={**environ, **env}, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_evaluate_in_a_120_column_terminal_and_piped(data_dir: Path) -> None:
    terminal = _ANSI.sub("", _evaluate(data_dir, COLUMNS="120", TTY_COMPATIBLE="1"))
    lines = terminal.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert "…" not in terminal
    for name in MODELS.split(","):
        assert any(line.startswith(f"│ {name} ") for line in lines), name
    assert "NDCG@10" in terminal and "mean ± std over seeds" in terminal
    piped = _evaluate(data_dir, COLUMNS="120")
    rows = [line for line in piped.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| model | P@10 | R@10 | NDCG@10 |")
    models = [row.split(" | ")[0][2:] for row in rows[1 : 1 + len(MODELS.split(","))]]
    assert sorted(models) == sorted(MODELS.split(","))  # the separator row starts "|---"
    assert "±" in rows[1] and "…" not in piped


def test_plot_legends_are_off_the_axes() -> None:
    pytest.importorskip("matplotlib")
    from segue.eval import evaluate, registry_candidates
    from segue.eval.report import bucket_figure, ndcg_figure
    from test_eval_data import synthetic_interactions, synthetic_side

    data = synthetic_interactions()
    candidates = registry_candidates(["popularity", "itemknn", "ease", "userknn"])
    evaluation = evaluate(data, candidates, "random", seeds=[0], side=synthetic_side(data))
    for figure in (ndcg_figure(evaluation), bucket_figure(evaluation)):
        figure.canvas.draw()
        ax = figure.axes[0]
        legend = ax.get_legend()
        assert legend is not None and len(legend.get_texts()) == 4
        box, plot = legend.get_window_extent(), ax.get_window_extent()
        assert box.x0 >= plot.x1 or box.y1 <= plot.y0  # right of the axes, or below
        assert figure.bbox.contains(box.x1 - 1, box.y0 + 1)  # and inside the picture

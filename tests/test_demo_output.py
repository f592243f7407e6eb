"""The demo as a newcomer reads it: step headings, its columns explained, and what to run
next, each next command working as printed."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from segue.cli.main import app


def test_demo_shows_steps_a_legend_and_next_commands_that_work(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    done = subprocess.run(
        [sys.executable, "-c", "from segue.cli.main import main; main()", "--data-dir",
         str(data), "demo", "--users", "200", "--tracks", "400", "--events", "8000",
         "--models", "popularity,itemknn"],
        capture_output=True, text=True, env={**env, "COLUMNS": "120"}, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    headings = [line for line in out.splitlines() if line.startswith("## ")]
    assert headings[0] == "## 1 · the world"
    assert any(h.startswith("## 2 · every model") for h in headings)
    assert headings[-1] == "## what to run next"
    assert "NDCG ranking quality" in out and "HR hit rate" in out  # the columns explained
    assert "AUC" not in out  # ... and only the columns shown
    assert "why: the reason shown to the listener" in out
    commands = [
        shlex.split(line.strip())
        for line in out.split("## what to run next", 1)[1].splitlines()
        if line.strip().startswith("segue ")
    ]
    names = [c[3] for c in commands]  # segue --data-dir DIR COMMAND ...
    assert {"recommend", "station", "search", "similar", "wrapped", "serve"} <= set(names)
    runner = CliRunner()
    for command in commands:
        if command[3] in ("serve", "evaluate"):  # a server; five seeds of every model
            continue
        result = runner.invoke(app, command[1:], env={"COLUMNS": "120"})
        assert result.exit_code == 0, (command, result.output, result.exception)
        assert result.output.strip(), command

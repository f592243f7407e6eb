"""A data directory that cannot be made is a setting to fix: one line, exit status 2, for
every command that would make it (not a 40-line mkdir traceback)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from segue.api.services import build_services
from segue.config import Settings
from segue.errors import ConfigError

UNMAKEABLE = "/proc/segue-cannot-be-here"


CANNOT = f"error: cannot create {UNMAKEABLE} ("
NO_DATA = f"error: no segue data in {UNMAKEABLE}"  # commands that read: not made, refused


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["synth", "--users", "10", "--tracks", "50", "--events", "1000"], CANNOT),
        (["demo", "--users", "10", "--tracks", "50", "--events", "1000"], CANNOT),
        (["flow", "run", "--ingest", "synthetic"], CANNOT),
        (["serve", "--fallback", "popularity"], NO_DATA),
    ],
)
def test_an_unmakeable_data_dir_is_one_line(command: list[str], said: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    done = subprocess.run(
        [sys.executable, "-c", "from segue.cli.main import main; main()",
         "--data-dir", UNMAKEABLE, *command],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(said), done.stderr
    assert "Traceback" not in done.stderr
    assert len([line for line in lines if line.startswith("error:")]) == 1


def test_the_api_refuses_it_before_opening_anything() -> None:
    with pytest.raises(ConfigError, match=f"cannot create {UNMAKEABLE}"):
        build_services(Settings(data_dir=UNMAKEABLE), "popularity")

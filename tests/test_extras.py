"""A command or endpoint whose optional part is not installed says which extra to install.

The missing package is simulated the way Python itself reports one: ``sys.modules[name] =
None`` makes ``import name`` raise ModuleNotFoundError and ``find_spec(name)`` return None.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from segue.errors import SegueError
from segue.extras import MissingExtra, missing_extra, require

_RUN_WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
sys.argv = ["segue", *sys.argv[2:]]
from segue.cli.main import main
main()
"""


def _segue_without(modules: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT, ",".join(modules), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_segue_ask_without_the_nlu_extra_says_so_in_one_line(tmp_path: Path) -> None:
    result = _segue_without(["torch"], "--data-dir", str(tmp_path), "ask", "play queen")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: install segue[nlu] to use segue ask")
    assert "missing: torch" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "nlu").exists()  # nothing was started


def test_a_module_missing_deep_inside_a_command_names_its_extra(tmp_path: Path) -> None:
    # `segue flow run` checks first; the hint names the command the user typed
    result = _segue_without(["metaflow"], "--data-dir", str(tmp_path), "flow", "run")
    assert result.returncode == 2
    assert "install segue[flows]" in result.stderr and "Traceback" not in result.stderr


def test_missing_extra_follows_the_cause_chain() -> None:
    try:
        try:
            raise ModuleNotFoundError("No module named 'matplotlib.pyplot'", name="matplotlib")
        except ModuleNotFoundError as inner:
            raise SegueError("could not draw the card") from inner
    except SegueError as outer:
        assert missing_extra(outer) == "reports"
    assert missing_extra(ModuleNotFoundError("x", name="not_an_extra")) is None
    assert missing_extra(ValueError("no module at all")) is None


def test_require_looks_modules_up_without_importing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require("reports", "charts")  # installed here: nothing raised
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(MissingExtra, match=r"install segue\[spark\] to use Spark ALS.*pyspark"):
        require("spark", "Spark ALS")

"""The README's "Using it" section, run as written: every command of every ```bash block.

Each block runs line by line in a fresh folder laid out like a clone (``docs/examples/`` copied
in, ``../shared`` pointing at the real shared folder), so relative paths in the README mean
what they mean to a reader, and the default data directory ``./segue-data`` is a new one.
``export NAME=VALUE`` lines change the environment of the lines after them, as in a shell.
The test's own environment differs from a reader's only where it must not touch anything
shared: its own Redis key prefix (``SEGUE_REDIS_PREFIX``), and a mail server and push gateway
of its own on loopback (``SEGUE_SMTP_*``, ``SEGUE_PUSH_URL``; the README's defaults are
``localhost:25`` and ``:8088``).

What does not run verbatim, and why:

* ``segue serve`` and ``segue worker`` run until stopped: the test starts the README line,
  waits for what it promises (``/v1/ready`` answering 200; the worker persisting the file's
  events and dead-lettering the bad one), then stops it with Ctrl-C (SIGINT). A serve line
  whose port is taken on this machine is skipped with that reason.
* ``segue nlu train`` (~10 min on 2 cores), ``segue nlu cv`` (~15 min a fold) and ``segue nlu
  cv-report`` (reads the folds' files), and ``segue nlu evaluate`` and ``segue ask``, which
  need what it trains: their ``--help`` must list every option the README gives them.
* The Last.fm block skips when ``../shared/datasets/lastfm-2k`` is absent.
* Outside "Using it": ``scripts/demo.sh`` builds the full-size demo world (minutes; its
  closing commands are run by ``tests/test_cli.py``), ``scripts/test.sh`` is the whole suite
  (this test included), ``scripts/lock.sh`` resolves the lock against PyPI and rewrites it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED = ROOT.parent / "shared"
VENV_BIN = Path(sys.executable).parent

#: Commands that train the request model (minutes) or need it or its folds: only parsed.
NEEDS_NLU_MODEL = {
    "segue nlu train": "fine-tunes MiniLM on SNIPS, ~10 min on 2 cores",
    "segue nlu cv": "a fold fine-tunes MiniLM, ~15 min of a core; cv-report reads the folds' files",
    "segue nlu evaluate": "needs the model `segue nlu train` makes",
    "segue ask": "needs the model `segue nlu train` makes",
}

#: What a line's output must show (``!text``: must not show), by a fragment of the line (the
#: line is matched with a newline after it, so "segue train\n" is the bare command alone),
#: beyond exit status 0 and no traceback.
EXPECT: dict[str, list[str]] = {
    "segue synth --users 300": ["300 users"],
    "import csv docs/examples/plays.csv": ["events"],
    "--default type=play --dry-run": ["48 of 48 rows would import as events", "nothing written"],
    "ml-style/u.item": ["encoding cp1252", "Crème Brûlée Nights (1995)", "| items | 0 | 12 | 0 |"],
    "--values gender=M:male": ["| users | 0 | 12 | 0 |"],
    '--positive "rating>=4"': ["| ease |", "NDCG@10"],
    "segue stats": ["events", "20,"],
    "--protocol random": ["report written to reports/eval"],
    "segue tune --models ease,als": ["settings saved to segue-data/tuned.json"],
    "segue train\n": ["trained hybrid", "tuned settings for ease, als"],
    "--protocol ratings --models": ["| blend |", "mean of models"],
    'search "first compas"': ["First Compass"],
    'similar "Breaking Storm"': ["listeners"],
    "recommend usr-0000001 --model hybrid": ["because you played"],
    'recommend new-listener --genre "indie rock"': ["matches what you picked"],
    "--kind podcast_episode": ["#", "!nothing to recommend"],
    "segue mixes": ["mix", "!no mixes for"],
    "--seed discovery": ["usr-0000001", "!empty station"],
    "--seed 'artist:": ["First Compass", "!empty station"],
    "segue wrapped usr-0000001": ["2024 Wrapped · usr-0000001", "card written to card.png"],
    "segue publish": ["published 5 events"],
    "events dead list": ["trk-999999"],
    "segue models list": ["daily"],
    "segue metrics online\n": ["als@", "artist-cap="],
    "experiments create artist-cap": ["draft, planned for 14 days"],
    "experiments report artist-cap": ["# Experiment artist-cap", "listeners"],
    "segue simulate --days 3": ["# Simulated experiment: als vs popularity", "as designed"],
    "segue users export": ["user.json"],
    "segue users delete": ["usr-0000001"],
    "segue nba simulate": ["impressions"],
    "segue nba send": ["campaign spring", "sent "],
    "segue songs songs": ["2 songs"],
    "segue import lyrics songs": ["2 lyrics stored"],
    "segue import audio songs": ["2 audio files stored"],
    "segue lyrics trk-000001 --at": ["word:", "!nothing sung"],
    "segue sing trk-000001": ["out.wav", "soft-mask"],
    "import lastfm-2k": ["17,632"],
    "segue recommend 2 --model als": ["because"],
    "segue wrapped 2": ["2011 Wrapped · 2"],
    "segue station 2": ["stations play tracks"],
}


@dataclass
class Block:
    """One ```bash block of the section: its commands, comments stripped, in order."""

    index: int
    lines: list[str] = field(default_factory=list)


def strip_comment(line: str) -> str:
    """The line without its trailing ``# comment`` (a ``#`` that starts a word outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def using_it_blocks(text: str | None = None) -> list[Block]:
    """The ```bash blocks of the README's "## Using it" section."""
    text = README.read_text(encoding="utf-8") if text is None else text
    start = text.index("## Using it")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else len(text)]
    blocks = []
    for n, body in enumerate(re.findall(r"```bash\n(.*?)```", section, flags=re.S)):
        block = Block(n)
        pending = ""
        for raw in body.splitlines():
            line = pending + strip_comment(raw)
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            if line.strip():
                block.lines.append(line.strip())
        blocks.append(block)
    return blocks


def command_of(line: str) -> list[str]:
    """The words of a line after its leading ``NAME=VALUE`` assignments."""
    words = shlex.split(line)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words.pop(0)
    return words


def expected(line: str) -> list[str]:
    found: list[str] = []
    for fragment, wants in EXPECT.items():
        if fragment in line + "\n":
            found += wants
    return found


# -- the world the commands run in --------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` (as uvicorn does: with SO_REUSEADDR, so the
    previous serve line's closed connections do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def sinks() -> Iterator[dict[str, str]]:
    """A mail server and a push gateway on loopback that accept everything."""
    from aiosmtpd.controller import Controller

    class Mailbox:
        async def handle_DATA(self, server, session, envelope) -> str:
            return "250 OK"

    class Gateway(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    smtp_port = free_port()
    controller = Controller(Mailbox(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=gateway.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "SEGUE_SMTP_HOST": "127.0.0.1",
            "SEGUE_SMTP_PORT": str(smtp_port),
            "SEGUE_PUSH_URL": f"http://127.0.0.1:{gateway.server_address[1]}/push",
        }
    finally:
        gateway.shutdown()
        controller.stop()


@dataclass
class Shell:
    """Where a block runs: a folder like a clone and the environment ``export`` changes."""

    cwd: Path
    env: dict[str, str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: list[tuple[str, float]] = field(default_factory=list)

    def run(self, line: str, timeout: float = 300) -> str:
        result = subprocess.run(
            ["bash", "-c", line],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"`{line}` exited {result.returncode}:\n{output[-3000:]}"
        return output

    def start(self, line: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["bash", "-c", line],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def data_dir(self) -> Path:
        return self.cwd / self.env.get("SEGUE_DATA_DIR", "segue-data")

    def count_events(self) -> int:
        with sqlite3.connect(self.data_dir() / "segue.sqlite") as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """SIGINT (Ctrl-C) for the command, then its output; its process group is killed if it
    does not stop in time. Only the command's own process is interrupted (bash runs a lone
    command in its place): ``serve --workers 2`` then stops its workers itself, as a process
    manager would have it, instead of each worker being interrupted wherever it is."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = proc.stdout.read() if proc.stdout else ""
    return out


def make_shell(tmp_path: Path, redis_prefix: str, sinks: dict[str, str]) -> Shell:
    clone = tmp_path / "segue"
    (clone / "docs").mkdir(parents=True)
    shutil.copytree(ROOT / "docs" / "examples", clone / "docs" / "examples")
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    env.update(sinks)
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "SEGUE_REDIS_PREFIX": redis_prefix,
            "COLUMNS": "160",
        }
    )
    return Shell(clone, env)


def run_serve(shell: Shell, line: str) -> None:
    words = command_of(line)
    port = int(words[words.index("--port") + 1]) if "--port" in words else 8000
    if not port_free(port):
        shell.skipped.append((line, f"port {port} is taken on this machine"))
        return
    proc = shell.start(line)
    output = ""
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"`{line}` stopped:\n{proc.stdout.read()[-3000:]}"  # type: ignore[union-attr]
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/v1/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"`{line}`: /v1/ready never answered 200"
            time.sleep(0.3)
        body = ready.json()
        assert body["ready"] and body["model"] == "als" and not body["fallback"], body
        users = httpx.get(f"http://127.0.0.1:{port}/v1/users/usr-0000001/recommendations")
        assert users.status_code == 200 and users.json()["items"], users.text
    finally:
        output = stop(proc)
    assert "Traceback" not in output, output[-3000:]


def run_worker(shell: Shell, line: str) -> None:
    before = shell.count_events()
    proc = shell.start(line)
    try:
        deadline = time.monotonic() + 60
        while shell.count_events() < before + 4:  # live.csv: 4 good events and a bad one
            assert proc.poll() is None, f"`{line}` stopped:\n{proc.stdout.read()[-3000:]}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"`{line}` did not persist live.csv's events"
            time.sleep(0.3)
    finally:
        output = stop(proc)
    assert shell.count_events() == before + 4
    assert "dead-lettered" in output and "trk-999999" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


def only_parsed(shell: Shell, line: str, reason: str) -> None:
    """A line the test does not run: its command exists and takes every option it is given."""
    words = command_of(line)
    command = words[1:3] if words[1] == "nlu" else words[1:2]
    helped = shell.run(" ".join(["segue", *command, "--help"]))
    for option in (w.split("=")[0] for w in words if w.startswith("--")):
        assert option in helped, f"`{line}`: {option} is not an option of it"
    shell.skipped.append((line, reason))


def run_block(shell: Shell, block: Block) -> None:
    for line in block.lines:
        started = time.perf_counter()
        run_line(shell, line)
        shell.seconds.append((line, time.perf_counter() - started))


def run_line(shell: Shell, line: str) -> None:
    words = command_of(line)
    if words[0] == "export":
        name, _, value = words[1].partition("=")
        shell.env[name] = value
        return
    assert words[0] == "segue", f"not a segue command: {line}"
    key = " ".join(w for w in words[:3] if not w.startswith("-"))
    reason = next((why for cmd, why in NEEDS_NLU_MODEL.items() if key.startswith(cmd)), None)
    if reason is not None:
        only_parsed(shell, line, reason)
    elif words[1] == "serve":
        run_serve(shell, line)
    elif words[1] == "worker" and "--once" not in words:
        run_worker(shell, line)
    else:
        output = shell.run(line)
        assert "Traceback" not in output, output[-3000:]
        assert output.strip(), f"`{line}` printed nothing"
        for want in expected(line):
            if want.startswith("!"):
                assert want[1:] not in output, f"`{line}`:\n{output[-3000:]}"
            else:
                assert want in output, f"`{line}` should show {want!r}:\n{output[-3000:]}"
        if "--png" in words:
            assert (shell.cwd / words[words.index("--png") + 1]).stat().st_size > 1000


# -- the tests ----------------------------------------------------------------------------------
def test_the_section_parses_into_the_blocks_the_tests_run() -> None:
    blocks = using_it_blocks()
    assert len(blocks) == 4
    lines = [line for b in blocks for line in b.lines]
    assert all(command_of(line)[0] in ("segue", "export") for line in lines), lines
    assert not [line for line in lines if re.search(r"\b[A-Z]+_ID\b|\.\.\.|\|", line)], (
        "placeholders (USER_ID, ID...) or alternatives (a | b) do not run as written"
    )
    assert strip_comment('segue ask "a # b" --user x   # why') == 'segue ask "a # b" --user x'
    chained = [line for line in lines if "&&" in line]
    assert chained == ["segue nba train && segue nba run --campaign spring && segue nba send"]


def test_using_it_runs_as_written(tmp_path: Path, redis_prefix: str, sinks: dict[str, str]) -> None:
    """The synthetic world block, then the next-best-action block, each in its own clone."""
    blocks = using_it_blocks()
    for block in blocks[:2]:
        shell = make_shell(tmp_path / f"block{block.index}", redis_prefix, sinks)
        run_block(shell, block)
        for line, reason in shell.skipped:
            print(f"not run: `{line}`: {reason}")
        for line, took in shell.seconds:
            print(f"{took:6.1f}s  {line}")
    export = json.loads((tmp_path / "block0" / "segue" / "user.json").read_text())
    assert export["user_id"] == "usr-0000001"


def test_lastfm_block_runs_as_written(
    tmp_path: Path, redis_prefix: str, sinks: dict[str, str]
) -> None:
    if not (SHARED / "datasets" / "lastfm-2k").is_dir():
        pytest.skip(f"Last.fm 2K dataset not found at {SHARED / 'datasets' / 'lastfm-2k'}")
    block = using_it_blocks()[2]
    assert any("lastfm-2k" in line for line in block.lines)
    run_block(make_shell(tmp_path, redis_prefix, sinks), block)


def test_ml_style_block_runs_as_written(
    tmp_path: Path, redis_prefix: str, sinks: dict[str, str]
) -> None:
    """A log as it comes: MovieLens-style raw files to an evaluation with CLI commands alone."""
    block = using_it_blocks()[3]
    assert any("ml-style/u.item" in line for line in block.lines)
    run_block(make_shell(tmp_path, redis_prefix, sinks), block)

"""Storing the served lists in a process of its own, for a serving process without Redis.

In the embedded mode the exposure log's records used to be stored by the worker thread of
the serving process itself. Storing a list is Python work (validating it, building the
insert: ~80 µs a list) done with the interpreter lock held, and a request arriving meanwhile
waits for it: measured on the 1M-listener world over HTTP at 300 req/s, that put about 4 ms
on the p99 of every answer, where publishing alone (Redis mode, `segue worker` processes
storing) costs ~0.1 ms. So here the serving process only encodes each list and writes it to
a pipe, and a child process (``python -m segue.serving.exposure_writer``) decodes, checks and
stores it with the stream's rules, as every worker does
(:func:`~segue.serving.worker.store_exposures`): idempotent by request id, a list served to
an erased listener dropped, a store outage waited out, a record the store refuses isolated
and dead-lettered after its attempts.

The two ends speak lines:

* to the child (stdin): one exposure's JSON per line; ``#flush <n>`` (store everything sent
  before, then answer); ``#stop`` (store what is held, then exit; so does end of input, when
  the serving process has gone);
* to the parent (stdout): ``{"dead": {...}}`` for a dead letter, kept in the serving
  process's dead letters beside the events' (listed, replayed and dropped there: a replay
  writes the payload to the pipe again) and ``{"flushed": n, "pending": k}``.

The child ignores SIGINT and SIGTERM (sent to the whole process group by Ctrl-C or a service
manager's stop): it stops when its input says so or ends. What the child held when it died
(killed outright) is lost, as what an in-process bus held is lost when its
process dies (the log is for measurement; the metrics report counts, not certainties). The
serving process notices on its next write and starts a new child; until then writes fail as
:class:`~segue.online.bus.BusUnavailable`, so the exposure log keeps buffering.

The child needs a store another process can open: a SQLite file or a server. An in-memory
SQLite store keeps the worker thread (``Settings.exposure_writer = "thread"`` chooses it
anyway).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import IO

from segue.online.bus import (
    BoxedDeadLetters,
    BusError,
    BusUnavailable,
    DeadLetter,
    DeadLetterBox,
    EventBus,
    Handler,
    InProcessBus,
    TransientFailure,
    describe_failure,
)
from segue.serving.exposures import EXPOSURE_CODEC, EXPOSURES_STREAM
from segue.store.exposures import Exposure

log = logging.getLogger(__name__)

#: The environment variable that hands the child its store's URL (not its command line,
#: where a password would show in ``ps``).
DATABASE_ENV = "SEGUE_EXPOSURE_WRITER_DATABASE_URL"
#: The group and consumer names the child stores under (in its dead letters).
GROUP, CONSUMER = "persist", "exposure-writer"


def shareable(database_url: str) -> bool:
    """Whether another process can open this store (not an in-memory SQLite database)."""
    url = database_url.strip()
    if not url.startswith("sqlite"):
        return True
    path = url.split("://", 1)[-1].lstrip("/")
    return bool(path) and ":memory:" not in url and "mode=memory" not in url


class ExposureWriter(BoxedDeadLetters, EventBus[Exposure]):
    """The serving process's end: publishing writes to the child's pipe (see the module
    docstring). The child is started on the first publish, and again after it died."""

    stream = EXPOSURES_STREAM
    codec = EXPOSURE_CODEC

    def __init__(
        self,
        database_url: str,
        *,
        busy_timeout_ms: int | None = None,
        statement_timeout_ms: int | None = None,
        max_attempts: int = 3,
        dead_letters: DeadLetterBox | None = None,
        on_dead: Callable[[DeadLetter], None] | None = None,
        restart_s: float = 5.0,
    ) -> None:
        self._url = database_url
        #: a child that exited is started again at most this often (one that cannot open
        #: its store would otherwise be started on every write)
        self.restart_s = restart_s
        self._started_at = float("-inf")
        self._args = ["--max-attempts", str(max_attempts)]
        if busy_timeout_ms is not None:
            self._args += ["--busy-timeout-ms", str(busy_timeout_ms)]
        if statement_timeout_ms is not None:
            self._args += ["--statement-timeout-ms", str(statement_timeout_ms)]
        self.dead_box = dead_letters if dead_letters is not None else DeadLetterBox()
        self._on_dead = on_dead
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one writer on the pipe at a time
        self._answers: dict[int, int] = {}  # flush token -> lists the child still held
        self._answered = threading.Condition()
        self._tokens = itertools.count(1)
        self._closed = False

    # -- the pipe ------------------------------------------------------------------------
    def _child(self) -> subprocess.Popen[bytes]:
        """The running child, started if there is none (under ``_lock``)."""
        if self._closed:
            raise BusUnavailable("the exposure writer is closed")
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return proc
        if proc is not None:
            wait_s = self._started_at + self.restart_s - time.monotonic()
            if wait_s > 0:
                raise BusUnavailable(
                    f"the exposure writer exited (code {proc.returncode}); "
                    f"starting another in {wait_s:.1f} s"
                )
            log.warning(
                "exposure writer exited (code %s); starting another (what it held is lost)",
                proc.returncode,
            )
        env = {**os.environ, DATABASE_ENV: self._url}
        command = [sys.executable, "-m", "segue.serving.exposure_writer", *self._args]
        try:
            # a session of its own: a terminal's Ctrl-C does not reach it (see main())
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise BusUnavailable(f"cannot start the exposure writer: {exc}") from exc
        assert proc.stdout is not None
        threading.Thread(
            target=self._read_answers, args=(proc.stdout,), name="exposure-writer", daemon=True
        ).start()
        self._proc, self._started_at = proc, time.monotonic()
        return proc

    def _write(self, data: bytes) -> None:
        with self._lock:
            proc = self._child()
            assert proc.stdin is not None
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError) as exc:
                raise BusUnavailable(f"the exposure writer is not running ({exc})") from exc

    def _read_answers(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            try:
                answer = json.loads(line)
                if "dead" in answer:
                    self._bury(DeadLetter(**answer["dead"]))
                elif "flushed" in answer:
                    with self._answered:
                        self._answers[int(answer["flushed"])] = int(answer["pending"])
                        self._answered.notify_all()
            except Exception as exc:  # a line we cannot read must not stop the others
                log.warning("exposure writer: unreadable answer %r (%s)", line[:200], exc)
        with self._answered:  # the child is gone: whoever waits for an answer stops waiting
            self._answered.notify_all()

    def _bury(self, letter: DeadLetter) -> None:
        letter = self.dead_box.bury(letter, letter.payload, self)
        log.warning(
            "served list %s dead-lettered as %s after %d attempt(s): %s",
            letter.message_id,
            letter.id,
            letter.attempts,
            letter.error,
        )
        if self._on_dead is not None:
            self._on_dead(letter)

    # -- EventBus ------------------------------------------------------------------------
    def publish(self, events: Sequence[Exposure | str]) -> int:
        """Write the lists to the child; a ``str`` is a payload as it was published (a dead
        letter's, replayed). :class:`BusUnavailable` when the child cannot be reached."""
        if not events:
            return 0
        lines = [e if isinstance(e, str) else self.codec.encode(e) for e in events]
        # a payload is JSON, whose text never holds a raw line break; a replayed one that
        # does (it was never valid) is made one line so that it fails alone
        data = "".join(line.replace("\n", " ") + "\n" for line in lines).encode()
        self._write(data)
        return len(lines)

    def sync(self, timeout_s: float = 10.0) -> int:
        """Wait until the child has stored (or dead-lettered) every list written before;
        returns how many it still held (a store outage), or -1 if it did not answer."""
        if self._proc is None:
            return 0
        token = next(self._tokens)
        try:
            self._write(f"#flush {token}\n".encode())
        except BusUnavailable:
            return -1
        proc = self._proc
        deadline = time.monotonic() + timeout_s
        with self._answered:
            while token not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or proc is None or proc.poll() is not None:
                    return -1
                self._answered.wait(min(left, 0.5))
            return self._answers.pop(token)

    def consume(
        self,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        max_batch: int = 500,
        block_ms: int | None = None,
    ) -> int:
        raise BusError("the exposure writer's lists are consumed by its own process")

    def reclaim(self, group: str, consumer: str, min_idle_ms: int) -> int:
        return 0

    def pending(self, group: str) -> int:
        return 0

    def close(self, timeout_s: float = 10.0) -> None:
        """Let the child store what it holds and exit (killed after ``timeout_s``)."""
        with self._lock:
            self._closed = True
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.write(b"#stop\n")
            proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("exposure writer did not finish in %.0f s; killed", timeout_s)
            proc.kill()
            proc.wait()


# -- the child ------------------------------------------------------------------------------


def _serve(stdin: IO[bytes], send: Callable[[dict], None], store_url: str, args) -> int:
    """The child's loop: read lines on a thread, store on this one (see the module
    docstring); returns the exit code."""
    from segue.serving.worker import store_exposures
    from segue.store import open_store

    options = {} if args.busy_timeout_ms is None else {"busy_timeout_ms": args.busy_timeout_ms}
    store = open_store(store_url, statement_timeout_ms=args.statement_timeout_ms, **options)
    bus: InProcessBus[Exposure] = InProcessBus(
        None,
        stream=EXPOSURES_STREAM,
        codec=EXPOSURE_CODEC,
        keep_delivered=False,
        max_attempts=args.max_attempts,
        on_dead=lambda letter: send({"dead": asdict(letter)}),
    )
    controls: queue.Queue[bytes] = queue.Queue()
    received = itertools.count(1)

    def read() -> None:
        for line in stdin:
            if line.startswith(b"#"):
                controls.put(line.strip())
                continue
            number = next(received)
            try:
                bus.publish([EXPOSURE_CODEC.decode(line)])
            except Exception as exc:  # not a list the log stores: no attempt will change it
                error = f"not a valid {EXPOSURE_CODEC.name}: {describe_failure(exc)}"
                letter = DeadLetter(
                    id="",
                    message_id=f"received-{number}",
                    group=GROUP,
                    consumer=CONSUMER,
                    attempts=1,
                    error=error,
                    dead_at_ms=int(time.time() * 1000),
                    payload=line.decode("utf-8", "replace").rstrip("\n"),
                    stream=EXPOSURES_STREAM,
                )
                send({"dead": asdict(letter)})
        controls.put(b"#eof")

    def handle(lists: list[Exposure]) -> None:
        store_exposures(store, lists)

    def store_some(block_ms: int | None) -> bool:
        """One batch; False when a store outage stopped it (the batch stays pending)."""
        try:
            bus.consume(GROUP, CONSUMER, handle, block_ms=block_ms)
        except TransientFailure as exc:
            log.warning("waiting for the store: %s", exc)
            return False
        return True

    def drain() -> int:
        """Store everything held now; returns what is left (a store outage)."""
        while bus.pending(GROUP) or bus.unread(GROUP):
            if not store_some(None):
                break
        return bus.pending(GROUP) + bus.unread(GROUP)

    threading.Thread(target=read, name="exposure-reader", daemon=True).start()
    try:
        while True:
            try:
                control = controls.get_nowait()
            except queue.Empty:
                if not store_some(50):
                    time.sleep(1.0)
                continue
            if control.startswith(b"#flush"):
                send({"flushed": int(control.split()[1]), "pending": drain()})
            elif control in (b"#stop", b"#eof"):
                left = drain()
                if left:
                    log.warning("exiting with %d served list(s) not stored", left)
                return 0
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m segue.serving.exposure_writer")
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--busy-timeout-ms", type=int, default=None)
    parser.add_argument("--statement-timeout-ms", type=int, default=None)
    args = parser.parse_args(argv)
    url = os.environ.pop(DATABASE_ENV, "")
    if not url:
        print(f"exposure writer: {DATABASE_ENV} is not set", file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="segue exposure writer: %(message)s"
    )
    # Ctrl-C in a terminal and a service manager's stop (systemd, Docker) signal the whole
    # process group: the child would die holding lists its parent has written and not yet
    # seen stored. Its life follows the pipe instead: "#stop" from the parent's shutdown,
    # or end of input when the parent has gone, however it went; it stores what it holds
    # first either way.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    out = sys.stdout
    out_lock = threading.Lock()

    def send(answer: dict) -> None:
        with out_lock:
            out.write(json.dumps(answer) + "\n")
            out.flush()

    sys.stdout = sys.stderr  # nothing else may write on the answers' pipe
    return _serve(sys.stdin.buffer, send, url, args)


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # not sys.exit: the reader thread may still wait on stdin, and an interpreter shutting
    # down around a thread blocked in a buffered read can abort
    os._exit(code)

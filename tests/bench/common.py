"""What every benchmark shares: figures, statistics, child processes, temp folders, raw clients.

The clients here are bare pyzmq sockets with pre-encoded requests, not the project's client
library, so that the client's own cost stays small and equal for the daemon and for its floor.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import msgspec
import zmq

from .corpus import DEFAULT_ID, write_assistants

T = TypeVar("T")
Context = zmq.Context[zmq.Socket[bytes]]
Socket = zmq.Socket[bytes]

BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# A daemon that stops answering fails the benchmark after this long instead of hanging it.
REPLY_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Figure:
    """One measured figure and its target, e.g. a ratio to a floor or a size in MB."""

    name: str
    value: float
    target: float
    unit: str = "x"
    versus: str = ""
    higher_is_better: bool = False

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    @property
    def target_text(self) -> str:
        return f"{'>=' if self.higher_is_better else '<='} {self.target:g}{self.unit}"

    @property
    def value_text(self) -> str:
        return f"{self.value:.2f}{self.unit}{f' {self.versus}' if self.versus else ''}"

    def line(self) -> str:
        verdict = "ok" if self.met else "MISSED"
        return f"{self.name}: {self.value_text} (target {self.target_text})  {verdict}"


@dataclass(frozen=True)
class Reported(Figure):
    """A figure printed for what it shows, with no target to meet."""

    @property
    def met(self) -> bool:
        return True

    @property
    def target_text(self) -> str:
        return "none"


def report(figures: Sequence[Figure]) -> None:
    for figure in figures:
        print(f"  => {figure.line()}", flush=True)


def heading(title: str) -> None:
    print(f"\n== {title}", flush=True)


def detail(text: str) -> None:
    print(f"   {text}", flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p99(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def alternate(rounds: int, *measures: Callable[[], T]) -> list[list[T]]:
    """Run every measure once per round, rotating which goes first.

    The machines are shared: load that comes and goes then lands on every measure alike, and
    none of them always runs right after another one warmed (or cooled) the caches.
    """
    results: list[list[T]] = [[] for _ in measures]
    for round_number in range(rounds):
        shift = round_number % len(measures)
        for position in [*range(shift, len(measures)), *range(shift)]:
            results[position].append(measures[position]())
    return results


@contextmanager
def temp_dir(prefix: str = "adb-") -> Iterator[Path]:
    """A private folder with a short path (a Unix socket path holds at most 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Child:
    """A child process; a thread drains its stderr, notes a ``ready`` log line, keeps the tail.

    Draining matters: a child that logs into a full pipe would block and skew the timing.
    """

    def __init__(self, argv: Sequence[str | Path], *, stdout: int = subprocess.DEVNULL) -> None:
        self.argv = [str(part) for part in argv]
        self.process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE
        )
        self.pid = self.process.pid
        self.tail: deque[str] = deque(maxlen=30)
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.tail.append(line)
            if not self._ready.is_set() and _is_ready(line):
                self._ready.set()
        self._ready.set()  # wakes wait_ready() when the child exits without being ready

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            raise RuntimeError(f"{self.argv[0]} did not get ready:\n{self.last_words()}")

    def last_words(self) -> str:
        return "\n".join(self.tail) or "(nothing on stderr)"

    def stop(self) -> None:
        """SIGTERM (the daemon shuts down cleanly on it), then SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()


def _is_ready(line: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("event") == "ready"


@contextmanager
def serving(argv: Sequence[str | Path]) -> Iterator[Child]:
    """A server process, from the moment it logs ``ready`` until the block ends."""
    child = Child(argv)
    try:
        child.wait_ready()
        yield child
    finally:
        child.stop()


def command_endpoint(runtime_dir: Path) -> str:
    return f"ipc://{runtime_dir}/command.sock"


def daemon_argv(root: Path, runtime_dir: Path) -> list[str | Path]:
    executable = Path(PYTHON).with_name("assistantd")
    entry: list[str | Path] = (
        [executable] if executable.exists() else [PYTHON, "-m", "assistantd.daemon"]
    )
    return [*entry, "--root", root, "--runtime-dir", runtime_dir, "--log-format", "json"]


def echo_argv(endpoint: str, result_file: Path) -> list[str | Path]:
    return [PYTHON, BENCH_DIR / "echo.py", endpoint, result_file]


@contextmanager
def zmq_context() -> Iterator[Context]:
    context: Context = zmq.Context()
    try:
        yield context
    finally:
        context.destroy(linger=0)


def connect(context: Context, kind: int, endpoint: str) -> Socket:
    socket = context.socket(kind)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVTIMEO, REPLY_TIMEOUT_MS)
    socket.connect(endpoint)
    return socket


def request_body(method: str, params: dict[str, Any], request_id: int | str = 1) -> bytes:
    return json.dumps({"id": request_id, "method": method, "params": params}).encode()


def call(socket: Socket, body: bytes) -> dict[str, Any]:
    """One request on a REQ socket; the reply decoded, or RuntimeError if it is an error."""
    socket.send(body)
    reply: dict[str, Any] = json.loads(socket.recv())
    if "result" not in reply:
        raise RuntimeError(f"the request {body!r} failed: {reply}")
    return reply


def round_trips(socket: Socket, body: bytes, count: int) -> list[float]:
    """``count`` round trips of ``body`` on a REQ socket, each in microseconds."""
    send, recv, clock = socket.send, socket.recv, time.perf_counter_ns
    samples = [0] * count
    for position in range(count):
        start = clock()
        send(body)
        recv()
        samples[position] = clock() - start
    return [sample / 1000 for sample in samples]


def rss_mb(pid: int) -> tuple[float, float]:
    """The resident set size of a process and its peak (VmRSS, VmHWM), in MB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024  # the kernel writes kB
    return fields["VmRSS"], fields["VmHWM"]


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds the `with` blocks, which stop the children and remove the temp folders.
    raise SystemExit(128 + signum)


def exit_cleanly_on_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)


def machine_summary() -> str:
    return (
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs (nproc "
        f"{len(os.sched_getaffinity(0))}), Python {sys.version.split()[0]}, "
        f"pyzmq {zmq.pyzmq_version()} / libzmq {zmq.zmq_version()}"
    )


def run_alone(run: Callable[[], list[Figure]]) -> None:
    """The entry point of one benchmark run as ``python -m tests.bench.NAME``."""
    exit_cleanly_on_signals()
    print(machine_summary(), flush=True)
    figures = run()
    missed = [figure for figure in figures if not figure.met]
    print(f"\n{len(figures) - len(missed)} of {len(figures)} targets met", flush=True)
    # A benchmark is a measurement: a missed target is reported above, not an exit status.
    sys.exit(0)


class _ResultOnly(msgspec.Struct):
    result: msgspec.Raw


def fetch_result(socket: Socket, body: bytes) -> bytes:
    """The ``result`` of one reply exactly as the daemon encoded it (to hand to the echo floor)."""
    call(socket, body)  # raises if the reply is an error
    socket.send(body)
    return bytes(msgspec.json.decode(socket.recv(), type=_ResultOnly).result)


@dataclass(frozen=True)
class Pair:
    """A daemon and its echo floor, both serving the same getAssistant reply."""

    daemon: str
    echo: str
    request: bytes
    reply_bytes: int


@contextmanager
def daemon_and_echo(assistants: int = 100) -> Iterator[Pair]:
    """A daemon on a folder of ``assistants``, and the echo floor replying with its ``jan``."""
    with temp_dir() as base, zmq_context() as context:
        root = base / "root"
        write_assistants(root, assistants)
        with serving(daemon_argv(root, base / "run")):
            daemon = command_endpoint(base / "run")
            request = request_body("getAssistant", {"assistant_id": DEFAULT_ID})
            probe = connect(context, zmq.REQ, daemon)
            result = fetch_result(probe, request)
            probe.close()
            result_file = base / "result.json"
            result_file.write_bytes(result)
            echo = f"ipc://{base}/echo.sock"
            with serving(echo_argv(echo, result_file)):
                yield Pair(daemon, echo, request, len(result))

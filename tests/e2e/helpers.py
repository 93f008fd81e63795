"""Helpers of the end-to-end tests: raw ZeroMQ exchanges, daemons started with a chosen
environment, and a look at the files around a root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from tests.utils import DaemonProcess, LogLine, daemon_command, short_dir

REPLY_TIMEOUT = 5.0


def exchange(
    context: zmq.Context[zmq.Socket[bytes]],
    endpoint: str,
    frames: list[bytes],
    *,
    kind: int = zmq.DEALER,
    timeout: float = REPLY_TIMEOUT,
) -> list[bytes]:
    """Send ``frames`` from a fresh socket of ``kind``; the frames of the reply.

    Fails (never hangs) when no reply comes within ``timeout``.
    """
    socket = context.socket(kind)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(endpoint)
        socket.send_multipart(frames)
        if not socket.poll(int(timeout * 1000), zmq.POLLIN):
            raise AssertionError(f"no reply to {_short(frames)} within {timeout}s")
        return socket.recv_multipart()
    finally:
        socket.close(linger=0)


def request_body(request_id: Any, method: str, params: Any = None) -> bytes:
    body: dict[str, Any] = {"id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return json.dumps(body).encode()


def reply_of(frames: list[bytes]) -> dict[str, Any]:
    """The JSON reply body (the last frame)."""
    reply = json.loads(frames[-1])
    assert isinstance(reply, dict), reply
    return reply


def _short(frames: list[bytes]) -> list[bytes]:
    return [frame[:80] for frame in frames]


def log_mark(daemon: DaemonProcess) -> int:
    """A position in the daemon's log: :func:`wait_for_new_log` looks only after it."""
    return len(daemon.logs)


def wait_for_new_log(
    daemon: DaemonProcess,
    mark: int,
    predicate: Callable[[LogLine], bool],
    timeout: float = REPLY_TIMEOUT,
) -> LogLine:
    """The first log line after ``mark`` that satisfies ``predicate``."""
    # The log only grows, so the lines after `mark` are exactly those not among the first ones.
    earlier = {id(line) for line in daemon.logs[:mark]}
    return daemon.wait_for_log(lambda line: id(line) not in earlier and predicate(line), timeout)


def clean_env(**changes: str | None) -> dict[str, str]:
    """This process's environment without assistantd's and XDG's own variables, then
    ``changes`` (None removes a variable)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ASSISTANTD_", "XDG_"))
    }
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass
class Exit:
    """How a daemon that was expected to refuse to start ended."""

    returncode: int
    logs: list[LogLine]
    stderr: str

    def reasons(self) -> str:
        return " ".join(str(line.get("reason", "")) for line in self.logs)


def run_to_exit(
    args: tuple[str, ...], *, env: Mapping[str, str] | None = None, timeout: float = 15.0
) -> Exit:
    """Run ``assistantd ARGS`` to its end (it is expected to end by itself)."""
    try:
        done = subprocess.run(
            daemon_command(*args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"assistantd {args} did not exit within {timeout}s") from exc
    stderr = done.stderr.decode(errors="replace")
    logs: list[LogLine] = []
    for raw in stderr.splitlines():
        try:
            logs.append(json.loads(raw))
        except ValueError:
            logs.append({"event": raw, "level": "raw"})
    return Exit(done.returncode, logs, stderr)


@contextmanager
def short_tmp(prefix: str = "ad-") -> Iterator[Path]:
    """A fresh folder with a short path (for Unix sockets), removed afterwards."""
    path = short_dir(prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tree(path: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every entry under ``path``: its (mode, mtime_ns, content for files) by relative path."""
    found: dict[str, tuple[int, int, bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            info = full.lstat()
            content = full.read_bytes() if full.is_file() and not full.is_symlink() else None
            found[str(full.relative_to(path))] = (info.st_mode, info.st_mtime_ns, content)
    return found


def write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False))


Event = dict[str, Any]
"""One event as its JSON frame holds it."""


class EventStream:
    """A SUB socket on every event of a daemon; waits for its own ``daemon.welcome`` first, so
    nothing the test does afterwards is missed. Heartbeats are left out; every wait has
    ``timeout`` seconds unless it says otherwise."""

    def __init__(
        self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str, *, timeout: float
    ) -> None:
        self.timeout = timeout
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.socket.subscribe(b"")
        self.next(
            lambda event: event["topic"] == "daemon.welcome" and event["subscription"] == "",
            what="the welcome",
        )

    def close(self) -> None:
        self.socket.close(linger=0)

    def receive(self, timeout: float) -> Event:
        """The next event but a heartbeat; AssertionError if none comes within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.socket.poll(int(left * 1000), zmq.POLLIN):
                raise AssertionError(f"no event within {timeout}s")
            topic, body = self.socket.recv_multipart()
            event: Event = json.loads(body)
            assert event["topic"] == topic.decode() or event["topic"] == "daemon.welcome", event
            if event["topic"] != "daemon.heartbeat":
                return event

    def next(
        self,
        wanted: Callable[[Event], bool],
        *,
        what: str,
        seen: Sequence[Event] = (),
        timeout: float | None = None,
    ) -> Event:
        """The first event that is ``wanted``, among ``seen`` (events read already) or else
        from the stream; the others on the way are dropped."""
        for event in seen:
            if wanted(event):
                return event
        return self.until(wanted, what=what, timeout=timeout)[-1]

    def until(
        self,
        wanted: Callable[[Event], bool],
        *,
        what: str,
        about: str | None = None,
        timeout: float | None = None,
    ) -> list[Event]:
        """The events (of the assistant ``about`` only, if given) up to the first ``wanted``
        one, that one included."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        seen: list[Event] = []
        while True:
            left = deadline - time.monotonic()
            try:
                event = self.receive(left) if left > 0 else None
            except AssertionError:
                event = None
            if event is None:
                raise AssertionError(f"{what} did not come within {timeout}s; saw {seen}")
            if about is not None and subject(event) != about:
                continue
            seen.append(event)
            if wanted(event):
                return seen

    def move(self, assistant_id: str, previous: str, now: str) -> list[Event]:
        """The assistant's events up to its move from ``previous`` to ``now``."""
        return self.until(
            lambda event: is_move(event, previous, now),
            what=f"{assistant_id}: {previous} -> {now}",
            about=assistant_id,
        )


def subject(event: Event) -> str | None:
    """The id of the assistant an event is about, if any."""
    if "assistant" in event:
        return str(event["assistant"]["id"])
    return event.get("assistant_id")


def is_move(event: Event, previous: str, now: str) -> bool:
    """Whether ``event`` is the move of an assistant from ``previous`` to ``now``."""
    if event["topic"] != "assistant.state":
        return False
    return bool(event["previous"] == previous and event["assistant"]["state"] == now)

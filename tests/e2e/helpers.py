"""Helpers of the end-to-end tests: raw ZeroMQ exchanges, daemons started with a chosen
environment, and a look at the files around a root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
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

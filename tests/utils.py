"""Helpers for tests that run a real daemon process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

LogLine = dict[str, Any]


def short_dir(prefix: str = "ad-") -> Path:
    """A fresh private folder with a short path: Unix socket paths hold at most 107 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@dataclass
class DaemonProcess:
    """A daemon started by :func:`running_daemon`, with its log lines as they arrive."""

    root: Path
    runtime_dir: Path
    process: subprocess.Popen[bytes]
    logs: list[LogLine] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def command(self) -> str:
        return f"ipc://{self.runtime_dir}/command.sock"

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": raw.decode(errors="replace").rstrip(), "level": "raw"}
            with self._changed:
                self.logs.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_log(self, predicate: Callable[[LogLine], bool], timeout: float = 10.0) -> LogLine:
        """The first log line that satisfies ``predicate``, waiting for it up to ``timeout``."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.logs[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.logs)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and seen == len(self.logs)):
                    raise AssertionError(
                        f"no such log line within {timeout}s; the daemon logged: {self.logs}"
                    )
                self._changed.wait(min(remaining, 0.5))

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("the daemon did not stop on SIGTERM") from None


def daemon_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "assistantd.daemon", *args]


@contextmanager
def spawned_daemon(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    root: Path,
    runtime_dir: Path,
    ready_timeout: float = START_TIMEOUT,
    stop_timeout: float = STOP_TIMEOUT,
    wrapper: Sequence[str] = (),
) -> Iterator[DaemonProcess]:
    """Start ``assistantd ARGS`` with exactly ``env``; wait for ``ready``; stop it on the way out.

    ``root`` and ``runtime_dir`` are where the daemon is expected to serve (the caller's args
    or env put it there). A stop that fails is reported only when the test itself did not fail
    already, so that the first failure is the one shown. ``wrapper`` is a command that runs
    the daemon's command line (and must exec it, so that signals reach the daemon).
    """
    process = subprocess.Popen(
        [*wrapper, *daemon_command(*args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(env),
    )
    daemon = DaemonProcess(root, runtime_dir, process)
    reader = threading.Thread(target=daemon._collect, daemon=True)
    reader.start()
    try:
        daemon.wait_for_log(lambda line: line.get("event") == "ready", ready_timeout)
        yield daemon
    except BaseException:
        _end(process, stop_timeout)
        raise
    else:
        daemon.stop(stop_timeout)
    finally:
        _end(process, 0)
        reader.join(5)
        if process.stderr is not None:
            process.stderr.close()


def _end(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; nothing if the process has ended."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_daemon(
    root: Path,
    *,
    runtime_dir: Path | None = None,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    wrapper: Sequence[str] = (),
) -> Iterator[DaemonProcess]:
    """Start ``assistantd`` as a real process on ``root``; wait until it logs ``ready``."""
    own_runtime = runtime_dir is None
    runtime_dir = runtime_dir or short_dir()
    standard = ("--root", str(root), "--runtime-dir", str(runtime_dir))
    logging = ("--log-format", "json", "--log-level", "debug")
    try:
        with spawned_daemon(
            (*standard, *logging, *args),
            env={**os.environ, **(env or {})},
            root=root,
            runtime_dir=runtime_dir,
            wrapper=wrapper,
        ) as daemon:
            yield daemon
    finally:
        if own_runtime:
            shutil.rmtree(runtime_dir, ignore_errors=True)

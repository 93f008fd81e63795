"""The runtime dir and the locks that keep two daemons from sharing one root or one endpoint."""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Collection
from pathlib import Path

from assistantd.protocol.endpoints import ipc_path_problem

from .config import ConfigError, Settings

ROOT_LOCK = ".lock"
RUNTIME_LOCK = "assistantd.pid"


def prepare_runtime_dir(path: Path) -> None:
    """Create the runtime dir private (0700), or refuse one that others could get into.

    The sockets in it answer every command, so a folder that another user can open, or that
    another user owns, is refused rather than used (as ssh-agent and systemd do).
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise ConfigError(f"cannot create runtime dir {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"runtime dir {path} is not a directory")
    if info.st_uid != os.getuid():
        raise ConfigError(
            f"runtime dir {path} belongs to uid {info.st_uid}, not to this user ({os.getuid()})"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"runtime dir {path} has mode {mode:04o}; it must be private (0700): "
            f"run 'chmod 700 {path}' or choose another --runtime-dir"
        )


def check_endpoints(settings: Settings) -> None:
    for name, endpoint in (("command", settings.command), ("events", settings.events)):
        if endpoint.startswith("tcp://"):
            continue  # served with CURVE, or explicitly without: see security.prepare_tcp
        if not endpoint.startswith("ipc://"):
            raise ConfigError(f"--{name} {endpoint}: only ipc:// and tcp:// endpoints are served")
        if endpoint.startswith("ipc://@"):
            # An abstract socket has no file, so no permission keeps anyone out.
            raise ConfigError(
                f"--{name} {endpoint}: abstract sockets (ipc://@...) can be reached by every "
                f"user of this machine; use a path in the private runtime dir"
            )
        if problem := ipc_path_problem(endpoint):
            raise ConfigError(f"--{name}: {problem}")


def remove_socket_files(settings: Settings, keep: Collection[str] = ()) -> None:
    """Remove the daemon's ipc socket files but those of ``keep`` (call while holding the
    runtime dir's lock)."""
    for endpoint in (settings.command, settings.events):
        if endpoint.startswith("ipc://") and endpoint not in keep:
            Path(endpoint.removeprefix("ipc://")).unlink(missing_ok=True)


class Lock:
    """An exclusive ``flock`` on a file that holds the owner's pid, released on close.

    The kernel drops the lock when the process dies, so a crash never leaves a stale lock.
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(f"another assistantd (pid {owner}) is already using {what}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

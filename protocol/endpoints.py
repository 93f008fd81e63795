"""Where a daemon lives: the default paths and endpoints, as pure functions of the environment.

The daemon and every client find each other with these same rules (PROTOCOL.md, "Finding the
daemon"), so that `assistantctl` reaches a daemon started with the same environment. Paths are
plain strings: `assistantctl` uses this module and pathlib would add to its start-up time.
"""

from __future__ import annotations

import os.path
from collections.abc import Mapping

COMMAND_SOCKET = "command.sock"
EVENTS_SOCKET = "events.sock"

ENV_ROOT = "ASSISTANTD_ROOT"
ENV_RUNTIME_DIR = "ASSISTANTD_RUNTIME_DIR"

# sun_path in sockaddr_un holds 108 bytes, NUL included.
IPC_PATH_MAX_BYTES = 107


def _xdg(env: Mapping[str, str], name: str) -> str | None:
    """An XDG base directory variable, or None: the spec says to ignore relative ones."""
    value = env.get(name)
    return value if value and value.startswith("/") else None


def default_root(env: Mapping[str, str], home: str) -> str:
    """``$ASSISTANTD_ROOT``, else ``$XDG_DATA_HOME/assistantd/assistants``, else under ~/.local.

    >>> default_root({}, "/home/ada")
    '/home/ada/.local/share/assistantd/assistants'
    """
    if explicit := env.get(ENV_ROOT):
        return explicit
    data_home = _xdg(env, "XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return os.path.join(data_home, "assistantd", "assistants")


def temp_dir(env: Mapping[str, str]) -> str:
    """The system's temp dir as ``tempfile`` finds it (``$TMPDIR``, ``$TEMP``, ``$TMP``, else
    ``/tmp``), without importing ``tempfile``, which would slow every `assistantctl` call.

    >>> temp_dir({"TMPDIR": "/var/tmp"}), temp_dir({})
    ('/var/tmp', '/tmp')
    """
    for name in ("TMPDIR", "TEMP", "TMP"):
        if (value := env.get(name)) and value.startswith("/"):
            return value
    return "/tmp"  # noqa: S108 - the fallback every Unix has, as in tempfile


def default_runtime_dir(env: Mapping[str, str], uid: int, tmp: str) -> str:
    """``$ASSISTANTD_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/assistantd``, else a private
    folder for this user under the temp dir.

    >>> default_runtime_dir({"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000, "/tmp")
    '/run/user/1000/assistantd'
    >>> default_runtime_dir({}, 1000, "/tmp")
    '/tmp/assistantd-1000'
    """
    if explicit := env.get(ENV_RUNTIME_DIR):
        return explicit
    if xdg := _xdg(env, "XDG_RUNTIME_DIR"):
        return os.path.join(xdg, "assistantd")
    return os.path.join(tmp, f"assistantd-{uid}")


def default_config_file(env: Mapping[str, str], home: str) -> str:
    """``$XDG_CONFIG_HOME/assistantd/config.toml``, else under ``~/.config``."""
    config_home = _xdg(env, "XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return os.path.join(config_home, "assistantd", "config.toml")


def ipc_endpoint(path: str | os.PathLike[str]) -> str:
    """The ZeroMQ endpoint of a Unix socket path.

    >>> ipc_endpoint("/run/user/1000/assistantd/command.sock")
    'ipc:///run/user/1000/assistantd/command.sock'
    """
    return f"ipc://{path}"


def ipc_path_problem(endpoint: str) -> str | None:
    """Why an ``ipc://`` endpoint cannot be bound, or None (other transports pass)."""
    if not endpoint.startswith("ipc://"):
        return None
    path = endpoint.removeprefix("ipc://")
    if len(path.encode()) > IPC_PATH_MAX_BYTES:
        return (
            f"the socket path {path!r} is {len(path.encode())} bytes; Unix sockets allow "
            f"{IPC_PATH_MAX_BYTES}: choose a shorter --runtime-dir"
        )
    return None

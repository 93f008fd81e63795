"""Finding the daemon's endpoints (commands, events) the way the daemon chose them."""

from __future__ import annotations

import os
from collections.abc import Mapping

from assistantd.protocol.endpoints import (
    COMMAND_SOCKET,
    EVENTS_SOCKET,
    default_runtime_dir,
    ipc_endpoint,
    temp_dir,
)
from assistantd.protocol.errors import UnavailableError


def command_endpoint(
    *,
    command: str | None = None,
    runtime_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """``command`` if given, else ``command.sock`` in ``runtime_dir`` or the default runtime dir
    (``$ASSISTANTD_RUNTIME_DIR``, ``$XDG_RUNTIME_DIR/assistantd``, ``/tmp/assistantd-$UID``)."""
    if command:
        return command
    return _in_runtime_dir(COMMAND_SOCKET, runtime_dir, env)


def events_endpoint(
    *,
    events: str | None = None,
    runtime_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """``events`` if given, else ``events.sock`` beside ``command.sock`` (see
    :func:`command_endpoint`).

    >>> events_endpoint(runtime_dir="/run/user/1000/assistantd")
    'ipc:///run/user/1000/assistantd/events.sock'
    """
    if events:
        return events
    return _in_runtime_dir(EVENTS_SOCKET, runtime_dir, env)


def _in_runtime_dir(
    name: str, runtime_dir: str | os.PathLike[str] | None, env: Mapping[str, str] | None
) -> str:
    if runtime_dir is None:
        env = os.environ if env is None else env
        found = default_runtime_dir(env, os.getuid(), temp_dir(env))
    else:
        found = os.fspath(runtime_dir)
    return ipc_endpoint(os.path.join(os.path.abspath(found), name))


def check_reachable(endpoint: str) -> None:
    """Fail at once, with a useful message, when an ipc endpoint has no socket file.

    ZeroMQ would otherwise wait for a peer to appear, and the caller would only learn of the
    problem when its timeout ran out.
    """
    if endpoint.startswith("ipc://"):
        path = endpoint.removeprefix("ipc://")
        if not os.path.exists(path):
            raise UnavailableError(
                f"No daemon is listening at {endpoint} (no socket file). Is assistantd "
                f"running, with the same --runtime-dir or ASSISTANTD_RUNTIME_DIR?",
                code="daemon_not_running",
            )

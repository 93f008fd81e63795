"""Socket activation: adopt the listening sockets systemd passes, as sd_listen_fds(3) describes.

The units ``assistantd-command.socket`` and ``assistantd-events.socket`` listen before the
daemon runs, so a client's first command waits in the socket's queue (and starts the service)
instead of failing; the daemon then serves that very socket. systemd passes the sockets as fds
3, 4, ... and names them in three variables::

    LISTEN_PID=<the daemon's pid>  LISTEN_FDS=2  LISTEN_FDNAMES=command:events

(the names come from ``FileDescriptorName=`` in the .socket units). libzmq adopts a listening
socket with ``ZMQ_USE_FD`` set before ``bind``; the bind address must be the one the socket
listens on, so it is read from the socket (``getsockname``), and a configured endpoint that
differs gives way to it with a warning. Without ``LISTEN_PID`` the daemon binds as before.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import stat
from collections.abc import Collection, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog
import zmq

from .config import ConfigError, Settings

log = structlog.get_logger("assistantd.activation")

Role = Literal["command", "events"]
ROLES: tuple[Role, ...] = ("command", "events")
"""The daemon's two sockets, and the ``FileDescriptorName=`` each one's .socket unit sets."""

LISTEN_FDS_START = 3
"""The first passed fd (``SD_LISTEN_FDS_START``)."""

UNNAMED = "unknown"
"""The name of every passed fd when ``LISTEN_FDNAMES`` is unset (``sd_listen_fds_with_names``)."""

VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class ActivationError(ConfigError):
    """Passed sockets that cannot be served; the message says which fd and why."""


@dataclass(frozen=True)
class PassedSocket:
    """A listening socket systemd passed for ``role``, and the ZeroMQ endpoint it listens on."""

    role: Role
    fd: int
    endpoint: str


@dataclass(frozen=True)
class Activation:
    """The sockets passed for the daemon's roles (none when it was not socket-activated).

    Example::

        activation = take_passed_sockets()
        settings = activation.apply(settings)
        activation.bind(commands, "command", settings.command)
    """

    sockets: dict[Role, PassedSocket] = dataclasses.field(default_factory=dict)

    @property
    def endpoints(self) -> Collection[str]:
        """The endpoints of the adopted sockets: their files belong to the .socket units."""
        return {passed.endpoint for passed in self.sockets.values()}

    def apply(self, settings: Settings) -> Settings:
        """``settings`` with each adopted socket's endpoint in place of the configured one.

        The socket listens where its unit says, whatever the daemon's own settings say, and
        clients follow the unit; a difference is logged, as it is likely a mistake.
        """
        for role, passed in self.sockets.items():
            configured = settings.command if role == "command" else settings.events
            if configured != passed.endpoint:
                log.warning(
                    "the passed socket's address wins over the configured endpoint",
                    role=role,
                    passed=passed.endpoint,
                    configured=configured,
                )
        return dataclasses.replace(
            settings,
            command=self._endpoint("command", settings.command),
            events=self._endpoint("events", settings.events),
        )

    def _endpoint(self, role: Role, configured: str) -> str:
        passed = self.sockets.get(role)
        return configured if passed is None else passed.endpoint

    def bind(self, zmq_socket: zmq.Socket[Any], role: Role, endpoint: str) -> None:
        """Bind ``zmq_socket`` to ``endpoint``, on the passed socket for ``role`` if there is one.

        libzmq then takes the fd over (and closes it with the ZeroMQ socket); it does not remove
        an ipc socket file it did not create.
        """
        passed = self.sockets.get(role)
        if passed is not None:
            zmq_socket.setsockopt(zmq.USE_FD, passed.fd)
            log.info("passed socket adopted", role=role, fd=passed.fd, endpoint=endpoint)
        zmq_socket.bind(endpoint)


def take_passed_sockets(
    environ: MutableMapping[str, str] = os.environ, pid: int | None = None
) -> Activation:
    """The sockets systemd passed to this process (``pid``), checked; the variables removed.

    As ``sd_listen_fds(1)`` does, the three variables are removed from ``environ`` in every
    case, so that no child (a worker) takes them for its own, and the fds are made close-on-exec.
    Variables meant for another process (``LISTEN_PID`` is not ours) are ignored. A malformed
    variable, or a passed fd that is not a listening stream socket, refuses the start: serving
    beside a broken .socket unit would leave its clients waiting for nobody.
    """
    pid_text, count_text, names_text = (environ.pop(name, None) for name in VARIABLES)
    if pid_text is None:
        if count_text is not None:
            log.warning("LISTEN_FDS without LISTEN_PID is ignored", listen_fds=count_text)
        return Activation()
    listen_pid = _parse_int("LISTEN_PID", pid_text)
    own_pid = os.getpid() if pid is None else pid
    if listen_pid != own_pid:
        # Left behind by a socket-activated parent: the fds, if any, are not for us.
        log.warning(
            "socket activation variables of another process are ignored",
            listen_pid=listen_pid,
            pid=own_pid,
        )
        return Activation()
    if count_text is None:
        return Activation()
    count = _parse_int("LISTEN_FDS", count_text)
    if count <= 0:
        raise ActivationError(f"LISTEN_FDS={count_text!r} must be a positive number of sockets")
    names = names_text.split(":") if names_text is not None else [UNNAMED] * count
    if len(names) != count:
        raise ActivationError(
            f"LISTEN_FDNAMES={names_text!r} names {len(names)} sockets but LISTEN_FDS={count}"
        )
    fds = range(LISTEN_FDS_START, LISTEN_FDS_START + count)
    for fd in fds:
        # Before anything is adopted or closed: a count larger than what was passed would
        # otherwise reach fds this process opened itself.
        try:
            os.fstat(fd)
        except OSError:
            raise ActivationError(
                f"LISTEN_FDS={count} but fd {fd} was not passed (it is not open)"
            ) from None
    roles = _roles(list(zip(fds, names, strict=True)))
    sockets = {role: _check(role, fd) for fd, role in roles.items() if role is not None}
    for fd, role in roles.items():
        if role is None:
            log.warning(
                "a passed socket with an unknown name is closed",
                fd=fd,
                name=names[fd - LISTEN_FDS_START],
                known=list(ROLES),
            )
            os.close(fd)
        else:
            os.set_inheritable(fd, False)
    return Activation(sockets)


def _parse_int(name: str, text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise ActivationError(f"{name}={text!r} is not a number") from None


def _roles(named: list[tuple[int, str]]) -> dict[int, Role | None]:
    """The role of each passed fd, None for those the daemon has no use for.

    Unnamed fds (no ``LISTEN_FDNAMES``, as from ``systemd-socket-activate`` without
    ``--fdname``) are taken in order: the command socket, then the events socket.
    """
    if all(name == UNNAMED for _, name in named):
        return {
            fd: (ROLES[index] if index < len(ROLES) else None)
            for index, (fd, _) in enumerate(named)
        }
    roles: dict[int, Role | None] = {}
    for fd, name in named:
        role = next((role for role in ROLES if role == name), None)
        if role is not None and role in roles.values():
            raise ActivationError(f"LISTEN_FDNAMES names two sockets {role!r}")
        roles[fd] = role
    return roles


def _check(role: Role, fd: int) -> PassedSocket:
    """The passed socket at ``fd``, if it is one the daemon can serve: a listening stream."""
    what = f"fd {fd}, passed as the {role} socket,"
    mode = os.fstat(fd).st_mode
    if not stat.S_ISSOCK(mode):
        raise ActivationError(f"{what} is not a socket but {_kind(mode)}")
    # Wraps the fd without owning it: detached below, never closed.
    sock = socket.socket(fileno=fd)
    try:
        if sock.family not in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6):
            raise ActivationError(f"{what} is a {_name(sock.family)} socket, not AF_UNIX or TCP")
        if sock.type != socket.SOCK_STREAM:
            raise ActivationError(
                f"{what} is a {_name(sock.type)} socket: use ListenStream= in its .socket unit"
            )
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ActivationError(
                f"{what} is not listening: its .socket unit must have Accept=no (the default)"
            )
        endpoint = _endpoint(sock)
    finally:
        sock.detach()
    if endpoint is None:
        raise ActivationError(f"{what} is not bound to an address")
    return PassedSocket(role, fd, endpoint)


def _endpoint(sock: socket.socket) -> str | None:
    """The ZeroMQ endpoint a listening socket is bound to: ``ipc://`` or ``tcp://``."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        if isinstance(address, bytes):
            # Python gives an abstract name (a leading NUL) as bytes; ZeroMQ writes it with "@".
            if not address.startswith(b"\0") or len(address) == 1:
                return None
            return "ipc://@" + address[1:].decode(errors="surrogateescape")
        return f"ipc://{address}" if address else None
    host, port = address[0], address[1]
    return f"tcp://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"tcp://{host}:{port}"


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISREG: "a regular file",
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a pipe",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
    }
    return next((name for test, name in kinds.items() if test(mode)), "something else")


def _name(constant: int) -> str:
    """``AF_INET6``, ``SOCK_DGRAM``: the name of a socket constant (its number if unknown)."""
    return str(getattr(constant, "name", constant))

"""Endpoint security: CURVE on ``tcp://`` endpoints, and private socket files for ``ipc://``.

An ``ipc://`` socket is protected by the file system: it lives in the private runtime dir
(``runtime.prepare_runtime_dir``) and is itself made 0600. A ``tcp://`` endpoint can be reached
from the network, so it is served only with ZeroMQ CURVE: the daemon's key pair (its
``server.key_secret``, made on first use) encrypts every connection, and a ZAP handler lets in
only the clients whose public key is in the ``curve-clients`` folder. The folder is read at
each new connection, so adding or removing a key file takes effect without a restart.

Without a ZAP handler libzmq lets any CURVE client in, so the handler is started on the
context before either socket is bound (:func:`start_authenticator`). Serving ``tcp://`` without
CURVE takes ``insecure-tcp``, and is logged as a warning.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from assistantd.protocol.keys import (
    PUBLIC_SUFFIX,
    KeyFileError,
    create_key_pair,
    default_server_secret_key,
    public_file_of,
    read_public_key,
    read_secret_key,
)

from .config import ConfigError, Settings

log = structlog.get_logger("assistantd.security")

ZAP_DOMAIN = "*"
"""The ZAP domain the allowed keys are for: every socket of the daemon's context."""


@dataclass(frozen=True)
class CurveServer:
    """The daemon's CURVE identity and who may connect."""

    public_key: bytes
    """Z85; what clients need (``server.key`` beside the secret key file)."""
    secret_key: bytes
    key_file: Path
    clients: Path
    """The folder of allowed clients' public keys (``*.key``)."""


def tcp_endpoints(settings: Settings) -> list[str]:
    return [each for each in (settings.command, settings.events) if each.startswith("tcp://")]


def prepare_tcp(
    settings: Settings, *, env: Mapping[str, str] = os.environ, home: Path | None = None
) -> CurveServer | None:
    """The CURVE setup of the ``tcp://`` endpoints; None when there are none, or when
    ``insecure-tcp`` serves them without CURVE (logged as a warning). :class:`ConfigError`
    when they are not secured and not explicitly insecure, or when a key cannot be used."""
    tcp = tcp_endpoints(settings)
    if not tcp:
        return None
    if settings.insecure_tcp:
        if settings.curve_clients is not None:
            raise ConfigError(
                "insecure-tcp and curve-clients contradict each other: give curve-clients to "
                "serve tcp:// with CURVE, or insecure-tcp to serve it without"
            )
        log.warning(
            "tcp without curve",
            endpoints=tcp,
            risk="anyone who can reach these endpoints can send every command and read every "
            "event, unencrypted; set curve-clients instead of insecure-tcp",
        )
        return None
    if settings.curve_clients is None:
        raise ConfigError(
            f"{tcp[0]}: tcp:// endpoints are served only with CURVE: set curve-clients to a "
            f"folder of the allowed clients' public keys (`assistantctl keys` makes a client's "
            f"pair), or give --insecure-tcp to serve them unauthenticated and unencrypted"
        )
    check_clients_folder(settings.curve_clients)
    home_dir = str(home if home is not None else Path.home())
    default_key_file = Path(default_server_secret_key(env, home_dir))
    key_file = settings.curve_secret_key
    if key_file is None:
        key_file = default_key_file
        if not key_file.exists():
            _create_server_key(key_file)
    elif not key_file.exists():
        # A key named in the config is not made up: a typo would give the daemon a new
        # identity, which every client would then refuse.
        raise ConfigError(
            f"curve-secret-key {key_file} does not exist: make a pair with 'assistantctl keys "
            f"--dir DIR --name NAME', or leave curve-secret-key out and the daemon makes its "
            f"own in {default_key_file}"
        )
    try:
        public_key, secret_key = read_secret_key(str(key_file))
    except KeyFileError as exc:
        raise ConfigError(f"curve-secret-key: {exc}") from None
    server = CurveServer(public_key, secret_key, key_file, settings.curve_clients)
    log.info(
        "curve",
        endpoints=tcp,
        public_key=public_key.decode(),
        public_key_file=public_file_of(str(key_file)),
        clients=str(settings.curve_clients),
        allowed=len(AllowedClients(settings.curve_clients).read()),
    )
    return server


def _create_server_key(key_file: Path) -> None:
    try:
        public_file, secret_file = create_key_pair(
            str(key_file.parent), key_file.name.removesuffix(".key_secret")
        )
    except FileExistsError:
        return  # another daemon made it just now: use that one
    except OSError as exc:
        raise ConfigError(
            f"cannot create the daemon's key pair in {key_file.parent}: {exc}"
        ) from None
    log.info("server key created", secret_key_file=secret_file, public_key_file=public_file)


def check_clients_folder(path: Path) -> None:
    """Refuse a ``curve-clients`` folder that is missing, or that others could add keys to
    (as sshd refuses an ``authorized_keys`` others can write)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(
            f"curve-clients {path} does not exist: create it (mkdir -m 700 {path}) and copy "
            f"each allowed client's public key file (NAME.key) into it"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read curve-clients {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"curve-clients {path} is not a directory")
    if info.st_uid not in (os.getuid(), 0):
        raise ConfigError(
            f"curve-clients {path} belongs to uid {info.st_uid}, not to this user "
            f"({os.getuid()}) or root"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise ConfigError(
            f"curve-clients {path} has mode {mode:04o}: others could add their own key to it; "
            f"run 'chmod go-w {path}'"
        )


class AllowedClients:
    """The public keys in the ``curve-clients`` folder, read at every connection: the ZAP
    handler's ``credentials_provider``. A key file that others can write, or that cannot be
    read, is left out (with a warning), and the rest still count."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether the client with this Z85 public ``key`` may connect; never raises (an
        exception would end the ZAP handler, and every connection after it would hang)."""
        try:
            allowed = self.read()
        except Exception:
            log.exception("curve clients could not be read", clients=str(self.folder))
            return False
        name = allowed.get(key)
        if name is None:
            log.warning(
                "curve client refused",
                client_key=key.decode(errors="replace"),
                clients=str(self.folder),
            )
            return False
        log.info("curve client allowed", client_key=key.decode(), key_file=name)
        return True

    def read(self) -> dict[bytes, str]:
        """The allowed keys, each with the name of its file."""
        try:
            names = sorted(os.listdir(self.folder))
        except OSError as exc:
            log.error("curve clients folder unreadable", clients=str(self.folder), error=str(exc))
            return {}
        allowed: dict[bytes, str] = {}
        for name in names:
            if not name.endswith(PUBLIC_SUFFIX):
                continue
            path = self.folder / name
            try:
                info = path.stat()
                if not stat.S_ISREG(info.st_mode):
                    continue
                if info.st_uid not in (os.getuid(), 0) or info.st_mode & 0o022:
                    log.warning(
                        "curve client key ignored",
                        path=str(path),
                        reason="others could change it (writable by group or others, or "
                        "another user's)",
                    )
                    continue
                allowed[read_public_key(str(path))] = name
            except (OSError, KeyFileError) as exc:
                log.warning("curve client key ignored", path=str(path), reason=str(exc))
        return allowed


def start_authenticator(context: zmq.asyncio.Context, server: CurveServer) -> Any:
    """Start the ZAP handler on ``context`` (call before binding): only the allowed keys
    pass. Stop it with ``.stop()`` before the context is destroyed."""
    authenticator = AsyncioAuthenticator(context, log=logging.getLogger("assistantd.zap"))
    authenticator.configure_curve_callback(ZAP_DOMAIN, AllowedClients(server.clients))
    authenticator.start()
    return authenticator


def secure_socket(socket: zmq.asyncio.Socket, endpoint: str, server: CurveServer | None) -> None:
    """Make ``socket`` a CURVE server when ``endpoint`` is ``tcp://`` and CURVE is on; set
    before ``bind``."""
    if server is None or not endpoint.startswith("tcp://"):
        return
    socket.setsockopt(zmq.CURVE_SERVER, 1)
    socket.setsockopt(zmq.CURVE_SECRETKEY, server.secret_key)


@contextmanager
def private_socket_files(settings: Settings) -> Iterator[None]:
    """Bind the ``ipc://`` sockets inside this block: they are made 0600.

    libzmq makes the socket file with the process's umask (0755 with the usual 022); a umask of
    077 around the binds keeps it private from its first moment (on top of the runtime dir's
    0700), and a chmod afterwards gives it exactly 0600. A socket file this user does not own
    (one systemd made for socket activation) is left to its ``SocketMode=``.
    """
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)
    for endpoint in (settings.command, settings.events):
        if not endpoint.startswith("ipc://") or endpoint.startswith("ipc://@"):
            continue
        path = endpoint.removeprefix("ipc://")
        try:
            info = os.stat(path)
            if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) != 0o600:
                os.chmod(path, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot make socket {path} private: {exc.strerror}") from None

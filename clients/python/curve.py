"""CURVE for a client's ``tcp://`` sockets: which keys, and the socket options that use them.

A daemon serves ``tcp://`` only with CURVE (unless started with ``--insecure-tcp``), so a client
connecting over TCP needs its own key pair, whose public half is in the daemon's
``curve-clients`` folder, and the daemon's public key. Each is found the first way that gives it:

- the client's pair: the ``curve_secret_key`` argument (a ``.key_secret`` file), else
  ``$ASSISTANTD_CURVE_SECRET_KEY``, else ``$XDG_CONFIG_HOME/assistantd/client.key_secret``
  (what ``assistantctl keys`` makes);
- the daemon's public key: the ``curve_server_key`` argument, else ``$ASSISTANTD_SERVER_KEY``
  (each the 40-character Z85 key, or a path to the daemon's ``server.key``), else
  ``$XDG_CONFIG_HOME/assistantd/server.key``, else the key of a daemon of this user on this
  machine (``server.key`` in its state dir).

``ipc://`` endpoints need none of this (the socket file's permissions protect them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import zmq

from assistantd.protocol.errors import UnavailableError
from assistantd.protocol.keys import (
    ENV_CLIENT_SECRET_KEY,
    ENV_SERVER_KEY,
    KeyFileError,
    default_client_secret_key,
    parse_key,
    read_public_key,
    read_secret_key,
    server_public_key_files,
)

KeySource = str | bytes | os.PathLike[str]
"""A key as given: a path to its file, or (the daemon's public key only) the Z85 key itself."""


@dataclass(frozen=True)
class CurveKeys:
    """A client's key pair and the daemon's public key, all Z85."""

    public_key: bytes
    secret_key: bytes
    server_key: bytes


def needs_curve(endpoint: str) -> bool:
    """Whether a connection to ``endpoint`` goes through CURVE.

    >>> needs_curve("tcp://10.0.0.2:5555"), needs_curve("ipc:///run/user/1000/assistantd/c.sock")
    (True, False)
    """
    return endpoint.startswith("tcp://")


def no_reply_hint(endpoint: str) -> str:
    """What to add to a "no reply" message: over CURVE, a refused key looks just like silence.

    >>> no_reply_hint("ipc:///run/a/command.sock")
    ''
    """
    if not needs_curve(endpoint):
        return ""
    return (
        " A tcp:// daemon does not answer a client whose key it does not allow: is this "
        "client's public key in its curve-clients folder, and the daemon's key the right one?"
    )


class ClientSecurity:
    """How a client's sockets connect: CURVE on ``tcp://`` (keys found as the module says,
    when first needed), nothing on ``ipc://``; ``insecure_tcp`` connects over TCP without
    CURVE, to a daemon started with ``--insecure-tcp``."""

    def __init__(
        self,
        *,
        secret_key: str | os.PathLike[str] | None = None,
        server_key: KeySource | None = None,
        insecure_tcp: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._secret_key = secret_key
        self._server_key = server_key
        self.insecure_tcp = insecure_tcp
        self._env = env
        self._keys: CurveKeys | None = None

    def socket_options(self, endpoint: str) -> list[tuple[int, bytes]]:
        """The options to set on a socket before it connects to ``endpoint``: CURVE's where it
        needs them, else none. :class:`UnavailableError` (``curve_key_missing``) when a key
        cannot be found or used.

        Example::

            for option, value in security.socket_options(endpoint):
                socket.setsockopt(option, value)
            socket.connect(endpoint)
        """
        if self.insecure_tcp or not needs_curve(endpoint):
            return []
        keys = self.keys()
        return [
            (zmq.CURVE_SERVERKEY, keys.server_key),
            (zmq.CURVE_PUBLICKEY, keys.public_key),
            (zmq.CURVE_SECRETKEY, keys.secret_key),
        ]

    def keys(self) -> CurveKeys:
        """The keys, found once."""
        if self._keys is None:
            env = os.environ if self._env is None else self._env
            public, secret = _client_pair(self._secret_key, env)
            self._keys = CurveKeys(public, secret, _server_key(self._server_key, env))
        return self._keys


def _missing(message: str) -> UnavailableError:
    return UnavailableError(message, code="curve_key_missing")


def _client_pair(
    given: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> tuple[bytes, bytes]:
    if given is not None:
        path, source = os.fspath(given), "curve_secret_key"
    elif env.get(ENV_CLIENT_SECRET_KEY):
        path, source = env[ENV_CLIENT_SECRET_KEY], f"${ENV_CLIENT_SECRET_KEY}"
    else:
        path = default_client_secret_key(env, str(Path.home()))
        if not os.path.exists(path):
            raise _missing(
                f"A tcp:// endpoint needs this client's CURVE key pair, and there is none at "
                f"{path}: make one with `assistantctl keys`, and copy its public key into the "
                f"daemon's curve-clients folder (or name a pair with ${ENV_CLIENT_SECRET_KEY})."
            )
        source = "the default key pair"
    try:
        return read_secret_key(path)
    except KeyFileError as exc:
        raise _missing(f"The client's CURVE key pair ({source}) cannot be used: {exc}.") from None


def _server_key(given: KeySource | None, env: Mapping[str, str]) -> bytes:
    if given is None and env.get(ENV_SERVER_KEY):
        given = env[ENV_SERVER_KEY]
    if given is not None:
        return _key_or_file(given)
    candidates = server_public_key_files(env, str(Path.home()))
    for path in candidates:
        if os.path.exists(path):
            try:
                return read_public_key(path)
            except KeyFileError as exc:
                raise _missing(f"The daemon's public key cannot be used: {exc}.") from None
    raise _missing(
        f"A tcp:// endpoint needs the daemon's public key: set ${ENV_SERVER_KEY} to it (or to "
        f"its server.key file), or copy that file to {candidates[0]}. The daemon logs it at "
        f"start, and `assistantctl keys --server` prints it on the daemon's machine."
    )


def _key_or_file(given: KeySource) -> bytes:
    """The Z85 key ``given`` is, or the public key in the file it names."""
    text = os.fsdecode(given) if isinstance(given, bytes | os.PathLike) else given
    try:
        if os.path.exists(text):
            return read_public_key(text)
        return parse_key(text, "the daemon's public key")
    except KeyFileError as exc:
        raise _missing(f"{exc}: give the 40-character key or the path of its file.") from None

"""CURVE keys for ``tcp://`` endpoints: where they are kept, and how key files are made and read.

A key file is in the certificate format of ``zmq.auth`` (and czmq): ``NAME.key`` holds a public
key, ``NAME.key_secret`` the public and the secret key of a pair. The daemon's pair is
``server.key_secret`` in its state dir, made on first use; a client's is
``client.key_secret`` in its config dir, made by ``assistantctl keys``. A client's
``client.key`` goes into the folder of allowed keys the daemon's ``curve-clients`` names, and
the daemon's ``server.key`` to the client (PROTOCOL.md, "Endpoint security").

A secret key file must be private (no permission for group or others) and belong to the user
that reads it, as ssh asks of its keys: one that others can read is refused, never used. pyzmq
is imported only by the functions that need it, as `assistantctl` imports this module's paths
on its quick path.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

ENV_SERVER_KEY = "ASSISTANTD_SERVER_KEY"
"""The daemon's public key for a client: the 40-character Z85 key, or a path to its key file."""
ENV_CLIENT_SECRET_KEY = "ASSISTANTD_CURVE_SECRET_KEY"
"""A client's secret key file."""

SERVER_KEY_NAME = "server"
CLIENT_KEY_NAME = "client"
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"

Z85_KEY_LENGTH = 40
"""A CURVE key (32 bytes) in Z85 text."""


class KeyFileError(Exception):
    """A key file that cannot be used; the message says which and why."""


def _xdg(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value and value.startswith("/") else None


def config_dir(env: Mapping[str, str], home: str) -> str:
    """``$XDG_CONFIG_HOME/assistantd``, else ``~/.config/assistantd``: a client's keys.

    >>> config_dir({}, "/home/ada")
    '/home/ada/.config/assistantd'
    """
    return os.path.join(_xdg(env, "XDG_CONFIG_HOME") or os.path.join(home, ".config"), "assistantd")


def state_dir(env: Mapping[str, str], home: str) -> str:
    """The daemon's state dir: ``$STATE_DIRECTORY`` (which systemd's ``StateDirectory=`` sets;
    the first of several), else ``$XDG_STATE_HOME/assistantd``, else under ``~/.local/state``.

    >>> state_dir({}, "/home/ada")
    '/home/ada/.local/state/assistantd'
    >>> state_dir({"STATE_DIRECTORY": "/var/lib/assistantd:/var/lib/other"}, "/")
    '/var/lib/assistantd'
    """
    if systemd := env.get("STATE_DIRECTORY", "").split(":")[0]:
        return systemd
    state_home = _xdg(env, "XDG_STATE_HOME") or os.path.join(home, ".local", "state")
    return os.path.join(state_home, "assistantd")


def default_server_secret_key(env: Mapping[str, str], home: str) -> str:
    """Where the daemon keeps its key pair unless ``curve-secret-key`` names a file."""
    return os.path.join(state_dir(env, home), SERVER_KEY_NAME + SECRET_SUFFIX)


def default_client_secret_key(env: Mapping[str, str], home: str) -> str:
    """Where a client finds its key pair unless told otherwise (``assistantctl keys``)."""
    return os.path.join(config_dir(env, home), CLIENT_KEY_NAME + SECRET_SUFFIX)


def server_public_key_files(env: Mapping[str, str], home: str) -> list[str]:
    """Where a client looks for the daemon's public key when not told: a copy in its config
    dir (from another machine), then the key of a daemon of this user on this machine.

    >>> server_public_key_files({}, "/home/ada")
    ['/home/ada/.config/assistantd/server.key', '/home/ada/.local/state/assistantd/server.key']
    """
    name = SERVER_KEY_NAME + PUBLIC_SUFFIX
    return [os.path.join(config_dir(env, home), name), os.path.join(state_dir(env, home), name)]


def public_file_of(secret_file: str) -> str:
    """The public key file beside a secret key file.

    >>> public_file_of("/keys/client.key_secret"), public_file_of("/keys/mine")
    ('/keys/client.key', '/keys/mine.key')
    """
    return secret_file.removesuffix(SECRET_SUFFIX) + PUBLIC_SUFFIX


def create_key_pair(folder: str, name: str) -> tuple[str, str]:
    """Write a new pair as ``NAME.key`` (0644) and ``NAME.key_secret`` (0600) into ``folder``
    (made 0700 when missing); their paths. :class:`FileExistsError` if either file exists: a
    key is never replaced, since whoever holds the old one would be locked out.

    The files are written by ``zmq.auth.create_certificates`` into a private folder of their
    own, given their modes there, then linked into place: whatever the umask, a secret key is
    never readable by others, not even for a moment, and two processes making the same pair at
    once cannot overwrite each other's (a link fails where a file exists).
    """
    import tempfile

    import zmq.auth

    os.makedirs(folder, mode=0o700, exist_ok=True)
    public_file = os.path.join(folder, name + PUBLIC_SUFFIX)
    secret_file = os.path.join(folder, name + SECRET_SUFFIX)
    for path in (public_file, secret_file):
        if os.path.lexists(path):
            raise FileExistsError(f"{path} exists already")
    staging = tempfile.mkdtemp(prefix=".keys-", dir=folder)  # 0700
    try:
        made_public, made_secret = zmq.auth.create_certificates(staging, name)
        os.chmod(made_secret, 0o600)
        os.chmod(made_public, 0o644)
        os.link(made_secret, secret_file)
        try:
            os.link(made_public, public_file)
        except OSError:
            os.unlink(secret_file)
            raise
    finally:
        for leftover in os.listdir(staging):
            os.unlink(os.path.join(staging, leftover))
        os.rmdir(staging)
    return public_file, secret_file


def read_secret_key(path: str) -> tuple[bytes, bytes]:
    """The (public, secret) Z85 keys of a secret key file; :class:`KeyFileError` for a file
    that is missing, not private, another user's, or without a valid secret key. The public
    key is derived from the secret one, so a file whose two keys do not match is refused."""
    import zmq

    info = _stat_key_file(path, "secret key file")
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.getuid():
        raise KeyFileError(
            f"secret key file {path} belongs to uid {info.st_uid}, not to this user ({os.getuid()})"
        )
    if mode & 0o077:
        raise KeyFileError(
            f"secret key file {path} has mode {mode:04o}; it must be private: run "
            f"'chmod 600 {path}' (and make a new pair if others may have read it)"
        )
    public, secret = _load(path)
    if secret is None:
        raise KeyFileError(f"{path} holds no secret key (is it a public key file?)")
    secret = parse_key(secret.decode(errors="replace"), f"the secret key in {path}")
    derived = zmq.curve_public(secret)
    if public != derived:
        raise KeyFileError(f"the public key in {path} does not belong to its secret key")
    return derived, secret


def read_public_key(path: str) -> bytes:
    """The Z85 public key of a key file (public or secret); :class:`KeyFileError` if none."""
    _stat_key_file(path, "key file")
    public, _ = _load(path)
    return public


def parse_key(text: str, what: str) -> bytes:
    """A Z85 CURVE key as bytes, checked; :class:`KeyFileError` naming ``what`` if it is not.

    >>> parse_key("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "key")
    b'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'
    >>> parse_key("short", "the key")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    KeyFileError: the key is not a CURVE key (40 characters of Z85)
    """
    import struct

    from zmq.utils import z85

    key = text.strip().encode()
    try:
        valid = len(key) == Z85_KEY_LENGTH and len(z85.decode(key)) == 32
    except (KeyError, struct.error):  # a character outside Z85; a group too large
        valid = False
    if not valid:
        raise KeyFileError(f"{what} is not a CURVE key ({Z85_KEY_LENGTH} characters of Z85)")
    return key


def _stat_key_file(path: str, what: str) -> os.stat_result:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise KeyFileError(f"no {what} at {path}") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"{what} {path} is not a file")
    return info


def _load(path: str) -> tuple[bytes, bytes | None]:
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise KeyFileError(f"{path} is not a key file (it has no public-key line)") from None
    return parse_key(public.decode(errors="replace"), f"the public key in {path}"), secret

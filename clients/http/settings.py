"""The gateway's settings: the ``[http]`` table of assistantd's config file, under the options.

The gateway reads the daemon's config file (``--config``, else
``$XDG_CONFIG_HOME/assistantd/config.toml`` when it exists) for its own table only; the daemon
leaves the table to it. Every key is optional::

    [http]
    listen = "127.0.0.1:1337"           # HOST:PORT, as --listen
    allow-remote = false                # serve a non-loopback HOST (then a token is required)
    token-file = "/home/me/.config/assistantd/http-token"   # or: token = "..."
    cors-origins = ["http://localhost:*", "app://my-app"]  # replaces the loopback default

Later sources win: the table < ``$ASSISTANTD_HTTP_TOKEN`` (the token only) < the options. A
file that holds a token (the config file with ``token``, or a token file) must not be
readable by others: the gateway refuses to start otherwise, as the daemon refuses a runtime dir
others can enter, since anyone who reads the token can use the daemon through the gateway. A
token that is empty or blank, from wherever it comes, stops the start too: it would be no
token, and a gateway meant to have one would serve anyone.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistantd.daemon.tables import from_table, read_toml
from assistantd.protocol.endpoints import default_config_file

from .access import DEFAULT_ORIGINS, Origins

DEFAULT_LISTEN = "127.0.0.1:1337"  # Jan's API port
TOKEN_ENV = "ASSISTANTD_HTTP_TOKEN"


class SettingsError(Exception):
    """A setting that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class HttpTable:
    """The ``[http]`` table as written; an empty string is a key left out."""

    listen: str = ""
    allow_remote: bool = False
    token: str = ""
    token_file: str = ""
    cors_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class GatewaySettings:
    host: str
    port: int
    allow_remote: bool
    token: str | None
    origins: Origins


def read_http_table(path: Path) -> HttpTable:
    """The ``[http]`` table of the config file at ``path`` (the other tables are the daemon's);
    SettingsError naming the key for a value that cannot be used."""
    where = f"config file {path}"
    try:
        table = read_toml(path).get("http", {})
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    if not isinstance(table, dict):
        raise SettingsError(f"{where}: 'http' must be a table ([http])")
    try:
        settings = from_table(HttpTable, table, section="http", where=where)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    if settings.token and settings.token_file:
        raise SettingsError(f"{where}: [http] has both token and token-file; keep one")
    if settings.token and not settings.token.strip():
        raise SettingsError(f"{where}: [http] token is blank")
    if settings.token:
        check_private(path, "holds a token (the [http] table's token)")
    return settings


def check_private(path: Path, holds: str) -> None:
    """SettingsError when others than its owner may read ``path``, which ``holds`` a secret."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o044:
        raise SettingsError(
            f"{path} {holds} and others can read it (mode {mode:04o}): run 'chmod 600 {path}'"
        )


def config_path(given: str | None, env: Mapping[str, str], home: str) -> Path | None:
    """The config file to read: ``given`` (which must exist), else the daemon's default one
    when it exists."""
    if given is not None:
        return Path(given)
    implicit = Path(default_config_file(env, home))
    return implicit if implicit.is_file() else None


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as ``(host, port)``.

    >>> parse_listen("127.0.0.1:1337"), parse_listen("[::1]:8080")
    (('127.0.0.1', 1337), ('::1', 8080))
    """
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise SettingsError(f"listen wants HOST:PORT, not {value!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "example.org")]
    [True, True, True, False, False]
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def read_token_file(path: Path) -> str:
    check_private(path, "holds the token")
    token = path.read_text().strip()
    if not token:
        raise SettingsError(f"the token file {path} is empty")
    return token


def resolve(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ, home: str | None = None
) -> GatewaySettings:
    """The settings from the config file's table, the environment and the options (the
    ``listen``, ``allow_remote``, ``token_file``, ``cors_origin`` and ``config`` attributes of
    ``args``; None where not given)."""
    path = config_path(args.config, env, home if home is not None else str(Path.home()))
    table = read_http_table(path) if path is not None else HttpTable()
    host, port = parse_listen(args.listen or table.listen or DEFAULT_LISTEN)
    allow_remote = table.allow_remote if args.allow_remote is None else args.allow_remote
    try:
        if args.token_file is not None:
            token: str | None = read_token_file(Path(args.token_file).expanduser())
        elif TOKEN_ENV in env:
            token = env[TOKEN_ENV].strip()
            if not token:
                raise SettingsError(
                    f"${TOKEN_ENV} is set but blank: unset it to serve without a token"
                )
        elif table.token_file:
            token = read_token_file(Path(table.token_file).expanduser())
        else:
            token = table.token.strip() or None
    except OSError as exc:
        raise SettingsError(f"cannot read the token file: {exc}") from None
    # The file's list is checked even when the option replaces it: a bad file is reported
    # now, not on the day the option is dropped.
    from_file = (
        allowed_origins(table.cors_origins, f"config file {path}: [http] cors-origins")
        if table.cors_origins
        else None
    )
    if args.cors_origin:
        origins = allowed_origins(args.cors_origin, "--cors-origin")
    else:
        origins = from_file if from_file is not None else Origins(DEFAULT_ORIGINS)
    if not is_loopback(host) and not allow_remote:
        raise SettingsError(
            f"refusing to serve on {host}, which is not a loopback address: anyone who can "
            f"reach it could use the daemon. Pass --allow-remote (or allow-remote = true "
            f"in [http]) with a token to do it anyway."
        )
    if allow_remote and token is None:
        raise SettingsError(
            f"--allow-remote (allow-remote in [http]) needs a bearer token: --token-file FILE, "
            f"${TOKEN_ENV}, or token-file / token in the [http] table of the config file."
        )
    return GatewaySettings(host, port, allow_remote, token, origins)


def allowed_origins(origins: Sequence[str], where: str) -> Origins:
    """``origins``, each checked; SettingsError naming ``where`` they come from otherwise."""
    try:
        return Origins(origins)
    except ValueError as exc:
        raise SettingsError(f"{where}: {exc}") from None

"""The daemon's settings, from defaults, a TOML file, the environment and the command line.

Later sources win: defaults < config file < environment < options. The config file takes the
same keys as the long options (``runtime-dir = "..."``; ``runtime_dir`` works too), and a
``[workers]`` table for the worker settings (:mod:`.workers.settings`) and an ``[acquire]`` table
for downloads, imports and exports (:mod:`.acquire.settings`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from assistantd.protocol.endpoints import (
    COMMAND_SOCKET,
    ENV_ROOT,
    ENV_RUNTIME_DIR,
    EVENTS_SOCKET,
    default_config_file,
    default_root,
    default_runtime_dir,
    ipc_endpoint,
    temp_dir,
)

from .acquire.settings import AcquireSettings
from .logs import LEVELS, LogFormat
from .tables import read_toml
from .workers.settings import WorkerSettings


class ConfigError(Exception):
    """A setting that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    root: Path
    runtime_dir: Path
    command: str
    events: str
    log_format: LogFormat
    log_level: str = "info"
    workers: WorkerSettings = field(default_factory=WorkerSettings)
    acquire: AcquireSettings = field(default_factory=AcquireSettings)
    curve_secret_key: Path | None = None
    """The daemon's CURVE key pair for tcp:// endpoints; None: made on first use in its state
    dir (:mod:`.security`)."""
    curve_clients: Path | None = None
    """The folder of the public keys allowed to connect over tcp://."""
    insecure_tcp: bool = False
    """Serve tcp:// endpoints without CURVE (logged as a warning)."""

    @property
    def uses_runtime_dir(self) -> bool:
        """Whether either endpoint is a socket in the runtime dir (which then must be private)."""
        return any(
            endpoint.startswith(f"ipc://{self.runtime_dir}/")
            for endpoint in (self.command, self.events)
        )


_TABLES: dict[str, type[WorkerSettings] | type[AcquireSettings]] = {
    "workers": WorkerSettings,
    "acquire": AcquireSettings,
}
"""The tables of the config file, each its own settings."""

_GATEWAY_TABLE = "http"
"""The table that ``assistantd-http`` reads from the same file (``assistantd.http.settings``)."""

_KEYS = {each.name for each in fields(Settings)} - set(_TABLES)
_FLAGS = {"insecure_tcp"}
"""The keys that take true or false (the others take strings)."""


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = read_toml(path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == _GATEWAY_TABLE:
            if not isinstance(value, dict):
                raise ConfigError(f"config file {path}: {key!r} must be a table ([{key}])")
            continue  # assistantd-http's own settings, checked by it
        if key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"config file {path}: {key!r} must be a table ([{key}])")
            try:
                values[key] = _TABLES[key].from_table(value, f"config file {path}")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            continue
        name = key.replace("-", "_")
        if name not in _KEYS:
            raise ConfigError(f"config file {path}: unknown key {key!r}")
        if name in _FLAGS:
            if not isinstance(value, bool):
                raise ConfigError(f"config file {path}: {key!r} must be true or false")
        elif not isinstance(value, str):
            raise ConfigError(f"config file {path}: {key!r} must be a string")
        values[name] = value
    return values


def resolve(
    options: Mapping[str, Any],
    *,
    env: Mapping[str, str] = os.environ,
    home: Path | None = None,
    default_log_format: LogFormat = "json",
) -> Settings:
    """The settings for these command-line ``options`` (None where not given)."""
    home = home if home is not None else Path.home()
    config_path = options.get("config")
    if config_path is not None:
        file_values = read_config_file(Path(config_path))
    else:
        implicit = Path(default_config_file(env, str(home)))
        file_values = read_config_file(implicit) if implicit.is_file() else {}

    values: dict[str, Any] = dict(file_values)
    if env.get(ENV_ROOT):
        values["root"] = env[ENV_ROOT]
    if env.get(ENV_RUNTIME_DIR):
        values["runtime_dir"] = env[ENV_RUNTIME_DIR]
    values.update({key: value for key, value in options.items() if key in _KEYS and value})

    root = Path(values["root"]) if "root" in values else Path(default_root(env, str(home)))
    runtime_dir = (
        Path(values["runtime_dir"])
        if "runtime_dir" in values
        else Path(default_runtime_dir(env, os.getuid(), temp_dir(env)))
    )
    root = root.expanduser().absolute()
    runtime_dir = runtime_dir.expanduser().absolute()
    log_format = values.get("log_format", default_log_format)
    if log_format not in ("json", "console"):
        raise ConfigError(f"log format must be 'json' or 'console', not {log_format!r}")
    log_level = values.get("log_level", "info").lower()
    if log_level not in LEVELS:
        raise ConfigError(f"log level must be one of {', '.join(LEVELS)}, not {log_level!r}")
    return Settings(
        root=root,
        runtime_dir=runtime_dir,
        command=values.get("command") or ipc_endpoint(runtime_dir / COMMAND_SOCKET),
        events=values.get("events") or ipc_endpoint(runtime_dir / EVENTS_SOCKET),
        log_format=log_format,
        log_level=log_level,
        workers=file_values.get("workers", WorkerSettings()),
        acquire=file_values.get("acquire", AcquireSettings()),
        curve_secret_key=_path_or_none(values.get("curve_secret_key")),
        curve_clients=_path_or_none(values.get("curve_clients")),
        insecure_tcp=bool(values.get("insecure_tcp", False)),
    )


def _path_or_none(value: str | None) -> Path | None:
    return Path(value).expanduser().absolute() if value else None

"""Settings: defaults < config file < environment < options, and clear errors for bad ones."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from assistantd.daemon.config import ConfigError, Settings, resolve


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def settle(options: dict[str, Any], env: dict[str, str], home: Path) -> Settings:
    return resolve(options, env=env, home=home)


def test_defaults(home: Path) -> None:
    settings = settle({}, {}, home)
    runtime_dir = Path(tempfile.gettempdir()).absolute() / f"assistantd-{os.getuid()}"
    assert settings.root == home / ".local" / "share" / "assistantd" / "assistants"
    assert settings.runtime_dir == runtime_dir
    assert settings.command == f"ipc://{runtime_dir}/command.sock"
    assert settings.events == f"ipc://{runtime_dir}/events.sock"
    assert settings.log_format == "json"
    assert settings.log_level == "info"
    assert settings.uses_runtime_dir


def test_xdg_defaults(home: Path, tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    settings = settle({}, env, home)
    assert settings.root == tmp_path / "data" / "assistantd" / "assistants"
    assert settings.runtime_dir == tmp_path / "run" / "assistantd"
    assert settings.command == f"ipc://{tmp_path}/run/assistantd/command.sock"


def test_default_log_format_is_the_callers(home: Path) -> None:
    assert resolve({}, env={}, home=home, default_log_format="console").log_format == "console"


def test_config_file_in_xdg_config_home(home: Path, tmp_path: Path) -> None:
    config_home = tmp_path / "config"
    write_config(
        config_home / "assistantd" / "config.toml",
        'root = "/srv/assistants"\nruntime-dir = "/srv/run"\nlog-level = "DEBUG"\n'
        'log_format = "console"\n',
    )
    settings = settle({}, {"XDG_CONFIG_HOME": str(config_home)}, home)
    assert settings.root == Path("/srv/assistants")
    assert settings.runtime_dir == Path("/srv/run")
    assert settings.command == "ipc:///srv/run/command.sock"
    assert settings.log_level == "debug"
    assert settings.log_format == "console"


def test_config_file_under_home_without_xdg(home: Path) -> None:
    write_config(home / ".config" / "assistantd" / "config.toml", 'root = "/from/file"\n')
    assert settle({}, {}, home).root == Path("/from/file")


@pytest.mark.parametrize(
    ("file", "env", "option", "expected"),
    [
        (None, None, None, "default"),
        ("/from/file", None, None, "/from/file"),
        ("/from/file", "/from/env", None, "/from/env"),
        (None, "/from/env", None, "/from/env"),
        ("/from/file", "/from/env", "/from/option", "/from/option"),
        ("/from/file", None, "/from/option", "/from/option"),
    ],
)
@pytest.mark.parametrize(
    ("key", "toml_key", "env_name"),
    [("root", "root", "ASSISTANTD_ROOT"), ("runtime_dir", "runtime-dir", "ASSISTANTD_RUNTIME_DIR")],
)
def test_precedence(
    home: Path,
    tmp_path: Path,
    key: str,
    toml_key: str,
    env_name: str,
    file: str | None,
    env: str | None,
    option: str | None,
    expected: str,
) -> None:
    environment = {
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "XDG_RUNTIME_DIR": str(tmp_path / "xdg-run"),
    }
    if file is not None:
        write_config(home / ".config" / "assistantd" / "config.toml", f'{toml_key} = "{file}"\n')
    if env is not None:
        environment[env_name] = env
    options = {key: option, "config": None}
    settings = settle(options, environment, home)
    value = getattr(settings, key)
    if expected == "default":
        defaults = {
            "root": tmp_path / "xdg-data" / "assistantd" / "assistants",
            "runtime_dir": tmp_path / "xdg-run" / "assistantd",
        }
        assert value == defaults[key]
    else:
        assert value == Path(expected)
    if key == "runtime_dir":
        assert settings.command == f"ipc://{value}/command.sock"
        assert settings.events == f"ipc://{value}/events.sock"


def test_endpoints_given_explicitly(home: Path) -> None:
    write_config(
        home / ".config" / "assistantd" / "config.toml",
        'command = "ipc:///file/c.sock"\nevents = "ipc:///file/e.sock"\n',
    )
    settings = settle({"command": "ipc:///opt/c.sock"}, {}, home)
    assert settings.command == "ipc:///opt/c.sock"
    assert settings.events == "ipc:///file/e.sock"
    assert not settings.uses_runtime_dir


def test_explicit_config_replaces_the_implicit_one(home: Path, tmp_path: Path) -> None:
    # The implicit file is broken; it must not even be read when --config names another.
    write_config(home / ".config" / "assistantd" / "config.toml", "not toml at all [")
    explicit = write_config(tmp_path / "other.toml", 'root = "/explicit"\n')
    assert settle({"config": str(explicit)}, {}, home).root == Path("/explicit")


def test_relative_paths_become_absolute(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(home)
    settings = settle({"root": "rel/root", "runtime_dir": "rel/run"}, {}, home)
    assert settings.root == home / "rel" / "root"
    assert settings.runtime_dir == home / "rel" / "run"
    assert settings.root.is_absolute()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('rooot = "/x"\n', ["unknown key", "rooot"]),
        ("[root]\npath = 1\n", ["root", "string"]),
        ("root = 5\n", ["root", "string"]),
        ('root = "/x"\nroot = "/y"\n', ["not valid TOML"]),
        ("root = \n", ["not valid TOML"]),
        ('log-format = "xml"\n', ["log format", "xml"]),
        ('log-level = "loud"\n', ["log level", "loud"]),
    ],
)
def test_bad_config_files(home: Path, tmp_path: Path, text: str, words: list[str]) -> None:
    path = write_config(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as caught:
        settle({"config": str(path)}, {}, home)
    for word in words:
        assert word in str(caught.value)


def test_missing_explicit_config_file(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as caught:
        settle({"config": str(missing)}, {}, home)
    assert str(missing) in str(caught.value)


def test_bad_implicit_config_file_is_an_error_too(home: Path) -> None:
    write_config(home / ".config" / "assistantd" / "config.toml", 'colour = "blue"\n')
    with pytest.raises(ConfigError, match="colour"):
        settle({}, {}, home)


def test_bad_log_option(home: Path) -> None:
    with pytest.raises(ConfigError):
        settle({"log_level": "verbose"}, {}, home)
    assert settle({"log_level": "WARNING"}, {}, home).log_level == "warning"


def test_unrelated_options_are_ignored(home: Path) -> None:
    settings = settle({"root": None, "help": True, "json": True}, {}, home)
    assert settings.root == home / ".local" / "share" / "assistantd" / "assistants"

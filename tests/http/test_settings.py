"""The gateway's settings: the ``[http]`` table of assistantd's config file, the token rules,
and the options over them; bad values are clear errors that name the key."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from assistantd.daemon.config import ConfigError, read_config_file
from assistantd.http.main import build_parser
from assistantd.http.settings import DEFAULT_LISTEN, GatewaySettings, SettingsError, resolve
from tests.http.helpers import (
    assert_openai_error,
    gateway_env,
    http,
    http_full,
    run_gateway_to_exit,
    running_gateway,
)
from tests.utils import DaemonProcess


def options(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def settle(tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> GatewaySettings:
    return resolve(options(*argv), env=env or {}, home=str(tmp_path / "home"))


def test_without_a_config_file_the_defaults_hold(tmp_path: Path) -> None:
    settings = settle(tmp_path)
    assert (settings.host, settings.port) == (*tuple(DEFAULT_LISTEN.split(":")[:1]), 1337)
    assert settings.token is None
    assert not settings.allow_remote
    assert settings.origins.listed == ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")


def test_the_http_table_is_read_and_the_options_win(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.toml",
        'root = "/srv/assistants"\n'  # the daemon's, not read here
        "[workers]\nstop-timeout = 2\n"
        "[http]\n"
        'listen = "0.0.0.0:8080"\n'
        "allow-remote = true\n"
        'token = "from-the-file"\n'
        'cors-origins = ["app://my-app", "http://localhost:*"]\n',
    )
    settings = settle(tmp_path, "--config", str(config))
    assert (settings.host, settings.port, settings.allow_remote) == ("0.0.0.0", 8080, True)
    assert settings.token == "from-the-file"
    assert settings.origins.listed == ("app://my-app", "http://localhost:*")

    token_file = write_config(tmp_path / "token", "from-the-option\n")
    settings = settle(
        tmp_path,
        "--config",
        str(config),
        "--listen",
        "127.0.0.1:9000",
        "--no-allow-remote",
        "--token-file",
        str(token_file),
        "--cors-origin",
        "https://ui.example",
    )
    assert (settings.host, settings.port, settings.allow_remote) == ("127.0.0.1", 9000, False)
    assert settings.token == "from-the-option"
    assert settings.origins.listed == ("https://ui.example",)
    # The environment's token is over the file's, under the option's.
    env = {"ASSISTANTD_HTTP_TOKEN": "from-the-env"}
    assert settle(tmp_path, "--config", str(config), env=env).token == "from-the-env"
    # --no-allow-remote over the file's allow-remote: the file's 0.0.0.0 is refused.
    with pytest.raises(SettingsError, match="--allow-remote"):
        settle(tmp_path, "--config", str(config), "--no-allow-remote")


def test_the_default_config_file_is_the_daemons(tmp_path: Path) -> None:
    config_home = tmp_path / "xdg"
    (config_home / "assistantd").mkdir(parents=True)
    write_config(config_home / "assistantd" / "config.toml", '[http]\nlisten = "[::1]:4000"\n')
    settings = settle(tmp_path, env={"XDG_CONFIG_HOME": str(config_home)})
    assert (settings.host, settings.port) == ("::1", 4000)


def test_a_token_file_named_in_the_table(tmp_path: Path) -> None:
    token_file = write_config(tmp_path / "token", "  from-a-file  \n")
    config = write_config(tmp_path / "c.toml", f'[http]\ntoken-file = "{token_file}"\n', 0o644)
    assert settle(tmp_path, "--config", str(config)).token == "from-a-file"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[http]\nlisten = 1337\n", ["[http] listen", "string"]),
        ('[http]\nallow-remote = "yes"\n', ["[http] allow-remote", "true or false"]),
        ('[http]\ncors-origins = "http://localhost"\n', ["[http] cors-origins", "list"]),
        ("[http]\ncors-origins = [1]\n", ["[http] cors-origins", "list"]),
        ('[http]\ncors-origins = ["null"]\n', ["[http] cors-origins", "sandboxed"]),
        ('[http]\ncors-origins = ["*"]\n', ["[http] cors-origins", "name each origin"]),
        ('[http]\ncors-origins = ["http://a/b"]\n', ["[http] cors-origins", "not an origin"]),
        ("[http]\nport = 1337\n", ["unknown key 'port' in [http]"]),
        ('[http]\nlisten = "nowhere"\n', ["listen", "HOST:PORT", "nowhere"]),
        ('[http]\ntoken = ""\n', ["[http] token", "non-empty"]),
        ('[http]\ntoken = " \\t "\n', ["[http] token is blank"]),
        ('[http]\ntoken = "a"\ntoken-file = "/x"\n', ["both token and token-file"]),
        ("http = 3\n", ["'http' must be a table"]),
        ("[http\n", ["not valid TOML"]),
    ],
)
def test_bad_http_tables(tmp_path: Path, text: str, words: list[str]) -> None:
    config = write_config(tmp_path / "bad.toml", text)
    with pytest.raises(SettingsError) as caught:
        settle(tmp_path, "--config", str(config))
    for word in words:
        assert word in str(caught.value)
    assert str(config) in str(caught.value) or "listen wants" in str(caught.value)


def test_secrets_others_can_read_are_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", '[http]\ntoken = "s3cret"\n', 0o644)
    with pytest.raises(SettingsError, match=f"chmod 600 {config}"):
        settle(tmp_path, "--config", str(config))
    config.chmod(0o640)
    with pytest.raises(SettingsError, match="others can read it"):
        settle(tmp_path, "--config", str(config))
    token_file = write_config(tmp_path / "token", "s3cret", 0o604)
    with pytest.raises(SettingsError, match=f"chmod 600 {token_file}"):
        settle(tmp_path, "--token-file", str(token_file))
    empty = write_config(tmp_path / "empty", "\n")
    with pytest.raises(SettingsError, match="empty"):
        settle(tmp_path, "--token-file", str(empty))
    with pytest.raises(SettingsError, match="cannot read the token file"):
        settle(tmp_path, "--token-file", str(tmp_path / "missing"))
    # A config file with no token may be read by anyone, as the daemon's usually is.
    open_config = write_config(tmp_path / "open.toml", '[http]\nlisten = "127.0.0.1:1"\n', 0o644)
    assert settle(tmp_path, "--config", str(open_config)).port == 1


def test_a_blank_token_from_any_source_is_an_error(tmp_path: Path) -> None:
    for blank in ("", " ", "\t\n"):
        with pytest.raises(SettingsError, match="ASSISTANTD_HTTP_TOKEN is set but blank"):
            settle(tmp_path, env={"ASSISTANTD_HTTP_TOKEN": blank})
    blank_file = write_config(tmp_path / "blank", " \n\t\n")
    with pytest.raises(SettingsError, match="empty"):
        settle(tmp_path, "--token-file", str(blank_file))
    config = write_config(tmp_path / "c.toml", f'[http]\ntoken-file = "{blank_file}"\n')
    with pytest.raises(SettingsError, match="empty"):
        settle(tmp_path, "--config", str(config))


def test_allow_remote_needs_a_token_even_on_loopback(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"--allow-remote .* needs a bearer token"):
        settle(tmp_path, "--allow-remote")
    config = write_config(tmp_path / "c.toml", "[http]\nallow-remote = true\n")
    with pytest.raises(SettingsError, match="needs a bearer token"):
        settle(tmp_path, "--config", str(config))
    settings = settle(tmp_path, "--allow-remote", env={"ASSISTANTD_HTTP_TOKEN": " t0ken "})
    assert (settings.host, settings.allow_remote, settings.token) == ("127.0.0.1", True, "t0ken")


def test_origins_are_checked_where_they_are_given(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", '[http]\ncors-origins = ["app://my-app"]\n')
    assert settle(tmp_path, "--config", str(config)).origins.allows("app://my-app")
    with pytest.raises(SettingsError, match=r"^--cors-origin: 'null' cannot be allowed"):
        settle(tmp_path, "--config", str(config), "--cors-origin", "null")
    # A bad list in the file is reported even while the option replaces it.
    bad = write_config(tmp_path / "bad.toml", '[http]\ncors-origins = ["null"]\n')
    with pytest.raises(SettingsError, match=r"\[http\] cors-origins: 'null' cannot be allowed"):
        settle(tmp_path, "--config", str(bad), "--cors-origin", "app://my-app")
    replaced = settle(tmp_path, "--config", str(config), "--cors-origin", "http://localhost:5173")
    assert not replaced.origins.allows("app://my-app")


def test_a_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        settle(tmp_path, "--config", str(tmp_path / "missing.toml"))


def test_a_remote_bind_from_the_table_needs_a_token(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.toml", '[http]\nlisten = "0.0.0.0:1337"\nallow-remote = true\n'
    )
    refused = run_gateway_to_exit("--config", str(config), "--runtime-dir", str(tmp_path))
    assert refused.returncode == 2
    assert "needs a bearer token" in refused.stderr
    bad = write_config(tmp_path / "bad.toml", "[http]\nlisten = 1337\n")
    refused = run_gateway_to_exit("--config", str(bad), "--runtime-dir", str(tmp_path))
    assert refused.returncode == 2
    assert "[http] listen must be a non-empty string" in refused.stderr


def test_a_gateway_serves_as_its_config_file_says(daemon: DaemonProcess, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.toml",
        '[http]\nlisten = "127.0.0.1:0"\ntoken = "s3cret-token"\ncors-origins = ["app://my-app"]\n',
    )
    with running_gateway(
        daemon.runtime_dir, "--config", str(config), listen=None, env=gateway_env()
    ) as gateway:
        status, headers, body = http_full("GET", f"{gateway.url}/assistants/jan")
        assert status == 401
        assert_openai_error(body, "invalid_api_key")
        assert headers["WWW-Authenticate"] == "Bearer"
        good = {"Authorization": "Bearer s3cret-token"}
        status, headers, body = http_full(
            "GET", f"{gateway.url}/assistants/jan", headers={**good, "Origin": "app://my-app"}
        )
        assert (status, body["id"]) == (200, "jan")
        assert headers["Access-Control-Allow-Origin"] == "app://my-app"
        status, body = http(
            "GET",
            f"{gateway.url}/assistants/jan",
            headers={**good, "Origin": "http://localhost:5173"},
        )
        assert status == 403  # the table's origins replace the loopback default


def test_the_daemon_leaves_the_http_table_to_the_gateway(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", '[http]\nlisten = "127.0.0.1:1"\nwhatever = 1\n')
    assert read_config_file(config) == {}
    with pytest.raises(ConfigError, match="must be a table"):
        read_config_file(write_config(tmp_path / "bad.toml", "http = 1\n"))

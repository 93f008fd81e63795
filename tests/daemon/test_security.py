"""Endpoint security without a daemon process: the settings, the key files, the checks made
before a tcp:// endpoint is served, the folder of allowed keys, and how a client finds its keys.

The same rules with real sockets and a real daemon are in ``tests/e2e/test_curve.py``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import zmq

from assistantd.client.curve import ClientSecurity
from assistantd.daemon.config import ConfigError, Settings, resolve
from assistantd.daemon.security import AllowedClients, prepare_tcp
from assistantd.protocol.errors import UnavailableError
from assistantd.protocol.keys import (
    ENV_CLIENT_SECRET_KEY,
    ENV_SERVER_KEY,
    KeyFileError,
    create_key_pair,
    read_public_key,
    read_secret_key,
)

is_root = os.getuid() == 0
TCP = "tcp://127.0.0.1:5555"
IPC = "ipc:///run/a/events.sock"


def mode_of(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def settings(**changes: Any) -> Settings:
    """Settings with a tcp:// command endpoint, and ``changes``."""
    base = Settings(
        root=Path("/r"), runtime_dir=Path("/run/a"), command=TCP, events=IPC, log_format="json"
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def clients(tmp_path: Path) -> Path:
    """An empty, private ``curve-clients`` folder."""
    path = tmp_path / "clients"
    path.mkdir(mode=0o700)
    return path


# ============================================================================================
# Settings
# ============================================================================================


def test_the_config_file_takes_the_security_keys(tmp_path: Path) -> None:
    config = tmp_path / "assistantd.toml"
    config.write_text(
        'curve-clients = "~/allowed"\ncurve-secret-key = "keys/server.key_secret"\n'
        "insecure-tcp = true\n"
    )
    resolved = resolve({"config": str(config)}, env={}, home=tmp_path)
    assert resolved.curve_clients == Path("~/allowed").expanduser()
    assert resolved.curve_secret_key == Path("keys/server.key_secret").absolute()
    assert resolved.insecure_tcp is True


def test_options_give_the_security_keys_and_default_to_none(tmp_path: Path) -> None:
    defaults = resolve({}, env={}, home=tmp_path)
    assert (defaults.curve_clients, defaults.curve_secret_key, defaults.insecure_tcp) == (
        None,
        None,
        False,
    )
    given = resolve(
        {"curve_clients": "/c", "insecure_tcp": True, "insecure-tcp": None}, env={}, home=tmp_path
    )
    assert given.curve_clients == Path("/c")
    assert given.insecure_tcp is True


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('insecure-tcp = "yes"', "'insecure-tcp' must be true or false"),
        ("curve-clients = true", "'curve-clients' must be a string"),
    ],
)
def test_security_keys_of_the_wrong_type_are_refused(
    tmp_path: Path, line: str, problem: str
) -> None:
    config = tmp_path / "assistantd.toml"
    config.write_text(line + "\n")
    with pytest.raises(ConfigError, match=problem):
        resolve({"config": str(config)}, env={}, home=tmp_path)


# ============================================================================================
# Key files
# ============================================================================================


def test_a_pair_is_private_whatever_the_umask_and_never_replaced(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        public_file, secret_file = create_key_pair(str(tmp_path / "new"), "me")
    finally:
        os.umask(previous)
    assert (mode_of(public_file), mode_of(secret_file), mode_of(tmp_path / "new")) == (
        0o644,
        0o600,
        0o700,
    )
    assert sorted(os.listdir(tmp_path / "new")) == ["me.key", "me.key_secret"]  # no staging
    public, secret = read_secret_key(secret_file)
    assert read_public_key(public_file) == public == zmq.curve_public(secret)
    before = Path(secret_file).read_bytes()
    with pytest.raises(FileExistsError):
        create_key_pair(str(tmp_path / "new"), "me")
    assert Path(secret_file).read_bytes() == before


def test_a_secret_key_others_can_read_is_refused(tmp_path: Path) -> None:
    _, secret_file = create_key_pair(str(tmp_path), "me")
    os.chmod(secret_file, 0o640)
    with pytest.raises(KeyFileError, match=r"mode 0640.*chmod 600"):
        read_secret_key(secret_file)


@pytest.mark.skipif(not is_root, reason="only root can give a file to another user")
def test_a_secret_key_of_another_user_is_refused(tmp_path: Path) -> None:
    _, secret_file = create_key_pair(str(tmp_path), "me")
    os.chown(secret_file, 65534, 65534)
    with pytest.raises(KeyFileError, match="belongs to uid 65534"):
        read_secret_key(secret_file)


def test_a_pair_whose_keys_do_not_match_is_refused(tmp_path: Path) -> None:
    _, secret_file = create_key_pair(str(tmp_path), "me")
    other_public, _ = zmq.curve_keypair()
    text = Path(secret_file).read_text()
    public = read_public_key(secret_file).decode()
    Path(secret_file).write_text(text.replace(public, other_public.decode()))
    with pytest.raises(KeyFileError, match="does not belong"):
        read_secret_key(secret_file)


def test_a_public_key_file_is_no_secret_key(tmp_path: Path) -> None:
    public_file, _ = create_key_pair(str(tmp_path), "me")
    os.chmod(public_file, 0o600)
    with pytest.raises(KeyFileError, match="no secret key"):
        read_secret_key(public_file)


# ============================================================================================
# Before serving tcp://
# ============================================================================================


def test_no_tcp_endpoint_needs_nothing(tmp_path: Path) -> None:
    assert prepare_tcp(settings(command=IPC), env={}, home=tmp_path) is None


def test_tcp_needs_curve_clients_or_insecure_tcp(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        prepare_tcp(settings(), env={}, home=tmp_path)
    message = str(caught.value)
    assert TCP in message
    assert "curve-clients" in message
    assert "--insecure-tcp" in message
    assert not (tmp_path / ".local").exists()  # no key made for a start that is refused


def test_insecure_tcp_needs_no_keys(tmp_path: Path) -> None:
    assert prepare_tcp(settings(insecure_tcp=True), env={}, home=tmp_path) is None


def test_insecure_tcp_and_curve_clients_contradict(tmp_path: Path, clients: Path) -> None:
    with pytest.raises(ConfigError, match="contradict"):
        prepare_tcp(settings(insecure_tcp=True, curve_clients=clients), env={}, home=tmp_path)


def test_a_missing_curve_clients_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist: create it \(mkdir -m 700"):
        prepare_tcp(settings(curve_clients=tmp_path / "none"), env={}, home=tmp_path)


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_a_curve_clients_folder_others_can_write_is_refused(
    tmp_path: Path, clients: Path, mode: int
) -> None:
    clients.chmod(mode)
    with pytest.raises(ConfigError, match=f"mode {mode:04o}: others could add"):
        prepare_tcp(settings(curve_clients=clients), env={}, home=tmp_path)


@pytest.mark.skipif(not is_root, reason="only root can give a folder to another user")
def test_a_curve_clients_folder_of_another_user_is_refused(tmp_path: Path, clients: Path) -> None:
    os.chown(clients, 65534, 65534)
    with pytest.raises(ConfigError, match="belongs to uid 65534"):
        prepare_tcp(settings(curve_clients=clients), env={}, home=tmp_path)


def test_the_daemon_makes_its_pair_in_its_state_dir_once(tmp_path: Path, clients: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    first = prepare_tcp(settings(curve_clients=clients), env=env, home=tmp_path)
    assert first is not None
    assert first.key_file == tmp_path / "state" / "assistantd" / "server.key_secret"
    assert mode_of(first.key_file) == 0o600
    assert read_public_key(str(first.key_file.with_suffix(".key"))) == first.public_key
    again = prepare_tcp(settings(curve_clients=clients), env=env, home=tmp_path)
    assert again is not None
    assert again.secret_key == first.secret_key


def test_systemds_state_directory_comes_first(tmp_path: Path, clients: Path) -> None:
    env = {"STATE_DIRECTORY": str(tmp_path / "lib"), "XDG_STATE_HOME": str(tmp_path / "state")}
    server = prepare_tcp(settings(curve_clients=clients), env=env, home=tmp_path)
    assert server is not None
    assert server.key_file == tmp_path / "lib" / "server.key_secret"


def test_a_named_secret_key_is_used_and_never_made(tmp_path: Path, clients: Path) -> None:
    missing = tmp_path / "typo.key_secret"
    with pytest.raises(ConfigError, match="does not exist: make a pair with 'assistantctl keys"):
        prepare_tcp(settings(curve_clients=clients, curve_secret_key=missing), home=tmp_path)
    assert not missing.exists()
    _, secret_file = create_key_pair(str(tmp_path / "keys"), "mine")
    server = prepare_tcp(
        settings(curve_clients=clients, curve_secret_key=Path(secret_file)), home=tmp_path
    )
    assert server is not None
    assert server.secret_key == read_secret_key(secret_file)[1]


def test_a_named_secret_key_others_can_read_is_refused(tmp_path: Path, clients: Path) -> None:
    _, secret_file = create_key_pair(str(tmp_path / "keys"), "mine")
    os.chmod(secret_file, 0o644)
    with pytest.raises(ConfigError, match=r"curve-secret-key: .*mode 0644"):
        prepare_tcp(
            settings(curve_clients=clients, curve_secret_key=Path(secret_file)), home=tmp_path
        )


# ============================================================================================
# The folder of allowed keys
# ============================================================================================


def test_allowed_keys_are_the_safe_key_files_of_the_folder(tmp_path: Path, clients: Path) -> None:
    good = Path(create_key_pair(str(tmp_path / "k"), "good")[0])
    loose = Path(create_key_pair(str(tmp_path / "k"), "loose")[0])
    other = Path(create_key_pair(str(tmp_path / "k"), "other")[0])
    shutil.copy(good, clients / "good.key")
    shutil.copy(loose, clients / "loose.key")
    (clients / "loose.key").chmod(0o666)  # anyone could put their own key in it
    shutil.copy(other, clients / "other.key.disabled")  # not a .key file
    (clients / "broken.key").write_text("public-key = nonsense\n")
    allowed = AllowedClients(clients)
    assert allowed.read() == {read_public_key(str(good)): "good.key"}
    assert allowed.callback("*", read_public_key(str(good))) is True
    assert allowed.callback("*", read_public_key(str(loose))) is False
    assert allowed.callback("*", read_public_key(str(other))) is False


def test_a_vanished_folder_allows_nobody_and_raises_nothing(tmp_path: Path) -> None:
    public_key, _ = zmq.curve_keypair()
    assert AllowedClients(tmp_path / "gone").callback("*", public_key) is False


# ============================================================================================
# A client's keys
# ============================================================================================


@pytest.fixture
def client_home(tmp_path: Path) -> Path:
    """A home with a client pair where ``assistantctl keys`` puts it, and no daemon key."""
    home = tmp_path / "home"
    create_key_pair(str(home / ".config" / "assistantd"), "client")
    return home


def test_ipc_needs_no_keys_and_insecure_tcp_takes_none() -> None:
    nothing = ClientSecurity(env={})
    assert nothing.socket_options("ipc:///run/a/command.sock") == []
    assert ClientSecurity(insecure_tcp=True, env={}).socket_options(TCP) == []


def test_the_servers_key_from_the_environment_as_a_key_or_a_file(
    tmp_path: Path, client_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(client_home))
    server_public_file, _ = create_key_pair(str(tmp_path / "server"), "server")
    server_key = read_public_key(server_public_file)
    for value in (server_key.decode(), server_public_file):
        options = dict(ClientSecurity(env={ENV_SERVER_KEY: value}).socket_options(TCP))
        assert options[zmq.CURVE_SERVERKEY] == server_key
        client_secret = client_home / ".config" / "assistantd" / "client.key_secret"
        public, secret = read_secret_key(str(client_secret))
        assert options[zmq.CURVE_PUBLICKEY] == public
        assert options[zmq.CURVE_SECRETKEY] == secret


def test_the_servers_key_file_is_looked_for_in_the_config_then_the_state_dir(
    client_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(client_home))
    local_file, _ = create_key_pair(str(client_home / ".local" / "state" / "assistantd"), "server")
    options = dict(ClientSecurity(env={}).socket_options(TCP))
    assert options[zmq.CURVE_SERVERKEY] == read_public_key(local_file)
    copied_file, _ = create_key_pair(str(client_home / "elsewhere"), "server")
    shutil.copy(copied_file, client_home / ".config" / "assistantd" / "server.key")
    options = dict(ClientSecurity(env={}).socket_options(TCP))
    assert options[zmq.CURVE_SERVERKEY] == read_public_key(copied_file)


def test_a_named_client_pair_wins(tmp_path: Path, client_home: Path) -> None:
    _, mine = create_key_pair(str(tmp_path / "mine"), "laptop")
    server_key = zmq.curve_keypair()[0]
    env = {"HOME": str(client_home), ENV_CLIENT_SECRET_KEY: "/nowhere/at/all"}
    options = dict(
        ClientSecurity(secret_key=mine, server_key=server_key, env=env).socket_options(TCP)
    )
    assert options[zmq.CURVE_SECRETKEY] == read_secret_key(mine)[1]


@pytest.mark.parametrize(
    ("env", "given", "says"),
    [
        ({}, {"server_key": None}, "needs the daemon's public key"),
        ({ENV_SERVER_KEY: "too short"}, {}, "not a CURVE key"),
        ({ENV_CLIENT_SECRET_KEY: "/nowhere/client.key_secret"}, {}, "no secret key file"),
    ],
)
def test_a_missing_or_bad_key_is_said_clearly(
    client_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    given: dict[str, object],
    says: str,
) -> None:
    monkeypatch.setenv("HOME", str(client_home))
    with pytest.raises(UnavailableError) as caught:
        ClientSecurity(env=env, **given).socket_options(TCP)  # type: ignore[arg-type]
    assert caught.value.code == "curve_key_missing"
    assert says in caught.value.message


def test_no_client_pair_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(UnavailableError, match="assistantctl keys"):
        ClientSecurity(env={}, server_key=zmq.curve_keypair()[0]).socket_options(TCP)

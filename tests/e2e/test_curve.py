"""Endpoint security (issue 6) with real sockets: CURVE on tcp://, private ipc sockets.

One daemon (``lab``) serves its commands and events on two free ports of 127.0.0.1 with CURVE,
set up the way a user sets it up: a config file naming its key pair and a ``curve-clients``
folder that holds one allowed client's public key. Clients with that key get answers and
events; a client speaking no CURVE, or with a key not in the folder, gets nothing, while the
daemon goes on serving the allowed one. A refused handshake is waited for on the client's
socket monitor (or in the daemon's log), never by sleeping; "nothing" is then checked with a
short deadline. Starts that must be refused run a daemon of their own to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from assistantd.client import (
    AssistantCreated,
    AsyncClient,
    Client,
    UnavailableError,
)
from assistantd.protocol.keys import (
    ENV_CLIENT_SECRET_KEY,
    ENV_SERVER_KEY,
    create_key_pair,
    read_public_key,
)
from tests.e2e.helpers import clean_env, log_mark, run_to_exit, short_tmp, wait_for_new_log
from tests.e2e.workers import FAST_WORKERS, write_code
from tests.utils import DaemonProcess, running_daemon

CTL = [sys.executable, "-m", "assistantd.ctl.main"]
REPLY_TIMEOUT = 10.0
SILENCE = 0.5
"""Seconds a refused client is watched for a reply that must not come, once its handshake
has failed (the failure itself is waited for, not assumed)."""
HANDSHAKE_TIMEOUT = 10.0

Context = zmq.Context[zmq.Socket[bytes]]


def free_tcp_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@dataclass
class KeyPair:
    public_file: Path
    secret_file: Path

    @property
    def public_key(self) -> bytes:
        return read_public_key(str(self.public_file))


def secret_key_of(pair: KeyPair) -> bytes:
    _, secret = zmq.auth.load_certificate(pair.secret_file)
    assert secret is not None
    return secret


def make_pair(folder: Path, name: str) -> KeyPair:
    public_file, secret_file = create_key_pair(str(folder), name)
    return KeyPair(Path(public_file), Path(secret_file))


@dataclass
class Lab:
    """The shared CURVE daemon, its endpoints and keys."""

    daemon: DaemonProcess
    command: str
    events: str
    server: KeyPair
    allowed: KeyPair
    """In the daemon's ``curve-clients`` folder."""
    stranger: KeyPair
    """A valid pair the daemon has never been told of."""
    clients: Path
    context: Context
    worker_env_secret: str
    """A value only the daemon's own environment holds."""

    def client(self, pair: KeyPair | None = None, timeout: float = REPLY_TIMEOUT) -> Client:
        """A client with ``pair`` (the allowed one by default) and the daemon's key file."""
        pair = pair or self.allowed
        return Client(
            command=self.command,
            events=self.events,
            timeout=timeout,
            curve_secret_key=pair.secret_file,
            curve_server_key=self.server.public_file,
        )

    def check_serving(self) -> None:
        """The allowed client is answered (after whatever a refused one tried)."""
        with self.client() as client:
            assert client.ping().epoch


CONFIG = """\
command = "{command}"
events = "{events}"
curve-clients = "{clients}"
curve-secret-key = "{secret}"

[workers]
{workers}
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    context: Context = zmq.Context()
    try:
        with short_tmp("curve-") as base:
            keys = base / "keys"
            server = make_pair(keys, "server")
            allowed = make_pair(keys, "allowed")
            stranger = make_pair(keys, "stranger")
            clients = base / "clients"
            clients.mkdir(mode=0o700)
            shutil.copy(allowed.public_file, clients / "allowed.key")
            command = f"tcp://127.0.0.1:{free_tcp_port()}"
            events = f"tcp://127.0.0.1:{free_tcp_port()}"
            config = base / "assistantd.toml"
            workers = "\n".join(f"{key} = {value}" for key, value in FAST_WORKERS.items())
            config.write_text(
                CONFIG.format(
                    command=command,
                    events=events,
                    clients=clients,
                    secret=server.secret_file,
                    workers=workers,
                )
            )
            root = base / "assistants"
            secret = "not-for-workers-" + os.urandom(8).hex()
            # The daemon's environment holds what a client of this user would have: the key
            # variables, and a secret of its own; none of them may reach a worker.
            env = {
                ENV_CLIENT_SECRET_KEY: str(allowed.secret_file),
                ENV_SERVER_KEY: server.public_key.decode(),
                "ASSISTANTD_TEST_SECRET": secret,
            }
            with running_daemon(root, args=("--config", str(config)), env=env) as daemon:
                yield Lab(
                    daemon, command, events, server, allowed, stranger, clients, context, secret
                )
    finally:
        context.destroy(linger=0)


# ============================================================================================
# Allowed clients
# ============================================================================================


def test_the_daemon_logs_its_curve_setup(lab: Lab) -> None:
    line = lab.daemon.wait_for_log(lambda line: line.get("event") == "curve")
    assert line["public_key"] == lab.server.public_key.decode()
    assert line["clients"] == str(lab.clients)
    assert line["allowed"] == 1
    assert line["endpoints"] == [lab.command, lab.events]


def test_an_allowed_client_gets_answers_and_events(lab: Lab) -> None:
    with lab.client() as client, client.watch("assistant.") as watch:
        assert client.ping().protocol_version >= 1
        created = client.create_assistant(name="Over TCP")
        for event in watch:
            if isinstance(event, AssistantCreated) and event.assistant.id == created.id:
                break
        assert watch.mirror.assistants[created.id].name == "Over TCP"
        client.delete_assistant(created.id)
    assert any(
        line.get("event") == "curve client allowed" and line.get("key_file") == "allowed.key"
        for line in lab.daemon.logs
    )


async def test_the_async_client_and_its_watch_use_curve_too(lab: Lab) -> None:
    client = AsyncClient(
        command=lab.command,
        events=lab.events,
        timeout=REPLY_TIMEOUT,
        curve_secret_key=lab.allowed.secret_file,
        curve_server_key=lab.server.public_key,
    )
    async with asyncio.timeout(30), client, client.watch("assistant.") as watch:
        created = await client.create_assistant(name="Async over TCP")
        while True:
            event = await watch.next(REPLY_TIMEOUT)
            if isinstance(event, AssistantCreated) and event.assistant.id == created.id:
                break
        await client.delete_assistant(created.id)


def test_keys_come_from_the_environment(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CLIENT_SECRET_KEY, str(lab.allowed.secret_file))
    monkeypatch.setenv(ENV_SERVER_KEY, str(lab.server.public_file))
    with Client(command=lab.command, timeout=REPLY_TIMEOUT) as client:
        assert client.get_assistant("jan").id == "jan"


def test_assistantctl_goes_through_curve(lab: Lab, tmp_path: Path) -> None:
    env = clean_env(
        HOME=str(tmp_path),
        **{
            ENV_CLIENT_SECRET_KEY: str(lab.allowed.secret_file),
            ENV_SERVER_KEY: lab.server.public_key.decode(),
        },
    )
    done = subprocess.run(
        [*CTL, "--command", lab.command, "--json", "get", "jan"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == "jan"


# ============================================================================================
# Refused clients
# ============================================================================================


HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


@contextlib.contextmanager
def refused_socket(
    lab: Lab, kind: int, endpoint: str, pair: KeyPair | None
) -> Iterator[zmq.Socket[bytes]]:
    """A raw socket of ``kind`` connected to ``endpoint`` (with CURVE and ``pair`` when
    given), once its handshake has failed."""
    sock = lab.context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    monitor = sock.get_monitor_socket(zmq.EVENT_ALL)
    try:
        if pair is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, lab.server.public_key)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, pair.public_key)
            sock.setsockopt(zmq.CURVE_SECRETKEY, secret_key_of(pair))
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(endpoint)
        if kind == zmq.DEALER:
            sock.send_multipart([b"", b'{"id": 1, "method": "ping"}'])
        wait_for_handshake_failure(monitor)
        yield sock
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)


def wait_for_handshake_failure(monitor: zmq.Socket[bytes]) -> None:
    seen = []
    while monitor.poll(int(HANDSHAKE_TIMEOUT * 1000)):
        event = recv_monitor_message(monitor)
        seen.append(event["event"])
        if event["event"] & HANDSHAKE_FAILED:
            return
        assert event["event"] != zmq.EVENT_HANDSHAKE_SUCCEEDED, "the daemon let it in"
    raise AssertionError(f"no failed handshake within {HANDSHAKE_TIMEOUT}s; events: {seen}")


@pytest.mark.parametrize("kind", [zmq.DEALER, zmq.SUB], ids=["command", "events"])
def test_a_client_without_curve_gets_nothing(lab: Lab, kind: int) -> None:
    endpoint = lab.command if kind == zmq.DEALER else lab.events
    with refused_socket(lab, kind, endpoint, pair=None) as sock:
        assert not sock.poll(int(SILENCE * 1000)), sock.recv_multipart()
    lab.check_serving()


@pytest.mark.parametrize("kind", [zmq.DEALER, zmq.SUB], ids=["command", "events"])
def test_a_key_not_in_the_folder_gets_nothing(lab: Lab, kind: int) -> None:
    endpoint = lab.command if kind == zmq.DEALER else lab.events
    mark = log_mark(lab.daemon)
    with refused_socket(lab, kind, endpoint, pair=lab.stranger) as sock:
        refused = wait_for_new_log(
            lab.daemon, mark, lambda line: line.get("event") == "curve client refused"
        )
        assert refused["client_key"] == lab.stranger.public_key.decode()
        assert refused["level"] == "warning"
        assert not sock.poll(int(SILENCE * 1000)), sock.recv_multipart()
    lab.check_serving()


def test_the_client_says_why_a_refused_key_gets_no_reply(lab: Lab) -> None:
    with (
        lab.client(lab.stranger, timeout=1.0) as client,
        pytest.raises(UnavailableError) as caught,
    ):
        client.ping()
    assert caught.value.code == "timeout"
    assert "curve-clients" in caught.value.message
    lab.check_serving()


def test_a_key_put_into_the_folder_is_allowed_from_the_next_connection(lab: Lab) -> None:
    added = lab.clients / "stranger.key"
    shutil.copy(lab.stranger.public_file, added)
    try:
        with lab.client(lab.stranger) as client:
            assert client.ping().epoch
    finally:
        added.unlink()
    with lab.client(lab.stranger, timeout=1.0) as client, pytest.raises(UnavailableError):
        client.ping()


def test_a_client_without_keys_is_told_how_to_make_them(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", ENV_CLIENT_SECRET_KEY, ENV_SERVER_KEY):
        monkeypatch.delenv(name, raising=False)
    with (
        Client(command=lab.command, timeout=1.0) as client,
        pytest.raises(UnavailableError) as caught,
    ):
        client.ping()
    assert caught.value.code == "curve_key_missing"
    assert "assistantctl keys" in caught.value.message
    assert str(tmp_path / ".config" / "assistantd" / "client.key_secret") in caught.value.message


# ============================================================================================
# Workers
# ============================================================================================


ENV_WORKER = """\
module.exports = { env: () => ({ ...process.env }) };
"""


def test_workers_get_no_curve_keys_and_no_secrets(lab: Lab) -> None:
    with lab.client() as client:
        created = client.create_assistant(name="Env")
        write_code(lab.daemon.root / created.id, ENV_WORKER)
        try:
            client.start_assistant(created.id)
            env = client.invoke_assistant(created.id, "env")
        finally:
            client.delete_assistant(created.id)
    assert env["ASSISTANTD_ASSISTANT_ID"] == created.id
    assert ENV_CLIENT_SECRET_KEY not in env
    assert ENV_SERVER_KEY not in env
    assert "ASSISTANTD_TEST_SECRET" not in env
    values = "\n".join(env.values())
    secret_key = secret_key_of(lab.server).decode()
    for leak in (lab.worker_env_secret, secret_key, str(lab.server.secret_file), "key_secret"):
        assert leak not in values


# ============================================================================================
# Starts that are refused, and --insecure-tcp
# ============================================================================================


def daemon_args(base: Path, *more: str) -> tuple[str, ...]:
    return (
        "--root",
        str(base / "assistants"),
        "--runtime-dir",
        str(base / "run"),
        "--log-format",
        "json",
        *more,
    )


def tcp_endpoints() -> tuple[str, str]:
    """A command and an events endpoint on free ports of 127.0.0.1."""
    return f"tcp://127.0.0.1:{free_tcp_port()}", f"tcp://127.0.0.1:{free_tcp_port()}"


def tcp_args() -> tuple[str, ...]:
    command, events = tcp_endpoints()
    return ("--command", command, "--events", events)


def test_tcp_without_curve_is_refused_at_start(tmp_path: Path) -> None:
    with short_tmp("tcp-") as base:
        refused = run_to_exit(daemon_args(base, *tcp_args()), env=clean_env(HOME=str(tmp_path)))
    assert refused.returncode == 1, refused.stderr
    reasons = refused.reasons()
    assert "only with CURVE" in reasons, refused.stderr
    assert "curve-clients" in reasons
    assert "--insecure-tcp" in reasons
    assert not any(line.get("event") == "ready" for line in refused.logs)


def test_a_curve_clients_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    clients = tmp_path / "clients"
    clients.mkdir()
    clients.chmod(0o777)
    with short_tmp("tcp-") as base:
        refused = run_to_exit(
            daemon_args(base, *tcp_args(), "--curve-clients", str(clients)),
            env=clean_env(HOME=str(tmp_path)),
        )
    assert refused.returncode == 1, refused.stderr
    assert "0777" in refused.reasons()
    assert "chmod go-w" in refused.reasons()


@pytest.mark.parametrize("where", ["option", "config"])
def test_insecure_tcp_serves_and_logs_a_warning(tmp_path: Path, where: str) -> None:
    command, events = tcp_endpoints()
    args: tuple[str, ...] = ("--command", command, "--events", events)
    if where == "option":
        args += ("--insecure-tcp",)
    else:
        config = tmp_path / "assistantd.toml"
        config.write_text("insecure-tcp = true\n")
        args += ("--config", str(config))
    with short_tmp("tcp-") as base:
        root = base / "assistants"
        with (
            running_daemon(root, runtime_dir=base / "run", args=args) as daemon,
            Client(command=command, events=events, timeout=REPLY_TIMEOUT, insecure_tcp=True) as c,
        ):
            warning = daemon.wait_for_log(lambda line: line.get("event") == "tcp without curve")
            assert warning["level"] == "warning"
            assert warning["endpoints"] == [command, events]
            assert "anyone" in warning["risk"]
            assert c.get_assistant("jan").id == "jan"
            assert not (base / "run" / "command.sock").exists()


def test_the_daemon_makes_its_key_pair_on_first_use(tmp_path: Path) -> None:
    clients = tmp_path / "clients"
    clients.mkdir(mode=0o700)
    state = tmp_path / "state"
    client = make_pair(tmp_path / "client", "client")
    shutil.copy(client.public_file, clients / "client.key")
    command, events = tcp_endpoints()
    args = ("--command", command, "--events", events, "--curve-clients", str(clients))
    env = {"XDG_STATE_HOME": str(state)}
    secret_file = state / "assistantd" / "server.key_secret"
    public_keys = []
    for _ in range(2):  # the second start uses the pair the first one made
        with short_tmp("tcp-") as base:
            root = base / "assistants"
            with running_daemon(root, runtime_dir=base / "run", args=args, env=env) as daemon:
                logged = daemon.wait_for_log(lambda line: line.get("event") == "curve")
                assert logged["public_key_file"] == str(state / "assistantd" / "server.key")
                public_keys.append(logged["public_key"])
                with Client(
                    command=command,
                    timeout=REPLY_TIMEOUT,
                    curve_secret_key=client.secret_file,
                    curve_server_key=logged["public_key"],
                ) as c:
                    assert c.ping().epoch
        assert mode_of(secret_file) == 0o600
        assert mode_of(secret_file.parent) == 0o700
    assert public_keys[0] == public_keys[1] == read_public_key(str(secret_file)).decode()


# ============================================================================================
# ipc:// sockets and the runtime dir
# ============================================================================================


def test_socket_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "assistants"
    previous = os.umask(0)  # the daemon inherits it: a socket would be made 0777
    try:
        with running_daemon(root) as daemon:
            os.umask(previous)
            for name in ("command.sock", "events.sock"):
                path = daemon.runtime_dir / name
                assert stat.S_ISSOCK(path.stat().st_mode)
                assert mode_of(path) == 0o600, name
            assert mode_of(daemon.runtime_dir) == 0o700
            with Client(command=daemon.command, timeout=REPLY_TIMEOUT) as client:
                assert client.ping().epoch
    finally:
        os.umask(previous)


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a folder to another user")
def test_a_runtime_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    with short_tmp("rt-") as runtime_dir:
        os.chown(runtime_dir, 65534, 65534)  # nobody
        refused = run_to_exit(
            ("--root", str(tmp_path / "assistants"), "--runtime-dir", str(runtime_dir)),
            env=clean_env(HOME=str(tmp_path)),
        )
        assert refused.returncode == 1, refused.stderr
        assert "belongs to uid 65534" in refused.reasons()
        assert os.listdir(runtime_dir) == []


def test_an_abstract_ipc_socket_is_refused(tmp_path: Path) -> None:
    with short_tmp("rt-") as base:
        refused = run_to_exit(
            daemon_args(base, "--command", "ipc://@assistantd-test"),
            env=clean_env(HOME=str(tmp_path)),
        )
    assert refused.returncode == 1, refused.stderr
    assert "abstract" in refused.reasons()


# ============================================================================================
# assistantctl keys
# ============================================================================================


def run_ctl(*args: str, home: Path, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CTL, *args],
        capture_output=True,
        text=True,
        env=clean_env(HOME=str(home)),
        timeout=30,
        check=False,
        preexec_fn=lambda: os.umask(umask),
    )


def test_assistantctl_keys_makes_a_private_pair_and_keeps_it(tmp_path: Path) -> None:
    made = run_ctl("keys", home=tmp_path, umask=0)  # even a umask of 0 leaves the secret private
    assert made.returncode == 0, made.stderr
    folder = tmp_path / ".config" / "assistantd"
    secret_file, public_file = folder / "client.key_secret", folder / "client.key"
    assert mode_of(secret_file) == 0o600
    assert mode_of(public_file) == 0o644
    assert mode_of(folder) == 0o700
    public_key = read_public_key(str(public_file)).decode()
    assert public_key in made.stdout
    assert str(public_file) in made.stdout
    assert "curve-clients" in made.stdout
    again = run_ctl("keys", "--json", home=tmp_path)
    assert again.returncode == 0, again.stderr
    shown = json.loads(again.stdout)
    assert shown == {
        "created": False,
        "secret_key_file": str(secret_file),
        "public_key_file": str(public_file),
        "public_key": public_key,
    }


def test_assistantctl_keys_in_another_folder_and_the_servers_key(tmp_path: Path) -> None:
    made = run_ctl("keys", "--dir", str(tmp_path / "k"), "--name", "laptop", home=tmp_path)
    assert made.returncode == 0, made.stderr
    assert mode_of(tmp_path / "k" / "laptop.key_secret") == 0o600
    assert f"{ENV_CLIENT_SECRET_KEY}={tmp_path / 'k' / 'laptop.key_secret'}" in made.stdout
    server = make_pair(tmp_path / "state", "server")
    shown = run_ctl("keys", "--server", "--dir", str(tmp_path / "state"), home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"{ENV_SERVER_KEY}={server.public_key.decode()}" in shown.stdout
    missing = run_ctl("keys", "--server", home=tmp_path)
    assert missing.returncode == 1
    assert "no server key" in missing.stderr

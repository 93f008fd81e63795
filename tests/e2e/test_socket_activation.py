"""Socket activation: the test plays systemd, the daemon adopts the sockets it is passed.

As a .socket unit does, the test binds and listens on the daemon's sockets itself, then starts
the real daemon with them as fds 3, 4 and ``LISTEN_PID``/``LISTEN_FDS``/``LISTEN_FDNAMES``. So
a client can connect and send before any daemon runs, and the sockets outlive each daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import zmq

from assistantd.client import Client
from tests.e2e.helpers import (
    REPLY_TIMEOUT,
    Exit,
    clean_env,
    exchange,
    reply_of,
    request_body,
    short_tmp,
)
from tests.e2e.workers import write_assistant, write_config
from tests.utils import START_TIMEOUT, STOP_TIMEOUT, DaemonProcess, LogLine, daemon_command

WRAPPER = """
import fcntl, os, sys
fds, listen_pid, command = sys.argv[1], sys.argv[2], sys.argv[3:]
# Out of the way first, so that moving one to 3 or 4 never overwrites another.
high = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 100) for fd in fds.split(",") if fd]
for fd in fds.split(","):
    if fd:
        os.close(int(fd))
for index, fd in enumerate(high):
    os.dup2(fd, 3 + index)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid()) if listen_pid == "self" else listen_pid
os.execv(command[0], command)
"""
"""What systemd does between fork and exec: the passed fds become 3, 4, ... and ``LISTEN_PID``
is the pid of the process that execs the daemon (known only once it is forked, hence a wrapper
that execs rather than an ``env`` from the test)."""

Passed = socket.socket | int
"""A passed fd: a socket the test listens on, or any other open fd."""


# ============================================================================================
# Playing systemd
# ============================================================================================


def listening_unix(path: Path) -> socket.socket:
    """A listening ``AF_UNIX`` stream socket at ``path``, 0600, as a .socket unit makes it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    path.chmod(0o600)
    sock.listen()
    return sock


@contextmanager
def unit_sockets(runtime_dir: Path) -> Iterator[tuple[socket.socket, socket.socket]]:
    """The command and events sockets of the two .socket units, closed afterwards."""
    with (
        listening_unix(runtime_dir / "command.sock") as command,
        listening_unix(runtime_dir / "events.sock") as events,
    ):
        yield command, events


def activation_command(
    passed: Sequence[Passed], args: Sequence[str], *, listen_pid: str = "self"
) -> list[str]:
    """``assistantd ARGS`` started the way systemd starts it with ``passed`` (see WRAPPER)."""
    fds = ",".join(str(_fd(each)) for each in passed)
    return [sys.executable, "-c", WRAPPER, fds, listen_pid, *daemon_command(*args)]


def _fd(passed: Passed) -> int:
    return passed if isinstance(passed, int) else passed.fileno()


def daemon_args(root: Path, runtime_dir: Path, *more: str) -> tuple[str, ...]:
    return (
        "--root",
        str(root),
        "--runtime-dir",
        str(runtime_dir),
        "--log-format",
        "json",
        "--log-level",
        "debug",
        *more,
    )


def activation_env(count: int | str, names: str | None, home: Path) -> dict[str, str]:
    """The environment systemd gives the service (``LISTEN_PID`` is set by the wrapper)."""
    env = clean_env(HOME=str(home), LISTEN_FDS=str(count), LISTEN_PID=None, LISTEN_FDNAMES=None)
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    return env


@contextmanager
def activated_daemon(
    passed: Sequence[Passed],
    args: Sequence[str],
    *,
    env: dict[str, str],
    root: Path,
    runtime_dir: Path,
    listen_pid: str = "self",
) -> Iterator[DaemonProcess]:
    """The daemon started with ``passed`` as its fds 3, 4, ...; stopped on the way out."""
    process = subprocess.Popen(
        activation_command(passed, args, listen_pid=listen_pid),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        pass_fds=[_fd(each) for each in passed],
    )
    daemon = DaemonProcess(root, runtime_dir, process)
    reader = threading.Thread(target=daemon._collect, daemon=True)
    reader.start()
    try:
        yield daemon
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(5)
        if process.stderr is not None:
            process.stderr.close()


def run_activated_to_exit(
    passed: Sequence[Passed], args: Sequence[str], *, env: dict[str, str]
) -> Exit:
    """Start the daemon with ``passed``, expecting it to refuse to start; how it ended."""
    try:
        done = subprocess.run(
            activation_command(passed, args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            pass_fds=[_fd(each) for each in passed],
            timeout=15,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("the daemon did not exit by itself") from exc
    stderr = done.stderr.decode(errors="replace")
    logs: list[LogLine] = []
    for raw in stderr.splitlines():
        try:
            logs.append(json.loads(raw))
        except ValueError:
            logs.append({"event": raw, "level": "raw"})
    return Exit(done.returncode, logs, stderr)


# ============================================================================================
# Looking at the daemon
# ============================================================================================


def wait_ready(daemon: DaemonProcess) -> LogLine:
    return daemon.wait_for_log(lambda line: line.get("event") == "ready", START_TIMEOUT)


def adopted_roles(daemon: DaemonProcess) -> dict[str, str]:
    """The endpoint of each socket the daemon said it adopted, by role."""
    return {
        str(line["role"]): str(line["endpoint"])
        for line in daemon.logs
        if line.get("event") == "passed socket adopted"
    }


def inode(path: Path) -> int:
    """The socket file's inode: a daemon that bound anew would have made another file."""
    info = path.stat()
    assert stat.S_ISSOCK(info.st_mode), path
    return info.st_ino


def send_ping(context: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> zmq.Socket[bytes]:
    """A DEALER that sent a ping to ``endpoint`` (the reply is read with :func:`reply_to`)."""
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoint)
    dealer.send_multipart([b"", request_body("queued", "ping")])
    return dealer


def reply_to(dealer: zmq.Socket[bytes], timeout: float = START_TIMEOUT) -> dict[str, Any]:
    if not dealer.poll(int(timeout * 1000), zmq.POLLIN):
        raise AssertionError(f"no reply within {timeout}s")
    return reply_of(dealer.recv_multipart())


def next_event(sub: zmq.Socket[bytes], topic: str, timeout: float = REPLY_TIMEOUT) -> Any:
    """The body of the next event with ``topic`` (heartbeats and others are passed over)."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        if sub.poll(int(remaining * 1000), zmq.POLLIN):
            body = json.loads(sub.recv_multipart()[-1])
            if body.get("topic") == topic:
                return body
    raise AssertionError(f"no {topic} event within {timeout}s")


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A runtime dir as systemd's ``RuntimeDirectory=`` makes it (0700, ours)."""
    with short_tmp("sa-") as path:
        yield path


# ============================================================================================
# Adopting
# ============================================================================================


def test_a_command_sent_before_the_daemon_starts_is_answered_on_the_passed_socket(
    tmp_path: Path, runtime_dir: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    root = tmp_path / "assistants"
    with unit_sockets(runtime_dir) as (command, events):
        files = {name: inode(runtime_dir / name) for name in ("command.sock", "events.sock")}
        # Both wait in the sockets' queues: no daemon exists yet.
        dealer = send_ping(context, f"ipc://{runtime_dir}/command.sock")
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(f"ipc://{runtime_dir}/events.sock")
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        with activated_daemon(
            [command, events],
            daemon_args(root, runtime_dir),
            env=activation_env(2, "command:events", tmp_path),
            root=root,
            runtime_dir=runtime_dir,
        ) as daemon:
            reply = reply_to(dealer)
            assert reply["id"] == "queued"
            assert reply["result"]["protocol_version"] == 1
            # The subscription made before the start reached the adopted XPUB.
            assert next_event(sub, "daemon.welcome")["subscription"] == ""
            with Client(runtime_dir=runtime_dir, timeout=5) as client:
                client.create_assistant(id="made", name="Made")
            assert next_event(sub, "assistant.created")["assistant"]["id"] == "made"
            ready = wait_ready(daemon)
            assert adopted_roles(daemon) == {
                "command": f"ipc://{runtime_dir}/command.sock",
                "events": f"ipc://{runtime_dir}/events.sock",
            }
            assert (ready["command"], ready["events"]) == (
                adopted_roles(daemon)["command"],
                adopted_roles(daemon)["events"],
            )
            assert not any(line.get("level") == "warning" for line in daemon.logs), daemon.logs
            assert daemon.stop() == 0
        # The files are the units' own, the same ones, still there after the daemon.
        assert {name: inode(runtime_dir / name) for name in files} == files
        dealer.close(linger=0)
        sub.close(linger=0)


def test_after_a_stop_the_sockets_queue_commands_for_the_next_daemon(
    tmp_path: Path, runtime_dir: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    root = tmp_path / "assistants"
    args = daemon_args(root, runtime_dir)
    env = activation_env(2, "command:events", tmp_path)
    with unit_sockets(runtime_dir) as (command, events):
        files = {name: inode(runtime_dir / name) for name in ("command.sock", "events.sock")}
        with activated_daemon(
            [command, events], args, env=env, root=root, runtime_dir=runtime_dir
        ) as first:
            wait_ready(first)
            with Client(runtime_dir=runtime_dir, timeout=5) as client:
                client.create_assistant(id="kept", name="Kept")
            assert first.stop() == 0
        # What systemd's Restart= or the next activation looks like: the same sockets, a
        # command waiting in them, a new daemon.
        dealer = send_ping(context, f"ipc://{runtime_dir}/command.sock")
        with activated_daemon(
            [command, events], args, env=env, root=root, runtime_dir=runtime_dir
        ) as second:
            assert reply_to(dealer)["id"] == "queued"
            wait_ready(second)
            with Client(runtime_dir=runtime_dir, timeout=5) as client:
                assert client.get_assistant("kept").name == "Kept"
        assert {name: inode(runtime_dir / name) for name in files} == files
        dealer.close(linger=0)


@pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None,
    reason="systemd-socket-activate is not installed (Debian: the systemd package)",
)
def test_systemd_socket_activate_starts_the_daemon_on_the_first_command(
    tmp_path: Path, runtime_dir: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """systemd's own tool: it listens, and execs the daemon when a client first connects."""
    root = tmp_path / "assistants"
    tool = [
        "systemd-socket-activate",
        f"--listen={runtime_dir / 'command.sock'}",
        f"--listen={runtime_dir / 'events.sock'}",
        "--fdname=command:events",
        "--",
        *daemon_command(*daemon_args(root, runtime_dir)),
    ]
    process = subprocess.Popen(
        tool,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clean_env(HOME=str(tmp_path)),
    )
    daemon = DaemonProcess(root, runtime_dir, process)
    reader = threading.Thread(target=daemon._collect, daemon=True)
    reader.start()
    try:
        daemon.wait_for_log(lambda line: str(line.get("event")).endswith(" as 4."))
        assert not any(line.get("event") == "ready" for line in daemon.logs)
        dealer = send_ping(context, f"ipc://{runtime_dir}/command.sock")
        assert reply_to(dealer)["id"] == "queued"
        dealer.close(linger=0)
        wait_ready(daemon)
        assert set(adopted_roles(daemon)) == {"command", "events"}
        assert daemon.stop() == 0
        # The tool holds no copy of its own (it became the daemon), so the files outlive
        # their sockets here; under systemd the .socket units keep them listening.
        assert (runtime_dir / "command.sock").exists()
    finally:
        daemon.stop()
        reader.join(5)
        if process.stderr is not None:
            process.stderr.close()


def test_one_unnamed_socket_is_the_command_socket(tmp_path: Path, runtime_dir: Path) -> None:
    """As ``systemd-socket-activate -l PATH`` passes it: one fd, no names."""
    root = tmp_path / "assistants"
    with listening_unix(runtime_dir / "command.sock") as command:
        with activated_daemon(
            [command],
            daemon_args(root, runtime_dir),
            env=activation_env(1, None, tmp_path),
            root=root,
            runtime_dir=runtime_dir,
        ) as daemon:
            wait_ready(daemon)
            assert adopted_roles(daemon) == {"command": f"ipc://{runtime_dir}/command.sock"}
            with Client(runtime_dir=runtime_dir, timeout=5) as client:
                assert client.ping().protocol_version == 1
            assert daemon.stop() == 0
        # The daemon removes the events socket it bound itself, not the one it was passed.
        assert (runtime_dir / "command.sock").exists()
        assert not (runtime_dir / "events.sock").exists()


def test_a_passed_socket_wins_over_the_configured_endpoint(
    tmp_path: Path, runtime_dir: Path
) -> None:
    root = tmp_path / "assistants"
    configured = f"ipc://{runtime_dir}/configured.sock"
    with (
        unit_sockets(runtime_dir) as (command, events),
        activated_daemon(
            [command, events],
            daemon_args(root, runtime_dir, "--command", configured),
            env=activation_env(2, "command:events", tmp_path),
            root=root,
            runtime_dir=runtime_dir,
        ) as daemon,
    ):
        passed = f"ipc://{runtime_dir}/command.sock"
        assert wait_ready(daemon)["command"] == passed
        (warning,) = [line for line in daemon.logs if line.get("level") == "warning"]
        assert (warning["role"], warning["passed"], warning["configured"]) == (
            "command",
            passed,
            configured,
        )
        assert not (runtime_dir / "configured.sock").exists()


def test_a_passed_tcp_socket_is_served(
    tmp_path: Path, runtime_dir: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    help_text = subprocess.run(
        daemon_command("--help"), capture_output=True, check=True, text=True
    ).stdout
    if "--insecure-tcp" not in help_text:
        pytest.skip("this daemon serves no tcp:// endpoint yet (no --insecure-tcp option)")
    root = tmp_path / "assistants"
    with socket.create_server(("127.0.0.1", 0)) as command:
        port = command.getsockname()[1]
        with activated_daemon(
            [command],
            daemon_args(root, runtime_dir, "--insecure-tcp"),
            env=activation_env(1, "command", tmp_path),
            root=root,
            runtime_dir=runtime_dir,
        ) as daemon:
            endpoint = f"tcp://127.0.0.1:{port}"
            assert wait_ready(daemon)["command"] == endpoint
            assert adopted_roles(daemon) == {"command": endpoint}
            # Raw: the client library speaks tcp:// only with CURVE.
            reply = reply_of(exchange(context, endpoint, [b"", request_body(1, "ping")]))
            assert reply["result"]["protocol_version"] == 1


def test_an_unknown_name_is_closed_with_a_warning(tmp_path: Path, runtime_dir: Path) -> None:
    root = tmp_path / "assistants"
    with (
        unit_sockets(runtime_dir) as (command, events),
        listening_unix(runtime_dir / "extra.sock") as extra,
        activated_daemon(
            [command, extra, events],
            daemon_args(root, runtime_dir),
            env=activation_env(3, "command:metrics:events", tmp_path),
            root=root,
            runtime_dir=runtime_dir,
        ) as daemon,
    ):
        wait_ready(daemon)
        (warning,) = [line for line in daemon.logs if line.get("level") == "warning"]
        assert (warning["name"], warning["fd"]) == ("metrics", 4)
        assert set(adopted_roles(daemon)) == {"command", "events"}
        with Client(runtime_dir=runtime_dir, timeout=5) as client:
            assert client.ping().protocol_version == 1


def test_workers_never_see_the_activation_variables(tmp_path: Path, runtime_dir: Path) -> None:
    """Even a config that passes them on finds them gone: the daemon took them for itself."""
    root = tmp_path / "assistants"
    root.mkdir()
    write_assistant(
        root,
        "env",
        "module.exports = { env: () => ["
        "process.env.LISTEN_PID, process.env.LISTEN_FDS, process.env.LISTEN_FDNAMES] };",
    )
    config = write_config(
        tmp_path / "config.toml", pass_env=["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]
    )
    with (
        unit_sockets(runtime_dir) as (command, events),
        activated_daemon(
            [command, events],
            daemon_args(root, runtime_dir, "--config", str(config)),
            env=activation_env(2, "command:events", tmp_path),
            root=root,
            runtime_dir=runtime_dir,
        ) as daemon,
    ):
        wait_ready(daemon)
        with Client(runtime_dir=runtime_dir, timeout=20) as client:
            client.request("startAssistant", {"assistant_id": "env"})
            result = client.request("invokeAssistant", {"assistant_id": "env", "method": "env"})
        # JSON has no undefined: node sends each missing variable as null.
        assert result == {"result": [None, None, None]}


# ============================================================================================
# Not for us, and broken
# ============================================================================================


def test_variables_for_another_process_are_ignored(tmp_path: Path) -> None:
    """A ``LISTEN_PID`` that is not the daemon's (left by a socket-activated parent)."""
    root = tmp_path / "assistants"
    with (
        short_tmp("sa-") as units_dir,
        short_tmp("sa-") as runtime_dir,
        unit_sockets(units_dir) as (command, events),
        activated_daemon(
            [command, events],
            daemon_args(root, runtime_dir),
            env=activation_env(2, "command:events", tmp_path),
            root=root,
            runtime_dir=runtime_dir,
            listen_pid="1",
        ) as daemon,
    ):
        # It binds where it is told, as without socket activation.
        assert wait_ready(daemon)["command"] == f"ipc://{runtime_dir}/command.sock"
        assert adopted_roles(daemon) == {}
        (warning,) = [line for line in daemon.logs if line.get("level") == "warning"]
        assert warning["listen_pid"] == 1
        with Client(runtime_dir=runtime_dir, timeout=5) as client:
            assert client.ping().protocol_version == 1


def test_a_second_daemon_on_an_activated_ones_runtime_dir_is_refused(
    tmp_path: Path, runtime_dir: Path
) -> None:
    root = tmp_path / "assistants"
    with (
        unit_sockets(runtime_dir) as (command, events),
        activated_daemon(
            [command, events],
            daemon_args(root, runtime_dir),
            env=activation_env(2, "command:events", tmp_path),
            root=root,
            runtime_dir=runtime_dir,
        ) as first,
    ):
        wait_ready(first)
        files = {name: inode(runtime_dir / name) for name in ("command.sock", "events.sock")}
        # Started by hand, without the sockets: it must not bind over the units' files.
        second = subprocess.run(
            daemon_command(*daemon_args(tmp_path / "other", runtime_dir)),
            capture_output=True,
            env=clean_env(HOME=str(tmp_path)),
            timeout=15,
            check=False,
        )
        assert second.returncode != 0
        assert b"already" in second.stderr, second.stderr
        assert {name: inode(runtime_dir / name) for name in files} == files
        with Client(runtime_dir=runtime_dir, timeout=5) as client:
            assert client.ping().protocol_version == 1


@pytest.mark.parametrize(
    ("count", "names", "words"),
    [
        ("abc", "command:events", ["LISTEN_FDS", "'abc'", "not a number"]),
        ("-1", "command:events", ["LISTEN_FDS", "'-1'", "positive"]),
        ("0", None, ["LISTEN_FDS", "'0'", "positive"]),
        ("9999", None, ["LISTEN_FDS=9999", "fd 5", "not open"]),
        ("9999", "command:events", ["LISTEN_FDNAMES", "names 2 sockets", "LISTEN_FDS=9999"]),
        ("2", "command", ["LISTEN_FDNAMES", "names 1 sockets", "LISTEN_FDS=2"]),
        ("2", "command:command", ["two sockets 'command'"]),
    ],
    ids=["letters", "negative", "zero", "too-many", "too-many-named", "names-short", "twice"],
)
def test_malformed_variables_refuse_the_start_clearly(
    tmp_path: Path, runtime_dir: Path, count: str, names: str | None, words: list[str]
) -> None:
    with unit_sockets(runtime_dir) as (command, events):
        refused = run_activated_to_exit(
            [command, events],
            daemon_args(tmp_path / "assistants", runtime_dir),
            env=activation_env(count, names, tmp_path),
        )
        assert refused.returncode != 0
        reasons = refused.reasons()
        assert all(word in reasons for word in words), refused.stderr
        # One line that says why, and no traceback.
        assert [line["event"] for line in refused.logs] == ["cannot start"], refused.stderr
        assert sorted(os.listdir(runtime_dir)) == ["command.sock", "events.sock"]


@contextmanager
def not_a_listening_socket(kind: str, folder: Path) -> Iterator[Passed]:
    """An open fd of ``kind`` that a .socket unit with a mistake could pass."""
    with ExitStack() as stack:
        if kind == "file":
            yield stack.enter_context((folder / "file").open("wb")).fileno()
        elif kind == "datagram":
            sock = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
            sock.bind(str(folder / "datagram.sock"))
            yield sock
        elif kind == "connected":  # what Accept=yes passes: one connection, not the listener
            listener = stack.enter_context(listening_unix(folder / "accept.sock"))
            client = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            client.connect(str(folder / "accept.sock"))
            yield stack.enter_context(listener.accept()[0])
        else:  # bound and never listening
            sock = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            sock.bind(str(folder / "idle.sock"))
            yield sock


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("file", ["fd 3", "command", "not a socket", "regular file"]),
        ("datagram", ["fd 3", "SOCK_DGRAM", "ListenStream="]),
        ("connected", ["fd 3", "not listening", "Accept=no"]),
        ("bound", ["fd 3", "not listening"]),
    ],
)
def test_a_passed_fd_that_is_not_a_listening_stream_socket_is_refused(
    tmp_path: Path, runtime_dir: Path, kind: str, words: list[str]
) -> None:
    with not_a_listening_socket(kind, runtime_dir) as wrong:
        refused = run_activated_to_exit(
            [wrong],
            daemon_args(tmp_path / "assistants", runtime_dir),
            env=activation_env(1, "command", tmp_path),
        )
        assert refused.returncode != 0
        reasons = refused.reasons()
        assert all(word in reasons for word in words), refused.stderr
        assert [line["event"] for line in refused.logs] == ["cannot start"], refused.stderr

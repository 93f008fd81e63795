"""sd_notify and reloads end to end (issue 6): the tests play systemd.

Each test binds a real ``AF_UNIX`` datagram socket, as systemd binds its notification socket,
starts a real daemon process with ``NOTIFY_SOCKET`` (and ``WATCHDOG_USEC``) pointing at it, and
reads what the daemon says: ``READY=1`` once it serves, ``STATUS=`` with its counts,
``WATCHDOG=1`` from its event loop, ``RELOADING=1`` and ``READY=1`` around a SIGHUP reload,
``STOPPING=1`` on SIGTERM. Every wait has a deadline; the only waits for *nothing* to come
(the watchdog of a stopped daemon, or of another process) are bounded receives that must time
out.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.e2e.helpers import clean_env, exchange, reply_of, request_body, short_tmp
from tests.e2e.workers import process_info, wait_for, wait_pid_gone, write_assistant
from tests.utils import STOP_TIMEOUT, DaemonProcess, LogLine, daemon_command

MESSAGE_TIMEOUT = 20.0
"""Seconds to wait for a message the daemon is expected to send."""

REPLY_TIMEOUT = 20.0

WATCHDOG_USEC = 400_000
"""The tests' ``WatchdogSec=``: 0.4 s, so the daemon sends ``WATCHDOG=1`` every 0.2 s."""

WATCHDOG_WINDOW = 3 * WATCHDOG_USEC / 1_000_000
"""Seconds in which several ``WATCHDOG=1`` must come (about six are sent), and in which none
may come from a daemon that is stopped or whose watchdog it is not."""

Message = dict[str, str]
Context = zmq.Context[zmq.Socket[bytes]]

FAST_WORKERS = {"start-timeout": 20, "stop-timeout": 1, "invoke-timeout": 10}


# ============================================================================================
# systemd's side
# ============================================================================================


class NotifySocket:
    """systemd's notification socket: a bound ``AF_UNIX`` datagram socket, and what came.

    ``address`` is what ``NOTIFY_SOCKET`` says: a path, or ``@name`` for an abstract socket.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.received: list[Message] = []
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind("\0" + address[1:] if address.startswith("@") else address)

    def close(self) -> None:
        self._socket.close()

    def receive(self, timeout: float) -> Message | None:
        """The next message (its ``KEY=VALUE`` lines), or None if none comes in ``timeout``."""
        self._socket.settimeout(max(timeout, 0.001))
        try:
            data = self._socket.recv(65536)
        except TimeoutError:
            return None
        message = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.received.append(message)
        return message

    def next(
        self, predicate: Callable[[Message], bool], what: str, timeout: float = MESSAGE_TIMEOUT
    ) -> Message:
        """The first message from now on that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and predicate(message):
                return message
        raise AssertionError(f"no {what} within {timeout}s; received: {self.received}")

    def drain(self) -> list[Message]:
        """The messages already queued (none is waited for)."""
        self._socket.setblocking(False)
        drained = []
        try:
            while True:
                data = self._socket.recv(65536)
                drained.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        except BlockingIOError:
            pass
        self.received += drained
        return drained

    def count_within(self, predicate: Callable[[Message], bool], seconds: float) -> int:
        """How many messages that satisfy ``predicate`` come in the next ``seconds``."""
        deadline = time.monotonic() + seconds
        count = 0
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and predicate(message):
                count += 1
        return count


def has(key: str, value: str = "1") -> Callable[[Message], bool]:
    return lambda message: message.get(key) == value


@contextmanager
def notify_socket(address: str | None = None) -> Iterator[NotifySocket]:
    """A notification socket at a path in a short temp dir, or at ``address`` (``@name``)."""
    with short_tmp("ntf-") as folder:
        listening = NotifySocket(address or str(folder / "notify"))
        try:
            yield listening
        finally:
            listening.close()


# ============================================================================================
# The daemon, started as systemd starts it
# ============================================================================================


@dataclass
class Service:
    """A daemon started by :func:`service`, its folders and its config file."""

    daemon: DaemonProcess
    config: Path
    context: Context = field(default_factory=zmq.Context)

    @property
    def pid(self) -> int:
        return self.daemon.process.pid

    def call(self, method: str, /, **params: Any) -> Any:
        frames = exchange(
            self.context,
            self.daemon.command,
            [b"", request_body(1, method, params)],
            timeout=REPLY_TIMEOUT,
        )
        reply = reply_of(frames)
        assert "result" in reply, reply
        return reply["result"]

    def logged(self, event: str, **fields: Any) -> Callable[[LogLine], bool]:
        return lambda line: (
            line.get("event") == event
            and all(line.get(key) == value for key, value in fields.items())
        )


def write_config(path: Path, *, log_level: str = "info", **workers: Any) -> Path:
    """A config file with ``log_level`` and a ``[workers]`` table of small timeouts."""
    table = FAST_WORKERS | {key.replace("_", "-"): value for key, value in workers.items()}
    lines = [f"log-level = {json.dumps(log_level)}", "[workers]"]
    lines += (f"{key} = {json.dumps(value)}" for key, value in table.items())
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def service(
    base: Path,
    env: dict[str, str],
    *,
    command: Sequence[str] = (),
    **workers: Any,
) -> Iterator[Service]:
    """Start the daemon on ``base/assistants`` with exactly ``env``, as ``command`` + the
    daemon's own command line; do not wait for it (the test waits for ``READY=1``).

    The log level comes from the config file only (no ``--log-level``: the option would win
    over the file, and a reload could not change it). A daemon left stopped (SIGSTOP) by a
    failed test is continued before it is stopped.
    """
    root, runtime_dir = base / "assistants", base / "rt"
    root.mkdir(exist_ok=True)
    config = write_config(base / "assistantd.toml", **workers)
    args = daemon_command(
        "--root",
        str(root),
        "--runtime-dir",
        str(runtime_dir),
        "--log-format",
        "json",
        "--config",
        str(config),
    )
    process = subprocess.Popen(
        [*command, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    daemon = DaemonProcess(root, runtime_dir, process)
    reader = threading.Thread(target=daemon._collect, daemon=True)
    reader.start()
    running = Service(daemon, config)
    try:
        yield running
    finally:
        running.context.destroy(linger=0)
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
        try:
            daemon.stop(STOP_TIMEOUT)
        finally:
            reader.join(5)
            if process.stderr is not None:
                process.stderr.close()


def systemd_env(notify: NotifySocket | None, **more: str) -> dict[str, str]:
    """The environment systemd gives the service: ``NOTIFY_SOCKET`` and ``more``; none of
    these variables from the environment the tests run in."""
    env = clean_env(NOTIFY_SOCKET=None, WATCHDOG_USEC=None, WATCHDOG_PID=None)
    if notify is not None:
        env["NOTIFY_SOCKET"] = notify.address
    return env | more


def is_socket(path: Path) -> bool:
    return path.exists() and stat.S_ISSOCK(path.stat().st_mode)


def wait_stopped(pid: int) -> None:
    """Wait until SIGSTOP has taken effect (``T`` in /proc): from then on nothing runs."""
    wait_for(
        lambda: (info := process_info(pid)) is not None and info.state == "T",
        f"process {pid} stopped",
    )


def no_error_logged(daemon: DaemonProcess) -> None:
    problems = [line for line in daemon.logs if line.get("level") in ("error", "critical", "raw")]
    assert problems == [], problems


# ============================================================================================
# Worker code
# ============================================================================================

OBEDIENT_ONLY_TO_SIGKILL = """
    // A dispose that never ends, a timer and SIGTERM ignored: only SIGKILL ends it, so a stop
    // takes two stop-timeouts.
    exports.dispose = () => new Promise(() => {});
    process.on('SIGTERM', () => {});
    setInterval(() => {}, 1000);
    const { execFileSync } = require('child_process');
    // An orphan for the daemon to reap: sh starts sleep and exits at once.
    exports.orphan = () =>
      Number(execFileSync('sh', ['-c', 'sleep 0.1 >/dev/null 2>&1 & echo $!']).toString());
    exports.environment = () => Object.keys(process.env).sort();
"""


# ============================================================================================
# READY, STATUS, STOPPING
# ============================================================================================


def test_ready_comes_once_both_sockets_answer_with_a_status_that_counts() -> None:
    with short_tmp() as base:
        root = base / "assistants"
        root.mkdir()
        write_assistant(root, "alpha")
        write_assistant(root, "beta")
        with notify_socket() as notify, service(base, systemd_env(notify)) as running:
            ready = notify.next(has("READY"), "READY=1")
            # At this very moment both sockets are bound and the index is loaded.
            runtime_dir = running.daemon.runtime_dir
            assert is_socket(runtime_dir / "command.sock")
            assert is_socket(runtime_dir / "events.sock")
            assert ready["STATUS"] == "serving 2 assistants (0 running, 0 downloading)"
            assert running.call("ping")["protocol_version"] == 1
            assert len(running.call("listAssistants")["data"]) == 2

            running.call("startAssistant", assistant_id="alpha")
            status = notify.next(lambda message: "STATUS" in message, "a new STATUS=")
            assert status["STATUS"] == "serving 2 assistants (1 running, 0 downloading)"

            running.daemon.process.send_signal(signal.SIGTERM)
            stopping = notify.next(has("STOPPING"), "STOPPING=1")
            assert stopping["STATUS"] == "stopping"
            assert running.daemon.process.wait(STOP_TIMEOUT) == 0
            # READY came once, STOPPING once, and nothing after STOPPING but the watchdog.
            notify.drain()
            assert sum(1 for message in notify.received if "READY" in message) == 1
            after = notify.received[notify.received.index(stopping) + 1 :]
            assert all(set(message) == {"WATCHDOG"} for message in after), after
            no_error_logged(running.daemon)


def test_an_abstract_notify_socket_is_spoken_to_as_well() -> None:
    address = f"@assistantd-test/{uuid.uuid4().hex}"
    with (
        short_tmp() as base,
        notify_socket(address) as notify,
        service(base, systemd_env(notify)) as running,
    ):
        ready = notify.next(has("READY"), "READY=1")
        assert ready["STATUS"] == "serving 1 assistant (0 running, 0 downloading)"  # jan
        running.daemon.process.send_signal(signal.SIGTERM)
        notify.next(has("STOPPING"), "STOPPING=1")
        assert running.daemon.process.wait(STOP_TIMEOUT) == 0


# ============================================================================================
# The watchdog
# ============================================================================================


@pytest.mark.parametrize(
    "watchdog_pid",
    [
        pytest.param(False, id="no-WATCHDOG_PID"),
        # systemd sets WATCHDOG_PID to the service's pid; `exec` keeps the shell's pid ($$).
        pytest.param(True, id="WATCHDOG_PID-is-the-daemon"),
    ],
)
def test_the_watchdog_is_fed_from_the_event_loop_and_stops_with_it(watchdog_pid: bool) -> None:
    command = ("sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh") if watchdog_pid else ()
    env = systemd_env(None, WATCHDOG_USEC=str(WATCHDOG_USEC))
    with (
        short_tmp() as base,
        notify_socket() as notify,
        service(base, env | {"NOTIFY_SOCKET": notify.address}, command=command) as running,
    ):
        notify.next(has("READY"), "READY=1")
        notify.next(has("WATCHDOG"), "WATCHDOG=1")
        assert notify.count_within(has("WATCHDOG"), WATCHDOG_WINDOW) >= 3, notify.received

        # A stopped daemon (as one whose event loop is stuck) sends nothing: systemd's
        # watchdog then fires.
        running.daemon.process.send_signal(signal.SIGSTOP)
        wait_stopped(running.pid)
        notify.drain()  # what was sent before the stop took effect
        assert notify.receive(WATCHDOG_WINDOW) is None

        running.daemon.process.send_signal(signal.SIGCONT)
        notify.next(has("WATCHDOG"), "WATCHDOG=1 after SIGCONT")
        assert notify.count_within(has("WATCHDOG"), WATCHDOG_WINDOW) >= 3, notify.received


def test_a_watchdog_meant_for_another_process_is_not_fed() -> None:
    # WATCHDOG_PID names this test's process, not the daemon.
    env = systemd_env(None, WATCHDOG_USEC=str(WATCHDOG_USEC), WATCHDOG_PID=str(os.getpid()))
    with (
        short_tmp() as base,
        notify_socket() as notify,
        service(base, env | {"NOTIFY_SOCKET": notify.address}),
    ):
        notify.next(has("READY"), "READY=1")
        assert notify.count_within(has("WATCHDOG"), WATCHDOG_WINDOW) == 0, notify.received


# ============================================================================================
# SIGHUP: reload
# ============================================================================================


def reload(running: Service, notify: NotifySocket) -> tuple[Message, Message]:
    """SIGHUP, and the ``RELOADING=1`` and ``READY=1`` that answer it; checks the first
    carries the time on systemd's clock (CLOCK_MONOTONIC) of the reload."""
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    running.daemon.process.send_signal(signal.SIGHUP)
    reloading = notify.next(has("RELOADING"), "RELOADING=1")
    assert before <= int(reloading["MONOTONIC_USEC"])
    assert int(reloading["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    ready = notify.next(has("READY"), "READY=1 after RELOADING=1")
    return reloading, ready


def test_sighup_reloads_the_log_level_and_the_worker_settings() -> None:
    with short_tmp() as base:
        root = base / "assistants"
        root.mkdir()
        write_assistant(root, "stubborn", OBEDIENT_ONLY_TO_SIGKILL)
        # A stop-timeout this long makes the stop below outlast the client's timeout, unless
        # the reloaded one is used.
        env = systemd_env(None)
        with (
            notify_socket() as notify,
            service(base, env | {"NOTIFY_SOCKET": notify.address}, stop_timeout=60) as running,
        ):
            notify.next(has("READY"), "READY=1")
            running.call("startAssistant", assistant_id="stubborn")
            # Workers never see systemd's variables (they get a clean environment).
            environment = running.call(
                "invokeAssistant", assistant_id="stubborn", method="environment"
            )["result"]
            assert not {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} & set(environment)

            # At info, the reaping of an orphan is not logged.
            quiet = running.call("invokeAssistant", assistant_id="stubborn", method="orphan")
            wait_pid_gone(quiet["result"])

            write_config(running.config, log_level="debug", stop_timeout=0.2)
            _, ready = reload(running, notify)
            assert ready["STATUS"] == "serving 1 assistant (1 running, 0 downloading)"
            reloaded = running.daemon.wait_for_log(running.logged("reloaded"))
            assert reloaded["log_level"] == "debug"
            assert set(reloaded["changed"]) == {"log-level", "workers"}
            reaped = [line for line in running.daemon.logs if "reaped" in str(line["event"])]
            assert all(line["pid"] != quiet["result"] for line in reaped), reaped

            # At debug it is.
            loud = running.call("invokeAssistant", assistant_id="stubborn", method="orphan")
            running.daemon.wait_for_log(
                running.logged("reaped an orphan of a worker", pid=loud["result"])
            )

            # The stop escalates with the reloaded stop-timeout: within the client's timeout.
            stopped = running.call("stopAssistant", assistant_id="stubborn")
            assert stopped["runtime"]["last_exit"]["stopped_by"] == "SIGKILL"
            no_error_logged(running.daemon)


def test_a_reload_keeps_what_needs_a_restart_and_says_so() -> None:
    with (
        short_tmp() as base,
        notify_socket() as notify,
        service(base, systemd_env(notify)) as running,
    ):
        notify.next(has("READY"), "READY=1")
        # The file's endpoints (the command line names no endpoint, so the file's would be
        # used at a start).
        elsewhere = f"ipc://{base}/elsewhere"
        text = running.config.read_text()
        running.config.write_text(
            f'command = "{elsewhere}-command"\nevents = "{elsewhere}-events"\n{text}'
        )
        reload(running, notify)
        running.daemon.wait_for_log(running.logged("reloaded"))
        warnings = {
            line["setting"]: line
            for line in running.daemon.logs
            if line.get("event") == "setting not reloaded: it changes only with a restart"
        }
        assert set(warnings) == {"command", "events"}
        assert warnings["command"]["value"] == running.daemon.command
        assert warnings["command"]["configured"] == f"{elsewhere}-command"
        assert all(line["level"] == "warning" for line in warnings.values())
        # Still serving where it did, and only there.
        assert running.call("ping")["protocol_version"] == 1
        assert not list(base.glob("elsewhere*"))
        no_error_logged(running.daemon)


def test_an_invalid_config_on_reload_keeps_the_old_settings_and_the_service() -> None:
    with (
        short_tmp() as base,
        notify_socket() as notify,
        service(base, systemd_env(notify)) as running,
    ):
        notify.next(has("READY"), "READY=1")
        running.config.write_text("log-level = 'debug'\n[workers]\nstop-timeout = -1\n")
        reload(running, notify)  # READY=1 again: systemd must not wait for a reload for ever
        failed = running.daemon.wait_for_log(
            running.logged("reload failed: the settings stay as they were")
        )
        assert failed["level"] == "error"
        assert "stop-timeout" in failed["reason"]
        assert running.call("ping")["protocol_version"] == 1
        # Nothing was taken from the refused file (its log-level is valid on its own).
        assert not any(line.get("event") == "reloaded" for line in running.daemon.logs)

        running.config.write_text("this is not TOML\n")
        reload(running, notify)
        failed = running.daemon.wait_for_log(
            lambda line: (
                line.get("event") == "reload failed: the settings stay as they were"
                and "not valid TOML" in line["reason"]
            )
        )
        assert str(running.config) in failed["reason"]
        assert running.call("ping")["protocol_version"] == 1

        running.daemon.process.send_signal(signal.SIGTERM)
        notify.next(has("STOPPING"), "STOPPING=1")
        assert running.daemon.process.wait(STOP_TIMEOUT) == 0


# ============================================================================================
# Without systemd, or with systemd gone
# ============================================================================================


def test_without_notify_socket_nothing_is_sent_and_nothing_goes_wrong() -> None:
    # A watchdog without a socket to feed it means nothing either.
    env = systemd_env(None, WATCHDOG_USEC=str(WATCHDOG_USEC))
    with short_tmp() as base, service(base, env) as running:
        running.daemon.wait_for_log(running.logged("ready"))
        running.daemon.process.send_signal(signal.SIGHUP)
        running.daemon.wait_for_log(running.logged("reloaded"))
        assert running.call("ping")["protocol_version"] == 1
        assert running.daemon.stop() == 0
        running.daemon.wait_for_log(running.logged("stopped"))
        no_error_logged(running.daemon)
        assert not any(line.get("level") == "warning" for line in running.daemon.logs)


def test_a_notify_socket_nobody_listens_on_costs_one_warning() -> None:
    with short_tmp("ntf-") as folder, short_tmp() as base:
        gone = NotifySocket(str(folder / "notify"))
        gone.close()  # the path stays; nobody receives on it
        env = systemd_env(None, WATCHDOG_USEC=str(WATCHDOG_USEC), NOTIFY_SOCKET=gone.address)
        with service(base, env) as running:
            running.daemon.wait_for_log(running.logged("ready"))
            # The watchdog goes on trying, every 0.2 s; the log says so once, and the daemon
            # serves.
            running.daemon.process.send_signal(signal.SIGHUP)
            running.daemon.wait_for_log(running.logged("reloaded"))
            assert running.call("ping")["protocol_version"] == 1
            assert running.daemon.stop() == 0
            warnings = [
                line for line in running.daemon.logs if line.get("event") == "cannot notify systemd"
            ]
            assert len(warnings) == 1, warnings
            assert warnings[0]["notify_socket"] == gone.address
            no_error_logged(running.daemon)

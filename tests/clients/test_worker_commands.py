"""The worker commands from the clients' side: ``Client``, ``AsyncClient`` and ``assistantctl``
against a real daemon running real ``node`` workers.

One daemon serves the module; each test works on assistants of its own (or only calls the
shared ``tools`` worker), so the tests do not depend on their order. A reply is lost on purpose
by a relay between the client and the daemon (:class:`LossyRelay`): the daemon carries the call
out, the client never hears of it, and the worker's own count shows whether the client sent
the call again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from assistantd.client import (
    AssistantStateChanged,
    AsyncClient,
    AsyncWatch,
    Client,
    ConflictError,
    GatewayTimeoutError,
    InvalidRequestError,
    NotFoundError,
    SentMessage,
    Synced,
    UnavailableError,
    Watch,
    WatchEvent,
    WorkerError,
    WorkerExited,
    WorkerLog,
    WorkerMessage,
    topic_of,
    waits,
)
from assistantd.client.clone import CloneSync
from assistantd.daemon.workers.settings import WorkerSettings
from assistantd.protocol import limits
from assistantd.protocol.events import Snapshot
from tests.clients.test_ctl import CTL, Watching, ctl, watching
from tests.e2e.workers import write_assistant, write_config
from tests.utils import DaemonProcess, running_daemon, short_dir

WAIT = 10.0
"""Seconds any one expected event or line may take (they come within a fraction of one)."""

TOOLS = """\
const fs = require('fs');

// Module style: each export is a method that invokeAssistant can call.
exports.echo = (...args) => args;
exports.fail = () => {
  const error = new Error('boom');
  error.code = 'E_BOOM';
  throw error;
};
exports.slow = (ms) => new Promise((resolve) => setTimeout(() => resolve('done'), ms));
// Counts its calls in a file, at once, then takes `ms` to answer.
exports.count = (path, ms) => {
  fs.appendFileSync(path, 'run\\n');
  return new Promise((resolve) => setTimeout(() => resolve('counted'), ms));
};
exports.runs = (path) => fs.readFileSync(path, 'utf8').split('\\n').filter(Boolean).length;
exports.say = (line) => {
  console.log(line);
  return null;
};
"""

CHATTY = """\
// Process style: it listens to messages itself and answers each with one of its own.
console.log('hello from the worker');
process.on('message', (message) => process.send({ echo: message }));
"""

BROKEN = """\
console.error('about to fail');
throw new Error('cannot load me');
"""

DEFAULT_WORKER_IDS = ("sync-plain", "async-plain", "ctl-plain", "ctl-json")
"""Assistants without code: the daemon's default worker (ping, getDefinition)."""
CHATTY_IDS = ("chatty", "async-chatty", "ctl-chatty", "ctl-watched", "send-target")


@pytest.fixture(scope="module")
def served() -> Iterator[DaemonProcess]:
    """A daemon with short worker timeouts, the assistants of every test, and ``tools`` up."""
    folder = short_dir()
    root = folder / "assistants"
    root.mkdir()
    for assistant_id in DEFAULT_WORKER_IDS:
        write_assistant(root, assistant_id)
    for assistant_id in CHATTY_IDS:
        write_assistant(root, assistant_id, CHATTY)
    write_assistant(root, "tools", TOOLS)
    write_assistant(root, "idle", TOOLS)  # never started
    write_assistant(root, "broken", BROKEN)
    config = write_config(folder / "assistantd.toml")
    try:
        with running_daemon(root, args=("--config", str(config))) as daemon:
            with Client(runtime_dir=daemon.runtime_dir) as client:
                client.start_assistant("tools")
            yield daemon
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def client(served: DaemonProcess) -> Iterator[Client]:
    with Client(runtime_dir=served.runtime_dir) as client:
        yield client


class LossyRelay:
    """A relay between clients and the daemon's command socket (a ROUTER for the clients, a
    DEALER to the daemon, in a thread) that forwards every request but loses the replies to
    those that ``loses`` picks, as a network or a hung peer would."""

    def __init__(self, daemon: str, loses: Callable[[dict[str, Any]], bool]) -> None:
        self._folder = short_dir()
        self.endpoint = f"ipc://{self._folder}/command.sock"
        self.picked = 0
        """Requests that ``loses`` picked: each time a client sent one."""
        self._loses = loses
        self._lost: set[tuple[bytes, Any]] = set()
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._front = self._context.socket(zmq.ROUTER)
        self._front.bind(self.endpoint)
        self._back = self._context.socket(zmq.DEALER)
        self._back.connect(daemon)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._front, zmq.POLLIN)
        poller.register(self._back, zmq.POLLIN)
        while not self._stop.is_set():
            for socket, _ in poller.poll(50):
                frames = socket.recv_multipart()
                request_or_reply = json.loads(frames[-1])
                # The client's identity is the first frame either way (the ROUTER adds it to a
                # request; the daemon sends it back in front of the reply).
                key = (frames[0], request_or_reply.get("id"))
                if socket is self._front:
                    if self._loses(request_or_reply):
                        self.picked += 1
                        self._lost.add(key)
                    self._back.send_multipart(frames)
                elif key not in self._lost:
                    self._front.send_multipart(frames)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._front.close(linger=0)
        self._back.close(linger=0)
        self._context.term()
        shutil.rmtree(self._folder, ignore_errors=True)


@contextlib.contextmanager
def lossy_relay(daemon: DaemonProcess, method: str) -> Iterator[LossyRelay]:
    """A :class:`LossyRelay` that loses the replies to invokes of the worker's ``method``."""
    relay = LossyRelay(
        daemon.command,
        lambda request: (
            request.get("method") == "invokeAssistant"
            and request.get("params", {}).get("method") == method
        ),
    )
    try:
        yield relay
    finally:
        relay.close()


def runs_in(path: Path) -> int:
    """How many times the ``count`` method has started with ``path`` (its lines)."""
    return len(path.read_text().splitlines()) if path.exists() else 0


def next_matching(watch: Watch, wanted: Callable[[WatchEvent], bool], what: str) -> WatchEvent:
    """The next event of ``watch`` that is ``wanted``, skipping others, within :data:`WAIT`."""
    deadline = time.monotonic() + WAIT
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = watch.next(timeout=left)
        except TimeoutError:
            break
        if wanted(event):
            return event
        seen.append(topic_of(event))
    raise AssertionError(f"no {what} within {WAIT}s; the watch yielded {seen}")


async def anext_matching(
    watch: AsyncWatch, wanted: Callable[[WatchEvent], bool], what: str
) -> WatchEvent:
    """:func:`next_matching` for the asyncio watch."""
    deadline = time.monotonic() + WAIT
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = await watch.next(timeout=left)
        except TimeoutError:
            break
        if wanted(event):
            return event
        seen.append(topic_of(event))
    raise AssertionError(f"no {what} within {WAIT}s; the watch yielded {seen}")


def fields_of(stdout: str) -> dict[str, str]:
    """The ``label  value`` lines that assistantctl prints for people, as a dict."""
    return dict(line.split(None, 1) for line in stdout.splitlines())


class Printed:
    """The lines of an ``assistantctl watch``, kept as they are read: lines of different
    sources (the daemon's state, a worker's output) may come in either order, so each search
    starts from the first line not found yet."""

    def __init__(self, watch: Watching) -> None:
        self.watch = watch
        self.lines: list[str] = []

    def find(self, wanted: Callable[[str], bool], what: str) -> str:
        """The first line that is ``wanted``, among those read or those to come."""
        for line in self.lines:
            if wanted(line):
                self.lines.remove(line)
                return line
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.watch.line(timeout=left)
            except queue.Empty:
                break
            if wanted(line):
                return line
            self.lines.append(line)
        raise AssertionError(f"no {what} within {WAIT}s; the watch printed {self.lines}")


# --- the Python clients -------------------------------------------------------------------------


def test_start_invoke_restart_stop_with_the_sync_client(client: Client) -> None:
    started = client.start_assistant("sync-plain")
    assert started.state == "running"
    assert started.runtime is not None
    assert (started.runtime.status, started.runtime.style) == ("up", "default")
    assert {"ping", "getDefinition"} <= set(started.runtime.methods)
    pid = started.runtime.pid
    assert pid is not None

    again = client.start_assistant("sync-plain")  # already running: nothing changes
    assert again.runtime is not None
    assert again.runtime.pid == pid

    assert client.invoke_assistant("sync-plain", "ping") == "pong"
    assert client.invoke_assistant("sync-plain", "getDefinition")["name"] == "Test sync-plain"

    restarted = client.restart_assistant("sync-plain")
    assert restarted.state == "running"
    assert restarted.runtime is not None
    assert restarted.runtime.pid not in (None, pid)
    assert restarted.runtime.last_exit is not None
    assert restarted.runtime.last_exit.pid == pid

    stopped = client.stop_assistant("sync-plain")
    assert stopped.state == "ready"
    assert stopped.runtime is not None
    assert (stopped.runtime.status, stopped.runtime.pid) == ("stopped", None)
    assert stopped.runtime.last_exit is not None
    assert stopped.runtime.last_exit.stopped_by == "disconnect"
    assert client.get_assistant("sync-plain").state == "ready"


async def test_start_invoke_send_restart_stop_with_the_async_client(
    served: DaemonProcess,
) -> None:
    async with AsyncClient(runtime_dir=served.runtime_dir) as client:
        started = await client.start_assistant("async-plain")
        assert (started.state, started.runtime and started.runtime.status) == ("running", "up")
        # Calls in flight at once, each answered to its caller.
        pong, definition, echoed = await asyncio.gather(
            client.invoke_assistant("async-plain", "ping"),
            client.invoke_assistant("async-plain", "getDefinition"),
            client.invoke_assistant("tools", "echo", 1, "two", [3], {"four": None}),
        )
        assert (pong, definition["name"]) == ("pong", "Test async-plain")
        assert echoed == [1, "two", [3], {"four": None}]

        await client.start_assistant("async-chatty")
        sent = await client.send_to_assistant("async-chatty", {"hello": [1, 2]})
        assert sent == SentMessage(assistant_id="async-chatty")

        restarted = await client.restart_assistant("async-plain")
        assert restarted.runtime is not None
        assert restarted.runtime.pid is not None
        assert started.runtime is not None
        assert restarted.runtime.pid != started.runtime.pid
        stopped = await client.stop_assistant("async-plain")
        assert (stopped.state, stopped.runtime and stopped.runtime.status) == ("ready", "stopped")
        await client.stop_assistant("async-chatty")


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.start_assistant("nobody"),
        lambda client: client.stop_assistant("nobody"),
        lambda client: client.restart_assistant("nobody"),
        lambda client: client.invoke_assistant("nobody", "ping"),
        lambda client: client.send_to_assistant("nobody", {}),
    ],
    ids=["start", "stop", "restart", "invoke", "send"],
)
def test_an_unknown_assistant_is_a_404(client: Client, call: Callable[[Client], Any]) -> None:
    with pytest.raises(NotFoundError) as caught:
        call(client)
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert caught.value.param == "assistant_id"


def test_a_method_the_worker_does_not_have_is_a_404(client: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.invoke_assistant("tools", "noSuchMethod")
    assert (caught.value.code, caught.value.param) == ("method_not_found", "method")


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.invoke_assistant("idle", "echo"),
        lambda client: client.send_to_assistant("idle", {"hello": 1}),
    ],
    ids=["invoke", "send"],
)
def test_an_assistant_that_is_not_running_is_a_409(
    client: Client, call: Callable[[Client], Any]
) -> None:
    with pytest.raises(ConflictError) as caught:
        call(client)
    assert (caught.value.status, caught.value.code) == (409, "assistant_not_running")


def test_a_method_that_throws_is_a_502_with_the_workers_error(client: Client) -> None:
    with pytest.raises(WorkerError) as caught:
        client.invoke_assistant("tools", "fail")
    error = caught.value
    assert (error.status, error.code) == (502, "worker_error")
    assert error.details is not None
    assert (error.details["name"], error.details["message"]) == ("Error", "boom")
    assert error.details["code"] == "E_BOOM"
    assert "fail" in error.details["stack"]  # the stack names the method that threw


def test_code_that_fails_to_load_is_a_502_with_its_exit_and_stderr(client: Client) -> None:
    with pytest.raises(WorkerError) as caught:
        client.start_assistant("broken")
    assert caught.value.code == "worker_failed"
    assert caught.value.details is not None
    assert caught.value.details["exit"]["code"] == 1
    assert "about to fail" in caught.value.details["stderr"]
    assert client.get_assistant("broken").state == "ready"


def test_a_method_that_does_not_answer_in_time_is_a_504(client: Client) -> None:
    with pytest.raises(GatewayTimeoutError) as caught:
        client.invoke_assistant("tools", "slow", 5000, timeout_ms=50)
    assert (caught.value.status, caught.value.code) == (504, "invoke_timeout")


# --- waiting for long calls, and never sending one twice ----------------------------------------


def test_an_invoke_may_take_longer_than_the_clients_timeout(served: DaemonProcess) -> None:
    with Client(runtime_dir=served.runtime_dir, timeout=0.2) as client:
        assert client.invoke_assistant("tools", "slow", 600, timeout_ms=5000) == "done"
        # A raw request waits the same way: the rule goes by the method and its params.
        params = {"assistant_id": "tools", "method": "slow", "args": [600], "timeout_ms": 5000}
        assert client.request("invokeAssistant", params) == {"result": "done"}


async def test_an_async_invoke_may_take_longer_than_the_clients_timeout(
    served: DaemonProcess,
) -> None:
    async with AsyncClient(runtime_dir=served.runtime_dir, timeout=0.2) as client:
        assert await client.invoke_assistant("tools", "slow", 600, timeout_ms=5000) == "done"


def test_an_invoke_whose_reply_is_lost_is_not_sent_again(
    served: DaemonProcess, tmp_path: Path
) -> None:
    counted = tmp_path / "runs"
    with (
        lossy_relay(served, "count") as relay,
        Client(command=relay.endpoint, timeout=0.2) as client,
    ):
        with pytest.raises(UnavailableError) as caught:
            client.invoke_assistant("tools", "count", str(counted), 0, timeout_ms=300)
        assert caught.value.code == "timeout"
        # Anything this client had sent again would reach the worker before this call.
        assert client.invoke_assistant("tools", "runs", str(counted)) == 1
        assert relay.picked == 1


async def test_an_async_invoke_whose_reply_is_lost_is_not_sent_again(
    served: DaemonProcess, tmp_path: Path
) -> None:
    counted = tmp_path / "runs"
    with lossy_relay(served, "count") as relay:
        async with AsyncClient(command=relay.endpoint, timeout=0.2) as client:
            with pytest.raises(UnavailableError):
                await client.invoke_assistant("tools", "count", str(counted), 0, timeout_ms=300)
            assert await client.invoke_assistant("tools", "runs", str(counted)) == 1
    assert relay.picked == 1


def test_a_ctl_invoke_whose_reply_is_lost_is_not_sent_again(
    served: DaemonProcess, tmp_path: Path
) -> None:
    counted = tmp_path / "runs"
    with lossy_relay(served, "count") as relay:
        options = ["--command", relay.endpoint, "--timeout", "0.2"]
        invoke = ["invoke", "tools", "count", str(counted), "0", "--timeout-ms", "300"]
        done = subprocess.run(
            [*CTL, *invoke, *options], capture_output=True, text=True, timeout=30, check=False
        )
        assert (done.returncode, done.stdout) == (3, "")
        assert "No reply from the daemon" in done.stderr
        # The relay forwards in the order it receives: what the first process sent, then this.
        runs = subprocess.run(
            [*CTL, "invoke", "tools", "runs", str(counted), *options],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (runs.returncode, json.loads(runs.stdout)) == (0, 1)
    assert relay.picked == 1


def test_the_clients_wait_for_the_daemons_default_limits() -> None:
    daemon = WorkerSettings()
    assert daemon.start_timeout == waits.DAEMON_START_TIMEOUT
    assert daemon.stop_timeout == waits.DAEMON_STOP_TIMEOUT
    assert daemon.invoke_timeout == waits.DAEMON_INVOKE_TIMEOUT
    stop = waits.reply_timeout("stopAssistant", {"assistant_id": "x"}, 10)
    assert stop == 10 + waits.STOP_STEPS * daemon.stop_timeout
    assert waits.reply_timeout("sendToAssistant", {}, 10) == 10 + daemon.invoke_timeout
    assert waits.reply_timeout("ping", {}, 10) == 10


async def test_an_invoke_timeout_out_of_range_gets_the_daemons_400(served: DaemonProcess) -> None:
    # The client waits at most the protocol's limit beyond its timeout, whatever the number: a
    # 400-digit one was an OverflowError in the client, before anything was sent.
    assert waits.INVOKE_TIMEOUT_MAX_MS == limits.INVOKE_TIMEOUT_MAX_MS
    too_long = (10**400, limits.INVOKE_TIMEOUT_MAX_MS + 1)
    with Client(runtime_dir=served.runtime_dir) as client:
        for timeout_ms in too_long:
            with pytest.raises(InvalidRequestError) as caught:
                client.invoke_assistant("tools", "echo", 1, timeout_ms=timeout_ms)
            assert caught.value.status == 400
    async with AsyncClient(runtime_dir=served.runtime_dir) as aclient:
        for timeout_ms in too_long:
            with pytest.raises(InvalidRequestError):
                await aclient.invoke_assistant("tools", "echo", 1, timeout_ms=timeout_ms)


# --- the workers' events in a watch -----------------------------------------------------------


def test_a_watch_yields_worker_events_and_mirrors_the_runtime(client: Client) -> None:
    with client.watch() as watch:
        assert isinstance(watch.next(timeout=WAIT), Synced)
        started = client.start_assistant("chatty")
        assert started.runtime is not None
        pid = started.runtime.pid

        logged = next_matching(watch, lambda e: isinstance(e, WorkerLog), "worker.log")
        assert isinstance(logged, WorkerLog)
        assert (logged.assistant_id, logged.pid, logged.stream) == ("chatty", pid, "stdout")
        assert logged.line == "hello from the worker"

        client.send_to_assistant("chatty", {"n": 1})
        said = next_matching(watch, lambda e: isinstance(e, WorkerMessage), "worker.message")
        assert isinstance(said, WorkerMessage)
        assert (said.assistant_id, said.pid, said.message) == ("chatty", pid, {"echo": {"n": 1}})
        mirrored = watch.mirror.assistants["chatty"]
        assert mirrored.state == "running"
        assert mirrored.runtime is not None
        assert mirrored.runtime.pid == pid

        client.stop_assistant("chatty")
        exited = next_matching(watch, lambda e: isinstance(e, WorkerExited), "worker.exited")
        assert isinstance(exited, WorkerExited)
        assert (exited.pid, exited.restart, exited.exit.stopped_by) == (pid, False, "disconnect")
        next_matching(
            watch,
            lambda e: isinstance(e, AssistantStateChanged) and e.assistant.state == "ready",
            "assistant.state (back to ready)",
        )
        assert watch.mirror.assistants["chatty"].state == "ready"
        assert watch.in_sync  # the worker events, which carry no seq, made no gap


async def test_an_async_watch_of_worker_events_only(served: DaemonProcess) -> None:
    async with (
        AsyncClient(runtime_dir=served.runtime_dir) as client,
        client.watch("worker.") as watch,
    ):
        assert isinstance(await watch.next(timeout=WAIT), Synced)
        await client.invoke_assistant("tools", "say", "a line of its own")
        logged = await anext_matching(
            watch,
            lambda e: isinstance(e, WorkerLog) and e.line == "a line of its own",
            "the worker's line",
        )
        assert isinstance(logged, WorkerLog)
        assert logged.assistant_id == "tools"
        # The state events are mirrored, not yielded: starting an assistant shows only as the
        # worker's own events.
        await client.start_assistant("send-target")
        await client.stop_assistant("send-target")
        exited = await anext_matching(
            watch,
            lambda e: not isinstance(e, WorkerLog),
            "worker.exited",
        )
        assert isinstance(exited, WorkerExited)
        assert exited.assistant_id == "send-target"
        # The stop's state event was published before the reply to the stop, and so before
        # this line: once the line is here, the mirror has the state.
        await client.invoke_assistant("tools", "say", "after the stop")
        await anext_matching(
            watch, lambda e: isinstance(e, WorkerLog) and e.line == "after the stop", "the line"
        )
        assert watch.mirror.assistants["send-target"].state == "ready"


def test_worker_events_are_yielded_from_the_first_snapshot_on_and_never_mirrored() -> None:
    clone = CloneSync("worker.", start_timeout=None, now=0.0)
    welcome = b'{"topic": "daemon.welcome", "epoch": "e1", "time": 0, "seq": 3, "subscription": ""}'
    log = json.dumps(
        {
            "topic": "worker.log",
            "epoch": "e1",
            "time": 0,
            "assistant_id": "jan",
            "pid": 42,
            "stream": "stdout",
            "line": "hi",
        }
    ).encode()
    for prefix in clone.subscriptions:
        assert clone.receive([prefix.encode(), welcome], 0.0) == []
    assert clone.receive([b"worker.log", log], 0.0) == []  # before the first snapshot
    clone.snapshot_taken(Snapshot(epoch="e1", seq=3, assistants=[], invalid=[]), 0.0)
    [event] = clone.receive([b"worker.log", log], 0.0)
    assert isinstance(event, WorkerLog)
    assert event.line == "hi"
    assert (clone.mirror.seq, clone.in_sync) == (3, True)
    # A watch of the state events only does not yield them.
    state_only = CloneSync("assistant.", start_timeout=None, now=0.0)
    for prefix in state_only.subscriptions:
        state_only.receive([prefix.encode(), welcome], 0.0)
    state_only.snapshot_taken(Snapshot(epoch="e1", seq=3, assistants=[], invalid=[]), 0.0)
    assert state_only.receive([b"worker.log", log], 0.0) == []


# --- assistantctl -----------------------------------------------------------------------------


def test_ctl_start_restart_stop_show_the_worker(served: DaemonProcess) -> None:
    started = ctl(served, "start", "ctl-plain")
    assert started.returncode == 0, started.stderr
    shown = fields_of(started.stdout)
    assert (shown["id"], shown["state"], shown["worker"]) == ("ctl-plain", "running", "up")
    assert shown["style"] == "default"
    assert "ping" in shown["methods"]
    pid = int(shown["pid"])

    restarted = fields_of(ctl(served, "restart", "ctl-plain").stdout)
    assert (restarted["state"], restarted["worker"]) == ("running", "up")
    assert int(restarted["pid"]) != pid

    stopped = ctl(served, "stop", "ctl-plain")
    assert stopped.returncode == 0, stopped.stderr
    shown = fields_of(stopped.stdout)
    assert (shown["state"], shown["worker"]) == ("ready", "stopped")
    assert "pid" not in shown
    assert shown["last_exit"].startswith("exit code 0, stopped by disconnect")


def test_ctl_worker_commands_in_json(served: DaemonProcess) -> None:
    started = json.loads(ctl(served, "start", "ctl-json", "--json").stdout)
    assert (started["id"], started["state"]) == ("ctl-json", "running")
    assert started["runtime"]["status"] == "up"
    stopped = json.loads(ctl(served, "--json", "stop", "ctl-json").stdout)
    assert (stopped["state"], stopped["runtime"]["status"]) == ("ready", "stopped")


def test_ctl_invoke_reads_each_arg_as_json_or_a_bare_word(served: DaemonProcess) -> None:
    done = ctl(served, "invoke", "tools", "echo", "1", "hello", '"42"', "[true, null]", '{"a": 1}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [1, "hello", "42", [True, None], {"a": 1}]
    assert json.loads(ctl(served, "invoke", "tools", "echo").stdout) == []


def test_ctl_invoke_waits_for_its_timeout_ms_beyond_the_timeout(served: DaemonProcess) -> None:
    done = ctl(served, "invoke", "tools", "slow", "600", "--timeout-ms", "5000", "--timeout", "0.2")
    assert (done.returncode, json.loads(done.stdout)) == (0, "done")


def test_ctl_send(served: DaemonProcess) -> None:
    assert ctl(served, "start", "ctl-chatty").returncode == 0
    try:
        done = ctl(served, "send", "ctl-chatty", '{"hello": [1, 2]}')
        assert (done.returncode, done.stdout) == (0, "sent to ctl-chatty\n")
        sent = json.loads(ctl(served, "send", "ctl-chatty", "word", "--json").stdout)
        assert sent == {"assistant_id": "ctl-chatty", "object": "assistant.message.sent"}
    finally:
        ctl(served, "stop", "ctl-chatty")


def test_ctl_a_method_that_throws_shows_the_workers_error_and_exits_1(
    served: DaemonProcess,
) -> None:
    done = ctl(served, "invoke", "tools", "fail")
    assert (done.returncode, done.stdout) == (1, "")
    first, *details = done.stderr.splitlines()
    assert first == "assistantctl: error: Error: boom (502, worker_error)"
    assert "  code: E_BOOM" in details
    assert "  stack:" in details
    assert any("at exports.fail" in line for line in details)

    as_json = json.loads(ctl(served, "invoke", "tools", "fail", "--json").stderr)["error"]
    assert (as_json["status"], as_json["details"]["code"]) == (502, "E_BOOM")


@pytest.mark.parametrize(
    ("args", "status", "code"),
    [
        (("start", "nobody"), 404, "not_found"),
        (("invoke", "tools", "noSuchMethod"), 404, "method_not_found"),
        (("invoke", "idle", "echo"), 409, "assistant_not_running"),
        (("send", "idle", "{}"), 409, "assistant_not_running"),
        (("invoke", "tools", "slow", "5000", "--timeout-ms", "50"), 504, "invoke_timeout"),
        (("invoke", "tools", "echo", "--timeout-ms", "0"), 400, "integer_below_min_value"),
        (("start", "broken"), 502, "worker_failed"),
    ],
)
def test_ctl_an_error_reply_exits_1_with_status_and_code(
    served: DaemonProcess, args: tuple[str, ...], status: int, code: str
) -> None:
    done = ctl(served, *args)
    assert (done.returncode, done.stdout) == (1, "")
    assert f"({status}, {code}" in done.stderr.splitlines()[0]


def test_ctl_a_failed_start_shows_the_exit_and_the_workers_stderr(served: DaemonProcess) -> None:
    done = ctl(served, "start", "broken")
    assert done.returncode == 1
    assert "  exit: exit code 1" in done.stderr.splitlines()
    assert "    about to fail" in done.stderr.splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("invoke", "tools", "echo", "{not json"), "is not valid JSON"),
        (("invoke", "tools", "echo", "--timeout-ms", "soon"), "invalid int value"),
        (("send", "tools", "[1, 2"), "is not valid JSON"),
        (("invoke", "tools"), "required: METHOD"),
        (("send", "tools"), "required: MESSAGE"),
    ],
)
def test_ctl_bad_usage_of_the_worker_commands_exits_2(
    served: DaemonProcess, args: tuple[str, ...], message: str
) -> None:
    done = ctl(served, *args)
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.parametrize("command", ["start", "stop", "restart", "invoke", "send"])
def test_ctl_help_of_the_worker_commands(command: str) -> None:
    done = subprocess.run(
        [*CTL, command, "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith(f"usage: assistantctl {command}")


@pytest.mark.parametrize(
    "args", [("start", "jan"), ("invoke", "jan", "ping"), ("send", "jan", "{}")]
)
def test_ctl_worker_commands_with_no_daemon_exit_3(args: tuple[str, ...]) -> None:
    done = subprocess.run(
        [*CTL, *args, "--runtime-dir", str(short_dir())],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 3
    assert "No daemon is listening" in done.stderr


def test_ctl_watch_shows_the_workers_events(served: DaemonProcess) -> None:
    with watching(served) as watch:
        printed = Printed(watch)
        assert "client.synced" in watch.line()
        started = ctl(served, "start", "ctl-watched", "--json")
        pid = json.loads(started.stdout)["runtime"]["pid"]
        state = printed.find(
            lambda line: "assistant.state" in line and "ctl-watched" in line, "the state line"
        )
        assert "ready -> running" in state
        assert f"worker=up  pid={pid}" in state
        logged = printed.find(
            lambda line: f"[ctl-watched {pid} stdout]" in line, "the worker's line"
        )
        assert logged.endswith(f"  [ctl-watched {pid} stdout] hello from the worker")

        assert ctl(served, "send", "ctl-watched", '{"n": 1}').returncode == 0
        said = printed.find(
            lambda line: f"[ctl-watched {pid} message]" in line, "the worker's message"
        )
        assert said.endswith(f'  [ctl-watched {pid} message] {{"echo": {{"n": 1}}}}')

        assert ctl(served, "stop", "ctl-watched").returncode == 0
        exited = printed.find(
            lambda line: f"[ctl-watched {pid} exited]" in line, "the worker's exit"
        )
        assert exited.endswith(
            f"  [ctl-watched {pid} exited] exit code 0, stopped by disconnect, not restarting"
        )
        assert watch.interrupt() == 0
        assert watch.stderr() == ""

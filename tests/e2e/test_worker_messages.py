"""Talking to workers end to end (issue "Workers"): invokes, messages, logs and exits between
clients, a real daemon process and real ``node`` workers, including workers and clients that
misbehave.

Most tests share one daemon (``lab``), each on assistants of its own: a test creates an
assistant through the API, writes its ``src/process.js`` (or ``.mjs``, ``.cjs``), starts it,
and stops it again at the end. What a worker does on its own (``worker.message``,
``worker.log``, ``worker.exited``) is read from a SUB socket made before the worker starts
(:class:`WorkerEvents`), and what the daemon logs from its JSON log. Every wait has a
deadline; nothing sleeps to synchronise. The test that floods a worker's stdout has a daemon of
its own, so that its log does not weigh on the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq

from assistantd.client import AssistantdError, AsyncClient, Client
from assistantd.protocol.limits import INVOKE_TIMEOUT_MAX_MS, METHOD_NAME_MAX_CHARS
from tests.e2e.helpers import log_mark, short_tmp, wait_for_new_log
from tests.utils import DaemonProcess, LogLine, running_daemon

EVENT_TIMEOUT = 10.0
REPLY_TIMEOUT = 20.0
BIG = 10 * 1024 * 1024
"""The size of the big message and the big result (issue "Workers" asks for 10 MB to work)."""

# Small timeouts, so that stops, restarts and invoke timeouts take a fraction of a second.
CONFIG = """\
[workers]
start-timeout = 15
stop-timeout = 1
invoke-timeout = 5
backoff-initial = 0.02
backoff-max = 0.2
restart-limit = 50
"""

Event = dict[str, Any]
Context = zmq.Context[zmq.Socket[bytes]]


# ============================================================================================
# The event stream, the shared daemon, and assistants with code
# ============================================================================================


class WorkerEvents:
    """A SUB socket on the daemon's events whose topics start with ``prefix``.

    Made before the worker starts, so nothing the worker says at start is missed: construction
    waits for the subscription's own ``daemon.welcome``.
    """

    def __init__(self, context: Context, endpoint: str, prefix: str = "worker.") -> None:
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.socket.subscribe(prefix.encode())
        self.next(
            lambda event: event["topic"] == "daemon.welcome" and event["subscription"] == prefix,
            what=f"the welcome of {prefix!r}",
        )

    def close(self) -> None:
        self.socket.close(linger=0)

    def receive(self, timeout: float) -> Event:
        if not self.socket.poll(int(timeout * 1000) + 1, zmq.POLLIN):
            raise AssertionError(f"no event within {timeout}s")
        topic, body = self.socket.recv_multipart()
        event: Event = json.loads(body)
        if event["topic"] != "daemon.welcome":
            assert topic == event["topic"].encode(), (topic, event["topic"])
        return event

    def next(
        self, wanted: Callable[[Event], bool], *, what: str, timeout: float = EVENT_TIMEOUT
    ) -> Event:
        """The first event that is ``wanted``, skipping the others."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            event = self.receive(remaining)
            if wanted(event):
                return event
        raise AssertionError(f"{what} did not come within {timeout}s")

    def of(
        self,
        assistant_id: str,
        topic: str,
        wanted: Callable[[Event], bool] = lambda event: True,
        timeout: float = EVENT_TIMEOUT,
    ) -> Event:
        """The next ``topic`` event of ``assistant_id`` that is ``wanted``."""
        return self.next(
            lambda event: (
                event["topic"] == topic and about(event) == assistant_id and wanted(event)
            ),
            what=f"a {topic} event of {assistant_id}",
            timeout=timeout,
        )

    def message(self, assistant_id: str, timeout: float = EVENT_TIMEOUT) -> Any:
        """The next message ``assistant_id``'s worker sent on its own (none skipped)."""
        return self.of(assistant_id, "worker.message", timeout=timeout)["message"]


_assistant_numbers = itertools.count(1)


def about(event: Event) -> str | None:
    """The id of the assistant an event is about (state events carry the whole assistant)."""
    if "assistant_id" in event:
        return str(event["assistant_id"])
    assistant = event.get("assistant")
    return str(assistant["id"]) if isinstance(assistant, dict) else None


@dataclass
class Lab:
    """The shared daemon, a client of it, and the assistants a test started (stopped after)."""

    daemon: DaemonProcess
    context: Context
    client: Client
    started: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.daemon.root

    @property
    def events_endpoint(self) -> str:
        return f"ipc://{self.daemon.runtime_dir}/events.sock"

    def subscribe(self, prefix: str = "worker.") -> WorkerEvents:
        return WorkerEvents(self.context, self.events_endpoint, prefix)

    def add(self, code: str | None = None, *, files: dict[str, str] | None = None) -> str:
        """A new assistant with ``code`` as its ``src/process.js`` and ``files`` (paths in its
        folder); with neither, it gets the default worker."""
        assistant_id = f"w{next(_assistant_numbers)}"
        self.client.request("createAssistant", {"id": assistant_id, "name": "Worker test"})
        wanted = dict(files or {})
        if code is not None:
            wanted["src/process.js"] = code
        for name, content in wanted.items():
            path = self.root / assistant_id / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        return assistant_id

    def start(self, assistant_id: str) -> dict[str, Any]:
        """Start the worker; its ``runtime`` once it is up."""
        self.started.append(assistant_id)
        assistant = self.client.request("startAssistant", {"assistant_id": assistant_id})
        assert assistant["state"] == "running", assistant
        runtime: dict[str, Any] = assistant["runtime"]
        assert runtime["status"] == "up", runtime
        return runtime

    def run(self, code: str) -> str:
        """:meth:`add` and :meth:`start` in one."""
        assistant_id = self.add(code)
        self.start(assistant_id)
        return assistant_id

    def status(self, assistant_id: str) -> tuple[str, int | None]:
        """The worker's runtime status and pid, from getAssistant."""
        runtime = self.client.request("getAssistant", {"assistant_id": assistant_id})["runtime"]
        return runtime["status"], runtime["pid"]

    def stop(self, assistant_id: str) -> dict[str, Any]:
        assistant: dict[str, Any] = self.client.request(
            "stopAssistant", {"assistant_id": assistant_id}
        )
        return assistant

    def invoke(self, assistant_id: str, method: str, *args: Any, **more: Any) -> Any:
        """What the worker's ``method`` returned for ``args``."""
        params = {"assistant_id": assistant_id, "method": method, "args": list(args), **more}
        reply = self.client.request("invokeAssistant", params)
        assert set(reply) == {"result"}, reply
        return reply["result"]

    def send(self, assistant_id: str, message: Any) -> None:
        reply = self.client.request(
            "sendToAssistant", {"assistant_id": assistant_id, "message": message}
        )
        assert reply == {"assistant_id": assistant_id, "object": "assistant.message.sent"}, reply

    def refused(self, method: str, params: dict[str, Any]) -> AssistantdError:
        """The error ``method`` is answered with."""
        with pytest.raises(AssistantdError) as caught:
            self.client.request(method, params)
        return caught.value

    def check_serving(self) -> None:
        """The daemon is alive and answers a read."""
        assert self.daemon.process.poll() is None
        assert self.client.request("getAssistant", {"assistant_id": "jan"})["id"] == "jan"


def write_config(folder: Path) -> Path:
    path = folder / "assistantd.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[DaemonProcess, Context]]:
    context: Context = zmq.Context()
    try:
        with short_tmp() as base:
            root = base / "assistants"
            root.mkdir()
            with running_daemon(root, args=("--config", str(write_config(base)))) as daemon:
                yield daemon, context
    finally:
        context.destroy(linger=0)


@pytest.fixture
def lab(shared: tuple[DaemonProcess, Context]) -> Iterator[Lab]:
    daemon, context = shared
    with Client(runtime_dir=daemon.runtime_dir, timeout=REPLY_TIMEOUT) as client:
        lab = Lab(daemon, context, client)
        yield lab
        for assistant_id in lab.started:
            # A test may have stopped or broken it already: nothing left to stop then.
            with contextlib.suppress(AssistantdError):
                lab.stop(assistant_id)


def is_output(assistant_id: str, stream: str, line: str) -> Callable[[LogLine], bool]:
    """Whether a daemon log line is the "worker output" line for ``line``."""
    return lambda logged: (
        logged.get("event") == "worker output"
        and logged.get("assistant_id") == assistant_id
        and logged.get("stream") == stream
        and logged.get("line") == line
    )


# Worker code used by several tests.

ECHO_FORK = """\
// fork() style: talks for itself, echoes every message it gets.
process.on('message', (message) => process.send({ echo: message }));
"""

CHANNEL_FD = """\
const fs = require('fs');

// The fd of Node's IPC channel. Node deletes NODE_CHANNEL_FD from process.env before any user
// code runs, but Node 20's process.channel exposes the fd; failing that, it is the one socket
// among the process's open fds.
function channelFd() {
  if (process.channel && Number.isInteger(process.channel.fd)) return process.channel.fd;
  const sockets = fs.readdirSync('/proc/self/fd').filter((fd) => {
    try { return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:'); }
    catch { return false; }
  });
  if (sockets.length !== 1) throw new Error(`cannot tell the channel among ${sockets}`);
  return Number(sockets[0]);
}
"""


# ============================================================================================
# invokeAssistant, in every style
# ============================================================================================

ADD_AND_LATER = """\
{export}function add(a, b) {{ return a + b; }}
{export}async function later(value) {{
  await new Promise((done) => setTimeout(done, 5));
  return value;
}}
"""

MODULE_STYLES = {
    "cjs exports": {
        "src/process.js": """\
exports.add = (a, b) => a + b;
exports.later = async (value) => {
  await new Promise((done) => setTimeout(done, 5));
  return value;
};
""",
    },
    "cjs module.exports": {
        "src/process.cjs": ADD_AND_LATER.format(export="") + "module.exports = { add, later };\n",
    },
    "esm .mjs": {"src/process.mjs": ADD_AND_LATER.format(export="export ")},
    "esm type module, top-level await": {
        "package.json": '{"type": "module"}\n',
        "src/process.js": "await new Promise((done) => setTimeout(done, 5));\n"
        + ADD_AND_LATER.format(export="export "),
    },
    "esm export default": {
        # `this` is the default-exported object, as for any method call.
        "src/process.mjs": """\
export default {
  base: 0,
  add(a, b) { return this.base + a + b; },
  async later(value) {
    await new Promise((done) => setTimeout(done, 5));
    return value;
  },
};
""",
    },
}


@pytest.mark.parametrize("style", MODULE_STYLES)
def test_module_style_code_is_served_sync_and_async(lab: Lab, style: str) -> None:
    assistant_id = lab.add(files=MODULE_STYLES[style])

    runtime = lab.start(assistant_id)

    assert runtime["style"] == "module", runtime
    assert sorted(runtime["methods"]) == ["add", "later"], runtime
    assert lab.invoke(assistant_id, "add", 2, 3) == 5
    value = {"text": "héllo ✓", "n": [1, 2.5, None, True], "deep": {"a": {"b": []}}}
    assert lab.invoke(assistant_id, "later", value) == value


def test_the_default_worker_answers_ping_and_get_definition(lab: Lab) -> None:
    assistant_id = lab.add()  # no src/: the built-in default worker
    lab.client.request(
        "modifyAssistant",
        {"assistant_id": assistant_id, "instructions": "Be brief.", "metadata": {"k": "v"}},
    )

    runtime = lab.start(assistant_id)

    assert runtime["style"] == "default", runtime
    assert sorted(runtime["methods"]) == ["getDefinition", "ping"], runtime
    assert lab.invoke(assistant_id, "ping") == "pong"
    on_disk = json.loads((lab.root / assistant_id / "assistant.json").read_bytes())
    definition = lab.invoke(assistant_id, "getDefinition")
    assert definition == on_disk
    assert definition["instructions"] == "Be brief.", definition


def test_fork_code_may_answer_invokes_itself(lab: Lab) -> None:
    assistant_id = lab.add("""\
process.on('message', (message) => {
  if (message && message.type === 'invoke') {
    const result = { method: message.method, args: message.args };
    process.send({ type: 'result', id: message.id, result });
  }
});
""")
    runtime = lab.start(assistant_id)

    assert (runtime["style"], runtime["methods"]) == ("process", []), runtime
    assert lab.invoke(assistant_id, "anything", 1, "two") == {
        "method": "anything",
        "args": [1, "two"],
    }


def test_fork_code_that_does_not_answer_is_a_504(lab: Lab) -> None:
    assistant_id = lab.run("process.on('message', () => {});\n")

    error = lab.refused(
        "invokeAssistant", {"assistant_id": assistant_id, "method": "hello", "timeout_ms": 200}
    )

    assert (error.status, error.code) == (504, "invoke_timeout"), error
    assert "200 ms" in error.message, error.message
    assert lab.status(assistant_id)[0] == "up"


THROWING = """\
exports.typeError = () => null.property;
exports.rejects = async () => {
  const error = new RangeError('out of range');
  error.code = 'E_RANGE';
  throw error;
};
exports.throwsString = () => { throw 'just a string'; };
exports.fine = () => 'fine';
"""


def test_a_thrown_error_is_a_502_carrying_the_workers_error(lab: Lab) -> None:
    assistant_id = lab.run(THROWING)

    error = lab.refused("invokeAssistant", {"assistant_id": assistant_id, "method": "typeError"})

    assert (error.status, error.type, error.code) == (502, "worker_error", "worker_error"), error
    assert error.details is not None
    assert error.details["name"] == "TypeError", error.details
    assert "Cannot read properties of null" in error.details["message"], error.details
    assert error.details["message"] in error.message, error.message
    assert "process.js" in error.details["stack"], error.details


def test_a_rejection_with_a_code_and_a_thrown_string_are_502s(lab: Lab) -> None:
    assistant_id = lab.run(THROWING)

    rejected = lab.refused("invokeAssistant", {"assistant_id": assistant_id, "method": "rejects"})
    thrown = lab.refused(
        "invokeAssistant", {"assistant_id": assistant_id, "method": "throwsString"}
    )

    assert (rejected.status, rejected.code) == (502, "worker_error"), rejected
    assert rejected.details is not None
    assert rejected.details["name"] == "RangeError", rejected.details
    assert rejected.details["message"] == "out of range", rejected.details
    assert rejected.details["code"] == "E_RANGE", rejected.details
    assert (thrown.status, thrown.code) == (502, "worker_error"), thrown
    assert thrown.details is not None
    assert thrown.details["message"] == "just a string", thrown.details
    assert lab.invoke(assistant_id, "fine") == "fine"  # an error costs the worker nothing


@pytest.mark.parametrize("method", ["notExported", "toString", "constructor", "__proto__"])
def test_a_method_the_module_does_not_export_is_a_404(lab: Lab, method: str) -> None:
    assistant_id = lab.run(THROWING)

    error = lab.refused("invokeAssistant", {"assistant_id": assistant_id, "method": method})

    assert (error.status, error.code, error.param) == (404, "method_not_found", "method"), error
    assert lab.invoke(assistant_id, "fine") == "fine"


def test_a_worker_that_exits_while_an_invoke_waits_is_a_502(lab: Lab) -> None:
    # exitSoon exits only once hang has been called: both invokes are waiting by then.
    assistant_id = lab.add("""\
let called;
const hangCalled = new Promise((resolve) => { called = resolve; });
exports.hang = () => { called(); return new Promise(() => {}); };
exports.exitSoon = async () => {
  await hangCalled;
  setImmediate(() => process.exit(3));
  return new Promise(() => {});
};
exports.fine = () => 'fine';
""")
    events = lab.subscribe()
    try:
        runtime = lab.start(assistant_id)

        async def both() -> tuple[BaseException | None, BaseException | None]:
            async with AsyncClient(runtime_dir=lab.daemon.runtime_dir) as client:
                outcomes = await asyncio.gather(
                    client.request(
                        "invokeAssistant", {"assistant_id": assistant_id, "method": "hang"}
                    ),
                    client.request(
                        "invokeAssistant", {"assistant_id": assistant_id, "method": "exitSoon"}
                    ),
                    return_exceptions=True,
                )
            return outcomes[0], outcomes[1]

        hung, exiting = asyncio.run(both())

        for error in (hung, exiting):
            assert isinstance(error, AssistantdError), error
            assert (error.status, error.code) == (502, "worker_exited"), error
        exited = events.of(assistant_id, "worker.exited")
        assert exited["pid"] == runtime["pid"], exited
        assert (exited["exit"]["code"], exited["exit"]["signal"]) == (3, None), exited
        assert exited["restart"] is True, exited
        # It is restarted, and an invoke waits for it to be up again.
        assert lab.invoke(assistant_id, "fine") == "fine"
    finally:
        events.close()


def test_invoking_an_assistant_that_is_not_running_is_a_409(lab: Lab) -> None:
    never_started = lab.add(THROWING)
    stopped = lab.run(THROWING)
    assert lab.stop(stopped)["state"] == "ready"

    for assistant_id in (never_started, stopped):
        error = lab.refused("invokeAssistant", {"assistant_id": assistant_id, "method": "fine"})
        assert (error.status, error.code, error.param) == (
            409,
            "assistant_not_running",
            "assistant_id",
        ), error
        sent = lab.refused("sendToAssistant", {"assistant_id": assistant_id, "message": {}})
        assert (sent.status, sent.code) == (409, "assistant_not_running"), sent
    missing = lab.refused("invokeAssistant", {"assistant_id": "no-such-one", "method": "fine"})
    assert (missing.status, missing.code, missing.param) == (404, "not_found", "assistant_id")


# ============================================================================================
# Many invokes at once
# ============================================================================================

ECHO_LATER = """\
exports.echo = async (value) => {
  await new Promise((done) => setTimeout(done, Math.random() * 20));
  return value;
};
"""


def test_a_storm_of_concurrent_invokes_each_gets_its_own_answer(lab: Lab) -> None:
    assistant_id = lab.run(ECHO_LATER)
    clients, per_client = 4, 250  # 1,000 invokes in flight, over 4 DEALER sockets

    async def storm() -> list[tuple[Any, Any]]:
        async def one(client: AsyncClient, value: Any) -> tuple[Any, Any]:
            params = {"assistant_id": assistant_id, "method": "echo", "args": [value]}
            reply = await client.request("invokeAssistant", params)
            return value, reply

        sockets = [
            AsyncClient(runtime_dir=lab.daemon.runtime_dir, timeout=30) for _ in range(clients)
        ]
        try:
            return await asyncio.gather(
                *(
                    one(client, {"client": c, "n": n, "text": f"{c}-{n}" * (n % 7)})
                    for c, client in enumerate(sockets)
                    for n in range(per_client)
                )
            )
        finally:
            for client in sockets:
                await client.close()

    answers = asyncio.run(storm())

    assert len(answers) == clients * per_client
    wrong = [(value, reply) for value, reply in answers if reply != {"result": value}]
    assert not wrong, wrong[:5]
    lab.check_serving()


# ============================================================================================
# Big messages
# ============================================================================================

PATTERN = "0123456789abcdef"


def test_a_10_mb_message_from_the_worker_arrives_as_one_event(lab: Lab) -> None:
    assistant_id = lab.add(f"""\
process.on('message', (message) => {{
  if (message === 'go') process.send('{PATTERN}'.repeat({BIG // len(PATTERN)}) + 'END');
  else process.send({{ after: message }});
}});
""")
    events = lab.subscribe()
    try:
        lab.start(assistant_id)

        lab.send(assistant_id, "go")
        big = events.message(assistant_id)
        lab.send(assistant_id, "next")
        after = events.message(assistant_id)
    finally:
        events.close()

    assert isinstance(big, str)
    assert len(big) == BIG + 3
    assert big == PATTERN * (BIG // len(PATTERN)) + "END"
    assert after == {"after": "next"}


def test_a_10_mb_result_arrives_whole(lab: Lab) -> None:
    # The Python clients set no ZMQ_MAXMSGSIZE, and the daemon's 8 MiB one applies only to
    # what it receives: a reply over 8 MiB reaches them whole.
    assistant_id = lab.run(f"""\
exports.big = (size) => '{PATTERN}'.repeat(size / {len(PATTERN)});
exports.fine = () => 'fine';
""")

    result = lab.invoke(assistant_id, "big", BIG)

    async def from_async_client() -> Any:
        async with AsyncClient(runtime_dir=lab.daemon.runtime_dir, timeout=REPLY_TIMEOUT) as aio:
            return await aio.request(
                "invokeAssistant", {"assistant_id": assistant_id, "method": "big", "args": [BIG]}
            )

    assert result == PATTERN * (BIG // len(PATTERN))
    assert asyncio.run(from_async_client()) == {"result": result}
    assert lab.invoke(assistant_id, "fine") == "fine"


# ============================================================================================
# sendToAssistant
# ============================================================================================

ECHO_UTILITY = """\
// Electron utilityProcess style: process.parentPort, messages wrapped in {data}.
process.parentPort.on('message', (event) => process.parentPort.postMessage({ echo: event.data }));
"""

MESSAGES = [
    {"hello": "world", "n": [1, 2.5, None, True, False], "nested": {"a": {"b": "c"}}},
    "just a string",
    [1, "two", {"three": 3}],
    None,
    "héllo ✓ 𝄞",
]


@pytest.mark.parametrize("code", [ECHO_FORK, ECHO_UTILITY], ids=["fork", "utilityProcess"])
def test_a_sent_message_reaches_the_worker(lab: Lab, code: str) -> None:
    assistant_id = lab.add(code)
    events = lab.subscribe()
    try:
        runtime = lab.start(assistant_id)
        assert runtime["style"] == "process", runtime

        echoes = []
        for message in MESSAGES:
            lab.send(assistant_id, message)
            echoes.append(events.message(assistant_id))
    finally:
        events.close()

    assert echoes == [{"echo": message} for message in MESSAGES]


@pytest.mark.parametrize(
    "message",
    [{"cmd": "NODE_X"}, {"cmd": "NODE_HANDLE_ACK"}, {"cmd": "NODE_HANDLE", "type": "net.Server"}],
)
def test_a_message_node_would_take_for_its_own_is_refused(lab: Lab, message: Any) -> None:
    assistant_id = lab.add(ECHO_FORK)
    events = lab.subscribe()
    try:
        runtime = lab.start(assistant_id)

        error = lab.refused("sendToAssistant", {"assistant_id": assistant_id, "message": message})
        lab.send(assistant_id, {"cmd": "NODE_"})  # not one of Node's: "NODE_" and more is
        echoed = events.message(assistant_id)
    finally:
        events.close()

    assert (error.status, error.code, error.param) == (400, "invalid_value", "message"), error
    assert echoed == {"echo": {"cmd": "NODE_"}}
    # The worker kept working: the same process, still up.
    assert lab.status(assistant_id) == ("up", runtime["pid"])


# ============================================================================================
# worker.log and worker.exited
# ============================================================================================


def test_stdout_and_stderr_lines_are_events_and_log_lines(lab: Lab) -> None:
    assistant_id = lab.add("""\
console.log('to stdout');
console.error('to stderr');
process.stdout.write('in two ');
process.stdout.write('pieces\\r\\n');
exports.say = (text) => { console.log(text); return 'said'; };
""")
    events = lab.subscribe()
    try:
        pid = lab.start(assistant_id)["pid"]
        # stdout and stderr are two pipes: the order within each is kept, not between them.
        lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        while len(lines["stdout"]) < 2 or not lines["stderr"]:
            event = events.of(assistant_id, "worker.log")
            assert event["pid"] == pid, event
            lines[event["stream"]].append(event["line"])
        assert lab.invoke(assistant_id, "say", "héllo ✓") == "said"
        said = events.of(assistant_id, "worker.log")
    finally:
        events.close()

    assert lines == {"stdout": ["to stdout", "in two pieces"], "stderr": ["to stderr"]}
    assert (said["pid"], said["stream"], said["line"]) == (pid, "stdout", "héllo ✓"), said
    for stream, line in [("stdout", "to stdout"), ("stderr", "to stderr"), ("stdout", "héllo ✓")]:
        logged = lab.daemon.wait_for_log(is_output(assistant_id, stream, line))
        assert logged["pid"] == pid, logged


EXITING = """\
exports.quit = (code) => { setImmediate(() => process.exit(code)); return 'bye'; };
exports.killMe = () => { setImmediate(() => process.kill(process.pid, 'SIGKILL')); return 'bye'; };
exports.fine = () => 'fine';
"""


def test_exits_are_events_with_the_code_or_signal(lab: Lab) -> None:
    assistant_id = lab.add(EXITING)
    events = lab.subscribe("")  # worker.* and assistant.* events both
    try:
        first = lab.start(assistant_id)["pid"]

        assert lab.invoke(assistant_id, "killMe") == "bye"
        killed = events.of(assistant_id, "worker.exited")
        assert lab.invoke(assistant_id, "fine") == "fine"  # once restarted
        second = lab.client.request("getAssistant", {"assistant_id": assistant_id})["runtime"]
        assert lab.invoke(assistant_id, "quit", 0) == "bye"
        done = events.of(assistant_id, "worker.exited")
        back = events.of(assistant_id, "assistant.state")
        third = lab.start(assistant_id)["pid"]
        lab.stop(assistant_id)
        stopped = events.of(assistant_id, "worker.exited")
    finally:
        events.close()

    assert killed["pid"] == killed["exit"]["pid"] == first, killed
    assert (killed["exit"]["code"], killed["exit"]["signal"]) == (None, "SIGKILL"), killed
    assert (killed["exit"]["stopped_by"], killed["restart"]) == (None, True), killed
    assert second["pid"] != first, second
    assert second["restarts"] == 1, second
    # Code 0 on its own: done, not restarted; the assistant is ready again.
    assert done["pid"] == second["pid"], done
    assert (done["exit"]["code"], done["exit"]["signal"], done["restart"]) == (0, None, False)
    assert (back["previous"], back["assistant"]["state"]) == ("running", "ready"), back
    # A stop: the step that ended it.
    assert stopped["pid"] == third, stopped
    assert (stopped["exit"]["stopped_by"], stopped["restart"]) == ("disconnect", False), stopped


# ============================================================================================
# Bad input from the worker
# ============================================================================================


GARBAGE = [
    b"this is not json",
    b'{"half": ',
    b"NaN",
    b"1" + b"0" * 5000,  # an integer Python will not read (over 4,300 digits)
    b"\xff\xfe not UTF-8",
]


def test_a_malformed_line_on_the_channel_is_logged_and_skipped(lab: Lab) -> None:
    garbage = b"".join(line + b"\n" for line in GARBAGE)
    assistant_id = lab.add(
        CHANNEL_FD
        + f"""\
const garbage = Buffer.from('{garbage.hex()}', 'hex');
process.send({{ step: 'before' }}, () => {{
  // Written past Node, straight onto the channel's socket, between two real messages.
  fs.writeSync(channelFd(), garbage);
  process.send({{ step: 'after' }});
}});
process.on('message', (message) => process.send({{ echo: message }}));
"""
    )
    events = lab.subscribe()
    mark = log_mark(lab.daemon)
    try:
        pid = lab.start(assistant_id)["pid"]
        before = events.message(assistant_id)
        after = events.message(assistant_id)  # the next one: nothing else got through
        lab.send(assistant_id, "still there?")
        echoed = events.message(assistant_id)
    finally:
        events.close()

    assert (before, after) == ({"step": "before"}, {"step": "after"})
    assert echoed == {"echo": "still there?"}

    def skipped(line: LogLine) -> bool:
        wanted = "skipped a line from the worker that is not JSON"
        return line.get("event") == wanted and line.get("pid") == pid

    wait_for_new_log(lab.daemon, mark, lambda line: skipped(line) and "UTF-8" in line["start"])
    logged = [line for line in lab.daemon.logs[mark:] if skipped(line)]
    assert [line["start"] for line in logged] == [
        line[:80].decode(errors="replace") for line in GARBAGE
    ], logged
    assert all(line["level"] == "warning" for line in logged), logged
    lab.check_serving()


def test_a_worker_that_sends_a_handle_gets_a_nack_and_goes_on(lab: Lab) -> None:
    assistant_id = lab.add("""\
const net = require('net');
const server = net.createServer();
server.listen(0, '127.0.0.1', () => {
  process.send({ step: 'with the handle' }, server, (error) => {
    server.close();
    // Node holds this back until the daemon answers NODE_HANDLE_NACK.
    process.send({ step: 'after the handle', error: error ? String(error) : null });
  });
});
process.on('message', (message) => process.send({ echo: message }));
""")
    events = lab.subscribe()
    mark = log_mark(lab.daemon)
    try:
        lab.start(assistant_id)
        first = events.message(assistant_id)
        lab.send(assistant_id, "and now?")
        echoed = events.message(assistant_id)
    finally:
        events.close()

    # The message that came with the handle is dropped, as Node's parent drops it.
    assert first == {"step": "after the handle", "error": None}, first
    assert echoed == {"echo": "and now?"}
    logged = wait_for_new_log(
        lab.daemon,
        mark,
        lambda line: line.get("event", "").startswith("the worker sent a handle"),
    )
    assert logged["type"] == "net.Server", logged


def test_a_lone_surrogate_arrives_as_a_replacement_character(lab: Lab) -> None:
    assistant_id = lab.add("""\
process.send({ lone: '\\ud800', key: { '\\udc00': 'x' }, pair: '\\ud834\\udd1e', end: 'a\\ud83d' });
exports.lone = () => 'b\\udfff';
""")
    events = lab.subscribe()
    try:
        lab.start(assistant_id)
        message = events.message(assistant_id)
    finally:
        events.close()

    assert message == {"lone": "\ufffd", "key": {"\ufffd": "x"}, "pair": "𝄞", "end": "a\ufffd"}
    assert lab.invoke(assistant_id, "lone") == "b\ufffd"
    lab.check_serving()


def test_huge_numbers_from_the_worker_arrive_as_json_reads_them(lab: Lab) -> None:
    assistant_id = lab.add("""\
process.send({
  max: Number.MAX_VALUE, min: -Number.MAX_VALUE, tiny: Number.MIN_VALUE,
  unsafe: 2 ** 64, exact: Number.MAX_SAFE_INTEGER, nan: NaN, infinite: -Infinity,
});
process.on('message', () => {});
""")
    events = lab.subscribe()
    try:
        lab.start(assistant_id)
        message = events.message(assistant_id)
    finally:
        events.close()

    assert message == {
        "max": 1.7976931348623157e308,
        "min": -1.7976931348623157e308,
        "tiny": 5e-324,
        "unsafe": 18446744073709552000,  # as JSON.stringify writes 2 ** 64
        "exact": 2**53 - 1,
        "nan": None,  # JSON.stringify writes NaN and Infinity as null
        "infinite": None,
    }
    lab.check_serving()


def nesting(value: Any) -> int:
    """How many lists deep ``value`` goes, along first items."""
    levels = 0
    while isinstance(value, list):
        levels += 1
        value = value[0] if value else None
    return levels


def test_a_message_nested_too_deeply_to_read_is_skipped_and_logged(lab: Lab) -> None:
    # 2,000 levels: JSON.stringify writes them (it gives up near 5,000), but Python's json
    # recurses once per level and stops at the interpreter's limit of 1,000.
    assistant_id = lab.add("""\
function nested(depth) {
  const top = [];
  let inner = top;
  for (let i = 1; i < depth; i++) { const next = []; inner.push(next); inner = next; }
  return top;
}
process.on('message', (depth) => {
  process.send({ depth, nested: nested(depth) });
  process.send({ after: depth });
});
""")
    events = lab.subscribe()
    mark = log_mark(lab.daemon)
    try:
        pid = lab.start(assistant_id)["pid"]
        lab.send(assistant_id, 500)
        shallow = events.message(assistant_id)
        after_shallow = events.message(assistant_id)
        lab.send(assistant_id, 2000)
        after_deep = events.message(assistant_id)  # the deep one never comes
        lab.send(assistant_id, 3)
        later = events.message(assistant_id)
    finally:
        events.close()

    assert shallow["depth"] == 500, shallow["depth"]
    assert nesting(shallow["nested"]) == 500
    assert after_shallow == {"after": 500}
    assert after_deep == {"after": 2000}
    assert later == {"depth": 3, "nested": [[[]]]}
    logged = wait_for_new_log(
        lab.daemon,
        mark,
        lambda line: line.get("pid") == pid and line.get("error") == "nested too deeply to be read",
    )
    assert logged["level"] == "warning", logged
    lab.check_serving()


FLOOD = """\
// Floods stdout with numbered lines of 1 KB, then one line far over the daemon's line limit.
const total = %d;
const pad = 'x'.repeat(1000);
let written = 0;
let lines = 0;
function pump() {
  while (written < total) {
    lines += 1;
    const line = `${lines} ${pad}\\n`;
    written += line.length;
    if (!process.stdout.write(line)) { process.stdout.once('drain', pump); return; }
  }
  process.stdout.write('long ' + 'y'.repeat(1024 * 1024) + '\\n');
  process.stdout.write('last line\\n', () => process.send({ flooded: written, lines }));
}
process.on('message', () => {});
setImmediate(pump);
"""
FLOOD_BYTES = 24 * 1024 * 1024


def test_a_worker_flooding_stdout_does_not_stop_the_daemon_answering() -> None:
    context: Context = zmq.Context()
    try:
        with short_tmp() as base:
            root = base / "assistants"
            root.mkdir()
            with (
                running_daemon(root, args=("--config", str(write_config(base)))) as daemon,
                Client(runtime_dir=daemon.runtime_dir, timeout=REPLY_TIMEOUT) as client,
            ):
                lab = Lab(daemon, context, client)
                assistant_id = lab.add(FLOOD % FLOOD_BYTES)
                events = lab.subscribe("worker.message")
                try:
                    lab.start(assistant_id)
                    # Reads while the flood goes on, each with a reply deadline, until the
                    # worker says it is done. (Between reads, wait a little for that: a
                    # busy loop here would starve the thread that reads the daemon's log,
                    # and the daemon, whose log pipe then fills, with it.)
                    answered = 0
                    deadline = time.monotonic() + 45
                    while not events.socket.poll(20, zmq.POLLIN):
                        assert time.monotonic() < deadline, "the flood did not end"
                        lab.check_serving()
                        answered += 1
                    flooded = events.message(assistant_id)
                finally:
                    events.close()
                last = daemon.wait_for_log(is_output(assistant_id, "stdout", "last line"), 30)
                long_line = next(
                    line
                    for line in daemon.logs
                    if line.get("assistant_id") == assistant_id
                    and str(line.get("line", "")).startswith("long ")
                )
                lines_logged = sum(
                    1
                    for line in daemon.logs
                    if line.get("event") == "worker output"
                    and line.get("assistant_id") == assistant_id
                )
                lab.stop(assistant_id)
    finally:
        context.destroy(linger=0)

    assert flooded["flooded"] >= FLOOD_BYTES, flooded
    assert answered >= 1
    assert last["stream"] == "stdout"
    assert long_line["line"].endswith(f"[cut: {len('long ') + 1024 * 1024} bytes]"), long_line[
        "line"
    ][-40:]
    assert len(long_line["line"]) < 17 * 1024
    # Every line reached the log: the numbered ones, the long one and the last.
    assert lines_logged == flooded["lines"] + 2, (lines_logged, flooded["lines"])


# ============================================================================================
# Bad input from clients
# ============================================================================================


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({"method": ""}, "method", "string_below_min_length"),
        ({"method": "m" * (METHOD_NAME_MAX_CHARS + 1)}, "method", "string_above_max_length"),
        ({"method": 7}, "method", "invalid_type"),
        ({"method": None}, "method", "invalid_type"),
        ({"args": "not a list"}, "args", "invalid_type"),
        ({"args": {"a": 1}}, "args", "invalid_type"),
        ({"args": None}, "args", "invalid_type"),
        ({"timeout_ms": 0}, "timeout_ms", "integer_below_min_value"),
        ({"timeout_ms": -5}, "timeout_ms", "integer_below_min_value"),
        ({"timeout_ms": INVOKE_TIMEOUT_MAX_MS + 1}, "timeout_ms", "integer_above_max_value"),
        ({"timeout_ms": "100"}, "timeout_ms", "invalid_type"),
        ({"timeout_ms": 1.5}, "timeout_ms", "invalid_type"),
        ({"timeout_ms": True}, "timeout_ms", "invalid_type"),
        ({"timeoutMs": 100}, "timeoutMs", "unknown_parameter"),
        ({"message": "hi"}, "message", "unknown_parameter"),
        ({"assistant_id": None}, "assistant_id", "invalid_type"),
        ({"assistant_id": "../jan"}, "assistant_id", "invalid_id"),
    ],
)
def test_bad_invoke_params_are_a_400_naming_the_param(
    lab: Lab, params: dict[str, Any], param: str, code: str
) -> None:
    assistant_id = lab.run(THROWING)
    mark = log_mark(lab.daemon)

    error = lab.refused(
        "invokeAssistant", {"assistant_id": assistant_id, "method": "fine", **params}
    )

    assert (error.status, error.type) == (400, "invalid_request_error"), error
    assert (error.param, error.code) == (param, code), error
    assert lab.invoke(assistant_id, "fine", timeout_ms=INVOKE_TIMEOUT_MAX_MS) == "fine"
    assert not [line for line in lab.daemon.logs[mark:] if line.get("level") == "error"]


def test_a_missing_method_or_message_is_a_400_naming_it(lab: Lab) -> None:
    assistant_id = lab.run(ECHO_FORK)

    no_method = lab.refused("invokeAssistant", {"assistant_id": assistant_id})
    no_message = lab.refused("sendToAssistant", {"assistant_id": assistant_id})
    no_id = lab.refused("sendToAssistant", {"message": "hi"})
    extra = lab.refused(
        "sendToAssistant", {"assistant_id": assistant_id, "message": "hi", "args": []}
    )

    for error, param in [(no_method, "method"), (no_message, "message"), (no_id, "assistant_id")]:
        assert (error.status, error.code, error.param) == (
            400,
            "missing_required_parameter",
            param,
        ), error
    assert (extra.status, extra.code, extra.param) == (400, "unknown_parameter", "args"), extra

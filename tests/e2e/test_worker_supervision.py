"""Workers end to end (issue "Workers"): a real daemon process starts, watches, restarts and
stops real ``node`` workers, and the tests look at what a client sees (replies, the event
stream, ``.running.json``) and at what is left in ``/proc``.

Most tests share one daemon (``served``) with small ``[workers]`` timeouts, each on assistants
of its own; the tests that kill or stop a daemon start their own. Every wait has a deadline: an
event on a SUB socket, a log line, a file, or a pid gone from ``/proc`` (polled: the kernel
has no event for that). ``npm`` runs with ``offline`` set, so the install tests use ``file:``
dependencies and never the network.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.e2e.helpers import (
    Event,
    EventStream,
    exchange,
    is_move,
    reply_of,
    request_body,
    short_tmp,
    subject,
)
from tests.e2e.workers import (
    all_processes,
    group_members,
    js,
    process_info,
    wait_for,
    wait_group_size,
    wait_pid_dead,
    wait_pid_gone,
    write_assistant,
    write_code,
    write_config,
    zombie_children,
)
from tests.utils import STOP_TIMEOUT, DaemonProcess, running_daemon

EVENT_TIMEOUT = 20.0
REPLY_TIMEOUT = 20.0
INSTALL_TIMEOUT = 40.0
Context = zmq.Context[zmq.Socket[bytes]]
Reply = dict[str, Any]

# ============================================================================================
# Worker code, one kind of worker each
# ============================================================================================

FORK = """
    // child_process.fork() style: it answers what it is sent, and has nothing else to do.
    process.on('message', (message) => process.send({ echo: message }));
"""

UTILITY = """
    // Electron utilityProcess style.
    process.parentPort.on('message', (event) => {
      process.parentPort.postMessage({ echo: event.data });
    });
"""

MODULE_CJS = """
    exports.ping = () => 'pong';
    exports.add = async (a, b) => a + b;
"""

MODULE_ESM = """
    export function ping() { return 'pong'; }
    export async function add(a, b) { return a + b; }
"""

FINISHES = """
    // Ends by itself, with code 0, when told to.
    process.on('message', (message) => {
      if (message === 'finish') process.exit(0);
    });
"""

BROKEN = """
    console.error('about to fail');
    throw new Error('broken on purpose');
"""

IGNORES_SIGTERM = """
    // Outlives the channel (a timer) and SIGTERM: only SIGKILL ends it.
    process.on('SIGTERM', () => {});
    setInterval(() => {}, 1000);
"""

OUTLIVES_DISCONNECT = """
    // Outlives the channel (a timer), but SIGTERM ends it as it ends any node program.
    setInterval(() => {}, 1000);
"""

SPAWNS_GRANDCHILDREN = """
    // sh -> node and sleep, as `npm start` makes them, and a node that ignores SIGTERM; then,
    // when told, the worker crashes and leaves them behind.
    const { spawn } = require('child_process');
    spawn('sh', ['-c', 'node -e "setInterval(() => {}, 1000)" & sleep 1000'], { stdio: 'ignore' });
    spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"],
          { stdio: 'ignore' });
    process.on('message', (message) => {
      if (message === 'crash') process.exit(3);
    });
"""
GRANDCHILDREN = 4
"""Live processes of a SPAWNS_GRANDCHILDREN worker's group at least: the worker, the two
nodes and sleep (sh may be one more, or may have exec'd sleep)."""


def crashes_while(flag: Path) -> str:
    """Fork-style code that says it is up and then exits 1 at once, while ``flag`` exists
    (so a test can stop the crashing), and otherwise runs."""
    return f"""
        const fs = require('fs');
        process.on('message', () => {{}});
        if (fs.existsSync({js(flag)})) {{
          // Its own "ready" first: a worker that is up, then crashes.
          process.send({{ type: 'ready' }}, () => process.exit(1));
        }}
    """


def disposes_into(mark: Path) -> str:
    """Module-style code whose dispose() writes ``mark``."""
    return f"""
        const fs = require('fs');
        exports.ping = () => 'pong';
        exports.dispose = async () => {{
          fs.writeFileSync({js(mark)}, 'disposed by ' + process.pid);
        }};
    """


def starts_when(flag: Path) -> str:
    """ES module code that is not up (its top-level await has not ended) until ``flag``
    exists."""
    return f"""
        import fs from 'node:fs';
        await new Promise((resolve) => {{
          const look = setInterval(() => {{
            if (fs.existsSync({js(flag)})) {{ clearInterval(look); resolve(); }}
          }}, 10);
        }});
        export function ping() {{ return 'pong'; }}
    """


# ============================================================================================
# The daemon, its commands and its events
# ============================================================================================


def topics(events: list[Event]) -> list[str]:
    return [event["topic"] for event in events]


@dataclass
class Served:
    """A daemon under test with a zmq context to talk to it."""

    daemon: DaemonProcess
    context: Context

    @property
    def root(self) -> Path:
        return self.daemon.root

    @property
    def pid(self) -> int:
        return self.daemon.process.pid

    def reply(self, name: str, /, *, timeout: float = REPLY_TIMEOUT, **params: Any) -> Reply:
        try:
            frames = exchange(
                self.context,
                self.daemon.command,
                [b"", request_body(1, name, params)],
                timeout=timeout,
            )
        except AssertionError as exc:
            # What the daemon was doing meanwhile is the first thing one needs to know.
            recent = "\n".join(json.dumps(line) for line in self.daemon.logs[-40:])
            raise AssertionError(f"{exc}; the daemon's last log lines:\n{recent}") from None
        return reply_of(frames)

    def call(self, name: str, /, *, timeout: float = REPLY_TIMEOUT, **params: Any) -> Any:
        reply = self.reply(name, timeout=timeout, **params)
        assert "result" in reply, reply
        return reply["result"]

    def error(self, name: str, /, *, timeout: float = REPLY_TIMEOUT, **params: Any) -> Reply:
        reply = self.reply(name, timeout=timeout, **params)
        assert "error" in reply, reply
        error: Reply = reply["error"]
        return error

    def start(self, assistant_id: str, timeout: float = REPLY_TIMEOUT) -> Reply:
        started: Reply = self.call("startAssistant", timeout=timeout, assistant_id=assistant_id)
        return started

    def stop(self, assistant_id: str) -> Reply:
        stopped: Reply = self.call("stopAssistant", assistant_id=assistant_id)
        return stopped

    def get(self, assistant_id: str) -> Reply:
        got: Reply = self.call("getAssistant", assistant_id=assistant_id)
        return got

    def events(self) -> EventStream:
        return EventStream(
            self.context,
            f"ipc://{self.daemon.runtime_dir}/events.sock",
            timeout=EVENT_TIMEOUT,
        )

    def running_file(self) -> list[str]:
        """The ids ``.running.json`` holds now (none when there is no such file)."""
        path = self.root / ".running.json"
        if not path.exists():
            return []
        running: list[str] = json.loads(path.read_text())["running"]
        return running

    def wait_running_file(self, condition: Callable[[list[str]], bool], what: str) -> None:
        # The file is written right after the event that goes with it, in a thread.
        wait_for(lambda: condition(self.running_file()), f".running.json {what}")


# ============================================================================================
# Fixtures
# ============================================================================================


def npm_env(base: Path) -> dict[str, str]:
    """The daemon's environment for npm (passed on to ``npm install``): never the network,
    never the user's own cache."""
    return {
        "npm_config_offline": "true",
        "npm_config_cache": str(base / "npm-cache"),
        "npm_config_update_notifier": "false",
    }


@contextmanager
def worker_daemon(base: Path, root: Path, **workers: Any) -> Iterator[DaemonProcess]:
    """A daemon on ``root`` with the tests' small worker timeouts (and ``workers`` besides)."""
    config = write_config(base / "assistantd.toml", **workers)
    with running_daemon(root, args=("--config", str(config)), env=npm_env(base)) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def context() -> Iterator[Context]:
    context: Context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture(scope="module")
def served(context: Context) -> Iterator[Served]:
    with short_tmp() as base:
        root = base / "assistants"
        root.mkdir()
        with worker_daemon(base, root) as daemon:
            yield Served(daemon, context)


@pytest.fixture
def events(served: Served) -> Iterator[EventStream]:
    """A subscription to every event of the shared daemon, made before the test acts."""
    subscriber = served.events()
    yield subscriber
    subscriber.close()


_numbers = itertools.count(1)


def new_assistant(served: Served, label: str, code: str | None, **more: Any) -> str:
    """A new assistant of the shared daemon with ``code`` (see :func:`write_code`); its id."""
    assistant_id = f"{label}-{next(_numbers)}"
    served.call("createAssistant", id=assistant_id, name=label)
    write_code(served.root / assistant_id, code, **more)
    return assistant_id


def own_group(pid: int) -> bool:
    info = process_info(pid)
    return info is not None and info.pgid == pid


# ============================================================================================
# 1. Start, stop and restart each kind of worker
# ============================================================================================


@pytest.mark.parametrize(
    ("code", "entry", "style", "methods"),
    [
        pytest.param(FORK, "src/process.js", "process", [], id="fork"),
        pytest.param(UTILITY, "src/process.js", "process", [], id="utility-process"),
        pytest.param(MODULE_CJS, "src/process.js", "module", ["add", "ping"], id="module-cjs"),
        pytest.param(MODULE_ESM, "src/process.mjs", "module", ["add", "ping"], id="module-esm"),
        pytest.param(None, "", "default", ["getDefinition", "ping"], id="default-worker"),
    ],
)
def test_each_kind_of_worker_starts_restarts_and_stops(
    served: Served,
    events: EventStream,
    code: str | None,
    entry: str,
    style: str,
    methods: list[str],
) -> None:
    assistant_id = new_assistant(served, style, code, entry=entry)

    started = served.start(assistant_id)
    runtime = started["runtime"]
    assert started["state"] == "running"
    assert runtime["status"] == "up"
    assert runtime["style"] == style
    assert sorted(runtime["methods"]) == methods
    assert runtime["restarts"] == 0
    assert runtime["error"] is None
    assert runtime["up_since"] is not None
    pid = runtime["pid"]
    assert own_group(pid), "a worker runs in a process group of its own"
    assert assistant_id in served.running_file()
    seen = events.move(assistant_id, "ready", "running")
    assert [event for event in seen if event["topic"] == "assistant.state"] == [seen[-1]]
    assert seen[-1]["cause"] == "request"
    assert seen[-1]["error"] is None
    assert seen[-1]["assistant"]["runtime"]["pid"] == pid

    # It is a real worker: it answers.
    if style == "process":
        served.call("sendToAssistant", assistant_id=assistant_id, message={"n": 1})
        echoed = events.next(
            lambda event: (
                event["topic"] == "worker.message" and event["assistant_id"] == assistant_id
            ),
            what="the echo",
        )
        assert echoed["message"] == {"echo": {"n": 1}}
        assert echoed["pid"] == pid
    else:
        answer = served.call("invokeAssistant", assistant_id=assistant_id, method="ping")
        assert answer == {"result": "pong"}

    # Starting it again changes nothing.
    again = served.start(assistant_id)
    assert again["state"] == "running"
    assert again["runtime"]["pid"] == pid

    restarted = served.call("restartAssistant", assistant_id=assistant_id)
    new_pid = restarted["runtime"]["pid"]
    assert restarted["state"] == "running"
    assert restarted["runtime"]["status"] == "up"
    assert new_pid != pid
    assert process_info(pid) is None, "the old worker is gone (and reaped) before the reply"
    down = events.move(assistant_id, "running", "ready")
    # The second start made no event: the first events after it are the restart's stop.
    assert topics(down) == ["assistant.updated", "worker.exited", "assistant.state"], down
    assert down[0]["assistant"]["runtime"]["status"] == "stopping"
    up = events.move(assistant_id, "ready", "running")
    assert up[-1]["assistant"]["runtime"]["pid"] == new_pid

    stopped = served.stop(assistant_id)
    runtime = stopped["runtime"]
    assert stopped["state"] == "ready"
    assert runtime["status"] == "stopped"
    assert runtime["pid"] is None
    assert runtime["last_exit"]["pid"] == new_pid
    assert runtime["last_exit"]["stopped_by"] == "disconnect"
    assert process_info(new_pid) is None
    assert assistant_id not in served.running_file()
    down = events.move(assistant_id, "running", "ready")
    assert down[-1]["cause"] == "request"
    assert down[-1]["error"] is None
    exited = [event for event in down if event["topic"] == "worker.exited"]
    assert [(event["pid"], event["restart"]) for event in exited] == [(new_pid, False)]

    # Stopping it again changes nothing, and publishes nothing: the next event of this
    # assistant is that of a change made afterwards.
    assert served.stop(assistant_id) == stopped
    served.call("modifyAssistant", assistant_id=assistant_id, name="Renamed")
    after = events.until(lambda event: True, what="the rename", about=assistant_id)
    assert after[0]["topic"] == "assistant.updated", after
    assert after[0]["assistant"]["name"] == "Renamed"


# ============================================================================================
# 2. Restarts: a crash loop, a worker that finishes, a worker that never comes up
# ============================================================================================


def test_a_crash_loop_is_restarted_with_backoff_then_given_up_until_started_again(
    served: Served, events: EventStream, tmp_path: Path
) -> None:
    flag = tmp_path / "crash"
    flag.touch()
    assistant_id = new_assistant(served, "crashes", crashes_while(flag))

    assert "result" in served.reply("startAssistant", assistant_id=assistant_id)
    seen = events.until(
        lambda event: is_move(event, "running", "ready"),
        what="the worker given up",
        about=assistant_id,
    )
    moves = [event for event in seen if event["topic"] == "assistant.state"]
    assert [(event["previous"], event["assistant"]["state"]) for event in moves] == [
        ("ready", "running"),
        ("running", "ready"),
    ]
    exits = [event for event in seen if event["topic"] == "worker.exited"]
    # restart-limit = 2: two restarts, and the third exit gives it up.
    assert [event["restart"] for event in exits] == [True, True, False]
    assert all(event["exit"]["code"] == 1 for event in exits), exits
    assert all(event["exit"]["stopped_by"] is None for event in exits), exits
    assert len({event["pid"] for event in exits}) == 3
    restarting = [
        event["assistant"]["runtime"]
        for event in seen
        if event["topic"] == "assistant.updated"
        and event["assistant"]["runtime"]["status"] == "restarting"
    ]
    assert [runtime["restarts"] for runtime in restarting] == [1, 2]
    assert all(runtime["retry_at"] is not None for runtime in restarting)

    gave_up = moves[-1]
    assert gave_up["cause"] == "daemon"
    assert gave_up["error"]["code"] == "restart_limit"
    runtime = served.get(assistant_id)["runtime"]
    assert runtime["status"] == "stopped"
    assert runtime["error"]["code"] == "restart_limit"
    assert runtime["restarts"] == 2
    assert runtime["last_exit"]["code"] == 1
    served.wait_running_file(lambda ids: assistant_id not in ids, "without the given-up worker")
    for event in exits:
        wait_pid_gone(event["pid"])

    # A start command tries again, from a fresh count.
    flag.unlink()
    started = served.start(assistant_id)
    assert started["state"] == "running"
    assert started["runtime"]["status"] == "up"
    assert started["runtime"]["restarts"] == 0
    assert started["runtime"]["error"] is None
    assert served.stop(assistant_id)["state"] == "ready"


def test_a_worker_that_exits_0_on_its_own_has_finished_and_is_not_restarted(
    served: Served, events: EventStream
) -> None:
    assistant_id = new_assistant(served, "finishes", FINISHES)
    pid = served.start(assistant_id)["runtime"]["pid"]
    events.move(assistant_id, "ready", "running")

    served.call("sendToAssistant", assistant_id=assistant_id, message="finish")
    seen = events.move(assistant_id, "running", "ready")
    exits = [event for event in seen if event["topic"] == "worker.exited"]
    assert len(exits) == 1, seen
    assert exits[0]["pid"] == pid
    assert exits[0]["restart"] is False
    assert exits[0]["exit"]["code"] == 0
    assert seen[-1]["cause"] == "daemon"
    assert seen[-1]["error"] is None
    runtime = served.get(assistant_id)["runtime"]
    assert runtime["status"] == "stopped"
    assert runtime["restarts"] == 0
    assert runtime["error"] is None
    assert runtime["last_exit"]["code"] == 0
    assert runtime["last_exit"]["stopped_by"] is None
    served.wait_running_file(lambda ids: assistant_id not in ids, "without the finished worker")
    wait_pid_gone(pid)


def test_a_worker_that_fails_before_it_is_up_fails_the_start(
    served: Served, events: EventStream
) -> None:
    assistant_id = new_assistant(served, "broken", BROKEN)

    error = served.error("startAssistant", assistant_id=assistant_id)
    assert error["status"] == 502
    assert error["code"] == "worker_failed"
    assert error["details"]["exit"]["code"] == 1
    stderr = error["details"]["stderr"]
    assert "about to fail" in stderr
    assert any("broken on purpose" in line for line in stderr), stderr
    assistant = served.get(assistant_id)
    assert assistant["state"] == "ready"
    assert assistant["runtime"]["status"] == "stopped"
    assert assistant["runtime"]["error"]["code"] == "worker_failed"
    assert assistant_id not in served.running_file()
    # Its output was on the stream; its state never moved.
    seen = events.until(
        lambda event: (
            event["topic"] == "assistant.updated"
            and event["assistant"]["runtime"]["status"] == "stopped"
        ),
        what="the failed start",
        about=assistant_id,
    )
    assert "assistant.state" not in topics(seen)
    events.next(
        lambda event: (
            event["topic"] == "worker.log"
            and event["assistant_id"] == assistant_id
            and (event["stream"], event["line"]) == ("stderr", "about to fail")
        ),
        what="the worker's stderr",
        seen=seen,
    )


# ============================================================================================
# 3. How a stop ends
# ============================================================================================


@pytest.mark.parametrize(
    ("make_code", "stopped_by", "signal_name"),
    [
        pytest.param(lambda mark: FORK, "disconnect", None, id="fork-ends-on-disconnect"),
        pytest.param(disposes_into, "disconnect", None, id="module-dispose"),
        pytest.param(lambda mark: OUTLIVES_DISCONNECT, "SIGTERM", "SIGTERM", id="needs-sigterm"),
        pytest.param(lambda mark: IGNORES_SIGTERM, "SIGKILL", "SIGKILL", id="ignores-sigterm"),
    ],
)
def test_a_stop_escalates_until_the_worker_is_gone_and_says_which_step_ended_it(
    served: Served,
    events: EventStream,
    tmp_path: Path,
    make_code: Callable[[Path], str],
    stopped_by: str,
    signal_name: str | None,
) -> None:
    mark = tmp_path / "disposed"
    assistant_id = new_assistant(served, "stops", make_code(mark))
    pid = served.start(assistant_id)["runtime"]["pid"]

    stopped = served.stop(assistant_id)
    last_exit = stopped["runtime"]["last_exit"]
    assert last_exit["pid"] == pid
    assert last_exit["stopped_by"] == stopped_by
    assert last_exit["signal"] == signal_name
    if signal_name is None:
        assert last_exit["code"] == 0
    assert process_info(pid) is None
    assert group_members(pid) == []
    exited = events.next(
        lambda event: event["topic"] == "worker.exited" and event["assistant_id"] == assistant_id,
        what="worker.exited",
    )
    assert exited["restart"] is False
    assert exited["exit"]["stopped_by"] == stopped_by
    if make_code is disposes_into:
        assert mark.read_text() == f"disposed by {pid}"


# ============================================================================================
# 4. What a worker started goes with it
# ============================================================================================


def test_a_stop_ends_the_workers_grandchildren_and_leaves_no_zombie(
    served: Served, events: EventStream
) -> None:
    assistant_id = new_assistant(served, "family", SPAWNS_GRANDCHILDREN)
    pid = served.start(assistant_id)["runtime"]["pid"]
    family = wait_group_size(pid, GRANDCHILDREN)

    stopped = served.stop(assistant_id)
    # One of them ignores SIGTERM.
    assert stopped["runtime"]["last_exit"]["stopped_by"] == "SIGKILL"
    assert group_members(pid) == [], "nothing of the group outlives the stop"
    assert all(process_info(member.pid) is None for member in family), family
    assert zombie_children(served.pid) == []


def test_a_worker_that_crashes_leaves_nothing_behind_when_it_is_restarted(
    served: Served, events: EventStream
) -> None:
    assistant_id = new_assistant(served, "crashing-family", SPAWNS_GRANDCHILDREN)
    pid = served.start(assistant_id)["runtime"]["pid"]
    family = wait_group_size(pid, GRANDCHILDREN)

    served.call("sendToAssistant", assistant_id=assistant_id, message="crash")
    exited = events.next(
        lambda event: event["topic"] == "worker.exited" and event["assistant_id"] == assistant_id,
        what="the crash",
    )
    assert exited["exit"]["code"] == 3
    assert exited["restart"] is True
    # Said only once what the worker left behind is gone.
    assert group_members(pid) == []
    assert all(process_info(member.pid) is None for member in family), family
    assert zombie_children(served.pid) == []

    up = events.next(
        lambda event: (
            subject(event) == assistant_id
            and event["topic"] == "assistant.updated"
            and event["assistant"]["runtime"]["status"] == "up"
        ),
        what="the restarted worker",
    )
    new_pid = up["assistant"]["runtime"]["pid"]
    assert new_pid != pid
    assert up["assistant"]["runtime"]["restarts"] == 1
    wait_group_size(new_pid, GRANDCHILDREN)
    served.stop(assistant_id)
    assert group_members(new_pid) == []
    assert zombie_children(served.pid) == []


# ============================================================================================
# 5. The daemon killed, or stopped
# ============================================================================================


def start_all(served: Served, names: tuple[str, ...]) -> dict[str, int]:
    """Start the assistants ``names``; their workers' pids (once each worker's group is
    complete)."""
    pids = {name: served.start(name)["runtime"]["pid"] for name in names}
    if "family" in pids:
        wait_group_size(pids["family"], GRANDCHILDREN)
    return pids


def assert_running_again(served: Served, old: dict[str, int]) -> None:
    """The assistants that ran before the daemon's restart run again, in new workers."""
    for name, pid in old.items():
        assistant = running_soon(served, name)
        assert assistant["runtime"]["status"] == "up"
        assert assistant["runtime"]["pid"] not in (None, pid)


def running_soon(served: Served, assistant_id: str) -> Reply:
    """The assistant once the daemon has started it by itself (as it does at its start)."""
    events = served.events()
    try:
        # Subscribed first, so a move that the get does not show yet is on the stream.
        assistant = served.get(assistant_id)
        if assistant["state"] != "running":
            moved = events.next(
                lambda event: subject(event) == assistant_id and is_move(event, "ready", "running"),
                what=f"{assistant_id} running",
            )
            assistant = moved["assistant"]
        return assistant
    finally:
        events.close()


def running_file(root: Path) -> list[str]:
    running: list[str] = json.loads((root / ".running.json").read_text())["running"]
    return sorted(running)


@contextmanager
def root_with(*assistants: tuple[str, str | None]) -> Iterator[tuple[Path, Path]]:
    """A short base folder and its root holding ``assistants`` (id, code); both, and no
    process of the assistants' workers' groups left afterwards, whatever happened."""
    with short_tmp() as base:
        root = base / "assistants"
        root.mkdir()
        for assistant_id, code in assistants:
            write_assistant(root, assistant_id, code)
        try:
            yield base, root
        finally:
            kill_leftovers(root)


def kill_leftovers(root: Path) -> None:
    """SIGKILL whatever still runs in a folder of ``root`` (what a failed test left behind)."""
    for info in all_processes():
        try:
            cwd = Path(os.readlink(f"/proc/{info.pid}/cwd"))
        except OSError:
            continue
        if cwd.is_relative_to(root) and not info.zombie:
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)


def test_a_killed_daemon_takes_its_workers_along_and_its_successor_starts_them_again(
    context: Context,
) -> None:
    with root_with(("plain", FORK), ("module", MODULE_CJS)) as (base, root):
        with worker_daemon(base, root) as daemon:
            pids = start_all(Served(daemon, context), ("plain", "module"))
            daemon.process.kill()
            daemon.process.wait(STOP_TIMEOUT)
        for pid in pids.values():
            # Reaped or not is up to whoever adopted it: ended is what counts.
            wait_pid_dead(pid)
        assert running_file(root) == ["module", "plain"]
        with worker_daemon(base, root) as daemon:
            assert_running_again(Served(daemon, context), pids)


def test_what_a_killed_daemons_workers_started_is_stopped_by_the_next_daemon_first(
    context: Context,
) -> None:
    with root_with(("family", SPAWNS_GRANDCHILDREN)) as (base, root):
        with worker_daemon(base, root) as daemon:
            pid = start_all(Served(daemon, context), ("family",))["family"]
            daemon.process.kill()
            daemon.process.wait(STOP_TIMEOUT)
        wait_pid_dead(pid)
        # The kernel ends the worker alone; what it started lives on, adopted by another
        # process, until a daemon on the same root starts.
        left = [member for member in group_members(pid) if not member.zombie]
        with worker_daemon(base, root) as daemon:
            served = Served(daemon, context)
            if left:
                swept = daemon.wait_for_log(
                    lambda line: line.get("event", "").startswith("stopping processes left")
                )
                assert swept["pgid"] == pid
            again = running_soon(served, "family")
            # Swept before any worker was started again.
            assert [member for member in group_members(pid) if not member.zombie] == []
            assert again["runtime"]["pid"] != pid
            wait_group_size(again["runtime"]["pid"], GRANDCHILDREN)


def test_a_stopped_daemon_stops_every_worker_first_and_its_successor_starts_them_again(
    context: Context,
) -> None:
    with root_with(("plain", FORK), ("family", SPAWNS_GRANDCHILDREN)) as (base, root):
        with worker_daemon(base, root) as daemon:
            pids = start_all(Served(daemon, context), ("plain", "family"))
            assert daemon.stop() == 0
            # The daemon has exited: its workers, and all they started, had ended before.
            for pid in pids.values():
                assert process_info(pid) is None
                assert group_members(pid) == []
            stopped = [line for line in daemon.logs if line.get("event") == "worker stopped"]
            assert sorted(line["assistant_id"] for line in stopped) == ["family", "plain"]
        assert running_file(root) == ["family", "plain"]
        with worker_daemon(base, root) as daemon:
            assert_running_again(Served(daemon, context), pids)


# ============================================================================================
# 6. An assistant deleted while it runs
# ============================================================================================


def test_deleting_a_running_assistant_stops_its_worker_first(
    served: Served, events: EventStream
) -> None:
    assistant_id = new_assistant(served, "deleted", FORK)
    pid = served.start(assistant_id)["runtime"]["pid"]

    deleted = served.call("deleteAssistant", assistant_id=assistant_id)
    assert deleted["deleted"] is True
    assert process_info(pid) is None
    seen = events.until(
        lambda event: event["topic"] == "assistant.deleted", what="the delete", about=assistant_id
    )
    moves = [
        (event["previous"], event["assistant"]["state"])
        for event in seen
        if event["topic"] == "assistant.state"
    ]
    assert moves == [("ready", "running"), ("running", "ready")]
    assert topics(seen).index("worker.exited") < len(seen) - 1
    assert seen[-1]["cause"] == "request"
    served.wait_running_file(lambda ids: assistant_id not in ids, "without the deleted one")


def test_removing_a_running_assistants_folder_by_hand_stops_its_worker(
    served: Served, events: EventStream
) -> None:
    assistant_id = new_assistant(served, "removed", SPAWNS_GRANDCHILDREN)
    pid = served.start(assistant_id)["runtime"]["pid"]
    wait_group_size(pid, GRANDCHILDREN)
    assert assistant_id in served.running_file()

    shutil.rmtree(served.root / assistant_id)
    removed = events.next(
        lambda event: (
            event["topic"] == "assistant.deleted" and event["assistant_id"] == assistant_id
        ),
        what="the removal",
    )
    assert removed["cause"] == "file"
    exited = events.next(
        lambda event: event["topic"] == "worker.exited" and event["assistant_id"] == assistant_id,
        what="the worker's end",
    )
    assert exited["restart"] is False
    assert exited["pid"] == pid
    assert group_members(pid) == []
    served.wait_running_file(lambda ids: assistant_id not in ids, "without the removed one")
    assert served.error("getAssistant", assistant_id=assistant_id)["status"] == 404


# ============================================================================================
# 7. npm install before the first start
# ============================================================================================

GREET_PACKAGE = {"name": "greet", "version": "1.0.0", "main": "index.js"}
GREET_CODE = "module.exports = (name) => `hello ${name}`;\n"
USES_GREET = """
    const greet = require('greet');
    exports.hello = (name) => greet(name);
"""


def test_dependencies_are_installed_before_the_first_start(
    served: Served, events: EventStream
) -> None:
    assistant_id = new_assistant(
        served,
        "installs",
        USES_GREET,
        package={
            "name": "uses-greet",
            "version": "1.0.0",
            "dependencies": {"greet": "file:./vendor/greet"},
        },
        files={
            "vendor/greet/package.json": json.dumps(GREET_PACKAGE),
            "vendor/greet/index.js": GREET_CODE,
        },
    )

    started = served.start(assistant_id, timeout=INSTALL_TIMEOUT)
    assert started["state"] == "running"
    assert (served.root / assistant_id / "node_modules" / "greet" / "index.js").exists()
    seen = events.move(assistant_id, "ready", "running")
    installed = [
        event for event in seen if event["topic"] == "worker.log" and event["stream"] == "install"
    ]
    assert installed, seen
    answer = served.call("invokeAssistant", assistant_id=assistant_id, method="hello", args=["ada"])
    assert answer == {"result": "hello ada"}
    served.stop(assistant_id)


def test_a_dependency_that_cannot_be_installed_fails_the_start(
    served: Served, events: EventStream
) -> None:
    assistant_id = new_assistant(
        served,
        "uninstallable",
        USES_GREET,
        package={
            "name": "uses-missing",
            "version": "1.0.0",
            "dependencies": {"greet": "file:./missing.tgz"},
        },
    )

    error = served.error("startAssistant", timeout=INSTALL_TIMEOUT, assistant_id=assistant_id)
    assert error["status"] == 502
    assert error["code"] == "install_failed"
    assistant = served.get(assistant_id)
    assert assistant["state"] == "ready"
    assert assistant["runtime"]["error"]["code"] == "install_failed"
    assert assistant_id not in served.running_file()
    assert not (served.root / assistant_id / "node_modules" / "greet").exists()


# ============================================================================================
# 8. Bad input
# ============================================================================================

START_STOP = ("startAssistant", "stopAssistant", "restartAssistant")


@pytest.mark.parametrize("method", START_STOP)
def test_an_unknown_assistant_is_not_found(served: Served, method: str) -> None:
    error = served.error(method, assistant_id="nobody-here")
    assert (error["status"], error["code"], error["param"]) == (404, "not_found", "assistant_id")


@pytest.mark.parametrize("method", START_STOP)
@pytest.mark.parametrize("bad_id", ["../jan", ".running.json", "a/b", " jan", "x" * 129, ""])
def test_an_id_that_cannot_be_a_folder_is_refused(served: Served, method: str, bad_id: str) -> None:
    error = served.error(method, assistant_id=bad_id)
    assert (error["status"], error["code"], error["param"]) == (400, "invalid_id", "assistant_id")


@pytest.mark.parametrize("method", START_STOP)
@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({}, "missing_required_parameter", "assistant_id"),
        ({"assistant_id": "jan", "force": True}, "unknown_parameter", "force"),
        ({"assistant_id": 7}, "invalid_type", "assistant_id"),
        ({"assistant_id": None}, "invalid_type", "assistant_id"),
    ],
)
def test_bad_params_are_refused(
    served: Served, method: str, params: dict[str, Any], code: str, param: str
) -> None:
    error = served.error(method, **params)
    assert (error["status"], error["code"], error["param"]) == (400, code, param)
    # Nothing was started on the way.
    assert served.get("jan")["state"] == "ready"


def test_invoking_or_sending_to_a_stopped_assistant_is_a_conflict(served: Served) -> None:
    error = served.error("invokeAssistant", assistant_id="jan", method="ping")
    assert (error["status"], error["code"]) == (409, "assistant_not_running")
    error = served.error("sendToAssistant", assistant_id="jan", message="hi")
    assert (error["status"], error["code"]) == (409, "assistant_not_running")


class Pipelined:
    """A DEALER socket that sends several requests before reading any reply."""

    def __init__(self, served: Served) -> None:
        self.socket = served.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(served.daemon.command)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self.socket.close(linger=0)

    def send(self, method: str, **params: Any) -> int:
        request_id = next(self._ids)
        self.socket.send_multipart([b"", request_body(request_id, method, params)])
        return request_id

    def replies(self, count: int, timeout: float = REPLY_TIMEOUT) -> dict[int, Reply]:
        """The next ``count`` replies, by request id."""
        deadline = time.monotonic() + timeout
        found: dict[int, Reply] = {}
        while len(found) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not self.socket.poll(int(left * 1000), zmq.POLLIN):
                raise AssertionError(f"only {len(found)} of {count} replies within {timeout}s")
            reply = reply_of(self.socket.recv_multipart())
            found[reply["id"]] = reply
        return found


def wait_starting(events: EventStream, assistant_id: str) -> int:
    """The pid of the assistant's worker once it has been spawned (and is not up yet)."""
    event = events.next(
        lambda event: (
            subject(event) == assistant_id
            and event["topic"] == "assistant.updated"
            and event["assistant"]["runtime"]["status"] == "starting"
            and event["assistant"]["runtime"]["pid"] is not None
        ),
        what="the worker spawned",
    )
    pid: int = event["assistant"]["runtime"]["pid"]
    return pid


def test_a_start_while_starting_waits_for_the_same_worker(
    served: Served, events: EventStream, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    assistant_id = new_assistant(served, "slow", starts_when(flag), entry="src/process.mjs")
    dealer = Pipelined(served)
    try:
        first = dealer.send("startAssistant", assistant_id=assistant_id)
        pid = wait_starting(events, assistant_id)
        second = dealer.send("startAssistant", assistant_id=assistant_id)
        flag.touch()
        replies = dealer.replies(2)
    finally:
        dealer.close()
    for request_id in (first, second):
        assert replies[request_id]["result"]["state"] == "running", replies
        assert replies[request_id]["result"]["runtime"]["pid"] == pid
    served.stop(assistant_id)


def test_a_stop_while_starting_fails_the_start_and_ends_the_worker(
    served: Served, events: EventStream, tmp_path: Path
) -> None:
    flag = tmp_path / "never"
    assistant_id = new_assistant(
        served, "stopped-early", starts_when(flag), entry="src/process.mjs"
    )
    dealer = Pipelined(served)
    try:
        start = dealer.send("startAssistant", assistant_id=assistant_id)
        pid = wait_starting(events, assistant_id)
        stop = dealer.send("stopAssistant", assistant_id=assistant_id)
        replies = dealer.replies(2)
    finally:
        dealer.close()
    error = replies[start]["error"]
    assert (error["status"], error["code"]) == (409, "stopped_while_starting")
    assert replies[stop]["result"]["state"] == "ready"
    assert process_info(pid) is None
    assert served.get(assistant_id)["state"] == "ready"
    assert assistant_id not in served.running_file()


@pytest.mark.parametrize(
    ("content", "resumed"),
    [
        pytest.param(b"{not json", False, id="not-json"),
        pytest.param(b"\xff\xfe", False, id="not-utf8"),
        pytest.param(b'["keeper"]', False, id="a-list"),
        pytest.param(b'{"running": "keeper"}', False, id="running-not-a-list"),
        pytest.param(
            b'{"running": ["../keeper", ".hidden", "", 5, null, {}]}', False, id="bad-ids"
        ),
        pytest.param(b'{"running": ["../keeper", "keeper", ["keeper"]]}', True, id="some-bad-ids"),
    ],
)
def test_a_corrupted_running_file_is_reported_and_the_daemon_serves(
    context: Context, content: bytes, resumed: bool
) -> None:
    with root_with(("keeper", None)) as (base, root):
        (root / ".running.json").write_bytes(content)
        with worker_daemon(base, root) as daemon:
            warning = daemon.wait_for_log(
                lambda line: (
                    line.get("level") == "warning"
                    and "running assistants file" in str(line.get("event"))
                )
            )
            assert warning["path"] == str(root / ".running.json")
            served = Served(daemon, context)
            if resumed:  # the valid ids in it are kept
                assert running_soon(served, "keeper")["state"] == "running"
            else:
                assert served.get("keeper")["state"] == "ready"
            # And it keeps the file from the next change on.
            assert served.stop("keeper")["state"] == "ready"
            assert served.start("keeper")["state"] == "running"
            assert served.running_file() == ["keeper"]

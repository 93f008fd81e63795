"""Benchmark 7: workers — spawn to ready, a message's round trip, and invokeAssistant end to end.

Each figure has Node itself as its floor, in the same run, one after the other by turns: a Node
parent (``tests/bench/node/fork_parent.cjs``) that does with ``child_process.fork()`` what the
daemon does with its own spawn and channel, for the very same child — the same node, file, cwd,
environment and ``--require preload.cjs``, the IPC channel in JSON mode, stdin from /dev/null,
stdout and stderr as pipes that are read, a session of its own. The floor takes its times inside
the Node parent (``process.hrtime``), as this script takes the daemon's inside its own event loop.

1. Spawn to ready: the daemon's :class:`WorkerProcess` (``WorkerProcess.spawn`` with
   ``launch_for(...)`` and a started :class:`Reaper`, as the supervisor calls them, in this
   process's event loop) from the call until its ``ready`` future is done, against the Node
   parent from ``fork()`` to the first message. The child is a fork-style ``src/process.js``
   (``node/fork_echo.js``), so the first message is the preload's ``{"type": "ready"}`` on both
   sides. Target: median <= 1.15x. In process rather than through ``startAssistant``, so that
   the figure is the spawn path alone; what the command adds is printed under 3. The daemon's
   side pays for what the daemon does and Node's ``fork()`` does not: the exec through
   ``setpriv --pdeathsig`` and its ``worker up`` log line (JSON, written to /dev/null here).
2. Round trip: ``WorkerProcess.invoke`` of ``echo`` (the fork-style child answers invokes itself)
   over the daemon's NodeChannel, against the Node parent sending the same invoke over its fork
   channel and waiting for the answer with the same id. Target: median <= 1.5x. The bare
   NodeChannel (``send`` then ``receive``, no WorkerProcess) is printed beside them.
3. End to end: ``invokeAssistant`` of a module-style ``ping`` export (``node/ping_module.js``)
   from a REQ client through a real daemon, beside ``getAssistant`` of the same assistant from
   the same client in the same run, and beside the Node floor of figure 2. No target: the ratio
   invoke / get is reported. ``startAssistant`` (client to reply, a ``stopAssistant`` between
   starts) is printed beside Node forking the same module-style file.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import zmq

from assistantd.daemon.logs import configure
from assistantd.daemon.workers import NodeChannel, spawn_node
from assistantd.daemon.workers.launch import Launch, launch_for
from assistantd.daemon.workers.process import WorkerProcess
from assistantd.daemon.workers.reaper import Reaper
from assistantd.daemon.workers.settings import WorkerSettings

from .common import (
    BENCH_DIR,
    Figure,
    Reported,
    call,
    command_endpoint,
    connect,
    daemon_argv,
    detail,
    heading,
    median,
    p99,
    report,
    request_body,
    round_trips,
    run_alone,
    serving,
    temp_dir,
    zmq_context,
)
from .corpus import DEFAULT_ID, write_assistants

T = TypeVar("T")

NODE_DIR = BENCH_DIR / "node"
FORK_PARENT = NODE_DIR / "fork_parent.cjs"
FORK_ECHO = NODE_DIR / "fork_echo.js"
PING_MODULE = NODE_DIR / "ping_module.js"
ASSISTANT_ID = "bench-echo"

SPAWNS = 40
SPAWN_WARMUP = 3
ECHO_ROUNDS = 30
ECHO_PER_ROUND = 100
ECHO_WARMUP = 200
E2E_ROUNDS = 30
E2E_PER_ROUND = 100
E2E_WARMUP = 200
STARTS = 15

SPAWN_TARGET = 1.15
ECHO_TARGET = 1.5

# A message of the size an assistant's small calls carry.
PAYLOAD: dict[str, Any] = {
    "text": "Summarize the attached notes in three bullet points.",
    "options": {"max_tokens": 256, "temperature": 0.2},
    "n": 42,
}
STEP_TIMEOUT = 10.0
"""Seconds for a worker to stop, an invoke to come back, the floor to answer a command: a hang
fails the benchmark instead of stalling it."""


async def alternate(rounds: int, *measures: Callable[[], Awaitable[T]]) -> list[list[T]]:
    """:func:`.common.alternate` for coroutines: each measure once per round, by turns."""
    results: list[list[T]] = [[] for _ in measures]
    for round_number in range(rounds):
        shift = round_number % len(measures)
        for position in [*range(shift, len(measures)), *range(shift)]:
            results[position].append(await measures[position]())
    return results


def micros(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1000


def summary(samples: Sequence[float], unit: str = "us") -> str:
    return f"median {median(samples):7.1f} {unit}, p99 {p99(samples):7.1f} {unit}"


def ignore(*_: object) -> None:
    """A worker's message and log hooks, when nothing is to be done with them."""


class NodeParent:
    """The floor: ``fork_parent.cjs``, one JSON command per line on its stdin, answers on stdout."""

    def __init__(self, process: asyncio.subprocess.Process, reaper: Reaper) -> None:
        self._process = process
        self._reaper = reaper

    @classmethod
    async def start(cls, reaper: Reaper, node: str) -> NodeParent:
        # Registered with the reaper, which would otherwise reap it as an orphan of a worker.
        with reaper.spawning():
            process = await asyncio.create_subprocess_exec(
                shutil.which(node) or node,
                FORK_PARENT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 20,
            )
            reaper.manage(process.pid)
        return cls(process, reaper)

    async def ask(self, op: str, **fields: Any) -> dict[str, Any]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        await stdin.drain()
        async with asyncio.timeout(STEP_TIMEOUT * 2):
            line = await stdout.readline()
        if not line:
            raise RuntimeError(f"fork_parent.cjs ended during {op!r} (its stderr is above)")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        async with asyncio.timeout(STEP_TIMEOUT):
            await self._process.wait()
        self._reaper.release(self._process.pid)


def child_spec(launch: Launch) -> dict[str, Any]:
    """The child as ``fork_parent.cjs`` forks it: exactly what the daemon would run."""
    *exec_argv, file = launch.args
    return {"file": file, "cwd": str(launch.cwd), "env": launch.env, "exec_argv": exec_argv}


def write_worker(folder: Path, code: Path) -> Path:
    """``code`` as the ``src/process.js`` of the assistant folder ``folder``; the folder."""
    (folder / "src").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(code, folder / "src" / "process.js")
    return folder


async def start_worker(launch: Launch, reaper: Reaper, settings: WorkerSettings) -> WorkerProcess:
    worker = await WorkerProcess.spawn(
        ASSISTANT_ID, launch, node=settings.node, reaper=reaper, on_message=ignore, on_log=ignore
    )
    async with asyncio.timeout(STEP_TIMEOUT):
        await worker.ready
    return worker


async def end_worker(worker: WorkerProcess) -> float:
    """Stop the worker as the supervisor does; seconds until it and its group are gone."""
    start = time.perf_counter_ns()
    await worker.stop(STEP_TIMEOUT)
    await worker.close()
    return micros(start) / 1e6


# --- 1. spawn to ready --------------------------------------------------------------------------


@dataclass(frozen=True)
class Spawn:
    ready_ms: float
    stop_ms: float


async def daemon_spawn(launch: Launch, reaper: Reaper, settings: WorkerSettings) -> Spawn:
    start = time.perf_counter_ns()
    worker = await start_worker(launch, reaper, settings)
    ready_ms = micros(start) / 1000
    return Spawn(ready_ms, await end_worker(worker) * 1000)


async def node_spawn(floor: NodeParent, launch: Launch) -> Spawn:
    answer = await floor.ask("spawn", child=child_spec(launch))
    return Spawn(answer["ready_us"] / 1000, answer["stop_us"] / 1000)


async def measure_spawns(
    launch: Launch, reaper: Reaper, settings: WorkerSettings, floor: NodeParent
) -> list[Figure]:
    heading(
        f"worker spawn to ready: WorkerProcess.spawn vs Node's fork(), a fork-style "
        f"src/process.js ({SPAWNS} of each, alternating)"
    )
    for _ in range(SPAWN_WARMUP):  # the files into the page cache, the code paths warm
        await daemon_spawn(launch, reaper, settings)
        await node_spawn(floor, launch)
    daemon, node = await alternate(
        SPAWNS,
        lambda: daemon_spawn(launch, reaper, settings),
        lambda: node_spawn(floor, launch),
    )
    for name, spawns in (("WorkerProcess", daemon), ("Node fork()", node)):
        ready = [spawn.ready_ms for spawn in spawns]
        stop = [spawn.stop_ms for spawn in spawns]
        detail(f"{name:>14}: ready {summary(ready, 'ms')}; stop median {median(stop):5.1f} ms")
    ready_daemon = [spawn.ready_ms for spawn in daemon]
    ready_node = [spawn.ready_ms for spawn in node]
    detail(f"p99 ratio {p99(ready_daemon) / p99(ready_node):.2f}x")
    figures = [
        Figure(
            "worker spawn to ready, median",
            median(ready_daemon) / median(ready_node),
            SPAWN_TARGET,
            versus="Node fork()",
        )
    ]
    report(figures)
    return figures


# --- 2. round trip daemon <-> worker ------------------------------------------------------------


async def invoke_block(worker: WorkerProcess, method: str, args: list[Any]) -> list[float]:
    samples = [0.0] * ECHO_PER_ROUND
    invoke, clock = worker.invoke, time.perf_counter_ns
    for position in range(ECHO_PER_ROUND):
        start = clock()
        await invoke(method, args, STEP_TIMEOUT)
        samples[position] = (clock() - start) / 1000
    return samples


@dataclass
class BareChannel:
    """A worker on a NodeChannel of its own, talked to with ``send`` and ``receive`` alone."""

    process: asyncio.subprocess.Process
    channel: NodeChannel
    next_id: int = 1

    async def block(self) -> list[float]:
        samples = [0.0] * ECHO_PER_ROUND
        send, receive, clock = self.channel.send, self.channel.receive, time.perf_counter_ns
        for position in range(ECHO_PER_ROUND):
            call_id = self.next_id
            self.next_id += 1
            start = clock()
            await send({"type": "invoke", "id": call_id, "method": "echo", "args": [PAYLOAD]})
            answer = await receive()
            samples[position] = (clock() - start) / 1000
            if not isinstance(answer, dict) or answer.get("id") != call_id:
                raise RuntimeError(f"answer {answer!r} to invoke {call_id}")
        return samples


async def open_bare(launch: Launch, reaper: Reaper) -> BareChannel:
    with reaper.spawning():
        process, channel = await spawn_node(launch.args, cwd=launch.cwd, env=launch.env)
        reaper.manage(process.pid)
    async with asyncio.timeout(STEP_TIMEOUT):
        ready = await channel.receive()
    if not isinstance(ready, dict) or ready.get("type") != "ready":
        raise RuntimeError(f"the worker's first message was {ready!r}")
    return BareChannel(process, channel)


async def close_bare(bare: BareChannel, reaper: Reaper) -> None:
    async with asyncio.timeout(STEP_TIMEOUT):
        await bare.channel.close()
        await bare.process.wait()
    reaper.release(bare.process.pid)


async def node_block(floor: NodeParent) -> list[float]:
    samples: list[float] = (await floor.ask("echo", count=ECHO_PER_ROUND, payload=PAYLOAD))[
        "samples_us"
    ]
    return samples


@dataclass(frozen=True)
class Hop:
    """Figure 2's medians, in microseconds, for figure 3 to be read against."""

    worker_us: float
    node_us: float
    ping_us: float
    """WorkerProcess.invoke of figure 3's module-style ``ping``, in this process."""


async def measure_echo(
    launch: Launch,
    ping_launch: Launch,
    reaper: Reaper,
    settings: WorkerSettings,
    floor: NodeParent,
) -> tuple[list[Figure], Hop]:
    """Figure 2, and its medians; the module-style ``ping`` of figure 3 is timed beside it."""
    total = ECHO_ROUNDS * ECHO_PER_ROUND
    heading(
        f"round trip daemon <-> worker: WorkerProcess.invoke vs Node's fork() channel, "
        f"{total} of each, alternating blocks of {ECHO_PER_ROUND}"
    )
    worker = await start_worker(launch, reaper, settings)
    pinger = await start_worker(ping_launch, reaper, settings)
    bare = await open_bare(launch, reaper)
    await floor.ask("open", child=child_spec(launch))
    try:
        echoed = await worker.invoke("echo", [PAYLOAD], STEP_TIMEOUT)
        if echoed != PAYLOAD:
            raise RuntimeError(f"the worker echoed {echoed!r}")
        measures: tuple[Callable[[], Awaitable[list[float]]], ...] = (
            lambda: invoke_block(worker, "echo", [PAYLOAD]),
            bare.block,
            lambda: node_block(floor),
            lambda: invoke_block(pinger, "ping", []),
        )
        for _ in range(ECHO_WARMUP // ECHO_PER_ROUND):
            for measure in measures:
                await measure()
        rounds = await alternate(ECHO_ROUNDS, *measures)
    finally:
        await end_worker(worker)
        await end_worker(pinger)
        await close_bare(bare, reaper)
        await floor.ask("close")
    daemon, channel, node, ping = ([s for block in blocks for s in block] for blocks in rounds)
    detail(f"message: {len(json.dumps(PAYLOAD, separators=(',', ':')))} bytes of args, echoed")
    for name, samples in (
        ("WorkerProcess.invoke", daemon),
        ("bare NodeChannel", channel),
        ("Node fork()", node),
        ("module-style ping", ping),
    ):
        detail(f"{name:>20}: {summary(samples)}")
    per_round = [median(d) / median(n) for d, n in zip(rounds[0], rounds[2], strict=True)]
    detail(
        f"median ratio per round {min(per_round):.2f}x .. {max(per_round):.2f}x; "
        f"p99 ratio {p99(daemon) / p99(node):.2f}x; "
        f"bare channel {median(channel) / median(node):.2f}x"
    )
    figures = [
        Figure(
            "worker round trip, median",
            median(daemon) / median(node),
            ECHO_TARGET,
            versus="Node fork()",
        )
    ]
    report(figures)
    return figures, Hop(median(daemon), median(node), median(ping))


# --- 3. invokeAssistant end to end ---------------------------------------------------------------


async def measure_end_to_end(floor: NodeParent, hop: Hop) -> list[Figure]:
    total = E2E_ROUNDS * E2E_PER_ROUND
    with temp_dir() as base, zmq_context() as context:
        root = base / "root"
        write_assistants(root, 100)
        folder = root / DEFAULT_ID
        write_worker(folder, PING_MODULE)
        launch = launch_for(folder, DEFAULT_ID, WorkerSettings(), os.environ)
        with serving(daemon_argv(root, base / "run")):
            # Blocking REQ calls from inside this event loop: the daemon is another process,
            # and nothing in this loop has work to do while a call waits.
            client = connect(context, zmq.REQ, command_endpoint(base / "run"))
            ref = {"assistant_id": DEFAULT_ID}
            start = request_body("startAssistant", ref)
            stop = request_body("stopAssistant", ref)

            heading(
                f"startAssistant of a module-style worker, client to reply, vs Node's fork() "
                f"of the same file ({STARTS} of each, alternating)"
            )

            async def start_command() -> float:
                call(client, stop)  # not timed: the worker of the last round goes
                begin = time.perf_counter_ns()
                call(client, start)
                return micros(begin) / 1000

            async def node_start() -> float:
                return (await node_spawn(floor, launch)).ready_ms

            await start_command()
            await node_start()
            starts, node_starts = await alternate(STARTS, start_command, node_start)
            detail(f"{'startAssistant':>14}: {summary(starts, 'ms')}")
            detail(f"{'Node fork()':>14}: {summary(node_starts, 'ms')}")
            detail(f"median ratio {median(starts) / median(node_starts):.2f}x")

            heading(
                f"invokeAssistant end to end: REQ client -> daemon -> module-style ping, beside "
                f"getAssistant, {total} of each, alternating blocks of {E2E_PER_ROUND}"
            )
            invoke = request_body("invokeAssistant", {**ref, "method": "ping"})
            get = request_body("getAssistant", ref)
            answer = call(client, invoke)
            if answer["result"] != {"result": "pong"}:
                raise RuntimeError(f"invokeAssistant answered {answer}")
            round_trips(client, invoke, E2E_WARMUP)
            round_trips(client, get, E2E_WARMUP)

            async def invoke_block() -> list[float]:
                return round_trips(client, invoke, E2E_PER_ROUND)

            async def get_block() -> list[float]:
                return round_trips(client, get, E2E_PER_ROUND)

            invoke_rounds, get_rounds = await alternate(E2E_ROUNDS, invoke_block, get_block)
            client.close()
    invokes = [sample for block in invoke_rounds for sample in block]
    gets = [sample for block in get_rounds for sample in block]
    detail(f"{'invokeAssistant':>16}: {summary(invokes)}")
    detail(f"{'getAssistant':>16}: {summary(gets)}")
    added = median(invokes) - median(gets)
    detail(
        f"invoke - get: {added:.1f} us; the same ping by WorkerProcess.invoke in process "
        f"{hop.ping_us:.1f} us, so the daemon's command path adds {added - hop.ping_us:.1f} us"
    )
    detail(
        f"against figure 2's round trips: WorkerProcess.invoke {hop.worker_us:.1f} us "
        f"({added / hop.worker_us:.2f}x), Node fork() {hop.node_us:.1f} us "
        f"({added / hop.node_us:.2f}x)"
    )
    figures: list[Figure] = [
        Reported(
            "invokeAssistant ping / getAssistant, median",
            median(invokes) / median(gets),
            math.inf,
            versus="getAssistant",
        )
    ]
    report(figures)
    return figures


# --- all of it ----------------------------------------------------------------------------------


async def measure() -> list[Figure]:
    settings = WorkerSettings()
    reaper = Reaper()
    reaper.start()  # as the daemon does: the subreaper, and SIGCHLD
    floor = await NodeParent.start(reaper, settings.node)
    try:
        with temp_dir() as base:
            launch, ping_launch = (
                launch_for(write_worker(base / name, code), ASSISTANT_ID, settings, os.environ)
                for name, code in (("echo", FORK_ECHO), ("ping", PING_MODULE))
            )
            figures = await measure_spawns(launch, reaper, settings, floor)
            echo_figures, hop = await measure_echo(launch, ping_launch, reaper, settings, floor)
        figures += echo_figures
        figures += await measure_end_to_end(floor, hop)
    finally:
        await floor.close()
        reaper.close()
    return figures


def run() -> list[Figure]:
    # The worker's code logs as it does in the daemon ("worker up", "worker stopped"), in JSON;
    # the lines go nowhere, but they are made. The file stays open: structlog caches it.
    configure("json", "info", open(os.devnull, "w"))  # noqa: SIM115
    return asyncio.run(measure())


if __name__ == "__main__":
    run_alone(run)

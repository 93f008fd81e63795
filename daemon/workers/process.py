"""One run of an assistant's worker: the ``node`` process, its channel, its invokes, its stop.

:class:`WorkerProcess` knows nothing of restarts or of the assistant's state (the supervisor's
job); it starts one process, tells when it is up and when it exited, matches answers to invokes,
and stops it — politely, then SIGTERM, then SIGKILL, each step given ``stop_timeout`` seconds
to empty the worker's whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog

from assistantd.protocol.assistant import StopStep, WorkerExit, WorkerStyle
from assistantd.protocol.errors import (
    AssistantdError,
    GatewayTimeoutError,
    InvalidRequestError,
    NotFoundError,
    WorkerError,
)

from .channel import ChannelClosed, JSONValue, NodeChannel, spawn_node
from .launch import Launch
from .output import pump
from .reaper import Reaper, group_exists, signal_group

log = structlog.get_logger("assistantd.workers")

STDERR_TAIL = 20
"""Lines of stderr kept to explain a worker that failed to start."""

DRAIN_AFTER_EXIT = 1.0
"""Seconds to keep reading the channel and the output after the process exited: what it sent
just before exiting (an answer, then ``process.exit()``) is still delivered."""

MAX_METHODS = 1000

MessageHook = Callable[[int, JSONValue], None]
"""Called with the worker's pid and each message it sends on its own."""
LogHook = Callable[[int, str, str], None]
"""Called with the worker's pid, the stream (``stdout``, ``stderr``) and each line."""


@dataclass(frozen=True)
class Ready:
    """What a worker said when it came up."""

    style: WorkerStyle
    methods: list[str]


class WorkerProcess:
    """A started worker. Made by :meth:`spawn`; ends with :meth:`stop` or on its own."""

    def __init__(
        self,
        assistant_id: str,
        process: asyncio.subprocess.Process,
        channel: NodeChannel,
        reaper: Reaper,
        *,
        on_message: MessageHook,
        on_log: LogHook,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.assistant_id = assistant_id
        self.process = process
        self.pid = process.pid
        self.channel = channel
        self.ready: asyncio.Future[Ready] = loop.create_future()
        # Nobody may be waiting when a start fails (a stop came first): no "never retrieved".
        self.ready.add_done_callback(_retrieve)
        self.exited: asyncio.Future[WorkerExit] = loop.create_future()
        self.started = time.time()
        self._reaper = reaper
        self._on_message = on_message
        self._on_log = on_log
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._deadlines = _Deadlines(loop)
        self._ids = itertools.count(1)
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._style: WorkerStyle | None = None
        self._log = log.bind(assistant_id=assistant_id, pid=self.pid)
        self._pumps = [
            asyncio.create_task(pump(reader, self._logger(name)))
            for name, reader in (("stdout", process.stdout), ("stderr", process.stderr))
            if reader is not None
        ]
        # Messages are dispatched as the channel reads them: an answer reaches its invoke in
        # the same step of the event loop, with no task of ours in between.
        channel.listen(self._receive)
        self._runner = asyncio.create_task(self._run())

    @classmethod
    async def spawn(
        cls,
        assistant_id: str,
        launch: Launch,
        *,
        node: str,
        reaper: Reaper,
        on_message: MessageHook,
        on_log: LogHook,
    ) -> WorkerProcess:
        """Start the worker (FileNotFoundError if ``node`` cannot be found)."""
        with reaper.spawning():
            process, channel = await spawn_node(
                launch.args, cwd=launch.cwd, env=launch.env, node=node
            )
            reaper.manage(process.pid)
        return cls(assistant_id, process, channel, reaper, on_message=on_message, on_log=on_log)

    @property
    def is_up(self) -> bool:
        return self.ready.done() and not self.ready.exception() and not self.exited.done()

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr_tail)

    # --- talking to it ---------------------------------------------------------------------

    async def invoke(self, method: str, args: list[Any], within: float) -> Any:
        """Call ``method`` with ``args`` in the worker; its result, or the error it raised
        (GatewayTimeoutError if it gives none ``within`` seconds).

        ``args`` are as a JSON decoder gives them (the command's own): they are encoded with
        no check for what JSON cannot hold (``send`` checks everything).
        """
        call_id = next(self._ids)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        try:
            # Posted, not sent with a wait for the buffer to drain: the answer cannot come
            # before the worker has read the request, so waiting for it is waiting for both.
            self.channel.post_line(_invoke_line(call_id, method, args))
        except ChannelClosed:
            raise self._gone() from None
        self._pending[call_id] = answer
        self._deadlines.add(loop.time() + within, answer)
        try:
            return await answer
        except _Expired:
            raise GatewayTimeoutError(
                f"The assistant's worker did not answer {method!r} within "
                f"{round(within * 1000)} ms.",
                code="invoke_timeout",
            ) from None
        finally:
            del self._pending[call_id]
            self._deadlines.settled()

    async def send(self, message: Any) -> None:
        await self._send(message, param="message")

    async def _send(self, message: Any, *, param: str) -> None:
        try:
            await self.channel.send(message)
        except ValueError as exc:
            raise _unsendable(param, exc) from None
        except ChannelClosed:
            raise self._gone() from None

    # --- stopping it -------------------------------------------------------------------------

    async def stop(self, step_timeout: float) -> WorkerExit:
        """Stop the worker and everything it started; its exit, with the step that ended it.

        1. ``disconnect``: for module-style code and the default worker, a ``dispose`` message
           (its ``dispose()`` runs); then the channel is closed, so ``'disconnect'`` fires.
        2. ``SIGTERM`` to the whole process group. 3. ``SIGKILL`` to it.
        Each step waits up to ``step_timeout`` for the group to be empty.
        """
        if self.exited.done() and not self.group_alive:
            return await self.exited  # it had ended already: no step of ours ended it
        step: StopStep = "disconnect"
        if not self.exited.done():
            if self._style in ("module", "default"):
                with contextlib.suppress(AssistantdError, TimeoutError):
                    async with asyncio.timeout(step_timeout):
                        await self.channel.send({"type": "dispose"})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(step_timeout):
                    await self.channel.close()
        if not await self._reaper.wait_group_gone(self.pid, step_timeout):
            step = await self.kill_group(step_timeout)
        exit = await self.exited
        self._log.info("worker stopped", stopped_by=step, code=exit.code, signal=exit.signal)
        return msgspec.structs.replace(exit, stopped_by=step)

    async def kill_group(self, step_timeout: float) -> StopStep:
        """SIGTERM, then SIGKILL, to whatever is left of the process group; the last step."""
        steps: tuple[tuple[StopStep, signal.Signals], ...] = (
            ("SIGTERM", signal.SIGTERM),
            ("SIGKILL", signal.SIGKILL),
        )
        for step, signum in steps:
            if not signal_group(self.pid, signum):
                return step
            if await self._reaper.wait_group_gone(self.pid, step_timeout):
                return step
        self._log.error("processes of the worker's group outlived SIGKILL", pgid=self.pid)
        return "SIGKILL"

    async def close(self) -> None:
        """Let go of the channel and the output pipes (after the process has exited)."""
        for task in self._pumps:
            task.cancel()
        await asyncio.gather(*self._pumps, self._runner, return_exceptions=True)
        self.channel._abort()

    @property
    def group_alive(self) -> bool:
        return group_exists(self.pid)

    # --- inside ------------------------------------------------------------------------------

    async def _run(self) -> None:
        returncode = await self.process.wait()
        self._reaper.release(self.pid)
        exit = WorkerExit(
            pid=self.pid,
            code=returncode if returncode >= 0 else None,
            signal=_signal_name(-returncode) if returncode < 0 else None,
            time=time.time(),
        )
        # What it sent and wrote just before it exited is still in the socket and the pipes:
        # read it first (the last lines of stderr explain a failed start). Bounded, since a
        # grandchild may hold them open.
        ended = asyncio.ensure_future(self.channel.wait_ended())
        await asyncio.wait([ended, *self._pumps], timeout=DRAIN_AFTER_EXIT)
        ended.cancel()
        if not self.ready.done():
            self.ready.set_exception(self._failed_to_start(exit))
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(self._gone())
        self.exited.set_result(exit)

    def _receive(self, message: JSONValue) -> None:
        try:
            self._dispatch(message)
        except Exception:  # a hook's failure must not cost the worker its channel
            self._log.exception("worker message not handled")

    def _dispatch(self, message: JSONValue) -> None:
        if isinstance(message, dict):
            kind = message.get("type")
            # Answers first: they are nearly every message of a busy worker.
            call_id = message.get("id")
            if (kind == "result" or kind == "error") and type(call_id) is int:
                answer = self._pending.get(call_id)
                if answer is not None:
                    if not answer.done():
                        if kind == "result":
                            answer.set_result(message.get("result"))
                        else:
                            answer.set_exception(_invoke_error(message.get("error")))
                    return
            if kind == "ready" and not self.ready.done():
                self.ready.set_result(self._ready(message))
                return
            if kind == "failed" and not self.ready.done():
                error = message.get("error")
                self.ready.set_exception(
                    WorkerError(
                        "The assistant's worker failed to load: "
                        f"{_describe(error) if isinstance(error, dict) else 'no reason given'}.",
                        code="worker_failed",
                        details={"error": error},
                    )
                )
                return
            if kind == "disposed" and self._style in ("module", "default"):
                return
        self._on_message(self.pid, message)

    def _ready(self, message: dict[str, JSONValue]) -> Ready:
        said = message.get("style")
        style: WorkerStyle = "process"  # also when the code said "ready" itself
        if said == "module":
            style = "module"
        elif said == "default":
            style = "default"
        methods = message.get("methods")
        names = (
            [name for name in methods if isinstance(name, str)] if isinstance(methods, list) else []
        )
        self._style = style
        self._log.info("worker up", style=style, seconds=round(time.time() - self.started, 3))
        return Ready(style, names[:MAX_METHODS])

    def _logger(self, stream: str) -> Callable[[str], None]:
        def emit(line: str) -> None:
            if stream == "stderr":
                self._stderr_tail.append(line)
            self._on_log(self.pid, stream, line)

        return emit

    def _failed_to_start(self, exit: WorkerExit) -> WorkerError:
        how = f"code {exit.code}" if exit.signal is None else exit.signal
        return WorkerError(
            f"The assistant's worker exited ({how}) before it was up.",
            code="worker_failed",
            details={"exit": msgspec.to_builtins(exit), "stderr": self.stderr_tail},
        )

    def _gone(self) -> WorkerError:
        return WorkerError(
            "The assistant's worker exited before it answered.", code="worker_exited"
        )


class _Expired(Exception):
    """An invoke's time ran out (set on its answer by :class:`_Deadlines`)."""


class _Deadlines:
    """The timeouts of a worker's invokes, on one timer: the earliest deadline's.

    One ``asyncio.timeout()`` per invoke costs a timer, a context manager and a task
    cancellation path each time, a fifth of a round trip with the worker (BENCHMARKS.md,
    "Workers"). Here an invoke adds its deadline to a heap; the one timer fails the answers
    whose time is up and sets itself for the next. Answers that came in time are left in the
    heap until their deadline passes, or until they are more than half of it (then it is
    rebuilt), so finishing an invoke costs nothing but a count.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, asyncio.Future[Any]]] = []
        self._order = itertools.count()  # ties on the deadline never compare futures
        self._timer: asyncio.TimerHandle | None = None
        self._settled = 0

    def add(self, deadline: float, answer: asyncio.Future[Any]) -> None:
        heapq.heappush(self._heap, (deadline, next(self._order), answer))
        if self._timer is None or deadline < self._timer.when():
            self._arm(deadline)

    def settled(self) -> None:
        """One answer is done (in time or not)."""
        self._settled += 1
        if self._settled > 512 and self._settled * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].done()]
            heapq.heapify(self._heap)
            self._settled = 0

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = self._loop.time()
        heap = self._heap
        while heap and (heap[0][0] <= now or heap[0][2].done()):
            _, _, answer = heapq.heappop(heap)
            if answer.done():
                self._settled = max(self._settled - 1, 0)
            else:
                answer.set_exception(_Expired())
        if heap:
            self._arm(heap[0][0])


class _Invoke(msgspec.Struct, tag="invoke", tag_field="type"):
    id: int
    method: str
    args: list[Any]


_encode_invoke = msgspec.json.Encoder().encode


def _invoke_line(call_id: int, method: str, args: list[Any]) -> bytes:
    """``{"type":"invoke","id":...,"method":...,"args":[...]}`` and a newline, for the
    channel (msgspec: four times quicker than the standard encoder for a small request)."""
    return _encode_invoke(_Invoke(call_id, method, args)) + b"\n"


def _unsendable(param: str, problem: ValueError) -> InvalidRequestError:
    return InvalidRequestError(
        f"The {param} cannot be sent to the worker: {problem}.", param=param, code="invalid_value"
    )


def _invoke_error(error: JSONValue) -> AssistantdError:
    """The exception for a worker's ``{"type": "error"}`` answer."""
    details = error if isinstance(error, dict) else {"name": "Error", "message": str(error)}
    name = details.get("name")
    message = f"{_describe(details)}"
    if name == "MethodNotFound":
        return NotFoundError(message, param="method", code="method_not_found", details=details)
    if name == "InvalidRequest":
        return InvalidRequestError(message, param="args", code="invalid_value", details=details)
    return WorkerError(message, code="worker_error", details=details)


def _describe(error: dict[str, Any]) -> str:
    """``"TypeError: x is not a function"``, from a worker's error object."""
    name, message = error.get("name"), error.get("message")
    name = name if isinstance(name, str) and name else "Error"
    return f"{name}: {message}" if isinstance(message, str) and message else name


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"

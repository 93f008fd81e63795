"""The supervisor: starts, watches, restarts and stops one worker per running assistant.

Per assistant, one task (:meth:`WorkerSupervisor._supervise`) owns the worker from the start
command to the end: it installs dependencies if needed, starts the worker, waits for it to be
up, and then for it to exit or for a stop. A worker that exits on its own with a failure (a
non-zero code, a signal) is started again after a backoff (:mod:`.backoff`); one that exits
with code 0 is done, as systemd's ``Restart=on-failure`` has it. Past the restart limit the
assistant goes back to ``ready``, with the reason in its ``runtime.error`` and in the
``assistant.state`` event.

The assistant's state moves ``ready -> running`` when the first worker is up, and back when
the worker is stopped or given up on; restarts in between change only its ``runtime``
(``assistant.updated``). Which assistants should run is kept on disk (:mod:`.desired`), so a
daemon that restarts starts them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from assistantd.protocol.assistant import Runtime, WorkerExit
from assistantd.protocol.codec import encode
from assistantd.protocol.errors import (
    AssistantdError,
    ConflictError,
    GatewayTimeoutError,
    InternalError,
    NotFoundError,
    UnavailableError,
    WorkerError,
)
from assistantd.protocol.events import Cause, WorkerExited, WorkerLog, WorkerMessage
from assistantd.protocol.lifecycle import transition

from ..index import Entry
from ..state import LiveState
from .backoff import Backoff
from .desired import DesiredState
from .launch import launch_for, needs_install, npm_env
from .reaper import Reaper
from .settings import WorkerSettings

if TYPE_CHECKING:
    from .channel import JSONValue
    from .process import WorkerProcess

log = structlog.get_logger("assistantd.workers")


class _Stopped(Exception):
    """A stop came while the worker was being started."""


@dataclass(eq=False)
class _Unit:
    """One assistant's worker, as the supervisor keeps it."""

    assistant_id: str
    backoff: Backoff
    runtime: Runtime = field(default_factory=lambda: Runtime(status="stopped"))
    worker: WorkerProcess | None = None
    task: asyncio.Task[None] | None = None
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    stop_cause: Cause = "request"
    keep_desired: bool = False
    """Set by a daemon shutdown: the assistant stops now and starts again with the daemon."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by start, stop and restart commands, one after the other."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Replaced (after being set) at every change, for whoever waits for the worker."""

    @property
    def active(self) -> bool:
        return self.task is not None and not self.task.done()

    def pulse(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class WorkerSupervisor:
    def __init__(
        self,
        state: LiveState,
        settings: WorkerSettings,
        *,
        reaper: Reaper,
        desired: DesiredState,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.state = state
        self.settings = settings
        self.reaper = reaper
        self.desired = desired
        self._environ = dict(environ)
        self._units: dict[str, _Unit] = {}
        self._saving = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False
        state.removal_listeners.append(self._removed)

    def use_settings(self, settings: WorkerSettings) -> None:
        """Take new settings (a reload): the next starts, stops, invokes and restarts use them;
        a wait under way keeps its deadline, and a restart count its history."""
        self.settings = settings
        for unit in self._units.values():
            _set_policy(unit.backoff, settings)

    # --- commands ------------------------------------------------------------------------------

    async def start(self, assistant_id: str, cause: Cause = "request") -> Entry:
        """Start the worker; return once it is up (the assistant ``running``)."""
        unit = self._unit(assistant_id)
        async with unit.lock:
            entry = self._entry(assistant_id)
            if self._closing:
                raise UnavailableError(
                    "The daemon is stopping; it starts no worker now.", code="daemon_stopping"
                )
            if unit.active and unit.runtime.status == "stopped":
                # The last run has ended (the assistant is ready again, its event is out) and
                # its task is only saving .running.json: let it finish, then start afresh.
                # Taken for a run under way, this start would find none and answer 409.
                assert unit.task is not None
                with contextlib.suppress(Exception):
                    await asyncio.shield(unit.task)
            if unit.active:
                started = unit.task
            else:
                if entry.assistant.state == "running":
                    return entry  # pragma: no cover - running always has a live task
                transition(entry.assistant.state, "running")  # 409 from to_download and such
                unit.backoff.reset()
                unit.stop_requested = asyncio.Event()
                unit.keep_desired = False
                first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                unit.task = asyncio.create_task(self._supervise(unit, first, cause))
                started = None
        if started is not None:
            await self._wait_up(unit, time.monotonic() + self.settings.start_timeout)
            return self._entry(assistant_id)
        await asyncio.shield(first)
        await self._remember(assistant_id, True)
        return self._entry(assistant_id)

    async def stop(self, assistant_id: str, cause: Cause = "request") -> Entry:
        """Stop the worker (if it runs); return once it and what it started are gone."""
        unit = self._unit(assistant_id)
        async with unit.lock:
            self._entry(assistant_id)
            await self._stop(unit, cause)
            await self._remember(assistant_id, False)
            return self._entry(assistant_id)

    async def restart(self, assistant_id: str) -> Entry:
        await self.stop(assistant_id)
        return await self.start(assistant_id)

    async def invoke(
        self, assistant_id: str, method: str, args: list[Any], within: float
    ) -> msgspec.Raw:
        """Call ``method`` in the worker; its result as encoded JSON. ``within`` seconds covers
        waiting for a restarting worker to be up, too."""
        deadline = time.monotonic() + within
        worker = await self._wait_up(self._unit_of(assistant_id), deadline)
        result = await worker.invoke(method, args, max(deadline - time.monotonic(), 0.001))
        return _raw(result)

    async def send(self, assistant_id: str, message: Any) -> None:
        deadline = time.monotonic() + self.settings.invoke_timeout
        worker = await self._wait_up(self._unit_of(assistant_id), deadline)
        await worker.send(message)

    # --- the daemon's start and stop ---------------------------------------------------------

    async def resume(self) -> None:
        """Start the assistants that were running when the daemon last stopped."""
        wanted = await asyncio.to_thread(self.desired.load)
        for assistant_id in sorted(wanted):
            entry = self.state.index.get(assistant_id)
            if entry is None or entry.assistant.state != "ready":
                log.info("not resuming a worker", assistant_id=assistant_id, reason="not ready")
                await self._remember(assistant_id, False)
                continue
            self._in_background(self._resume_one(assistant_id))

    async def shutdown(self) -> None:
        """Stop every worker, all at once; they start again with the daemon."""
        self._closing = True
        for task in list(self._background):
            task.cancel()
        units = [unit for unit in self._units.values() if unit.active]
        for unit in units:
            unit.keep_desired = True
        await asyncio.gather(*(self._stop(unit, "daemon") for unit in units))
        await asyncio.gather(*self._background, return_exceptions=True)

    def start_soon(self, assistant_id: str) -> None:
        """Start the worker in the background (a download asked to be started); a failure
        is logged, and in the assistant's ``runtime.error``."""
        self._in_background(self._resume_one(assistant_id))

    # --- supervision ----------------------------------------------------------------------------

    async def _supervise(self, unit: _Unit, first: asyncio.Future[None], cause: Cause) -> None:
        try:
            await self._supervise_until_done(unit, first, cause)
        except BaseException as exc:
            if not first.done():
                first.set_exception(exc if isinstance(exc, Exception) else _stopped())
            if not isinstance(exc, Exception):
                raise
            log.exception("worker supervision failed", assistant_id=unit.assistant_id)
            self._settle(unit, status="stopped", cause="daemon", error=_error_object(exc))
        finally:
            unit.worker = None
            unit.pulse()

    async def _supervise_until_done(
        self, unit: _Unit, first: asyncio.Future[None], cause: Cause
    ) -> None:
        assistant_id = unit.assistant_id
        self._update(unit, cause, status="starting", error=None, retry_at=None, restarts=0)
        while True:
            up_since = time.monotonic()
            try:
                worker = await self._start_worker(unit, cause if not first.done() else "daemon")
            except _Stopped:
                if not first.done():
                    first.set_exception(_stopped())
                self._settle(unit, status="stopped", cause=unit.stop_cause)
                return
            except AssistantdError as error:
                if not first.done():
                    # The start command's own attempt: its caller hears why; no restarts.
                    log.warning("worker failed to start", assistant_id=assistant_id, error=error)
                    self._settle(unit, status="stopped", cause=cause, error=_error_object(error))
                    first.set_exception(error)
                    return
                exit: WorkerExit | None = None
                reason: AssistantdError | None = error
            else:
                ready = worker.ready.result()
                runtime = {"status": "up", "pid": worker.pid, "style": ready.style}
                runtime |= {"methods": ready.methods, "up_since": time.time(), "retry_at": None}
                if not first.done():
                    self._update(unit, cause, state="running", **runtime)
                    first.set_result(None)
                else:
                    self._update(unit, "daemon", **runtime)
                exit, reason = await self._run_until_exit(unit, worker)
                if exit is None:
                    return  # stopped
            up_for = time.monotonic() - up_since
            if exit is not None and exit.code == 0:
                self._exited(unit, exit, restart=False)
                self._settle(unit, status="stopped", cause="daemon", last_exit=exit)
                await self._remember(assistant_id, False)
                return
            delay = unit.backoff.next_delay(now=time.monotonic(), up_for=up_for)
            if exit is not None:
                self._exited(unit, exit, restart=delay is not None)
            if delay is None:
                gave_up = _gave_up(self.settings, exit, reason)
                log.error("worker given up", assistant_id=assistant_id, reason=gave_up["message"])
                self._settle(unit, status="stopped", cause="daemon", error=gave_up, last_exit=exit)
                await self._remember(assistant_id, False)
                return
            self._update(
                unit,
                "daemon",
                status="restarting",
                pid=None,
                up_since=None,
                restarts=unit.runtime.restarts + 1,
                retry_at=time.time() + delay,
                last_exit=exit if exit is not None else unit.runtime.last_exit,
                error=_error_object(reason) if reason is not None else None,
            )
            log.info("worker restarting", assistant_id=assistant_id, delay=round(delay, 3))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await unit.stop_requested.wait()
            if unit.stop_requested.is_set():
                self._settle(unit, status="stopped", cause=unit.stop_cause)
                return
            self._update(unit, "daemon", status="starting", retry_at=None)

    async def _start_worker(self, unit: _Unit, cause: Cause) -> WorkerProcess:
        """Install if needed, start the worker, wait until it is up (or raise why not)."""
        # Imported at the first worker start: the channel, the process and npm's install are
        # not needed to answer commands (~2.5 ms of a cold start).
        from .install import install_dependencies
        from .process import WorkerProcess

        assistant_id = unit.assistant_id
        folder = self.state.store.root / assistant_id
        launch = launch_for(folder, assistant_id, self.settings, self._environ)
        if await asyncio.to_thread(needs_install, folder):
            install = install_dependencies(
                folder,
                settings=self.settings,
                env=npm_env(launch.env, self._environ),
                reaper=self.reaper,
                on_line=lambda pid, line: self._log_line(assistant_id, pid, "install", line),
            )
            await self._unless_stopped(unit, install)
        try:
            worker = await WorkerProcess.spawn(
                assistant_id,
                launch,
                node=self.settings.node,
                reaper=self.reaper,
                on_message=lambda pid, message: self._message(assistant_id, pid, message),
                on_log=lambda pid, stream, line: self._log_line(assistant_id, pid, stream, line),
            )
        except OSError as exc:
            raise WorkerError(
                f"The assistant's worker could not be started: {exc}.", code="spawn_failed"
            ) from None
        unit.worker = worker
        self._update(unit, cause, pid=worker.pid)
        try:
            await self._unless_stopped(
                unit, asyncio.wait_for(asyncio.shield(worker.ready), self.settings.start_timeout)
            )
        except BaseException as exc:
            await self._end(unit, worker)
            if isinstance(exc, TimeoutError):
                raise GatewayTimeoutError(
                    f"The assistant's worker did not say it was up within "
                    f"{self.settings.start_timeout:g} s.",
                    code="start_timeout",
                ) from None
            raise
        return worker

    async def _run_until_exit(
        self, unit: _Unit, worker: WorkerProcess
    ) -> tuple[WorkerExit | None, AssistantdError | None]:
        """Wait for the worker to exit (its exit) or for a stop (None, after stopping it)."""
        unit.pulse()
        stop = asyncio.ensure_future(unit.stop_requested.wait())
        either: set[asyncio.Future[Any]] = {worker.exited, stop}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if unit.stop_requested.is_set():
            exit = await self._end(unit, worker)
            self._exited(unit, exit, restart=False)
            self._settle(unit, status="stopped", cause=unit.stop_cause, last_exit=exit)
            return None, None
        exit = worker.exited.result()
        log.warning(
            "worker exited", assistant_id=unit.assistant_id, code=exit.code, signal=exit.signal
        )
        unit.worker = None
        unit.pulse()
        if worker.group_alive:  # what it started outlived it: it goes too
            await worker.kill_group(self.settings.stop_timeout)
        await worker.close()
        return exit, None

    async def _end(self, unit: _Unit, worker: WorkerProcess) -> WorkerExit:
        """Stop ``worker`` (it may have exited already) and let go of it."""
        unit.worker = None
        unit.pulse()
        if not worker.exited.done():
            self._update(unit, unit.stop_cause, status="stopping")
        try:
            return await worker.stop(self.settings.stop_timeout)
        finally:
            await worker.close()

    async def _unless_stopped(self, unit: _Unit, work: Any) -> Any:
        """Await ``work``; cancel it and raise _Stopped if a stop comes first."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(unit.stop_requested.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise _Stopped
        return task.result()

    async def _stop(self, unit: _Unit, cause: Cause) -> None:
        if not unit.active:
            return
        assert unit.task is not None
        unit.stop_cause = cause
        unit.stop_requested.set()
        with contextlib.suppress(Exception):
            await asyncio.shield(unit.task)

    # --- waiting for a worker ------------------------------------------------------------------

    async def _wait_up(self, unit: _Unit, deadline: float) -> WorkerProcess:
        while True:
            worker = unit.worker
            if worker is not None and worker.is_up:
                return worker
            if not unit.active or unit.stop_requested.is_set():
                raise ConflictError(
                    f"The assistant '{unit.assistant_id}' is not running; start it first.",
                    param="assistant_id",
                    code="assistant_not_running",
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise GatewayTimeoutError(
                    f"The assistant's worker was not up in time (it is {unit.runtime.status}).",
                    code="worker_unavailable",
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await unit.changed.wait()

    # --- state, events, the file -----------------------------------------------------------

    def _update(self, unit: _Unit, cause: Cause, state: Any = None, **changes: Any) -> None:
        unit.runtime = msgspec.structs.replace(unit.runtime, **changes)
        self.state.change(unit.assistant_id, runtime=unit.runtime, state=state, cause=cause)
        unit.pulse()

    def _settle(
        self,
        unit: _Unit,
        *,
        status: str,
        cause: Cause,
        error: dict[str, Any] | None = None,
        last_exit: WorkerExit | None = None,
    ) -> None:
        """The worker is down for good: the assistant goes (back) to ``ready``."""
        unit.runtime = msgspec.structs.replace(
            unit.runtime,
            status=status,
            pid=None,
            up_since=None,
            retry_at=None,
            error=error,
            last_exit=last_exit if last_exit is not None else unit.runtime.last_exit,
        )
        self.state.change(
            unit.assistant_id, runtime=unit.runtime, state="ready", cause=cause, error=error
        )
        unit.pulse()

    def _exited(self, unit: _Unit, exit: WorkerExit, *, restart: bool) -> None:
        self.state.publisher.worker(
            WorkerExited, assistant_id=unit.assistant_id, pid=exit.pid, exit=exit, restart=restart
        )

    def _message(self, assistant_id: str, pid: int, message: JSONValue) -> None:
        self.state.publisher.worker(
            WorkerMessage, assistant_id=assistant_id, pid=pid, message=_raw(message)
        )

    def _log_line(self, assistant_id: str, pid: int, stream: str, line: str) -> None:
        log.info("worker output", assistant_id=assistant_id, pid=pid, stream=stream, line=line)
        self.state.publisher.worker(
            WorkerLog, assistant_id=assistant_id, pid=pid, stream=stream, line=_scrub(line)
        )

    async def _remember(self, assistant_id: str, running: bool) -> None:
        unit = self._units.get(assistant_id)
        if not running and unit is not None and unit.keep_desired:
            return
        if not self.desired.set(assistant_id, running):
            return
        async with self._saving:  # one write at a time, each of the latest state
            try:
                await asyncio.to_thread(self.desired.save)
            except OSError as exc:
                log.error("cannot save the running assistants", error=str(exc))

    # --- helpers ---------------------------------------------------------------------------------

    def _unit(self, assistant_id: str) -> _Unit:
        unit = self._units.get(assistant_id)
        if unit is None:
            settings = self.settings
            backoff = Backoff(
                initial=settings.backoff_initial,
                maximum=settings.backoff_max,
                stable_after=settings.stable_after,
                limit=settings.restart_limit,
                window=settings.restart_window,
            )
            unit = self._units[assistant_id] = _Unit(assistant_id, backoff)
        return unit

    def _unit_of(self, assistant_id: str) -> _Unit:
        self._entry(assistant_id)
        return self._unit(assistant_id)

    def _entry(self, assistant_id: str) -> Entry:
        entry = self.state.index.get(assistant_id)
        if entry is None:
            raise NotFoundError(
                f"No assistant found with id '{assistant_id}'.", param="assistant_id"
            )
        return entry

    def _removed(self, assistant_id: str) -> None:
        unit = self._units.get(assistant_id)
        if unit is not None and unit.active:
            self._in_background(self._stop(unit, "file"))
        self._in_background(self._remember(assistant_id, False))

    async def _resume_one(self, assistant_id: str) -> None:
        try:
            await self.start(assistant_id, cause="daemon")
        except AssistantdError as error:
            log.warning("worker not resumed", assistant_id=assistant_id, error=error.message)

    def _in_background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _stopped() -> ConflictError:
    return ConflictError(
        "The assistant was stopped before its worker was up.", code="stopped_while_starting"
    )


def _error_object(error: BaseException) -> dict[str, Any]:
    if not isinstance(error, AssistantdError):
        error = InternalError("The worker's supervision failed; the daemon's log has why.")
    return error.to_object()


def _set_policy(backoff: Backoff, settings: WorkerSettings) -> None:
    """Give a worker's restart policy new settings; what it counted so far stays."""
    backoff.initial = settings.backoff_initial
    backoff.maximum = settings.backoff_max
    backoff.stable_after = settings.stable_after
    backoff.limit = settings.restart_limit
    backoff.window = settings.restart_window


def _gave_up(
    settings: WorkerSettings, exit: WorkerExit | None, reason: AssistantdError | None
) -> dict[str, Any]:
    if exit is not None:
        last = f"exit code {exit.code}" if exit.signal is None else exit.signal
    else:
        last = reason.message if reason is not None else "it failed"
    error = WorkerError(
        f"The worker failed {settings.restart_limit + 1} times within "
        f"{settings.restart_window:g} s (last: {last}); it stays stopped until it is started "
        "again.",
        code="restart_limit",
    )
    return error.to_object()


# A str decoded from JSON holds surrogates only lone: json joins an escaped pair into one
# character.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _raw(value: Any) -> msgspec.Raw:
    """``value`` as JSON for a reply or an event, with any lone surrogate made U+FFFD."""
    try:
        return msgspec.Raw(encode(value))
    except UnicodeEncodeError:  # JSON.stringify writes "\ud800" for a lone surrogate
        return msgspec.Raw(encode(_scrub(value)))


def _scrub(value: Any) -> Any:
    """``value`` with each lone surrogate made one U+FFFD, as JavaScript's TextEncoder does.

    >>> _scrub({"\\ud800": ["a\\udfffb", "\\U0001d11e"]})
    {'\ufffd': ['a\ufffdb', '\U0001d11e']}
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    if isinstance(value, dict):
        return {_scrub(key): _scrub(item) for key, item in value.items()}
    return value

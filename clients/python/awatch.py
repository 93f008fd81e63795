"""The asyncio watch: ``AsyncClient.watch()``, over a pyzmq asyncio SUB socket.

The rules are :mod:`.clone`'s; this module only moves messages and snapshots between the
sockets and the state machine. Its blocking twin is :mod:`.watch`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType
from typing import Any, Self

import zmq
import zmq.asyncio

from assistantd.protocol.errors import UnavailableError
from assistantd.protocol.events import Snapshot

from .clone import CloneSync, Mirror, TimedOut, WatchEvent
from .curve import ClientSecurity
from .discovery import check_reachable


class AsyncWatch:
    """The daemon's events as they come, and a mirror of its state kept exact with them.

    Example::

        async with AsyncClient(runtime_dir=runtime_dir) as client:
            async with client.watch() as watch:
                async for event in watch:
                    print(topic_of(event), watch.mirror.seq, len(watch.mirror.assistants))

    Iterating yields the events whose topic starts with the prefix (the state events,
    ``daemon.stopping``, and from the first snapshot on the activity events, the workers'
    ``worker.*`` and the downloads' ``download.progress``, which are not mirrored) and,
    whatever the prefix, a :class:`~assistantd.client.clone.Synced` each time a snapshot was
    taken (at the start, and after a gap, a daemon restart, or a silence). It runs until
    closed (``aclose()``, the end of the ``async with`` block, or the iterator being
    collected), across daemon restarts.
    """

    def __init__(
        self,
        endpoint: str,
        get_snapshot: Callable[[], Awaitable[Snapshot]],
        *,
        prefix: str = "",
        start_timeout: float,
        security: ClientSecurity | None = None,
    ) -> None:
        check_reachable(endpoint)
        # The keys are found now, so that a missing one is said at once (CURVE for tcp://).
        self._socket_options = (security or ClientSecurity()).socket_options(endpoint)
        self.endpoint = endpoint
        self._get_snapshot = get_snapshot
        self._clone = CloneSync(prefix, start_timeout=start_timeout)
        self._deadline: float | None = None
        self._reader: asyncio.Task[Any] | None = None
        """The task waiting in :meth:`next`, if any."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._events = self._run()
        self._first: WatchEvent | None = None
        self._started = False

    @property
    def mirror(self) -> Mirror:
        return self._clone.mirror

    @property
    def in_sync(self) -> bool:
        """False from a sign of lost events until the snapshot that repairs the mirror."""
        return self._clone.in_sync

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchEvent:
        return await self.next()

    # A timeout parameter rather than asyncio.timeout(): cancelling anext() of an async
    # generator ends the generator, and with it the watch.
    async def next(self, timeout: float | None = None) -> WatchEvent:  # noqa: ASYNC109
        """The next event; :class:`TimeoutError` if none comes within ``timeout`` seconds (the
        watch goes on: call again). Prefer this to ``asyncio.wait_for``: cancelling a wait
        for the next event ends the watch. A snapshot under way may take the client's timeout.
        """
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._reader is not None:
            raise RuntimeError("another task is already waiting for this watch's next event")
        self._reader = asyncio.current_task()
        self._idle.clear()
        self._deadline = None if timeout is None else time.monotonic() + timeout
        try:
            item = await anext(self._events)
        finally:
            self._deadline = None
            self._reader = None
            self._idle.set()
        if isinstance(item, TimedOut):
            raise TimeoutError(f"no event within {timeout:g}s")
        return item

    async def aclose(self) -> None:
        """End the watch and close its socket. A task waiting in :meth:`next` meanwhile is
        cancelled (a running generator cannot be closed otherwise)."""
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await self._idle.wait()
        await self._events.aclose()

    async def start(self) -> None:
        """Subscribe and take the first snapshot now, rather than at the first :meth:`next`;
        the ``async with`` block does this. Events published from then on are yielded, the
        activity events included (they are in no snapshot: before the start they are lost to
        this watch). Raises :class:`UnavailableError` if the watch cannot start."""
        if not self._started:
            self._started = True
            item = await self.next()  # with no deadline, the first snapshot's Synced
            self._first = item

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[WatchEvent | TimedOut, None]:
        clone = self._clone
        context = zmq.asyncio.Context()
        socket = context.socket(zmq.SUB)
        try:
            socket.setsockopt(zmq.LINGER, 0)
            for option, value in self._socket_options:
                socket.setsockopt(option, value)
            socket.connect(self.endpoint)
            for prefix in clone.subscriptions:
                socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())
            while True:
                now = time.monotonic()
                step = clone.next_step(now)
                if step != "snapshot" and self._deadline is not None:
                    if now >= self._deadline:
                        yield TimedOut()
                        continue
                    step = min(step, self._deadline - now)
                if step == "snapshot":
                    try:
                        snapshot = await self._get_snapshot()
                    except UnavailableError:
                        if not clone.started:
                            raise  # never started: say so at once
                        clone.snapshot_failed(time.monotonic())
                        continue
                    for event in clone.snapshot_taken(snapshot, time.monotonic()):
                        yield event
                elif await socket.poll(max(0, round(step * 1000))):  # POLLIN, or 0 on timeout
                    # Take what is queued in one go, then look at the clock again.
                    for _ in range(1000):
                        try:
                            frames = await socket.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        for event in clone.receive(frames, time.monotonic()):
                            yield event
                        if not clone.in_sync:
                            break
                else:
                    clone.waited(time.monotonic())
        finally:
            socket.close(linger=0)
            context.term()

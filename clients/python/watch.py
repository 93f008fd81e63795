"""The blocking watch: ``Client.watch()``, over a plain pyzmq SUB socket.

The rules are :mod:`.clone`'s; this module only moves messages and snapshots between the
sockets and the state machine. Its asyncio twin is :mod:`.awatch`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Self

import zmq

from assistantd.protocol.errors import UnavailableError
from assistantd.protocol.events import Snapshot

from .clone import CloneSync, Mirror, TimedOut, WatchEvent
from .curve import ClientSecurity
from .discovery import check_reachable


class Watch:
    """The daemon's events as they come, and a mirror of its state kept exact with them.

    Example::

        with Client(runtime_dir=runtime_dir) as client, client.watch() as watch:
            for event in watch:
                print(topic_of(event), watch.mirror.seq, len(watch.mirror.assistants))

    Iterating yields the events whose topic starts with the prefix (the state events,
    ``daemon.stopping``, and from the first snapshot on the activity events, the workers'
    ``worker.*`` and the downloads' ``download.progress``, which are not mirrored) and,
    whatever the prefix, a :class:`~assistantd.client.clone.Synced` each time a snapshot was
    taken (at the start, and after a gap, a daemon restart, or a silence). It runs until
    closed (``close()``, the end of the ``with`` block, or the iterator being collected),
    across daemon restarts.
    """

    def __init__(
        self,
        endpoint: str,
        get_snapshot: Callable[[], Snapshot],
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

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> WatchEvent:
        return self.next()

    def next(self, timeout: float | None = None) -> WatchEvent:
        """The next event; :class:`TimeoutError` if none comes within ``timeout`` seconds (the
        watch goes on: call again). A snapshot under way may take the client's timeout."""
        if self._first is not None:
            first, self._first = self._first, None
            return first
        self._deadline = None if timeout is None else time.monotonic() + timeout
        try:
            item = next(self._events)
        finally:
            self._deadline = None
        if isinstance(item, TimedOut):
            raise TimeoutError(f"no event within {timeout:g}s")
        return item

    def close(self) -> None:
        self._events.close()

    def start(self) -> None:
        """Subscribe and take the first snapshot now, rather than at the first :meth:`next`;
        the ``with`` block does this. Events published from then on are yielded, the activity
        events included (they are in no snapshot: before the start they are lost to this
        watch). Raises :class:`UnavailableError` if the watch cannot start."""
        if not self._started:
            self._started = True
            item = next(self._events)  # with no deadline, the first snapshot's Synced
            assert not isinstance(item, TimedOut)
            self._first = item

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> Generator[WatchEvent | TimedOut, None, None]:
        clone = self._clone
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
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
                        snapshot = self._get_snapshot()
                    except UnavailableError:
                        if not clone.started:
                            raise  # never started: say so at once
                        clone.snapshot_failed(time.monotonic())
                        continue
                    yield from clone.snapshot_taken(snapshot, time.monotonic())
                elif socket.poll(max(0, round(step * 1000)), zmq.POLLIN):
                    # Take what is queued in one go, then look at the clock again.
                    for _ in range(1000):
                        try:
                            frames = socket.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        yield from clone.receive(frames, time.monotonic())
                        if not clone.in_sync:
                            break
                else:
                    clone.waited(time.monotonic())
        finally:
            socket.close(linger=0)
            context.term()

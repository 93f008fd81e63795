"""The daemon's event stream as Server-Sent Events, with ``Last-Event-ID`` resume.

One SUB subscription to the daemon (every topic) feeds every SSE connection. The state events
(those with a ``seq``) are also kept, the last :data:`BUFFER_SIZE` of them, so that a client
that reconnects with ``Last-Event-ID`` gets the ones it missed, in order. When the gateway no
longer has them all (too old, another epoch of the daemon, or a gap in what the gateway itself
received), the client gets one ``resync`` event instead, telling it to take a snapshot.

An SSE ``id`` is ``<epoch>:<seq>``: a seq alone cannot say which run of the daemon it was
counted in (each run counts from its own start), and a browser's ``EventSource`` sends the
last id back as it got it. A plain ``<seq>`` is accepted too and taken in the current epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio

from assistantd.client.curve import ClientSecurity

BUFFER_SIZE = 10_000
"""How many state events the gateway keeps for ``Last-Event-ID`` resume."""

QUEUE_SIZE = 10_000
"""How many events may wait for one slow SSE connection before the gateway ends it (the
client reconnects with its ``Last-Event-ID`` and is replayed what it can be)."""

# The daemon's bookkeeping messages: the gateway reads them, an SSE client does not need them.
QUIET_TOPICS = frozenset({"daemon.welcome", "daemon.heartbeat"})


@dataclass(frozen=True)
class StateEvent:
    epoch: str
    seq: int
    topic: str
    chunk: bytes
    """The event as SSE text, ready to write."""


def sse_chunk(topic: str, data: bytes, event_id: str | None = None) -> bytes:
    """One SSE event. ``data`` is JSON; any line breaks in it become ``data:`` lines, which a
    client joins back with ``\\n``.

    >>> sse_chunk("assistant.deleted", b'{"seq":3}', "e1:3")
    b'id: e1:3\\nevent: assistant.deleted\\ndata: {"seq":3}\\n\\n'
    """
    lines = [] if event_id is None else [b"id: " + event_id.encode()]
    lines.append(b"event: " + topic.encode())
    lines.extend(b"data: " + line for line in data.splitlines() or [b""])
    return b"\n".join(lines) + b"\n\n"


def parse_last_event_id(value: str) -> tuple[str | None, int] | None:
    """``(epoch, seq)`` from a ``Last-Event-ID`` (``epoch`` None for a plain seq); None when
    it is neither form.

    >>> parse_last_event_id("8bcc:42"), parse_last_event_id("42"), parse_last_event_id("x")
    (('8bcc', 42), (None, 42), None)
    """
    epoch, _, seq = value.strip().rpartition(":")
    try:
        number = int(seq)
    except ValueError:
        return None
    return (epoch or None, number) if number >= 0 else None


class Subscriber:
    """One SSE connection: the chunks waiting to be written, and its topic prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE + 1)
        """None ends the stream (the gateway stops, or the client fell too far behind)."""
        self.ended = False

    def wants(self, topic: str) -> bool:
        return topic.startswith(self.prefix)

    def put(self, chunk: bytes) -> None:
        if self.ended:
            return
        if self.queue.qsize() >= QUEUE_SIZE:
            self.end()
            return
        self.queue.put_nowait(chunk)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.queue.put_nowait(None)


class EventHub:
    """The gateway's subscription to the daemon's events, shared by every SSE connection."""

    def __init__(self, endpoint: str, security: ClientSecurity) -> None:
        self.endpoint = endpoint
        self._security = security
        self.epoch: str | None = None
        self.seq: int | None = None
        """The latest seq the daemon reported (in an event, a welcome or a heartbeat)."""
        self._since: int | None = None
        """The buffer holds every state event after this seq up to :attr:`seq`; None: none."""
        self._buffer: deque[StateEvent] = deque(maxlen=BUFFER_SIZE)
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._task.add_done_callback(self._ended)

    @staticmethod
    def _ended(task: asyncio.Task[None]) -> None:
        # Only a setup fault ends the subscription early (a CURVE key that cannot be read):
        # say so, as /v1/events will carry nothing.
        if not task.cancelled() and (exc := task.exception()) is not None:
            print(f"assistantd-http: no event stream: {exc}", file=sys.stderr, flush=True)

    async def close(self) -> None:
        for subscriber in list(self._subscribers):
            subscriber.end()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def subscribe(self, prefix: str, last_event_id: str | None) -> Subscriber:
        """A new SSE connection; the missed events (or a ``resync``) are already queued."""
        subscriber = Subscriber(prefix)
        if last_event_id is not None:
            for chunk in self._resume(subscriber, last_event_id):
                subscriber.put(chunk)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def _resume(self, subscriber: Subscriber, last_event_id: str) -> Iterable[bytes]:
        parsed = parse_last_event_id(last_event_id)
        if parsed is None:
            return [self._resync("unreadable Last-Event-ID")]
        epoch, seq = parsed
        if epoch is not None and epoch != self.epoch:
            return [self._resync("the daemon restarted (another epoch)")]
        if self._since is None or self.seq is None or not self._since <= seq <= self.seq:
            return [self._resync("the gateway no longer has the events after that id")]
        return [
            event.chunk
            for event in self._buffer
            if event.seq > seq and subscriber.wants(event.topic)
        ]

    def _resync(self, reason: str) -> bytes:
        """The event that tells a client to take a snapshot (``GET /v1/snapshot``). Its id is
        the present position, so that a reconnection after it resumes from here."""
        data = json.dumps(
            {"topic": "resync", "epoch": self.epoch, "seq": self.seq, "reason": reason}
        )
        known = self.epoch is not None and self.seq is not None
        return sse_chunk("resync", data.encode(), f"{self.epoch}:{self.seq}" if known else "")

    def _broadcast_resync(self, reason: str) -> None:
        chunk = self._resync(reason)
        for subscriber in self._subscribers:
            subscriber.put(chunk)

    def receive(self, data: bytes) -> None:
        """One message of the daemon's stream: keep it, and hand it to the connections."""
        try:
            message: Any = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        topic, epoch, seq = message.get("topic"), message.get("epoch"), message.get("seq")
        if not isinstance(topic, str) or not isinstance(epoch, str):
            return
        if not (seq is None or isinstance(seq, int)):
            return
        restarted = self.epoch is not None and epoch != self.epoch
        if epoch != self.epoch:
            # A new run of the daemon: what the gateway kept, and what clients hold, is stale.
            self.epoch, self.seq, self._since = epoch, None, None
            self._buffer.clear()
        state_event = topic.startswith("assistant.") and seq is not None
        if seq is not None:
            self._follow(seq, state_event)
        if restarted:
            self._broadcast_resync("the daemon restarted (another epoch)")
        if topic in QUIET_TOPICS:
            return
        if state_event:
            assert seq is not None
            event = StateEvent(epoch, seq, topic, sse_chunk(topic, data, f"{epoch}:{seq}"))
            self._buffer.append(event)
            if self._since is not None and self._buffer[0].seq > self._since + 1:
                self._since = self._buffer[0].seq - 1  # older events fell out of the buffer
            chunk = event.chunk
        else:
            chunk = sse_chunk(topic, data)
        for subscriber in self._subscribers:
            if subscriber.wants(topic):
                subscriber.put(chunk)

    def _follow(self, seq: int, state_event: bool) -> None:
        """Move :attr:`seq` on; a gap (events the gateway did not get) empties the buffer."""
        since = seq - 1 if state_event else seq
        if self.seq is None:
            self._since = since
        elif seq != self.seq + 1 if state_event else seq != self.seq:
            self._buffer.clear()
            self._since = since
            self._broadcast_resync("events were lost between the daemon and the gateway")
        self.seq = seq

    async def _run(self) -> None:
        context = zmq.asyncio.Context()
        socket = context.socket(zmq.SUB)
        try:
            socket.setsockopt(zmq.LINGER, 0)
            for option, value in self._security.socket_options(self.endpoint):
                socket.setsockopt(option, value)
            socket.connect(self.endpoint)
            socket.setsockopt(zmq.SUBSCRIBE, b"")
            while True:
                frames = await socket.recv_multipart()
                if len(frames) == 2:
                    self.receive(frames[1])
        finally:
            socket.close(linger=0)
            context.term()

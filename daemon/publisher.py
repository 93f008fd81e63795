"""The event publisher: an XPUB socket, the one sequence of state events, welcomes, heartbeats.

Publishing never waits: the socket drops what a subscriber's queue (its high-water mark) cannot
take, so a subscriber that stops reading costs the daemon a bounded amount of memory and no time,
and finds a gap in ``seq`` when it reads again (then it takes a new snapshot).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog
import zmq
import zmq.asyncio

from assistantd.protocol.assistant import Assistant, State
from assistantd.protocol.codec import encode
from assistantd.protocol.events import (
    HEARTBEAT_INTERVAL,
    AssistantCreated,
    AssistantDeleted,
    AssistantInvalid,
    AssistantStateChanged,
    AssistantUpdated,
    Cause,
    DaemonHeartbeat,
    DaemonStopping,
    DaemonWelcome,
    DownloadProgress,
    Event,
    StateEvent,
    WorkerEvent,
)
from assistantd.protocol.lifecycle import transition

log = structlog.get_logger("assistantd.publisher")

SUBSCRIBER_QUEUE = 10_000
"""Events queued for one subscriber before the newest are dropped for it (ZMQ_SNDHWM)."""


class Publisher:
    """Publishes events on a bound XPUB socket; ``seq`` is the last state event's number."""

    def __init__(self, socket: zmq.asyncio.Socket, epoch: str) -> None:
        self._socket = socket
        self.epoch = epoch
        self.seq = 0
        self.state_listeners: list[Callable[[], None]] = []
        """Called after each state event (the daemon's status for systemd is counted again)."""

    @staticmethod
    def configure(socket: zmq.asyncio.Socket) -> None:
        """Socket options the publisher relies on; set them before ``bind``."""
        socket.setsockopt(zmq.SNDHWM, SUBSCRIBER_QUEUE)
        # Every subscription reaches the daemon, not only the first for a prefix, so that each
        # new subscriber gets its welcome.
        socket.setsockopt(zmq.XPUB_VERBOSE, 1)
        socket.setsockopt(zmq.LINGER, 0)

    # --- state events (each takes the next seq) ----------------------------------------------

    def moved(
        self, previous: State | None, assistant: Assistant, cause: Cause, **extra: Any
    ) -> None:
        """Publish the event of the lifecycle move ``previous`` -> ``assistant.state``."""
        topic = transition(previous, assistant.state)
        if topic == "assistant.created":
            self._state(AssistantCreated, cause=cause, assistant=assistant)
        else:
            assert previous is not None  # the table has no other move from nothing
            self._state(
                AssistantStateChanged,
                cause=cause,
                assistant=assistant,
                previous=previous,
                **extra,
            )

    def updated(self, assistant: Assistant, cause: Cause) -> None:
        self._state(AssistantUpdated, cause=cause, assistant=assistant)

    def deleted(self, previous: State | None, assistant_id: str, cause: Cause) -> None:
        """``previous`` is None for a folder that was only ever reported invalid (never listed,
        so it has no lifecycle state): its ``deleted`` tells subscribers to drop the record."""
        if previous is not None:
            transition(previous, None)  # raises for a move the table does not allow
        self._state(AssistantDeleted, cause=cause, assistant_id=assistant_id)

    def invalid(self, assistant_id: str, path: str, reason: str, *, served: bool) -> None:
        self._state(
            AssistantInvalid,
            cause="file",
            assistant_id=assistant_id,
            path=path,
            reason=reason,
            served=served,
        )

    def _state(self, event_type: type[StateEvent], **fields: Any) -> None:
        self.seq += 1
        self._send(event_type(epoch=self.epoch, time=time.time(), seq=self.seq, **fields))
        for listener in self.state_listeners:
            listener()

    # --- worker events (no seq) -----------------------------------------------------------------

    def worker(self, event_type: type[WorkerEvent], **fields: Any) -> None:
        """Publish a ``worker.*`` event (``assistant_id``, ``pid`` and the event's own fields)."""
        self._send(event_type(epoch=self.epoch, time=time.time(), **fields))

    def progress(self, assistant_id: str, done: int, total: int | None, rate: float) -> None:
        """Publish ``download.progress``."""
        self._send(
            DownloadProgress(
                epoch=self.epoch,
                time=time.time(),
                assistant_id=assistant_id,
                bytes=done,
                total=total,
                rate=rate,
            )
        )

    # --- daemon events --------------------------------------------------------------------------

    def stopping(self) -> None:
        self._send(DaemonStopping(epoch=self.epoch, time=time.time(), seq=self.seq))

    async def serve(self, stop: asyncio.Event) -> None:
        """Welcome every new subscription and beat the heart, until ``stop`` is set."""
        async with asyncio.TaskGroup() as tasks:
            welcomer = tasks.create_task(self._welcome_subscriptions())
            await self._beat(stop)
            welcomer.cancel()

    async def _beat(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with asyncio.timeout(HEARTBEAT_INTERVAL):
                    await stop.wait()
            except TimeoutError:
                self._send(DaemonHeartbeat(epoch=self.epoch, time=time.time(), seq=self.seq))

    async def _welcome_subscriptions(self) -> None:
        while True:
            message = await self._socket.recv()
            # XPUB passes subscriptions up as one frame: 1 (subscribe) or 0, then the prefix.
            if message[:1] != b"\x01":
                continue
            prefix = message[1:]
            welcome = DaemonWelcome(
                epoch=self.epoch,
                time=time.time(),
                seq=self.seq,
                subscription=prefix.decode(errors="replace"),
            )
            # On the subscription's own prefix, so that it reaches the new subscriber whatever
            # it subscribed to.
            self._send(welcome, topic=prefix)

    def _send(self, event: Event, *, topic: bytes | None = None) -> None:
        frames = [topic if topic is not None else _topic_of(event), encode(event)]
        sent = self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
        if isinstance(sent, asyncio.Future) and sent.done() and (problem := sent.exception()):
            log.warning("event dropped", reason=str(problem))


def _topic_of(event: Event) -> bytes:
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag.encode()

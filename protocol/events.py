"""The event stream: every event the daemon publishes, and the snapshot that goes with it.

An event is two frames, ``[topic, json]``; the JSON carries its ``topic`` too, so one decoder
(a tagged union on ``topic``) reads them all. Every event has the daemon's ``epoch`` (new at each
start) and ``time`` (Unix seconds). State events, whose topics start with ``assistant.``, carry
``seq``: one sequence over all of them, each the previous plus one, so a subscriber that misses
one sees the gap. ``daemon.heartbeat`` and ``daemon.welcome`` carry the current ``seq`` without
using one up. See PROTOCOL.md, "Events", for the Clone-pattern recipe a client follows.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .assistant import Assistant, State, WorkerExit

Cause = Literal["request", "file", "daemon"]
"""What made a change: a command, a file in the root (edited, added or removed by hand), or the
daemon itself (a download, a worker)."""

STATE_TOPIC_PREFIX = "assistant."


class Event(msgspec.Struct, kw_only=True, tag_field="topic"):
    epoch: str
    time: float


class StateEvent(Event, kw_only=True):
    seq: int
    cause: Cause


class AssistantCreated(StateEvent, kw_only=True, tag="assistant.created"):
    """A new assistant: created by a command, a folder copied in, a download registered."""

    assistant: Assistant


class AssistantUpdated(StateEvent, kw_only=True, tag="assistant.updated"):
    """An assistant's definition changed (its state did not)."""

    assistant: Assistant


class AssistantStateChanged(StateEvent, kw_only=True, tag="assistant.state"):
    """An assistant moved between the lifecycle's states (``previous`` -> ``assistant.state``)."""

    assistant: Assistant
    previous: State
    error: dict[str, object] | None = None


class AssistantDeleted(StateEvent, kw_only=True, tag="assistant.deleted"):
    """An assistant is gone: deleted by a command or its folder removed."""

    assistant_id: str


class AssistantInvalid(StateEvent, kw_only=True, tag="assistant.invalid"):
    """An ``assistant.json`` cannot be used. ``served`` says whether the last good version of the
    assistant is still served (it is, until the file is fixed); it is false for a folder that
    never had a valid file, which is not listed."""

    assistant_id: str
    path: str
    reason: str
    served: bool


class WorkerEvent(Event, kw_only=True):
    """What a worker said or did. Not state: no ``seq``, and a subscriber that misses some
    (its queue was full) has lost nothing a snapshot would give back."""

    assistant_id: str
    pid: int


class WorkerMessage(WorkerEvent, kw_only=True, tag="worker.message"):
    """A message the worker sent on its own (``process.send``, ``parentPort.postMessage``)."""

    message: Any


class WorkerLog(WorkerEvent, kw_only=True, tag="worker.log"):
    """One line the worker (or the ``npm install`` before its first start) wrote."""

    stream: Literal["stdout", "stderr", "install"]
    line: str


class WorkerExited(WorkerEvent, kw_only=True, tag="worker.exited"):
    """The worker process ended; ``restart`` says whether the daemon will start it again."""

    exit: WorkerExit
    restart: bool


class DownloadProgress(Event, kw_only=True, tag="download.progress"):
    """How far a download is: at most about ten a second per download. Not state (no
    ``seq``): the next one says more."""

    assistant_id: str
    bytes: int
    total: int | None
    """The size the server announced, or None."""
    rate: float
    """Bytes a second, lately."""


class DaemonWelcome(Event, kw_only=True, tag="daemon.welcome"):
    """Sent when a subscription arrives, on that subscription's own topic prefix (its first
    frame), so the subscriber knows it is live before it takes a snapshot."""

    seq: int
    subscription: str


class DaemonHeartbeat(Event, kw_only=True, tag="daemon.heartbeat"):
    """About every second: the daemon lives, and ``seq`` is the last state event's."""

    seq: int


class DaemonStopping(Event, kw_only=True, tag="daemon.stopping"):
    """The daemon's last event before it stops; ``seq`` is final for this epoch."""

    seq: int


AnyEvent = (
    AssistantCreated
    | AssistantUpdated
    | AssistantStateChanged
    | AssistantDeleted
    | AssistantInvalid
    | WorkerMessage
    | WorkerLog
    | WorkerExited
    | DownloadProgress
    | DaemonWelcome
    | DaemonHeartbeat
    | DaemonStopping
)

HEARTBEAT_INTERVAL = 1.0
"""Seconds between heartbeats; a client that misses three should take a new snapshot."""


class InvalidFile(msgspec.Struct, kw_only=True):
    assistant_id: str
    path: str
    reason: str
    served: bool


class Snapshot(msgspec.Struct, kw_only=True):
    """getSnapshot's result: every assistant and every invalid file, as of ``seq``."""

    object: Literal["snapshot"] = "snapshot"
    epoch: str
    seq: int
    assistants: list[Assistant]
    invalid: list[InvalidFile]


_event_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)


def decode_event(body: bytes) -> AnyEvent:
    """The event in an event's JSON frame (raises msgspec.DecodeError for one it cannot read)."""
    event: AnyEvent = _event_decoder.decode(body)
    return event

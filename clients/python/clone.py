"""The client side of the Clone pattern, sans I/O: a mirror of the daemon's state and the rules
that keep it exact. The async and the sync watch (``awatch``, ``watch``) own the sockets; they
feed this module what arrives, ask it what to do next, and yield what it hands back.

The recipe (PROTOCOL.md, "Mirroring the state"; the ZeroMQ Guide's Clone pattern):

1. subscribe to ``assistant.`` (the state events) and ``daemon.`` (welcomes and heartbeats);
2. wait until every subscription is live: any message on its prefix proves it, as the daemon
   filters on its side; the ``daemon.welcome`` it sends on each new subscription's own prefix
   makes sure one comes;
3. take a snapshot (getSnapshot), drop queued state events with ``seq`` <= the snapshot's, apply
   the rest in order;
4. take a new snapshot on a gap (a state event that is not the last one plus one, or a
   heartbeat whose ``seq`` is ahead of the mirror), on a new epoch (the daemon restarted), or
   after three heartbeat intervals without a word from the daemon.

Each snapshot taken is reported as a :class:`Synced` notification, as the mirror then jumps to
a new state without an event for each change.

>>> clone = CloneSync("assistant.")
>>> clone.subscriptions
('assistant.', 'daemon.')
>>> welcome = b'{"topic": "daemon.welcome", "epoch": "e1", "time": 0, "seq": 7, "subscription": ""}'
>>> clone.receive([b"assistant.", welcome], now=0.0), clone.receive([b"daemon.", welcome], 0.0)
([], [])
>>> clone.next_step(now=0.0)
'snapshot'
>>> [synced] = clone.snapshot_taken(Snapshot(epoch="e1", seq=7, assistants=[], invalid=[]), 0.0)
>>> synced.reason, clone.mirror.seq
('start', 7)
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec

from assistantd.protocol.assistant import Assistant
from assistantd.protocol.errors import UnavailableError
from assistantd.protocol.events import (
    HEARTBEAT_INTERVAL,
    STATE_TOPIC_PREFIX,
    AnyEvent,
    AssistantCreated,
    AssistantDeleted,
    AssistantInvalid,
    AssistantStateChanged,
    AssistantUpdated,
    DaemonHeartbeat,
    DaemonStopping,
    DaemonWelcome,
    DownloadProgress,
    InvalidFile,
    Snapshot,
    WorkerExited,
    WorkerLog,
    WorkerMessage,
    decode_event,
)

DAEMON_TOPIC_PREFIX = "daemon."
SILENCE_HEARTBEATS = 3
"""Heartbeat intervals without any message after which the mirror is no longer trusted."""

SyncReason = Literal["start", "gap", "epoch", "silence"]


class Synced(msgspec.Struct, kw_only=True, tag_field="topic", tag="client.synced"):
    """Not a wire event: the watch took a snapshot, and its mirror now shows the daemon's state
    as of ``seq``. ``reason`` says why: ``start``, ``gap`` (events were lost), ``epoch`` (the
    daemon restarted) or ``silence`` (no heartbeat for three intervals). Changes that the
    snapshot brought in were not yielded one by one: look at the mirror."""

    reason: SyncReason
    epoch: str
    seq: int
    time: float


StateChange = (
    AssistantCreated
    | AssistantUpdated
    | AssistantStateChanged
    | AssistantDeleted
    | AssistantInvalid
)
"""The state events (topics ``assistant.*``), each with its ``seq``."""

WorkerActivity = WorkerMessage | WorkerLog | WorkerExited
"""The workers' events (topics ``worker.*``): not state, no ``seq``, nothing to mirror."""

Activity = WorkerActivity | DownloadProgress
"""The activity events, the workers' and the downloads' (``download.progress``): not state, no
``seq``, nothing to mirror."""

WatchEvent = StateChange | Activity | DaemonStopping | Synced
"""What a watch yields: the state events, the activity events (the workers', the downloads'),
``daemon.stopping``, and its own :class:`Synced`."""


class TimedOut:
    """What a watch's loop hands its ``next(timeout)`` when the time ran out (never yielded to
    the caller, who gets :class:`TimeoutError`)."""


def topic_of(event: AnyEvent | Synced) -> str:
    """The topic of an event, as its first frame names it (``assistant.updated`` ...)."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


class Mirror:
    """The daemon's state as far as the events tell: what getSnapshot would return now.

    ``assistants`` and ``invalid`` are keyed by assistant id; ``seq`` is the last state event
    applied (or the snapshot's), ``epoch`` the daemon's (None before the first snapshot).
    """

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.seq = 0
        self.assistants: dict[str, Assistant] = {}
        self.invalid: dict[str, InvalidFile] = {}

    def __repr__(self) -> str:
        return (
            f"<Mirror epoch={self.epoch} seq={self.seq} assistants={len(self.assistants)} "
            f"invalid={len(self.invalid)}>"
        )

    def reset(self, snapshot: Snapshot) -> None:
        self.epoch = snapshot.epoch
        self.seq = snapshot.seq
        self.assistants = {assistant.id: assistant for assistant in snapshot.assistants}
        self.invalid = {invalid.assistant_id: invalid for invalid in snapshot.invalid}

    def apply(self, event: StateChange) -> None:
        """Apply one state event, as the daemon's live state did when it published it."""
        match event:
            case AssistantCreated(assistant=assistant) | AssistantUpdated(assistant=assistant):
                # A valid definition read (or written) clears the record of a broken one.
                self.assistants[assistant.id] = assistant
                self.invalid.pop(assistant.id, None)
            case AssistantStateChanged(assistant=assistant):
                self.assistants[assistant.id] = assistant
            case AssistantDeleted(assistant_id=assistant_id):
                self.assistants.pop(assistant_id, None)
                self.invalid.pop(assistant_id, None)
            case AssistantInvalid():
                self.invalid[event.assistant_id] = InvalidFile(
                    assistant_id=event.assistant_id,
                    path=event.path,
                    reason=event.reason,
                    served=event.served,
                )
        self.seq = event.seq


def subscriptions_for(prefix: str) -> tuple[str, ...]:
    """The prefixes to subscribe to: the two the mirror needs, and the caller's own if those do
    not cover it; none that another one covers (the daemon would send such messages twice).

    >>> subscriptions_for(""), subscriptions_for("assistant.deleted")
    (('',), ('assistant.', 'daemon.'))
    >>> subscriptions_for("worker.")
    ('assistant.', 'daemon.', 'worker.')
    """
    wanted = dict.fromkeys((STATE_TOPIC_PREFIX, DAEMON_TOPIC_PREFIX, prefix))
    return tuple(
        one for one in wanted if not any(one.startswith(other) for other in wanted if other != one)
    )


Step = Literal["snapshot"] | float
"""What a watch does next: take a snapshot, or wait this many seconds for a message."""


class CloneSync:
    """The Clone pattern's state machine for one subscriber: messages and snapshots in, the
    events to yield out. Times are ``time.monotonic()`` seconds, passed in by the caller.

    ``prefix`` narrows what is yielded, not what is mirrored. ``start_timeout`` bounds the wait
    for the first snapshot (a stale socket file would otherwise make a watch wait forever);
    once synced, a watch outlives daemon restarts and waits for the next daemon.
    """

    def __init__(
        self,
        prefix: str = "",
        *,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        start_timeout: float | None = None,
        now: float | None = None,
    ) -> None:
        self.prefix = prefix
        self.subscriptions = subscriptions_for(prefix)
        self.mirror = Mirror()
        self.silence = SILENCE_HEARTBEATS * heartbeat_interval
        self._synced_once = False
        self._wanted: SyncReason | None = "start"
        """Why the next snapshot is needed; None while the mirror is in sync."""
        self._live_epoch: str | None = None
        self._live: set[str] = set()
        """The subscriptions proved live by a message of ``_live_epoch``."""
        now = time.monotonic() if now is None else now
        self._last_heard = now
        self._retry_at: float | None = None
        self._give_up_at = None if start_timeout is None else now + start_timeout

    @property
    def in_sync(self) -> bool:
        """False from a sign of lost events (or a new daemon) until the snapshot that repairs
        the mirror."""
        return self._wanted is None

    @property
    def started(self) -> bool:
        """Whether a first snapshot was taken."""
        return self._synced_once

    # --- what happens next ------------------------------------------------------------------

    def next_step(self, now: float) -> Step:
        """``"snapshot"`` when one is needed and may be taken now, else how long to wait for a
        message before calling :meth:`waited`."""
        if self._wanted is None:
            return self._last_heard + self.silence - now
        if self._retry_at is not None:
            return self._retry_at - now
        if self._live.issuperset(self.subscriptions):
            return "snapshot"
        if self._give_up_at is not None and not self._synced_once:
            return self._give_up_at - now
        return self.silence  # nothing to do until the (next) daemon welcomes us

    def waited(self, now: float) -> None:
        """The wait that :meth:`next_step` asked for ran out without a message."""
        if self._wanted is None:
            if now >= self._last_heard + self.silence:
                self._wanted = "silence"
            return
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
        if not self._synced_once and self._give_up_at is not None and now >= self._give_up_at:
            raise UnavailableError(
                "The daemon's event stream did not welcome this subscriber in time: is the "
                "daemon running? (its events endpoint may be left over from one that is not)",
                code="timeout",
            )

    # --- input ------------------------------------------------------------------------------

    def receive(self, frames: list[bytes], now: float) -> list[WatchEvent]:
        """One message from the SUB socket; the events to yield for it."""
        self._last_heard = now
        self._retry_at = None  # the daemon speaks: worth asking it again at once
        if len(frames) != 2:
            return []
        topic, body = frames
        try:
            event = decode_event(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            # A topic this version does not know, or a frame it cannot read. If it was a state
            # event, the seq after it shows the gap.
            return []
        if event.epoch != self._live_epoch:
            self._live_epoch = event.epoch
            self._live = set()
        self._live.update(p for p in self.subscriptions if topic.startswith(p.encode()))
        if isinstance(event, DaemonStopping):
            # Its subscriptions end with it; the next daemon welcomes them anew, and only then
            # is a snapshot worth taking (it would find no daemon before).
            self._live = set()
            if self._wanted != "start":
                self._wanted = "epoch"
            return [event] if self._wants(event) else []
        if isinstance(event, Activity):
            # Not state: no snapshot holds it, so it is yielded also while the mirror waits for
            # one; but only from the first snapshot on, which a watch always yields first.
            wanted = self._synced_once and self._wants(event)
            return [event] if wanted else []
        if self._wanted is not None:
            # Whatever this says is in the snapshot still to be taken.
            return []
        if event.epoch != self.mirror.epoch:
            self._wanted = "epoch"
            return []
        match event:
            case (
                AssistantCreated()
                | AssistantUpdated()
                | AssistantStateChanged()
                | AssistantDeleted()
                | AssistantInvalid()
            ):
                return self._state_event(event)
            case DaemonHeartbeat() | DaemonWelcome():
                # Messages from one publisher arrive in order: one that is ahead of the mirror
                # means the state events before it were lost (the last ones of a burst, which
                # no later state event would show).
                if event.seq > self.mirror.seq:
                    self._wanted = "gap"
        return []

    def snapshot_taken(self, snapshot: Snapshot, now: float) -> list[WatchEvent]:
        """The reply to the getSnapshot that :meth:`next_step` asked for."""
        if snapshot.epoch != self._live_epoch:
            # Another daemon answered than the one our subscriptions are known to be live at:
            # what it published before they reach it would be lost. Wait for its welcome.
            self._live_epoch = snapshot.epoch
            self._live = set()
            self._wanted = "epoch"
            return []
        reason = self._wanted or "start"
        self.mirror.reset(snapshot)
        self._wanted = None
        self._synced_once = True
        self._last_heard = now
        return [Synced(reason=reason, epoch=snapshot.epoch, seq=snapshot.seq, time=time.time())]

    def snapshot_failed(self, now: float) -> None:
        """getSnapshot got no answer: try again after a silence, or as soon as a message comes.

        Before the first snapshot the caller raises instead: a watch that never started should
        say so at once.
        """
        self._retry_at = now + self.silence

    # --- rules ------------------------------------------------------------------------------

    def _state_event(self, event: StateChange) -> list[WatchEvent]:
        if event.seq <= self.mirror.seq:
            return []  # in the snapshot already
        if event.seq != self.mirror.seq + 1:
            self._wanted = "gap"
            return []
        self.mirror.apply(event)
        return [event] if self._wants(event) else []

    def _wants(self, event: AnyEvent) -> bool:
        return topic_of(event).startswith(self.prefix)

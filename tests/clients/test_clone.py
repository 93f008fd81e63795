"""The Clone pattern's rules (``assistantd.client.clone``), with no socket and no clock."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from assistantd.client.clone import CloneSync, Mirror, Synced, subscriptions_for, topic_of
from assistantd.protocol.assistant import Assistant
from assistantd.protocol.errors import UnavailableError
from assistantd.protocol.events import (
    AssistantCreated,
    AssistantDeleted,
    AssistantInvalid,
    AssistantStateChanged,
    AssistantUpdated,
    DaemonHeartbeat,
    DaemonStopping,
    DaemonWelcome,
    Event,
    InvalidFile,
    Snapshot,
)

EPOCH = "e1"


def frames(event: Event, topic: str | None = None) -> list[bytes]:
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return [(topic if topic is not None else tag).encode(), msgspec.json.encode(event)]


def assistant(assistant_id: str, **fields: Any) -> Assistant:
    return Assistant(id=assistant_id, created_at=1, **fields)


def created(seq: int, assistant_id: str, epoch: str = EPOCH, **fields: Any) -> AssistantCreated:
    return AssistantCreated(
        epoch=epoch, time=0, seq=seq, cause="file", assistant=assistant(assistant_id, **fields)
    )


def updated(seq: int, assistant_id: str, **fields: Any) -> AssistantUpdated:
    return AssistantUpdated(
        epoch=EPOCH, time=0, seq=seq, cause="file", assistant=assistant(assistant_id, **fields)
    )


def deleted(seq: int, assistant_id: str) -> AssistantDeleted:
    return AssistantDeleted(epoch=EPOCH, time=0, seq=seq, cause="file", assistant_id=assistant_id)


def invalid(seq: int, assistant_id: str, *, served: bool = True) -> AssistantInvalid:
    return AssistantInvalid(
        epoch=EPOCH,
        time=0,
        seq=seq,
        cause="file",
        assistant_id=assistant_id,
        path=f"/r/{assistant_id}/assistant.json",
        reason="is not valid JSON",
        served=served,
    )


def welcome(seq: int, epoch: str = EPOCH) -> DaemonWelcome:
    return DaemonWelcome(epoch=epoch, time=0, seq=seq, subscription="")


def heartbeat(seq: int, epoch: str = EPOCH) -> DaemonHeartbeat:
    return DaemonHeartbeat(epoch=epoch, time=0, seq=seq)


def snapshot(seq: int, *ids: str, epoch: str = EPOCH) -> Snapshot:
    return Snapshot(epoch=epoch, seq=seq, assistants=[assistant(one) for one in ids], invalid=[])


def welcomed(clone: CloneSync, seq: int, epoch: str = EPOCH, now: float = 0.0) -> None:
    for prefix in clone.subscriptions:
        assert clone.receive(frames(welcome(seq, epoch), topic=prefix), now) == []


def synced_clone(seq: int = 0, *ids: str, prefix: str = "assistant.") -> CloneSync:
    clone = CloneSync(prefix, now=0.0)
    welcomed(clone, seq)
    assert clone.next_step(0.0) == "snapshot"
    [done] = clone.snapshot_taken(snapshot(seq, *ids), 0.0)
    assert isinstance(done, Synced)
    assert done.reason == "start"
    return clone


def test_subscriptions_cover_the_mirror_and_the_callers_prefix_once() -> None:
    assert subscriptions_for("") == ("",)
    assert subscriptions_for("assistant.") == ("assistant.", "daemon.")
    assert subscriptions_for("daemon.stopping") == ("assistant.", "daemon.")
    assert subscriptions_for("assist") == ("daemon.", "assist")
    assert subscriptions_for("download.") == ("assistant.", "daemon.", "download.")


def test_no_snapshot_before_every_subscription_is_live() -> None:
    clone = CloneSync("assistant.", now=0.0)
    clone.receive(frames(welcome(3), topic="daemon."), 0.0)
    clone.receive(frames(heartbeat(3)), 0.1)
    assert clone.next_step(0.1) != "snapshot"
    # Any message on the prefix proves the subscription, as the daemon filters on its side.
    clone.receive(frames(created(4, "a")), 0.2)
    assert clone.next_step(0.2) == "snapshot"


def test_updates_up_to_the_snapshot_are_dropped_and_later_ones_applied() -> None:
    clone = synced_clone(2, "a", "b")
    assert clone.receive(frames(created(2, "b")), 0.1) == []
    out = clone.receive(frames(updated(3, "a", name="A")), 0.1)
    assert [topic_of(event) for event in out] == ["assistant.updated"]
    assert clone.mirror.seq == 3
    assert clone.mirror.assistants["a"].name == "A"
    assert clone.in_sync


def test_apply_rules_follow_the_daemons_live_state() -> None:
    mirror = Mirror()
    mirror.reset(snapshot(0, "a"))
    mirror.apply(invalid(1, "a"))
    mirror.apply(invalid(2, "new", served=False))
    assert set(mirror.invalid) == {"a", "new"}
    mirror.apply(updated(3, "a", name="fixed"))  # a valid version clears the broken one
    assert set(mirror.invalid) == {"new"}
    mirror.apply(created(4, "new"))
    assert mirror.invalid == {}
    mirror.apply(invalid(5, "new"))
    mirror.apply(deleted(6, "new"))  # gone with its folder, broken file and all
    assert set(mirror.assistants) == {"a"}
    assert mirror.invalid == {}
    running = assistant("a", state="running")
    mirror.apply(
        AssistantStateChanged(
            epoch=EPOCH, time=0, seq=7, cause="daemon", assistant=running, previous="ready"
        )
    )
    assert mirror.assistants["a"].state == "running"
    assert mirror.seq == 7
    assert mirror.invalid == {}


def test_the_mirror_takes_the_snapshots_invalid_files() -> None:
    mirror = Mirror()
    broken = InvalidFile(assistant_id="x", path="/r/x/assistant.json", reason="r", served=False)
    mirror.reset(Snapshot(epoch=EPOCH, seq=4, assistants=[], invalid=[broken]))
    assert mirror.invalid == {"x": broken}
    assert (mirror.epoch, mirror.seq) == (EPOCH, 4)


def test_a_gap_asks_for_a_new_snapshot() -> None:
    clone = synced_clone(1, "a")
    assert clone.receive(frames(updated(3, "a")), 0.1) == []
    assert not clone.in_sync
    assert clone.next_step(0.1) == "snapshot"
    [done] = clone.snapshot_taken(snapshot(3, "a"), 0.2)
    assert isinstance(done, Synced)
    assert done.reason == "gap"
    assert clone.in_sync


def test_a_heartbeat_ahead_of_the_mirror_is_a_gap() -> None:
    clone = synced_clone(1, "a")
    clone.receive(frames(heartbeat(1)), 0.5)
    assert clone.in_sync
    clone.receive(frames(heartbeat(2)), 1.0)  # the last event of a burst was lost
    assert not clone.in_sync
    [done] = clone.snapshot_taken(snapshot(2, "a"), 1.1)
    assert isinstance(done, Synced)
    assert done.reason == "gap"


def test_a_new_epoch_asks_for_a_snapshot_of_the_new_daemon() -> None:
    clone = synced_clone(5, "a")
    assert clone.receive(frames(created(1, "b", epoch="e2")), 1.0) == []
    assert not clone.in_sync
    # The event proves `assistant.` live at the new daemon, not yet `daemon.`.
    assert clone.next_step(1.0) != "snapshot"
    clone.receive(frames(welcome(1, "e2"), topic="daemon."), 1.1)
    assert clone.next_step(1.1) == "snapshot"
    [done] = clone.snapshot_taken(snapshot(1, "b", epoch="e2"), 1.2)
    assert isinstance(done, Synced)
    assert (done.reason, done.epoch) == ("epoch", "e2")
    assert set(clone.mirror.assistants) == {"b"}


def test_stopping_is_yielded_and_the_next_daemon_awaited() -> None:
    clone = synced_clone(2, "a", prefix="")
    stopping = DaemonStopping(epoch=EPOCH, time=0, seq=2)
    assert clone.receive(frames(stopping), 1.0) == [stopping]
    assert not clone.in_sync
    # No snapshot attempts while no daemon welcomes us, however long that takes.
    for now in (2.0, 10.0, 100.0):
        step = clone.next_step(now)
        assert step != "snapshot"
        clone.waited(now)
    welcomed(clone, 0, "e2", now=101.0)
    assert clone.next_step(101.0) == "snapshot"


def test_a_snapshot_from_another_daemon_than_the_welcome_is_not_trusted() -> None:
    clone = synced_clone(2, "a")
    clone.receive(frames(heartbeat(2)), 3.5)
    for now in (3.6, 6.6):
        clone.waited(now)
    assert clone.next_step(6.6) == "snapshot"  # silence
    # The daemon restarted between its last message and our snapshot request.
    assert clone.snapshot_taken(snapshot(0, "b", epoch="e2"), 6.7) == []
    assert set(clone.mirror.assistants) == {"a"}
    assert clone.next_step(6.7) != "snapshot"
    welcomed(clone, 0, "e2", now=6.8)
    [done] = clone.snapshot_taken(snapshot(0, "b", epoch="e2"), 6.9)
    assert isinstance(done, Synced)
    assert set(clone.mirror.assistants) == {"b"}


def test_three_silent_heartbeat_intervals_ask_for_a_snapshot() -> None:
    clone = synced_clone(0, "a")
    clone.receive(frames(heartbeat(0)), 10.0)
    step = clone.next_step(10.0)
    assert step == pytest.approx(3.0)
    clone.waited(12.9)
    assert clone.in_sync
    clone.waited(13.0)
    assert clone.next_step(13.0) == "snapshot"
    [done] = clone.snapshot_taken(snapshot(0, "a"), 13.1)
    assert isinstance(done, Synced)
    assert done.reason == "silence"


def test_a_failed_snapshot_is_retried_after_a_silence_or_at_the_next_message() -> None:
    clone = synced_clone(0, "a")
    clone.waited(3.0)
    assert clone.next_step(3.0) == "snapshot"
    clone.snapshot_failed(3.0)
    assert clone.next_step(3.0) == pytest.approx(3.0)
    clone.waited(6.0)
    assert clone.next_step(6.0) == "snapshot"
    clone.snapshot_failed(6.0)
    clone.receive(frames(heartbeat(0)), 6.5)
    assert clone.next_step(6.5) == "snapshot"


def test_no_welcome_before_the_start_timeout_is_an_error() -> None:
    clone = CloneSync(start_timeout=2.0, now=0.0)
    assert clone.next_step(0.0) == pytest.approx(2.0)
    clone.waited(1.9)
    with pytest.raises(UnavailableError):
        clone.waited(2.0)


def test_the_prefix_narrows_what_is_yielded_not_what_is_mirrored() -> None:
    clone = synced_clone(0, "a", prefix="assistant.deleted")
    assert clone.receive(frames(created(1, "b")), 0.1) == []
    assert clone.receive(frames(updated(2, "a", name="A")), 0.1) == []
    out = clone.receive(frames(deleted(3, "b")), 0.1)
    assert [topic_of(event) for event in out] == ["assistant.deleted"]
    assert set(clone.mirror.assistants) == {"a"}
    assert clone.mirror.assistants["a"].name == "A"
    stopping = DaemonStopping(epoch=EPOCH, time=0, seq=3)
    assert clone.receive(frames(stopping), 0.2) == []


def test_messages_it_cannot_read_are_skipped() -> None:
    clone = synced_clone(0, "a")
    assert clone.receive([b"worker.log", b'{"topic": "worker.log", "epoch": "e1"}'], 0.1) == []
    assert clone.receive([b"assistant.created", b"not json"], 0.1) == []
    assert clone.receive([b"one frame"], 0.1) == []
    assert clone.in_sync
    # A state event that could not be read shows as a gap at the next one.
    assert clone.receive(frames(created(2, "b")), 0.2) == []
    assert not clone.in_sync


def test_a_daemon_stopping_before_the_repair_is_awaited_too() -> None:
    clone = synced_clone(1, "a")
    clone.receive(frames(updated(3, "a")), 0.1)  # a gap: a snapshot is due
    assert clone.next_step(0.1) == "snapshot"
    clone.receive(frames(DaemonStopping(epoch=EPOCH, time=0, seq=3)), 0.2)
    assert clone.next_step(0.2) != "snapshot"
    welcomed(clone, 0, "e2", now=0.3)
    [done] = clone.snapshot_taken(snapshot(0, "b", epoch="e2"), 0.4)
    assert isinstance(done, Synced)
    assert done.reason == "epoch"


def test_a_daemon_stopping_before_the_start_is_still_a_start() -> None:
    clone = CloneSync("assistant.", now=0.0)
    clone.receive(frames(DaemonStopping(epoch=EPOCH, time=0, seq=0), topic="daemon."), 0.1)
    welcomed(clone, 0, "e2", now=0.2)
    [done] = clone.snapshot_taken(snapshot(0, epoch="e2"), 0.3)
    assert isinstance(done, Synced)
    assert done.reason == "start"

from __future__ import annotations

import msgspec
import pytest

from assistantd.protocol.assistant import Assistant
from assistantd.protocol.codec import encode
from assistantd.protocol.events import (
    AssistantCreated,
    AssistantDeleted,
    AssistantInvalid,
    AssistantStateChanged,
    AssistantUpdated,
    DaemonHeartbeat,
    DaemonStopping,
    DaemonWelcome,
    Snapshot,
    decode_event,
)

JAN = Assistant(id="jan", created_at=1_700_000_000, name="Jan")

EXAMPLES = [
    AssistantCreated(epoch="e", time=1.5, seq=1, cause="file", assistant=JAN),
    AssistantUpdated(epoch="e", time=1.5, seq=2, cause="request", assistant=JAN),
    AssistantStateChanged(
        epoch="e", time=1.5, seq=3, cause="daemon", assistant=JAN, previous="running"
    ),
    AssistantDeleted(epoch="e", time=1.5, seq=4, cause="request", assistant_id="jan"),
    AssistantInvalid(
        epoch="e",
        time=1.5,
        seq=5,
        cause="file",
        assistant_id="jan",
        path="/r/jan/assistant.json",
        reason="is not valid JSON",
        served=True,
    ),
    DaemonWelcome(epoch="e", time=1.5, seq=5, subscription="assistant."),
    DaemonHeartbeat(epoch="e", time=1.5, seq=5),
    DaemonStopping(epoch="e", time=1.5, seq=5),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda event: type(event).__name__)
def test_every_event_round_trips_and_names_its_topic(event: object) -> None:
    body = encode(event)
    as_json = msgspec.json.decode(body)
    assert as_json["topic"] == type(event).__struct_config__.tag  # type: ignore[attr-defined]
    assert {"epoch", "time"} <= set(as_json)
    assert decode_event(body) == event


@pytest.mark.parametrize("event", EXAMPLES[:5], ids=lambda event: type(event).__name__)
def test_state_events_carry_seq_and_cause(event: object) -> None:
    as_json = msgspec.json.decode(encode(event))
    assert as_json["topic"].startswith("assistant.")
    assert isinstance(as_json["seq"], int)
    assert as_json["cause"] in ("request", "file", "daemon")


@pytest.mark.parametrize(
    "body",
    [
        b'{"topic": "assistant.exploded", "epoch": "e", "time": 1}',
        b'{"epoch": "e", "time": 1, "seq": 1}',
        b'{"topic": "assistant.deleted", "epoch": "e", "time": 1, "seq": "1", "cause": "file",'
        b' "assistant_id": "x"}',
        b"not json",
    ],
    ids=["unknown topic", "no topic", "seq of the wrong type", "not json"],
)
def test_an_event_that_cannot_be_read_is_refused(body: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_event(body)


def test_a_snapshot_round_trips() -> None:
    snapshot = Snapshot(epoch="e", seq=9, assistants=[JAN], invalid=[])
    assert msgspec.json.decode(encode(snapshot), type=Snapshot) == snapshot
    assert msgspec.json.decode(encode(snapshot))["object"] == "snapshot"

"""The live state end to end (issue 3): hand edits, API writes and the event stream of a real
daemon, seen by real SUB sockets over ipc.

Most tests share one daemon (``live``), each on assistant folders of its own, and read the
events with a fresh :class:`Subscriber`, which checks every event as it arrives: the daemon's
epoch, a plausible time, and a ``seq`` that is the previous state event's plus one. Every wait
has a deadline; nothing sleeps to synchronise. To show that *no* event comes (an identical save,
the watcher seeing the daemon's own write) a test makes a later change of its own and sees that
the next state event is that one (:func:`assert_quiet`). Tests that stop a daemon or flood it
start their own.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq

from assistantd.protocol.limits import FILE_MAX_BYTES, NAME_MAX_CHARS
from tests.e2e.helpers import exchange, reply_of, request_body, short_tmp
from tests.utils import DaemonProcess, running_daemon

EVENT_TIMEOUT = 5.0
CREATED_AT = 1_700_000_000
Document = dict[str, Any]
Event = dict[str, Any]
Context = zmq.Context[zmq.Socket[bytes]]


# ============================================================================================
# A subscriber that checks what it reads, and the daemon with its command socket
# ============================================================================================


class Subscriber:
    """A SUB socket on the daemon's events.

    Construction waits for the subscription's own ``daemon.welcome``. Every event read is
    checked: two frames, the daemon's epoch, a time within a few seconds of now, the frame's
    topic that of the body (a welcome's is the subscription's prefix). With ``contiguous``
    (for subscriptions that see every state event) each state event's ``seq`` must be the
    previous one plus one, so a test that expects one event and gets two fails.
    """

    def __init__(
        self,
        context: Context,
        endpoint: str,
        epoch: str,
        prefix: bytes = b"",
        *,
        contiguous: bool | None = None,
    ) -> None:
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.socket.subscribe(prefix)
        self.epoch = epoch
        self.contiguous = prefix in (b"", b"assistant.") if contiguous is None else contiguous
        self.prefix = prefix.decode()
        # Other subscribers' welcomes reach a subscriber whose prefix matches theirs: wait for
        # the one naming this subscription.
        self.welcome = self.next(
            lambda event: (
                event["topic"] == "daemon.welcome" and event["subscription"] == self.prefix
            ),
            what=f"the welcome of {self.prefix!r}",
        )
        self.seq: int = self.welcome["seq"]

    def close(self) -> None:
        self.socket.close(linger=0)

    def receive(self, timeout: float = EVENT_TIMEOUT) -> Event:
        if not self.socket.poll(int(timeout * 1000), zmq.POLLIN):
            raise AssertionError(f"no event within {timeout}s (last seq {self.seq})")
        frames = self.socket.recv_multipart()
        assert len(frames) == 2, frames
        event: Event = json.loads(frames[1])
        topic = event["topic"]
        if topic == "daemon.welcome":
            assert frames[0] == event["subscription"].encode(), (frames[0], event)
        else:
            assert frames[0] == topic.encode(), (frames[0], event)
        assert event["epoch"] == self.epoch, event
        assert abs(event["time"] - time.time()) < 10, event
        assert isinstance(event["seq"], int), event
        if topic.startswith("assistant."):
            if self.contiguous:
                assert event["seq"] == self.seq + 1, f"after seq {self.seq}: {event}"
            self.seq = event["seq"]
        return event

    def next(
        self,
        wanted: Callable[[Event], bool],
        *,
        what: str = "the event",
        timeout: float = EVENT_TIMEOUT,
    ) -> Event:
        """The first event that is ``wanted``, skipping the others."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{what} did not come within {timeout}s")
            event = self.receive(remaining)
            if wanted(event):
                return event

    def next_state(self, timeout: float = EVENT_TIMEOUT) -> Event:
        """The next state event (``assistant.*``); daemon events on the way are skipped."""
        return self.next(
            lambda event: event["topic"].startswith("assistant."),
            what=f"a state event after seq {self.seq}",
            timeout=timeout,
        )


@dataclass
class Live:
    """A daemon under test: its folder, its command socket, and subscriptions to its events."""

    daemon: DaemonProcess
    context: Context
    epoch: str = ""

    def __post_init__(self) -> None:
        self.epoch = self.call("ping")["epoch"]

    @property
    def root(self) -> Path:
        return self.daemon.root

    @property
    def events_endpoint(self) -> str:
        return f"ipc://{self.daemon.runtime_dir}/events.sock"

    def reply(self, method: str, **params: Any) -> dict[str, Any]:
        frames = exchange(
            self.context, self.daemon.command, [b"", request_body(1, method, params or None)]
        )
        return reply_of(frames)

    def call(self, method: str, **params: Any) -> Any:
        reply = self.reply(method, **params)
        assert "result" in reply, reply
        return reply["result"]

    def error(self, method: str, **params: Any) -> dict[str, Any]:
        reply = self.reply(method, **params)
        assert "error" in reply, reply
        error: dict[str, Any] = reply["error"]
        return error

    def listed(self) -> list[str]:
        """Every listed assistant id, by paging through listAssistants."""
        ids: list[str] = []
        after: dict[str, str] = {}
        while True:
            page = self.call("listAssistants", limit=100, order="asc", **after)
            ids += [assistant["id"] for assistant in page["data"]]
            if not page["has_more"]:
                return ids
            after = {"after": page["last_id"]}

    def subscribe(self, prefix: bytes = b"") -> Subscriber:
        return Subscriber(self.context, self.events_endpoint, self.epoch, prefix)


def wait_until_watching(daemon: DaemonProcess) -> None:
    daemon.wait_for_log(lambda line: line.get("event") == "watching")


@pytest.fixture(scope="module")
def context() -> Iterator[Context]:
    context: Context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture(scope="module")
def live(context: Context) -> Iterator[Live]:
    with short_tmp() as base:
        root = base / "assistants"
        root.mkdir()
        with running_daemon(root) as daemon:
            wait_until_watching(daemon)
            yield Live(daemon, context)


@pytest.fixture
def events(live: Live) -> Iterator[Subscriber]:
    """A subscription to every event of the shared daemon, made before the test acts."""
    subscriber = live.subscribe()
    yield subscriber
    subscriber.close()


# ============================================================================================
# Files, the way people and editors write them
# ============================================================================================


def encoded(document: Document) -> bytes:
    return json.dumps(document, indent=2).encode() + b"\n"


def definition(root: Path, assistant_id: str) -> Path:
    return root / assistant_id / "assistant.json"


def write_in_place(path: Path, data: bytes) -> None:
    path.write_bytes(data)  # open with O_TRUNC, one write


def write_temp_then_rename(path: Path, data: bytes) -> None:
    temporary = path.with_name(".assistant.json.swp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def delete_then_create(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def move_away_then_write(path: Path, data: bytes) -> None:
    """Vim's way with a backup: the old file becomes the backup until the new one is written."""
    backup = path.with_name("assistant.json~")
    os.replace(path, backup)
    path.write_bytes(data)
    backup.unlink()


def write_in_pieces(path: Path, data: bytes) -> None:
    """One save in several writes, each flushed: valid JSON only once the last is in."""
    with path.open("wb") as file:
        for start in range(0, len(data), 16):
            file.write(data[start : start + 16])
            file.flush()


def burst_of_versions(path: Path, data: bytes) -> None:
    """Several saves within a few milliseconds (an autosave while typing); the last one counts."""
    final = json.loads(data)
    for draft in range(4):
        path.write_bytes(encoded({**final, "name": f"draft {draft}"}))
    path.write_bytes(data)


SAVES = [
    write_in_place,
    write_temp_then_rename,
    delete_then_create,
    move_away_then_write,
    write_in_pieces,
    burst_of_versions,
]


def hand_create(live: Live, events: Subscriber, assistant_id: str, document: Document) -> Path:
    """Put a folder with ``document`` into the root at once (as ``mv`` does); wait until the
    daemon has published it."""
    staged = live.root.parent / f"staged-{assistant_id}"
    staged.mkdir()
    (staged / "assistant.json").write_bytes(encoded(document))
    os.rename(staged, live.root / assistant_id)
    event = events.next_state()
    assert event["topic"] == "assistant.created", event
    assert event["assistant"]["id"] == assistant_id, event
    return definition(live.root, assistant_id)


_quiet_marks = itertools.count()


def assert_quiet(live: Live, events: Subscriber) -> None:
    """Show that no state event is on its way: make a later change, and see that the next state
    event is that change's, with the next ``seq``.

    The change is a new folder with a broken file, which the daemon reports only after giving
    it the settle time of a half-saved file: so it comes after anything that earlier changes
    could still produce, whether from the watcher's batches or from a settle timer.
    """
    assistant_id = f"quiet-{next(_quiet_marks)}"
    previous = events.seq
    path = definition(live.root, assistant_id)
    path.parent.mkdir()
    path.write_bytes(b"{")
    unexpected: list[Event] = []
    while (event := events.next_state())["topic"] != "assistant.invalid" or event.get(
        "assistant_id"
    ) != assistant_id:
        # Read on to this change's own event before failing, so the next test starts clean.
        unexpected.append(event)
    assert not unexpected, f"events nobody asked for came before seq {previous + 1}: {unexpected}"
    assert event["seq"] == previous + 1


# ============================================================================================
# Hand edits
# ============================================================================================


@pytest.mark.parametrize("save", SAVES, ids=[save.__name__ for save in SAVES])
def test_each_way_of_saving_gives_one_update_with_the_final_content(
    live: Live, events: Subscriber, save: Callable[[Path, bytes], None]
) -> None:
    assistant_id = f"saved-{save.__name__}"
    before = {"name": "Before", "created_at": CREATED_AT, "instructions": "Be brief."}
    path = hand_create(live, events, assistant_id, before)
    after = {
        **before,
        "name": "After",
        "instructions": "Be thorough. " * 20,
        "metadata": {"saved_by": save.__name__},
    }

    save(path, encoded(after))

    event = events.next_state()
    assert (event["topic"], event["cause"]) == ("assistant.updated", "file"), event
    assert event["assistant"]["name"] == "After"
    assert event["assistant"]["instructions"] == after["instructions"]
    assert event["assistant"]["metadata"] == {"saved_by": save.__name__}
    assert_quiet(live, events)
    assert live.call("getAssistant", assistant_id=assistant_id) == event["assistant"]


IDENTICAL_SAVES = [save for save in SAVES if save is not burst_of_versions]


@pytest.mark.parametrize("save", IDENTICAL_SAVES, ids=[save.__name__ for save in IDENTICAL_SAVES])
def test_saving_identical_content_gives_no_event(
    live: Live, events: Subscriber, save: Callable[[Path, bytes], None]
) -> None:
    assistant_id = f"same-{save.__name__}"
    document = {"name": "Same", "created_at": CREATED_AT, "tools": [{"type": "retrieval"}]}
    path = hand_create(live, events, assistant_id, document)
    served = live.call("getAssistant", assistant_id=assistant_id)

    save(path, encoded(document))
    save(path, encoded(document))

    assert_quiet(live, events)
    assert live.call("getAssistant", assistant_id=assistant_id) == served


def test_saving_identical_content_without_created_at_gives_no_event(
    live: Live, events: Subscriber
) -> None:
    document = {"name": "No created_at"}
    staged = live.root.parent / "staged-no-created-at"
    staged.mkdir()
    (staged / "assistant.json").write_bytes(encoded(document))
    os.utime(staged / "assistant.json", (CREATED_AT, CREATED_AT))
    os.rename(staged, live.root / "no-created-at")
    created = events.next_state()
    assert created["assistant"]["created_at"] == CREATED_AT

    write_in_place(definition(live.root, "no-created-at"), encoded(document))

    assert_quiet(live, events)


# ============================================================================================
# Writes through the API
# ============================================================================================


def test_api_writes_give_one_event_each_and_none_from_the_watcher(
    live: Live, events: Subscriber
) -> None:
    created = live.call("createAssistant", id="api-made", name="One", model="llama3")
    event = events.next_state()
    assert (event["topic"], event["cause"]) == ("assistant.created", "request"), event
    assert event["assistant"] == created
    assert_quiet(live, events)

    modified = live.call("modifyAssistant", assistant_id="api-made", name="Two")
    event = events.next_state()
    assert (event["topic"], event["cause"]) == ("assistant.updated", "request"), event
    assert event["assistant"] == modified
    assert_quiet(live, events)

    live.call("deleteAssistant", assistant_id="api-made")
    event = events.next_state()
    assert (event["topic"], event["cause"]) == ("assistant.deleted", "request"), event
    assert event["assistant_id"] == "api-made"
    assert_quiet(live, events)


def test_an_api_write_and_a_hand_edit_of_the_same_assistant_give_one_event_each(
    live: Live, events: Subscriber
) -> None:
    path = hand_create(live, events, "both-ways", {"name": "Hand", "created_at": CREATED_AT})
    live.call("modifyAssistant", assistant_id="both-ways", description="by request")
    by_request = events.next_state()
    document = json.loads(path.read_bytes())
    write_temp_then_rename(path, encoded({**document, "name": "Hand again"}))
    by_hand = events.next_state()

    assert (by_request["cause"], by_hand["cause"]) == ("request", "file")
    assert by_hand["assistant"]["name"] == "Hand again"
    assert by_hand["assistant"]["description"] == "by request"
    assert_quiet(live, events)


# ============================================================================================
# Invalid files
# ============================================================================================


def fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


BREAKAGES: dict[str, tuple[Callable[[Path], object], str]] = {
    "broken JSON": (lambda path: path.write_bytes(b'{"name": "Half'), "not valid JSON"),
    "not an object": (lambda path: path.write_bytes(b"[]"), "must hold a JSON object"),
    "wrong type": (lambda path: path.write_bytes(b'{"name": 5}'), "'name'"),
    "field limit exceeded": (
        lambda path: path.write_bytes(encoded({"name": "n" * (NAME_MAX_CHARS + 1)})),
        "'name'",
    ),
    "file limit exceeded": (
        lambda path: path.write_bytes(encoded({"instructions": "i" * FILE_MAX_BYTES})),
        f"limit is {FILE_MAX_BYTES}",
    ),
    "not a regular file": (fifo, "not a regular file"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_file_made_invalid_is_reported_and_the_last_good_version_stays_served(
    live: Live, events: Subscriber, breakage: str
) -> None:
    assistant_id = f"broken-{breakage.replace(' ', '-')}"
    good = {"name": "Good", "created_at": CREATED_AT}
    path = hand_create(live, events, assistant_id, good)
    served = live.call("getAssistant", assistant_id=assistant_id)
    breaks, reason = BREAKAGES[breakage]

    breaks(path)

    event = events.next_state()
    assert (event["topic"], event["cause"]) == ("assistant.invalid", "file"), event
    assert event["assistant_id"] == assistant_id
    assert event["path"] == str(path)
    assert reason in event["reason"]
    assert event["served"] is True
    assert live.call("getAssistant", assistant_id=assistant_id) == served
    assert assistant_id in live.listed()
    snapshot = live.call("getSnapshot")
    assert {key: event[key] for key in ("assistant_id", "path", "reason", "served")} in snapshot[
        "invalid"
    ]
    assert_quiet(live, events)  # broken once, said once

    path.unlink()
    path.write_bytes(encoded({**good, "name": "Fixed"}))

    event = events.next_state()
    assert (event["topic"], event["cause"]) == ("assistant.updated", "file"), event
    assert event["assistant"]["name"] == "Fixed"
    assert live.call("getAssistant", assistant_id=assistant_id) == event["assistant"]
    invalid = [problem["assistant_id"] for problem in live.call("getSnapshot")["invalid"]]
    assert assistant_id not in invalid


def test_a_file_fixed_back_to_its_last_good_version_publishes_an_update(
    live: Live, events: Subscriber
) -> None:
    # A subscriber that was told the file is invalid must also hear that it is fixed, even
    # when the fix restores exactly what was served (an undo in the editor).
    path = hand_create(live, events, "undone", {"name": "Undo me", "created_at": CREATED_AT})
    good = path.read_bytes()
    path.write_bytes(b"{ oops")
    assert events.next_state()["topic"] == "assistant.invalid"

    path.write_bytes(good)

    event = events.next_state()
    assert (event["topic"], event["cause"]) == ("assistant.updated", "file"), event
    assert event["assistant"]["name"] == "Undo me"
    assert "undone" not in [item["assistant_id"] for item in live.call("getSnapshot")["invalid"]]


def test_a_folder_that_never_had_a_valid_file_is_reported_and_not_listed(
    live: Live, events: Subscriber
) -> None:
    path = definition(live.root, "never-valid")
    path.parent.mkdir()
    path.write_bytes(b'{"name": ["not", "a", "string"]}')

    event = events.next_state()
    assert (event["topic"], event["cause"]) == ("assistant.invalid", "file"), event
    assert (event["assistant_id"], event["path"], event["served"]) == (
        "never-valid",
        str(path),
        False,
    )
    assert "'name'" in event["reason"]
    assert "never-valid" not in live.listed()
    assert live.error("getAssistant", assistant_id="never-valid")["status"] == 404
    snapshot = live.call("getSnapshot")
    assert "never-valid" not in [assistant["id"] for assistant in snapshot["assistants"]]
    assert {
        "assistant_id": "never-valid",
        "path": str(path),
        "reason": event["reason"],
        "served": False,
    } in snapshot["invalid"]

    path.write_bytes(encoded({"name": "Valid at last"}))

    event = events.next_state()
    assert (event["topic"], event["cause"]) == ("assistant.created", "file"), event
    assert event["assistant"]["name"] == "Valid at last"
    assert "never-valid" in live.listed()


@pytest.mark.parametrize("how", ["folder removed", "file removed"])
def test_an_invalid_folder_that_goes_away_is_deleted(
    live: Live, events: Subscriber, how: str
) -> None:
    # Subscribers recorded the problem from assistant.invalid; they need an event to forget it.
    assistant_id = f"gone-{how.split()[0]}"
    path = definition(live.root, assistant_id)
    path.parent.mkdir()
    path.write_bytes(b"not json")
    assert events.next_state()["topic"] == "assistant.invalid"

    if how == "folder removed":
        shutil.rmtree(path.parent)
    else:
        path.unlink()

    event = events.next_state()
    assert (event["topic"], event["cause"]) == ("assistant.deleted", "file"), event
    assert event["assistant_id"] == assistant_id
    invalid = [item["assistant_id"] for item in live.call("getSnapshot")["invalid"]]
    assert assistant_id not in invalid
    assert_quiet(live, events)


def test_a_folder_whose_name_is_not_an_id_is_reported_and_not_listed(
    live: Live, events: Subscriber
) -> None:
    # The start-up scan reports such a folder as invalid; the watcher must not list it either
    # (no command could name it).
    path = definition(live.root, "trailing space ")
    path.parent.mkdir()
    path.write_bytes(encoded({"name": "Unreachable"}))

    event = events.next_state()
    assert event["topic"] == "assistant.invalid", event
    assert (event["assistant_id"], event["served"]) == ("trailing space ", False)
    assert "folder name" in event["reason"]
    assert "trailing space " not in live.listed()
    assert_quiet(live, events)


# ============================================================================================
# Folders copied in and removed
# ============================================================================================


def make_folder(folder: Path, document: Document) -> None:
    (folder / "src").mkdir(parents=True)
    (folder / "assistant.json").write_bytes(encoded(document))
    (folder / "package.json").write_text('{"dependencies": {}}')
    (folder / "src" / "index.js").write_text("module.exports = {};\n")


@pytest.mark.parametrize("how", ["copied", "moved"])
def test_a_folder_brought_in_is_created_and_one_taken_out_is_deleted(
    live: Live, events: Subscriber, how: str
) -> None:
    assistant_id = f"{how}-in"
    source = live.root.parent / f"outside-{how}"
    make_folder(source, {"name": f"{how} in", "model": "llama3"})
    target = live.root / assistant_id

    if how == "copied":
        shutil.copytree(source, target)
    else:
        os.rename(source, target)

    event = events.next_state()
    assert (event["topic"], event["cause"]) == ("assistant.created", "file"), event
    assert (event["assistant"]["id"], event["assistant"]["name"]) == (assistant_id, f"{how} in")
    assert event["assistant"]["state"] == "ready"
    assert live.call("getAssistant", assistant_id=assistant_id) == event["assistant"]
    assert_quiet(live, events)

    if how == "copied":
        shutil.rmtree(target)
    else:
        os.rename(target, source)

    event = events.next_state()
    assert (event["topic"], event["cause"]) == ("assistant.deleted", "file"), event
    assert event["assistant_id"] == assistant_id
    assert live.error("getAssistant", assistant_id=assistant_id)["status"] == 404
    assert assistant_id not in live.listed()
    assert_quiet(live, events)


# ============================================================================================
# Snapshot, welcome, heartbeat
# ============================================================================================


def test_the_snapshot_holds_every_assistant_every_invalid_file_and_the_last_seq(
    live: Live, events: Subscriber
) -> None:
    hand_create(live, events, "in-snapshot", {"name": "Pictured", "created_at": CREATED_AT})
    broken = definition(live.root, "broken-in-snapshot")
    broken.parent.mkdir()
    broken.write_bytes(b"[1, 2")
    invalid = events.next_state()

    snapshot = live.call("getSnapshot")

    assert snapshot["object"] == "snapshot"
    assert snapshot["epoch"] == live.epoch
    assert snapshot["seq"] == events.seq == invalid["seq"]
    ids = [assistant["id"] for assistant in snapshot["assistants"]]
    assert ids == live.listed()
    assert "in-snapshot" in ids
    assert "broken-in-snapshot" not in ids
    pictured = next(item for item in snapshot["assistants"] if item["id"] == "in-snapshot")
    assert pictured == live.call("getAssistant", assistant_id="in-snapshot")
    assert {
        "assistant_id": "broken-in-snapshot",
        "path": str(broken),
        "reason": invalid["reason"],
        "served": False,
    } in snapshot["invalid"]


@pytest.mark.parametrize("prefix", [b"", b"assistant.", b"assistant.updated", b"daemon."])
def test_a_new_subscription_is_welcomed_with_the_current_seq(
    live: Live, events: Subscriber, prefix: bytes
) -> None:
    seq = live.call("getSnapshot")["seq"]
    subscriber = live.subscribe(prefix)  # waits for its welcome, on its own prefix
    try:
        assert subscriber.welcome["seq"] == seq
        assert subscriber.welcome["subscription"] == prefix.decode()

        hand_create(live, events, f"welcomed-{prefix.decode()}", {"name": "Welcome"})
        path = definition(live.root, f"welcomed-{prefix.decode()}")
        write_in_place(path, encoded({"name": "Welcome back"}))
        updated = events.next_state()

        if prefix == b"daemon.":
            # No state events for it, and the first heartbeat sent after the update carries
            # its seq.
            daemon_events = [subscriber.receive(timeout=3)]
            while not (
                daemon_events[-1]["topic"] == "daemon.heartbeat"
                and daemon_events[-1]["time"] > updated["time"]
            ):
                daemon_events.append(subscriber.receive(timeout=3))
            assert all(event["topic"].startswith("daemon.") for event in daemon_events)
            assert daemon_events[-1]["seq"] == updated["seq"]
        else:
            seen = subscriber.next_state()
            if prefix != b"assistant.updated":
                assert seen["topic"] == "assistant.created"
                seen = subscriber.next_state()
            assert seen == updated
    finally:
        subscriber.close()


def test_the_heartbeat_comes_about_every_second_with_the_current_seq(
    live: Live, events: Subscriber
) -> None:
    beats = live.subscribe(b"daemon.heartbeat")
    try:
        first = beats.receive(timeout=3)
        assert first["topic"] == "daemon.heartbeat"
        assert first["seq"] == events.seq == live.call("getSnapshot")["seq"]

        hand_create(live, events, "heartbeat", {"name": "Beat"})
        changed_at = time.time()

        later = [beats.receive(timeout=3) for _ in range(2)]
    finally:
        beats.close()
    intervals = [b["time"] - a["time"] for a, b in itertools.pairwise([first, *later])]
    assert all(0.8 <= interval <= 1.6 for interval in intervals), intervals
    assert all(beat["topic"] == "daemon.heartbeat" for beat in later)
    since_change = [beat["seq"] for beat in later if beat["time"] > changed_at]
    assert since_change == [events.seq] * len(since_change) != []


# ============================================================================================
# Daemons of their own: the last event, and a subscriber that never reads
# ============================================================================================


def test_daemon_stopping_is_the_last_event(context: Context) -> None:
    with short_tmp() as base:
        root = base / "assistants"
        root.mkdir()
        with running_daemon(root) as daemon:
            live = Live(daemon, context)
            events = live.subscribe()
            live.call("createAssistant", id="last-words", name="Last")
            assert events.next_state()["seq"] == 1

            assert daemon.stop() == 0

            received = [events.receive()]
            while events.socket.poll(500, zmq.POLLIN):  # the process is gone: only leftovers
                received.append(events.receive())
            events.close()
    assert received[-1]["topic"] == "daemon.stopping", received
    assert received[-1]["seq"] == 1
    assert all(event["topic"] == "daemon.heartbeat" for event in received[:-1]), received


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def pipeline_modifies(
    dealer: zmq.Socket[bytes],
    reader: Subscriber,
    ids: list[str],
    count: int,
    tag: str,
    *,
    in_flight: int = 64,
    timeout: float = 40.0,
) -> tuple[float, list[str]]:
    """``count`` modifies, ``in_flight`` at a time, each giving a new name; the reader takes
    every event meanwhile. Returns the modifies per second and the names the events carried
    (``TAG-N`` for the Nth modify)."""
    poller = zmq.Poller()
    poller.register(dealer, zmq.POLLIN)
    poller.register(reader.socket, zmq.POLLIN)
    names: list[str] = []
    sent = replies = 0
    started = time.monotonic()
    deadline = started + timeout
    while replies < count or len(names) < count:
        while sent < count and sent - replies < in_flight:
            params = {"assistant_id": ids[sent % len(ids)], "name": f"{tag}-{sent}"}
            dealer.send_multipart([b"", request_body(sent, "modifyAssistant", params)])
            sent += 1
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{replies} replies and {len(names)} events of {count} in time"
        for socket, _ in poller.poll(int(remaining * 1000)):
            if socket is dealer:
                reply = reply_of(dealer.recv_multipart())
                assert "result" in reply, reply
                replies += 1
            else:
                event = reader.receive(0)
                if event["topic"] == "assistant.updated":
                    names.append(event["assistant"]["name"])
    return count / (time.monotonic() - started), names


@pytest.mark.timeout(120)
def test_a_stalled_subscriber_slows_nothing_and_costs_bounded_memory(context: Context) -> None:
    # 11,000 events: more than the 10,000 the daemon queues for one subscriber, so that the
    # stalled one's queue fills and the daemon must drop for it.
    baseline, flood, in_flight = 1_000, 11_000, 64
    with short_tmp() as base:
        root = base / "assistants"
        root.mkdir()
        # Info, not debug: a log line per command would make the log the bottleneck.
        with running_daemon(root, args=("--log-level", "info")) as daemon:
            wait_until_watching(daemon)
            live = Live(daemon, context)
            reader = live.subscribe()
            dealer = context.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.connect(daemon.command)
            ids = [f"busy-{number}" for number in range(in_flight)]
            for assistant_id in ids:
                live.call("createAssistant", id=assistant_id, name="Busy")
                assert reader.next_state()["topic"] == "assistant.created"
            base_rate, _ = pipeline_modifies(dealer, reader, ids, baseline, "baseline")
            rss_before = vm_kb(daemon.process.pid, "VmRSS")

            stalled = context.socket(zmq.SUB)
            stalled.setsockopt(zmq.LINGER, 0)
            stalled.setsockopt(zmq.RCVHWM, 10)
            stalled.connect(live.events_endpoint)
            stalled.subscribe(b"")
            # Its welcome goes out on the prefix b"", which the reader shares: once the reader
            # has it, the stalled subscription is live.
            reader.next(lambda event: event["topic"] == "daemon.welcome", what="a welcome")
            first_seq = reader.seq + 1

            flood_rate, names = pipeline_modifies(dealer, reader, ids, flood, "flood")

            rss_after = vm_kb(daemon.process.pid, "VmRSS")
            rss_peak = vm_kb(daemon.process.pid, "VmHWM")
            assert live.call("ping")["epoch"] == live.epoch

            # Now the stalled subscriber reads: the events from before its queue filled, in
            # order; after one more change, the gap where the daemon dropped its events.
            seqs: list[int] = []
            while stalled.poll(500, zmq.POLLIN):
                topic, body = stalled.recv_multipart()
                if topic.startswith(b"assistant."):
                    seqs.append(json.loads(body)["seq"])
            live.call("modifyAssistant", assistant_id=ids[0], name="after the flood")
            assert stalled.poll(int(EVENT_TIMEOUT * 1000), zmq.POLLIN)
            resumed = json.loads(stalled.recv_multipart()[1])
            stalled.close(linger=0)
            dealer.close(linger=0)
            reader.close()

    # The reader got every event of the flood, in order, with no gap (Subscriber checks seq).
    assert len(names) == flood
    assert set(names) == {f"flood-{number}" for number in range(flood)}
    assert reader.seq == first_seq + flood - 1
    # The daemon kept its pace, and its memory.
    assert flood_rate >= base_rate / 3, (base_rate, flood_rate)
    assert (rss_peak - rss_before) / 1024 < 100, (rss_before, rss_after, rss_peak)
    assert (rss_after - rss_before) / 1024 < 100, (rss_before, rss_after, rss_peak)
    # The stalled subscriber's queue filled, and the daemon dropped the newest events for it
    # alone: it sees a gap in seq, as PROTOCOL.md tells it to expect.
    assert seqs == list(range(first_seq, first_seq + len(seqs)))
    assert len(seqs) < flood
    assert resumed["seq"] == reader.seq + 1 > seqs[-1] + 1

"""``watch()`` against a real daemon: real files, real sockets, the Clone pattern end to end.

Every wait has a deadline (``watch.next(timeout=...)``, ``wait_for_log``); nothing sleeps to
let something happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
import zmq
import zmq.asyncio

from assistantd.client import (
    AssistantdError,
    AsyncClient,
    AsyncWatch,
    Client,
    Mirror,
    Synced,
    UnavailableError,
    Watch,
    WatchEvent,
    topic_of,
)
from assistantd.daemon.publisher import SUBSCRIBER_QUEUE
from assistantd.protocol.events import (
    AssistantCreated,
    AssistantDeleted,
    AssistantInvalid,
    AssistantUpdated,
    DaemonStopping,
    Snapshot,
    decode_event,
)
from tests.utils import DaemonProcess, running_daemon, short_dir

WAIT = 5.0
"""Seconds any one expected event may take (they come within a fraction of one)."""

E = TypeVar("E")


def is_watching(line: dict[str, Any]) -> bool:
    return line.get("event") == "watching"


def write_definition(
    root: Path, assistant_id: str, document: dict[str, Any] | str, *, atomic: bool = False
) -> None:
    """Write an assistant.json by hand: in place, or (``atomic``) as a new file renamed over
    the old one, so that the daemon can never read it half written."""
    folder = root / assistant_id
    folder.mkdir(exist_ok=True)
    text = document if isinstance(document, str) else json.dumps(document)
    if atomic:
        (folder / ".assistant.json.new").write_text(text)
        (folder / ".assistant.json.new").rename(folder / "assistant.json")
    else:
        (folder / "assistant.json").write_text(text)


def assert_mirrors(mirror: Mirror, snapshot: Snapshot) -> None:
    assert (mirror.epoch, mirror.seq) == (snapshot.epoch, snapshot.seq)
    assert mirror.assistants == {assistant.id: assistant for assistant in snapshot.assistants}
    assert mirror.invalid == {invalid.assistant_id: invalid for invalid in snapshot.invalid}


# --- waiting for events, with deadlines ---------------------------------------------------------


async def until(
    watch: AsyncWatch, predicate: Callable[[WatchEvent], bool], within: float = WAIT
) -> list[WatchEvent]:
    """The events up to the first that satisfies ``predicate`` (included)."""
    deadline = time.monotonic() + within
    seen: list[WatchEvent] = []
    while True:
        event = await watch.next(timeout=max(0.0, deadline - time.monotonic()))
        seen.append(event)
        if predicate(event):
            return seen


async def next_of(watch: AsyncWatch, kind: type[E], within: float = WAIT) -> E:
    event = (await until(watch, lambda event: isinstance(event, kind), within))[-1]
    assert isinstance(event, kind)
    return event


def sync_next_of(watch: Watch, kind: type[E], within: float = WAIT) -> E:
    deadline = time.monotonic() + within
    while True:
        event = watch.next(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(event, kind):
            return event


async def caught_up(client: AsyncClient, watch: AsyncWatch, within: float = 10.0) -> Snapshot:
    """A snapshot, once the watch's mirror has reached exactly its ``seq`` (a watch of every
    topic yields each state event, so it can be stopped at any one)."""
    deadline = time.monotonic() + within

    def behind(snapshot: Snapshot) -> bool:
        mirror = watch.mirror
        return not watch.in_sync or mirror.epoch != snapshot.epoch or mirror.seq < snapshot.seq

    while True:
        snapshot = await client.get_snapshot()
        while behind(snapshot):
            await watch.next(timeout=max(0.0, deadline - time.monotonic()))
        if watch.mirror.seq == snapshot.seq:
            return snapshot
        # A resync took the mirror past this snapshot: take another.


async def started(watch: AsyncWatch) -> Synced:
    synced = await next_of(watch, Synced)
    assert synced.reason == "start"
    return synced


# --- the events of API calls and of hand edits --------------------------------------------------


async def test_api_calls_are_yielded_and_mirrored(daemon: DaemonProcess) -> None:
    async with (
        AsyncClient(runtime_dir=daemon.runtime_dir) as client,
        client.watch() as watch,
    ):
        synced = await started(watch)
        assert set(watch.mirror.assistants) == {"jan"}
        assert watch.mirror.epoch == synced.epoch == (await client.ping()).epoch

        await client.create_assistant(id="ada", name="Ada")
        await client.modify_assistant("ada", name="Ada 2")
        await client.delete_assistant("ada")
        events = [
            await next_of(watch, AssistantCreated),
            await next_of(watch, AssistantUpdated),
            await next_of(watch, AssistantDeleted),
        ]
        assert [event.seq for event in events] == [synced.seq + 1, synced.seq + 2, synced.seq + 3]
        assert all(event.cause == "request" for event in events)
        created, modified, deleted = events
        assert isinstance(created, AssistantCreated)
        assert isinstance(modified, AssistantUpdated)
        assert isinstance(deleted, AssistantDeleted)
        assert (created.assistant.id, created.assistant.name) == ("ada", "Ada")
        assert modified.assistant.name == "Ada 2"
        assert deleted.assistant_id == "ada"
        assert_mirrors(watch.mirror, await caught_up(client, watch))


def test_hand_edits_are_yielded_by_the_sync_watch(daemon: DaemonProcess) -> None:
    root = daemon.root
    daemon.wait_for_log(is_watching)
    with Client(runtime_dir=daemon.runtime_dir) as client, client.watch("assistant.") as watch:
        sync_next_of(watch, Synced)

        write_definition(root, "ada", {"name": "Ada", "model": "llama3"})
        created = sync_next_of(watch, AssistantCreated)
        assert (created.assistant.id, created.assistant.name, created.cause) == (
            "ada",
            "Ada",
            "file",
        )

        write_definition(root, "ada", {"name": "Ada Lovelace", "model": "llama3"})
        assert sync_next_of(watch, AssistantUpdated).assistant.name == "Ada Lovelace"

        write_definition(root, "ada", "{not json")
        broken = sync_next_of(watch, AssistantInvalid)
        assert (broken.assistant_id, broken.served) == ("ada", True)
        assert set(watch.mirror.invalid) == {"ada"}
        assert watch.mirror.assistants["ada"].name == "Ada Lovelace"  # still served

        write_definition(root, "ada", {"name": "Ada, fixed"})
        assert sync_next_of(watch, AssistantUpdated).assistant.name == "Ada, fixed"
        assert watch.mirror.invalid == {}

        shutil.rmtree(root / "ada")
        assert sync_next_of(watch, AssistantDeleted).assistant_id == "ada"
        assert set(watch.mirror.assistants) == {"jan"}

        snapshot = client.get_snapshot()
        assert (watch.mirror.seq, watch.in_sync) == (snapshot.seq, True)
        assert_mirrors(watch.mirror, snapshot)


def test_next_times_out_and_the_watch_goes_on(daemon: DaemonProcess) -> None:
    with Client(runtime_dir=daemon.runtime_dir) as client, client.watch() as watch:
        sync_next_of(watch, Synced)
        with pytest.raises(TimeoutError):
            watch.next(timeout=0.2)
        client.create_assistant(id="late")
        assert sync_next_of(watch, AssistantCreated).assistant.id == "late"


async def test_the_prefix_narrows_the_events_not_the_mirror(daemon: DaemonProcess) -> None:
    async with (
        AsyncClient(runtime_dir=daemon.runtime_dir) as client,
        client.watch("assistant.deleted") as watch,
    ):
        await started(watch)
        await client.create_assistant(id="brief", name="Brief")
        await client.modify_assistant("jan", name="Jan, renamed")
        await client.delete_assistant("brief")
        seen = await until(watch, lambda event: isinstance(event, AssistantDeleted))
        assert [topic_of(event) for event in seen] == ["assistant.deleted"]
        assert watch.mirror.assistants["jan"].name == "Jan, renamed"
        snapshot = await client.get_snapshot()
        assert_mirrors(watch.mirror, snapshot)


def test_a_watch_with_no_daemon_fails_at_once() -> None:
    with Client(runtime_dir=short_dir(), timeout=1.0) as client, pytest.raises(UnavailableError):
        client.watch()


# --- the mirror under load ----------------------------------------------------------------------


class Actor:
    """Random API calls and hand edits over a few assistant ids shared with other actors."""

    API = ("create", "modify", "delete")
    BY_HAND = ("write", "edit", "remove", "break", "junk")

    def __init__(
        self,
        client: AsyncClient,
        root: Path,
        seed: int,
        *,
        actions: tuple[str, ...],
        pause: float = 0.0,
    ) -> None:
        self.client = client
        self.root = root
        self.random = random.Random(seed)
        self.actions = actions
        self.pause = pause
        self.ids = [f"m{n}" for n in range(8)]
        self.counter = 0

    async def step(self) -> None:
        self.counter += 1
        assistant_id = self.random.choice(self.ids)
        name = f"{assistant_id} #{self.counter}"
        action = self.random.choice(self.actions)
        folder = self.root / assistant_id
        try:
            match action:
                case "create":
                    await self.client.create_assistant(id=assistant_id, name=name)
                case "modify":
                    await self.client.modify_assistant(assistant_id, name=name, temperature=0.5)
                case "delete":
                    await self.client.delete_assistant(assistant_id)
                case "write" | "edit":
                    # A new folder, or a new version of one, written by hand.
                    write_definition(self.root, assistant_id, {"name": name, "x-tool": action})
                case "remove":
                    shutil.rmtree(folder, ignore_errors=True)
                case "break" if (folder / "assistant.json").exists():
                    (folder / "assistant.json").write_text('{"name": ')
                case "junk":
                    # A broken file in a folder that may never have had a valid one.
                    write_definition(self.root, assistant_id, "[]")
        except (AssistantdError, OSError):
            # A 404 or 409 because a hand edit came first, or a hand edit in a folder that a
            # delete just took away: part of the game.
            pass
        # A person's pace, not a wait for anything: a broken file must stay broken for longer
        # than the daemon's settle time now and then to be reported at all.
        await asyncio.sleep(self.random.uniform(0, self.pause))


async def test_the_mirror_equals_the_snapshot_after_random_calls_and_edits(
    daemon: DaemonProcess,
) -> None:
    daemon.wait_for_log(is_watching)
    seed = random.randrange(1 << 32)
    print(f"seed {seed}")  # shown when the test fails
    async with (
        AsyncClient(runtime_dir=daemon.runtime_dir) as client,
        client.watch() as watch,
    ):
        start = await started(watch)
        actors = [
            Actor(client, daemon.root, seed, actions=Actor.API * 3 + Actor.BY_HAND),
            Actor(client, daemon.root, seed + 1, actions=Actor.API),
            Actor(client, daemon.root, seed + 2, actions=Actor.BY_HAND, pause=0.4),
        ]
        seen: list[WatchEvent] = []
        done = asyncio.Event()

        async def follow() -> None:
            # A frontend reading as it goes (it wakes at least every 0.2 s to see `done`).
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    seen.append(await watch.next(timeout=0.2))

        async def act(actor: Actor, seconds: float = 2.0) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await actor.step()

        follower = asyncio.create_task(follow())
        try:
            await asyncio.gather(*(act(actor) for actor in actors))
        finally:
            done.set()
            await follower
        snapshot = await caught_up(client, watch)
        assert_mirrors(watch.mirror, snapshot)
        # Nothing was lost on the way: the one snapshot is the first.
        assert [event.reason for event in seen if isinstance(event, Synced)] == []
        topics = {topic_of(event) for event in seen}
        assert {"assistant.created", "assistant.updated", "assistant.deleted"} <= topics
        assert snapshot.seq - start.seq > 200


# --- losing events: a full queue, a lossy hop, a silence, a restart -----------------------------


async def test_a_subscriber_that_fell_behind_resyncs_after_the_gap(
    daemon: DaemonProcess,
) -> None:
    """A real gap: the watch stops reading while more events than its queue holds are published
    (folders copied in by hand); the daemon drops the rest for it, and the watch notices."""
    daemon.wait_for_log(is_watching)
    count = SUBSCRIBER_QUEUE + SUBSCRIBER_QUEUE // 3
    context = zmq.asyncio.Context()
    beats = context.socket(zmq.SUB)
    try:
        # A second subscriber, of heartbeats only, says when the daemon has published it all.
        beats.setsockopt(zmq.LINGER, 0)
        beats.connect(f"ipc://{daemon.runtime_dir}/events.sock")
        beats.setsockopt(zmq.SUBSCRIBE, b"daemon.heartbeat")
        async with (
            AsyncClient(runtime_dir=daemon.runtime_dir) as client,
            client.watch() as watch,
        ):
            synced = await started(watch)
            async with asyncio.timeout(WAIT):
                await beats.recv_multipart()  # its welcome: it is live
            for n in range(count):
                write_definition(daemon.root, f"b{n:05}", {"name": f"copied {n}"})
            async with asyncio.timeout(60):
                while True:
                    _, body = await beats.recv_multipart()
                    if decode_event(body).seq >= synced.seq + count:
                        break
            # Only now does the watch read again.
            before = await until(watch, lambda event: isinstance(event, Synced), within=30)
            resynced = before.pop()
            assert isinstance(resynced, Synced)
            assert resynced.reason == "gap"
            assert 0 < len(before) < count
            assert len(watch.mirror.assistants) == count + 1
            assert_mirrors(watch.mirror, await caught_up(client, watch))
    finally:
        beats.close(linger=0)
        context.term()


class Relay:
    """A lossy hop between the daemon's events and a subscriber: an XSUB/XPUB forwarder in a
    thread that passes subscriptions up and messages down, except those it is told to drop."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.endpoint = f"ipc://{short_dir()}/relay.sock"
        self._lock = threading.Lock()
        self._drop_next = 0
        self._paused = False
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def drop_next_state_event(self) -> None:
        with self._lock:
            self._drop_next += 1

    def pause(self, paused: bool = True) -> None:
        with self._lock:
            self._paused = paused

    def _passes(self, frames: list[bytes]) -> bool:
        with self._lock:
            if self._paused:
                return False
            if self._drop_next and frames[0].startswith(b"assistant."):
                self._drop_next -= 1
                return False
            return True

    def _run(self) -> None:
        context = zmq.Context()
        down = context.socket(zmq.XPUB)
        up = context.socket(zmq.XSUB)
        try:
            for socket in (down, up):
                socket.setsockopt(zmq.LINGER, 0)
            down.setsockopt(zmq.XPUB_VERBOSE, 1)
            down.bind(self.endpoint)
            up.connect(self.upstream)
            self._bound.set()
            poller = zmq.Poller()
            poller.register(down, zmq.POLLIN)
            poller.register(up, zmq.POLLIN)
            while not self._stop.is_set():
                ready = dict(poller.poll(50))  # wakes to see _stop
                if down in ready:
                    up.send_multipart(down.recv_multipart())
                if up in ready:
                    frames = up.recv_multipart()
                    if self._passes(frames):
                        down.send_multipart(frames)
        finally:
            down.close(linger=0)
            up.close(linger=0)
            context.term()

    @contextlib.contextmanager
    def running(self) -> Iterator[Relay]:
        self._thread.start()
        assert self._bound.wait(WAIT)
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(WAIT)


@pytest.fixture
def relay(daemon: DaemonProcess) -> Iterator[Relay]:
    with Relay(f"ipc://{daemon.runtime_dir}/events.sock").running() as running:
        yield running


async def test_a_dropped_event_is_a_gap(daemon: DaemonProcess, relay: Relay) -> None:
    async with (
        AsyncClient(runtime_dir=daemon.runtime_dir, events=relay.endpoint) as client,
        client.watch() as watch,
    ):
        await started(watch)
        relay.drop_next_state_event()
        await client.create_assistant(id="lost")
        await client.create_assistant(id="found")
        seen = await until(watch, lambda event: isinstance(event, Synced))
        assert seen[-1] == Synced(
            reason="gap", epoch=watch.mirror.epoch or "", seq=watch.mirror.seq, time=seen[-1].time
        )
        assert not any(isinstance(event, AssistantCreated) for event in seen)
        assert {"lost", "found"} <= set(watch.mirror.assistants)
        assert_mirrors(watch.mirror, await caught_up(client, watch))


async def test_a_dropped_last_event_shows_at_the_next_heartbeat(
    daemon: DaemonProcess, relay: Relay
) -> None:
    async with (
        AsyncClient(runtime_dir=daemon.runtime_dir, events=relay.endpoint) as client,
        client.watch() as watch,
    ):
        await started(watch)
        relay.drop_next_state_event()
        await client.create_assistant(id="last")
        resynced = await next_of(watch, Synced, within=3.0)  # a heartbeat comes every second
        assert resynced.reason == "gap"
        assert "last" in watch.mirror.assistants


async def test_a_silent_stream_resyncs(daemon: DaemonProcess, relay: Relay) -> None:
    async with (
        AsyncClient(runtime_dir=daemon.runtime_dir, events=relay.endpoint) as client,
        client.watch() as watch,
    ):
        await started(watch)
        relay.pause()
        await client.create_assistant(id="unheard")
        resynced = await next_of(watch, Synced, within=10.0)  # three heartbeats, and a bit
        assert resynced.reason == "silence"
        assert "unheard" in watch.mirror.assistants
        relay.pause(False)
        await client.create_assistant(id="heard")
        assert (await next_of(watch, AssistantCreated)).assistant.id == "heard"
        assert_mirrors(watch.mirror, await caught_up(client, watch))


async def test_a_daemon_restart_while_watching_resyncs_to_the_new_epoch(root: Path) -> None:
    runtime_dir = short_dir()
    try:
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(AsyncClient(runtime_dir=runtime_dir))
            with running_daemon(root, runtime_dir=runtime_dir) as first:
                first.wait_for_log(is_watching)
                watch = await stack.enter_async_context(client.watch())
                synced = await started(watch)
                await client.create_assistant(id="ada", name="Ada")
                await next_of(watch, AssistantCreated)
            # Stopped: the watch hears it go, and keeps the last state it knew.
            stopping = await next_of(watch, DaemonStopping)
            assert (stopping.epoch, stopping.seq) == (synced.epoch, synced.seq + 1)
            assert "ada" in watch.mirror.assistants
            # Changed while no daemon runs: only a snapshot can tell.
            shutil.rmtree(root / "ada")
            write_definition(root, "bob", {"name": "Bob"})
            with running_daemon(root, runtime_dir=runtime_dir) as second:
                resynced = await next_of(watch, Synced, within=10.0)
                assert resynced.reason == "epoch"
                assert resynced.epoch != synced.epoch
                assert set(watch.mirror.assistants) == {"jan", "bob"}
                assert_mirrors(watch.mirror, await caught_up(client, watch))
                # And the new daemon's events follow.
                second.wait_for_log(is_watching)
                await client.modify_assistant("bob", name="Bob 2")
                updated = await next_of(watch, AssistantUpdated)
                assert (updated.epoch, updated.seq) == (resynced.epoch, resynced.seq + 1)
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)


# --- changes to invalid files that once published nothing ---------------------------------------


async def marker(root: Path, watch: AsyncWatch, name: str) -> None:
    """A hand edit after the ones under test, and its event: the daemon's watcher is done with
    those then (it takes the changes of one batch in one step of its loop, and a batch never
    holds a later change without the earlier ones)."""
    write_definition(root, "jan", {"name": name}, atomic=True)
    await until(
        watch,
        lambda event: isinstance(event, AssistantUpdated) and event.assistant.name == name,
    )


async def test_fixing_a_file_back_to_its_last_good_version_is_published(
    daemon: DaemonProcess,
) -> None:
    """An undo in the editor: the definition is the one still served, but subscribers were told
    the file is invalid, so the fix needs an event (it once had none: LiveState.put)."""
    daemon.wait_for_log(is_watching)
    async with (
        AsyncClient(runtime_dir=daemon.runtime_dir) as client,
        client.watch() as watch,
    ):
        await started(watch)
        good = {"name": "Ada", "created_at": 1}
        write_definition(daemon.root, "ada", good, atomic=True)
        await next_of(watch, AssistantCreated)
        write_definition(daemon.root, "ada", "{not json", atomic=True)
        await next_of(watch, AssistantInvalid)
        write_definition(daemon.root, "ada", good, atomic=True)
        fixed = await next_of(watch, AssistantUpdated)
        assert fixed.assistant.id == "ada"
        await marker(daemon.root, watch, "after the fix")
        snapshot = await caught_up(client, watch)
        assert snapshot.invalid == []
        assert_mirrors(watch.mirror, snapshot)


async def test_removing_a_folder_that_never_had_a_valid_file_is_published(
    daemon: DaemonProcess,
) -> None:
    """Its problem was published and is in every snapshot, so its removal needs an event too
    (it once had none: LiveState.remove)."""
    daemon.wait_for_log(is_watching)
    async with (
        AsyncClient(runtime_dir=daemon.runtime_dir) as client,
        client.watch() as watch,
    ):
        await started(watch)
        write_definition(daemon.root, "junk", "{not json", atomic=True)
        broken = await next_of(watch, AssistantInvalid)
        assert (broken.assistant_id, broken.served) == ("junk", False)
        shutil.rmtree(daemon.root / "junk")
        assert (await next_of(watch, AssistantDeleted)).assistant_id == "junk"
        await marker(daemon.root, watch, "after the removal")
        snapshot = await caught_up(client, watch)
        assert snapshot.invalid == []
        assert_mirrors(watch.mirror, snapshot)


def test_events_encode_as_their_wire_json() -> None:
    """What `assistantctl watch --json` prints is the daemon's JSON, topic included."""
    synced = Synced(reason="start", epoch="e", seq=1, time=2.0)
    assert msgspec.json.decode(msgspec.json.encode(synced)) == {
        "topic": "client.synced",
        "reason": "start",
        "epoch": "e",
        "seq": 1,
        "time": 2.0,
    }

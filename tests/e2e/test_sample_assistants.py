"""The test assistants of tests/assistants/, one per way of writing an assistant's code, each
copied into a real daemon's root, started, talked to and stopped as a frontend would."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistantd.client import AsyncClient, Client, WorkerMessage
from assistantd.client.watch import Watch
from tests.e2e.workers import write_config
from tests.utils import DaemonProcess, running_daemon, short_dir

SAMPLES = Path(__file__).resolve().parent.parent / "assistants"
NAMES = ("fork-echo", "utility-echo", "jan-module", "jan-module-esm", "with-deps")
MESSAGE_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    """One daemon whose root holds a copy of every test assistant."""
    base = short_dir("samples-")
    try:
        root = base / "assistants"
        root.mkdir()
        for name in NAMES:
            shutil.copytree(SAMPLES / name, root / name)
        config = write_config(base / "assistantd.toml")
        # npm installs with-deps' `file:` dependency: never the network, nor the user's cache.
        npm = {"npm_config_offline": "true", "npm_config_cache": str(base / "npm-cache")}
        with running_daemon(root, args=("--config", str(config)), env=npm) as running:
            yield running
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def client(daemon: DaemonProcess) -> Iterator[Client]:
    with Client(runtime_dir=daemon.runtime_dir, timeout=20) as client:
        yield client


def test_every_test_assistant_is_listed_ready(client: Client) -> None:
    listed = {assistant.id: assistant for assistant in client.iter_assistants()}
    assert set(NAMES) <= set(listed)
    assert all(listed[name].state == "ready" and listed[name].runtime is None for name in NAMES)


def test_fork_style_code_talks_with_messages_and_answers_invokes_itself(client: Client) -> None:
    with client.watch("worker.message") as watch:
        started = client.start_assistant("fork-echo")
        assert started.state == "running"
        assert started.runtime is not None
        assert started.runtime.style == "process"
        assert next_message(watch, "fork-echo") == {"hello": "fork-echo is up"}
        client.send_to_assistant("fork-echo", {"ping": 7})
        assert next_message(watch, "fork-echo") == {"pong": 7}
    assert client.invoke_assistant("fork-echo", "upper", "quiet") == "QUIET"
    assert_stops(client, "fork-echo")


def test_utility_process_style_code_gets_message_events(client: Client) -> None:
    with client.watch("worker.message") as watch:
        started = client.start_assistant("utility-echo")
        assert started.runtime is not None
        assert started.runtime.style == "process"
        client.send_to_assistant("utility-echo", ["any", {"json": None}])
        assert next_message(watch, "utility-echo") == {"echo": ["any", {"json": None}], "ports": 0}
    assert_stops(client, "utility-echo")


def test_jan_module_style_code_is_invoked_by_name_and_disposed(
    client: Client, daemon: DaemonProcess
) -> None:
    started = client.start_assistant("jan-module")
    assert started.runtime is not None
    assert (started.runtime.style, sorted(started.runtime.methods)) == (
        "module",
        ["add", "dispose", "greet", "later"],
    )
    assert client.invoke_assistant("jan-module", "greet", "Ada") == "Hello, Ada!"
    assert client.invoke_assistant("jan-module", "add", 2, 40) == 42
    assert client.invoke_assistant("jan-module", "later", 20, {"n": 1}) == {"n": 1}
    assert_stops(client, "jan-module")
    assert (daemon.root / "jan-module" / "disposed.txt").read_text() == "yes"


def test_esm_module_code_with_top_level_await(client: Client) -> None:
    started = client.start_assistant("jan-module-esm")
    assert started.runtime is not None
    assert started.runtime.style == "module"
    described = client.invoke_assistant("jan-module-esm", "describe")
    assert described["name"] == "Jan module (ESM)"
    assert int(described["node"]) >= 18
    assert_stops(client, "jan-module-esm")


def test_code_with_an_npm_dependency_is_installed_then_run(
    client: Client, daemon: DaemonProcess
) -> None:
    assert not (daemon.root / "with-deps" / "node_modules").exists()
    client.start_assistant("with-deps")
    assert (daemon.root / "with-deps" / "node_modules" / "shout").exists()
    assert client.invoke_assistant("with-deps", "shout", "hello") == "HELLO!"
    assert_stops(client, "with-deps")


async def test_an_async_watch_is_live_once_entered(daemon: DaemonProcess) -> None:
    # Worker events are in no snapshot: a watch must be subscribed when its block begins, not
    # at its first next(), or what a worker says in between is lost.
    async with AsyncClient(runtime_dir=daemon.runtime_dir, timeout=20) as client:
        await client.start_assistant("fork-echo")
        try:
            async with client.watch("worker.message") as watch:
                await client.send_to_assistant("fork-echo", {"ping": 1})
                while True:
                    event = await watch.next(timeout=MESSAGE_TIMEOUT)
                    if isinstance(event, WorkerMessage):
                        break
            assert event.message == {"pong": 1}
        finally:
            await client.stop_assistant("fork-echo")


def test_the_samples_in_the_tree_are_left_untouched() -> None:
    # The daemon ran copies: nothing may have been installed or written into tests/assistants.
    written = [
        path.name
        for path in SAMPLES.rglob("*")
        if path.name in ("node_modules", "disposed.txt", "package-lock.json")
    ]
    assert written == []


def next_message(watch: Watch, assistant_id: str) -> object:
    """The next ``worker.message`` of ``assistant_id`` (others are skipped)."""
    while True:
        event = watch.next(timeout=MESSAGE_TIMEOUT)
        if isinstance(event, WorkerMessage) and event.assistant_id == assistant_id:
            return event.message


def assert_stops(client: Client, assistant_id: str) -> None:
    stopped = client.stop_assistant(assistant_id)
    assert stopped.state == "ready"
    assert stopped.runtime is not None
    assert stopped.runtime.last_exit is not None
    assert stopped.runtime.last_exit.stopped_by == "disconnect"

"""The HTTP gateway (``assistantd-http``) as its users meet it: the official ``openai`` package,
the Jan spec's curl lines, a browser's Server-Sent Events, and the bind and token rules.

Every test runs a real daemon and the real gateway process in front of it.
"""

from __future__ import annotations

import asyncio
import doctest
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from assistantd.client import Client
from assistantd.client.curve import ClientSecurity
from assistantd.http import access, app, main, server, settings, sse
from tests.http.helpers import (
    Gateway,
    assert_openai_error,
    gateway_env,
    http,
    http_full,
    run_gateway_to_exit,
    running_gateway,
)
from tests.utils import DaemonProcess, running_daemon, short_dir


@pytest.fixture
def gateway(daemon: DaemonProcess) -> Iterator[Gateway]:
    with running_gateway(daemon.runtime_dir) as running:
        yield running


def test_the_gateway_modules_examples() -> None:
    # pytest cannot collect clients/http itself for --doctest-modules: from the repository
    # the folder's name would be the standard library's `http`.
    for module in (sse, main, settings, access, app, server):
        failed, _ = doctest.testmod(module)
        assert failed == 0, module.__name__


# --- (a) the official openai package -------------------------------------------------------


@pytest.mark.filterwarnings("ignore:deprecated$:DeprecationWarning")  # beta.assistants is
def test_the_openai_package_creates_retrieves_updates_lists_and_deletes(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url, api_key="x", max_retries=0, timeout=15)
    assistants = client.beta.assistants

    created = assistants.create(
        model="gpt-4",
        name="Math Tutor",
        instructions="Answer math.",
        tools=[{"type": "code_interpreter"}],
    )
    assert created.id.startswith("asst_")
    assert (created.name, created.model) == ("Math Tutor", "gpt-4")
    assert created.tools[0].type == "code_interpreter"

    assert assistants.retrieve(created.id).instructions == "Answer math."
    updated = assistants.update(created.id, name="Algebra Tutor", metadata={"level": "2"})
    assert (updated.name, updated.metadata) == ("Algebra Tutor", {"level": "2"})

    # Enough for three pages of ten: the SDK must follow has_more / after on its own.
    made = {created.id} | {assistants.create(model="m", name=f"n{i}").id for i in range(24)}
    first_page = assistants.list(limit=10)
    assert len(first_page.data) == 10
    assert first_page.has_more
    listed = [assistant.id for assistant in assistants.list(limit=10)]
    assert len(listed) == len(set(listed)) == 26  # the 25, and the default `jan`
    assert set(listed) == made | {"jan"}
    assert listed == [assistant.id for assistant in assistants.list(limit=100).data]

    deleted = assistants.delete(created.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (created.id, True, "assistant.deleted")
    with pytest.raises(openai.NotFoundError) as missing:
        assistants.retrieve(created.id)
    assert missing.value.status_code == 404
    assert missing.value.code == "not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        assistants.create(model="m", temperature=7)
    assert bad.value.param == "temperature"


# --- (b) the Jan spec's curl lines, and the rest of the routes ------------------------------


def test_the_jan_spec_curl_examples_work_as_written(gateway: Gateway) -> None:
    # curl {JAN_URL}/v1/assistants -H "Content-Type: application/json" \
    #   -H "OpenAI-Beta: assistants=v1" -d '{"instructions": ..., "model": "gpt-4"}'
    status, created = http(
        "POST",
        f"{gateway.url}/assistants",
        {
            "instructions": "You are a personal math tutor. Write and run code to answer math "
            "questions.",
            "name": "Math Tutor",
            "tools": [{"type": "code_interpreter"}],
            "model": "gpt-4",
        },
        headers={"OpenAI-Beta": "assistants=v1"},
    )
    assert status == 200
    assert (created["object"], created["name"], created["model"]) == (
        "assistant",
        "Math Tutor",
        "gpt-4",
    )
    assistant_id = created["id"]

    status, page = http("GET", f"{gateway.url}/assistants?order=desc&limit=20")
    assert status == 200
    assert page["object"] == "list"
    listed = [a["id"] for a in page["data"]]
    assert sorted(listed) == sorted([assistant_id, "jan"])
    assert (page["first_id"], page["last_id"], page["has_more"]) == (listed[0], listed[-1], False)

    # Pages of one, oldest first (the two may share a second: the order is the daemon's).
    oldest, newest = reversed(listed)
    status, page = http("GET", f"{gateway.url}/assistants?limit=1&order=asc")
    assert (status, [a["id"] for a in page["data"]], page["has_more"]) == (200, [oldest], True)
    status, page = http("GET", f"{gateway.url}/assistants?limit=1&order=asc&after={oldest}")
    assert (status, [a["id"] for a in page["data"]], page["has_more"]) == (200, [newest], False)

    assert http("GET", f"{gateway.url}/assistants/{assistant_id}") == (200, created)

    status, deleted = http("DELETE", f"{gateway.url}/assistants/{assistant_id}")
    assert status == 200
    # OpenAI's deletion object (Jan's adds `state`).
    assert (deleted["id"], deleted["object"], deleted["deleted"]) == (
        assistant_id,
        "assistant.deleted",
        True,
    )
    status, body = http("GET", f"{gateway.url}/assistants/{assistant_id}")
    assert status == 404
    assert_openai_error(body, "not_found")
    assert body["error"]["param"] == "assistant_id"


def test_errors_have_openai_statuses_and_bodies(gateway: Gateway) -> None:
    status, body = http("POST", f"{gateway.url}/assistants", raw=b'{"name": ')
    assert status == 400
    assert_openai_error(body, "invalid_json")
    status, body = http("POST", f"{gateway.url}/assistants", [1, 2])
    assert status == 400
    assert_openai_error(body, "invalid_type")
    status, body = http("GET", f"{gateway.url}/assistants?limit=many")
    assert (status, body["error"]["param"]) == (400, "limit")
    # The daemon's own errors keep their status: a limit, a refused delete, a conflict.
    status, body = http("GET", f"{gateway.url}/assistants?limit=1000")
    assert (status, body["error"]["code"]) == (400, "integer_above_max_value")
    status, body = http("DELETE", f"{gateway.url}/assistants/jan")
    assert status == 403
    assert_openai_error(body, "default_assistant")
    status, body = http("POST", f"{gateway.url}/assistants", {"id": "jan"})
    assert (status, body["error"]["code"]) == (409, "id_taken")
    status, body = http("GET", f"{gateway.url}/threads")
    assert status == 404
    assert_openai_error(body, "unknown_url")
    status, body = http("PUT", f"{gateway.url}/assistants/jan", {})
    assert status == 405
    assert_openai_error(body, "method_not_allowed")
    # A number no float holds: the daemon's 400, not a fault of the gateway's (its wait for
    # the reply is bounded by the protocol's longest invoke).
    invoke = b'{"method": "ping", "timeout_ms": ' + b"9" * 400 + b"}"
    status, body = http("POST", f"{gateway.url}/assistants/jan/invoke", raw=invoke)
    assert (status, body["error"]["param"]) == (400, "timeout_ms")


def test_a_daemon_that_cannot_be_reached_is_a_503() -> None:
    runtime_dir = short_dir()  # no daemon here
    with running_gateway(runtime_dir, "--timeout", "2") as gateway:
        status, body = http("GET", f"{gateway.url}/assistants")
    assert status == 503
    assert_openai_error(body, "daemon_not_running")
    assert body["error"]["type"] == "server_error"


def test_the_jan_extensions_reach_the_workers_and_the_snapshot(gateway: Gateway) -> None:
    status, started = http("POST", f"{gateway.url}/assistants/jan/start")
    assert (status, started["state"], started["runtime"]["style"]) == (200, "running", "default")
    assert http("POST", f"{gateway.url}/assistants/jan/invoke", {"method": "ping"}) == (
        200,
        {"result": "pong"},
    )
    status, result = http(
        "POST",
        f"{gateway.url}/assistants/jan/invoke",
        {"method": "getDefinition", "args": [], "timeout_ms": 5000},
    )
    assert (status, result["result"]["name"]) == (200, "Jan")
    status, body = http("POST", f"{gateway.url}/assistants/jan/invoke", {"method": "nope"})
    assert status == 404
    assert_openai_error(body, "method_not_found")
    status, sent = http("POST", f"{gateway.url}/assistants/jan/send", {"message": {"hi": 1}})
    assert (status, sent["object"]) == (200, "assistant.message.sent")
    status, stopped = http("POST", f"{gateway.url}/assistants/jan/stop")
    assert (status, stopped["state"]) == (200, "ready")
    status, body = http("POST", f"{gateway.url}/assistants/jan/send", {"message": 1})
    assert status == 409
    assert_openai_error(body, "assistant_not_running")

    status, snapshot = http("GET", f"{gateway.url}/snapshot")
    assert (status, snapshot["object"], [a["id"] for a in snapshot["assistants"]]) == (
        200,
        "snapshot",
        ["jan"],
    )

    folder = short_dir()
    archive = folder / "jan.zip"
    status, exported = http("POST", f"{gateway.url}/assistants/jan/export", {"path": str(archive)})
    assert (status, exported["path"]) == (200, str(archive))
    assert archive.is_file()
    status, imported = http(
        "POST", f"{gateway.url}/assistants/import", {"path": str(archive), "assistant_id": "jan2"}
    )
    assert (status, imported["id"], imported["state"]) == (200, "jan2", "ready")
    status, body = http("POST", f"{gateway.url}/assistants/jan2/cancel")
    assert status == 409
    assert_openai_error(body, "not_downloading")
    status, body = http("POST", f"{gateway.url}/assistants/download", {"url": "not a url"})
    assert status == 400
    assert body["error"]["param"] == "url"


# --- (c) Server-Sent Events -----------------------------------------------------------------


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: Any


async def next_event(
    response: aiohttp.ClientResponse, *, comments: list[str] | None = None
) -> SseEvent:
    """The next event of an SSE stream; comment lines go to ``comments`` when given."""
    fields: dict[str, str] = {}
    data: list[str] = []
    while True:
        line = (await response.content.readline()).decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if line == "":
            if data or fields:
                return SseEvent(
                    fields.get("id"), fields.get("event", "message"), json.loads("\n".join(data))
                )
            continue
        if line.startswith(":"):
            if comments is not None:
                comments.append(line)
            continue
        name, _, value = line.partition(": ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = value


async def event_where(response: aiohttp.ClientResponse, topic: str, assistant_id: str) -> SseEvent:
    """The first ``topic`` event about ``assistant_id``."""
    while True:
        event = await next_event(response)
        if event.event == topic and event.data["assistant"]["id"] == assistant_id:
            return event


async def test_events_stream_with_seq_ids_and_last_event_id_resume(daemon: DaemonProcess) -> None:
    # A change before the gateway starts: an id from before it is one it cannot replay.
    with Client(runtime_dir=daemon.runtime_dir) as client:
        client.create_assistant(id="before")
    with running_gateway(daemon.runtime_dir, "--heartbeat", "0.2") as gateway:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            events_url = f"{gateway.url}/events?prefix=assistant."
            async with session.get(events_url) as stream:
                assert stream.status == 200
                assert stream.headers["Content-Type"].startswith("text/event-stream")
                async with session.post(f"{gateway.url}/assistants", json={"name": "sse"}) as reply:
                    assistant_id = (await reply.json())["id"]
                created = await event_where(stream, "assistant.created", assistant_id)
            epoch, seq = created.data["epoch"], created.data["seq"]
            assert created.id == f"{epoch}:{seq}"

            # Two changes while nobody listens.
            for name in ("one", "two"):
                url = f"{gateway.url}/assistants/{assistant_id}"
                async with session.post(url, json={"name": name}) as reply:
                    assert reply.status == 200

            headers = {"Last-Event-ID": created.id}
            async with session.get(events_url, headers=headers) as stream:
                missed = [await next_event(stream), await next_event(stream)]
            assert [(e.event, e.data["seq"], e.data["assistant"]["name"]) for e in missed] == [
                ("assistant.updated", seq + 1, "one"),
                ("assistant.updated", seq + 2, "two"),
            ]
            assert [e.id for e in missed] == [f"{epoch}:{seq + 1}", f"{epoch}:{seq + 2}"]

            # Ids it cannot replay from: another run of the daemon, and one older than what
            # the gateway saw. Each gets one resync, whose id is where the stream stands.
            for stale in (f"0123abcd:{seq}", f"{epoch}:0", "garbage"):
                async with session.get(events_url, headers={"Last-Event-ID": stale}) as stream:
                    resync = await next_event(stream)
                assert resync.event == "resync", stale
                assert (resync.data["epoch"], resync.data["seq"]) == (epoch, seq + 2)
                assert resync.id == f"{epoch}:{seq + 2}"

            # An idle stream gets heartbeat comments, and nothing else.
            last_id = missed[-1].id
            assert last_id is not None
            async with session.get(events_url, headers={"Last-Event-ID": last_id}) as stream:
                async with asyncio.timeout(10):
                    while (line := (await stream.content.readline()).decode()) != ": heartbeat\n":
                        assert line.startswith(":") or line == "\n", line


async def first_event(response: aiohttp.ClientResponse, topic: str) -> SseEvent:
    """The first ``topic`` event of the stream."""
    while (event := await next_event(response)).event != topic:
        pass
    return event


async def test_a_daemon_restart_sends_open_streams_a_resync(root: Path) -> None:
    runtime_dir = short_dir()
    with (
        running_daemon(root, runtime_dir=runtime_dir) as first,
        running_gateway(runtime_dir) as gateway,
    ):
        timeout = aiohttp.ClientTimeout(total=40)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{gateway.url}/events") as stream,
        ):
            # An event seen through the stream: the gateway follows this daemon's epoch.
            async with session.post(f"{gateway.url}/assistants", json={}) as reply:
                assert reply.status == 200
            first_epoch = (await first_event(stream, "assistant.created")).data["epoch"]
            first.stop()
            assert (await first_event(stream, "daemon.stopping")).data["epoch"] == first_epoch
            with running_daemon(root, runtime_dir=runtime_dir):
                resync = await first_event(stream, "resync")
                assert resync.data["epoch"] not in (None, first_epoch)
                assert resync.id == f"{resync.data['epoch']}:{resync.data['seq']}"
                # The gateway's command socket found the new daemon too.
                async with session.get(f"{gateway.url}/assistants") as reply:
                    assert reply.status == 200
                stale = {"Last-Event-ID": f"{first_epoch}:1"}
                async with session.get(f"{gateway.url}/events", headers=stale) as again:
                    assert (await next_event(again)).event == "resync"


def daemon_message(topic: str, seq: int, epoch: str = "e1") -> bytes:
    return json.dumps({"topic": topic, "epoch": epoch, "time": 0.0, "seq": seq}).encode()


def queued(subscriber: sse.Subscriber) -> list[bytes | None]:
    return [subscriber.queue.get_nowait() for _ in range(subscriber.queue.qsize())]


def test_the_gateway_replays_only_what_it_holds_without_a_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The hub's bookkeeping alone, fed as its SUB socket would feed it: a buffer of three.
    monkeypatch.setattr(sse, "BUFFER_SIZE", 3)
    hub = sse.EventHub("ipc:///nowhere", ClientSecurity())
    hub.receive(daemon_message("daemon.welcome", 10))
    for seq in range(11, 16):
        hub.receive(daemon_message("assistant.updated", seq))
    # 13, 14 and 15 are held: resume from 12 on, not from 11.
    assert [chunk and chunk.split(b"\n")[0] for chunk in queued(hub.subscribe("", "e1:12"))] == [
        b"id: e1:13",
        b"id: e1:14",
        b"id: e1:15",
    ]
    assert b"event: resync" in (queued(hub.subscribe("", "e1:11"))[0] or b"")
    assert queued(hub.subscribe("", "e1:15")) == []
    assert b"event: resync" in (queued(hub.subscribe("", "e1:16"))[0] or b"")  # from the future
    # A seq the gateway skipped (its queue overflowed): nothing before it can be replayed, and
    # open streams are told.
    listening = hub.subscribe("", None)
    hub.receive(daemon_message("assistant.updated", 18))
    first, second = queued(listening)
    assert first is not None
    assert b"event: resync" in first
    assert second is not None
    assert second.startswith(b"id: e1:18")
    assert b"event: resync" in (queued(hub.subscribe("", "e1:15"))[0] or b"")
    assert queued(hub.subscribe("", "e1:17")) == [second]


# --- (d) binds and tokens (the settings themselves: test_settings.py) -------------------


def test_a_non_loopback_bind_is_refused_without_allow_remote(daemon: DaemonProcess) -> None:
    where = ("--runtime-dir", str(daemon.runtime_dir), "--listen", "0.0.0.0:0")
    refused = run_gateway_to_exit(*where)
    assert refused.returncode == 2
    assert "--allow-remote" in refused.stderr
    tokenless = run_gateway_to_exit(*where, "--allow-remote")
    assert tokenless.returncode == 2
    assert "needs a bearer token" in tokenless.stderr


def test_allow_remote_on_loopback_still_checks_host_and_needs_the_token(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    where = ("--runtime-dir", str(daemon.runtime_dir), "--listen", "127.0.0.1:0")
    tokenless = run_gateway_to_exit(*where, "--allow-remote")
    assert tokenless.returncode == 2
    assert "needs a bearer token" in tokenless.stderr
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    token_file.chmod(0o600)
    with running_gateway(
        daemon.runtime_dir, "--allow-remote", "--token-file", str(token_file)
    ) as gateway:
        good = {"Authorization": "Bearer s3cret-token"}
        status, body = http("GET", f"{gateway.url}/assistants/jan", headers=good)
        assert (status, body["id"]) == (200, "jan")
        # A rebinding page's name is refused on loopback whatever --allow-remote says.
        status, body = http(
            "GET", f"{gateway.url}/assistants/jan", headers={**good, "Host": "rebind.example"}
        )
        assert status == 403
        assert_openai_error(body, "host_not_allowed")


def test_a_blank_token_stops_the_start(daemon: DaemonProcess) -> None:
    for blank in ("", "  \t"):
        refused = run_gateway_to_exit(
            "--runtime-dir",
            str(daemon.runtime_dir),
            env=gateway_env(ASSISTANTD_HTTP_TOKEN=blank),
        )
        assert refused.returncode == 2, blank
        assert "ASSISTANTD_HTTP_TOKEN is set but blank" in refused.stderr


def test_a_remote_bind_needs_the_bearer_token(daemon: DaemonProcess, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    token_file.chmod(0o600)
    with running_gateway(
        daemon.runtime_dir, "--allow-remote", "--token-file", str(token_file), listen="0.0.0.0:0"
    ) as gateway:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
            status, response_headers, body = http_full(
                "GET", f"{gateway.url}/assistants", headers=headers
            )
            assert status == 401, headers
            assert_openai_error(body, "invalid_api_key")
            assert response_headers["WWW-Authenticate"] == "Bearer"
        status, body = http("GET", f"{gateway.url}/events", headers={"Authorization": "x"})
        assert status == 401
        good = {"Authorization": "Bearer s3cret-token"}
        status, page = http("GET", f"{gateway.url}/assistants", headers=good)
        assert (status, [a["id"] for a in page["data"]]) == (200, ["jan"])
        # Served on every address: a Host that is not loopback is no DNS rebinding here.
        status, _ = http(
            "GET", f"{gateway.url}/assistants", headers={**good, "Host": "gateway.example"}
        )
        assert status == 200
        client = openai.OpenAI(base_url=gateway.url, api_key="s3cret-token", max_retries=0)
        with pytest.warns(DeprecationWarning, match="^deprecated$"):
            assert client.beta.assistants.retrieve("jan").name == "Jan"


def test_a_token_file_others_can_read_is_refused(daemon: DaemonProcess, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    token_file.chmod(0o644)
    refused = run_gateway_to_exit(
        "--runtime-dir", str(daemon.runtime_dir), "--token-file", str(token_file)
    )
    assert refused.returncode == 2
    assert f"chmod 600 {token_file}" in refused.stderr

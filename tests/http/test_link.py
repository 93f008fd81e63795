"""The gateway's link to the daemon when the daemon misbehaves: silence, replies that cannot be
read, a connection that drops, a peer that is not ZeroMQ; and the pyzmq link over tcp://.

The misbehaving daemons are real sockets at the runtime dir's ``command.sock``: a pyzmq ROUTER
that answers as each test tells it, or a plain Unix socket server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import zmq

from assistantd.client.zmtp import COMMAND, GREETING, READY
from tests.http.helpers import (
    RawConnection,
    assert_openai_error,
    http,
    request_bytes,
    running_gateway,
)
from tests.utils import running_daemon, short_dir

WAIT = 10.0

Answer = Callable[[dict[str, Any], bytes], list[bytes] | None]
"""What the fake daemon sends back for a request (its frames after the envelope), or None."""


class FakeDaemon:
    """A ROUTER at ``command.sock`` that records each request and answers with ``answer``."""

    def __init__(self, runtime_dir: Path, answer: Answer) -> None:
        self.endpoint = f"ipc://{runtime_dir}/command.sock"
        self.requests: list[dict[str, Any]] = []
        self._answer = answer
        self._seen = threading.Condition()
        self._stop = threading.Event()
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(self.endpoint)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._socket.poll(50):
                continue
            envelope, _, body = self._socket.recv_multipart()
            request = json.loads(body)
            with self._seen:
                self.requests.append(request)
                self._seen.notify_all()
            frames = self._answer(request, envelope)
            if frames is not None:
                self._socket.send_multipart([envelope, b"", *frames])

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        """The requests once ``count`` have come (fails after :data:`WAIT` seconds)."""
        with self._seen:
            assert self._seen.wait_for(lambda: len(self.requests) >= count, WAIT), self.requests
            return list(self.requests)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self._socket.close(linger=0)
        self._context.term()


@contextmanager
def fake_daemon(runtime_dir: Path, answer: Answer) -> Iterator[FakeDaemon]:
    daemon = FakeDaemon(runtime_dir, answer)
    try:
        yield daemon
    finally:
        daemon.close()


def silent(request: dict[str, Any], envelope: bytes) -> list[bytes] | None:
    return None


def test_no_reply_is_a_503_after_the_methods_wait_and_nothing_is_sent_twice() -> None:
    runtime_dir = short_dir()
    with (
        fake_daemon(runtime_dir, silent) as daemon,
        running_gateway(runtime_dir, "--timeout", "0.3") as gateway,
    ):
        status, body = http("GET", f"{gateway.url}/assistants/jan")
        assert status == 503
        assert_openai_error(body, "timeout")
        assert body["error"]["type"] == "server_error"
        status, body = http(
            "POST", f"{gateway.url}/assistants/jan/invoke", {"method": "m", "timeout_ms": 200}
        )
        assert (status, body["error"]["code"]) == (503, "timeout")
        assert "0.5s" in body["error"]["message"]  # the invoke's 0.2 s, then the 0.3 s
        status, _ = http("GET", f"{gateway.url}/snapshot")
        assert status == 503
        # Each went out once, in order: had one been sent again, it would stand before the
        # next one here.
        methods = [request["method"] for request in daemon.wait_for(3)]
        assert methods == ["getAssistant", "invokeAssistant", "getSnapshot"]
        assert len({request["id"] for request in daemon.requests}) == 3


def test_replies_go_out_as_sent_and_unreadable_ones_are_errors() -> None:
    result = b'{"id":"jan","object":"assistant","name":"As sent","x":[1,2.5,null]}'

    def answer(request: dict[str, Any], envelope: bytes) -> list[bytes] | None:
        assistant_id = request["params"].get("assistant_id")
        if assistant_id == "garbage":
            return [b"\xffnot json"]
        if assistant_id == "stray":  # a reply to some other call, then none to this one
            return [json.dumps({"id": 99999, "result": {}}).encode()]
        if assistant_id == "conflict":
            error = {
                "message": "Busy.",
                "type": "invalid_request_error",
                "param": None,
                "code": "busy",
                "status": 409,
                "details": {"state": "downloading"},
            }
            return [json.dumps({"id": request["id"], "error": error}).encode()]
        return [b'{"id":%d,"result":%b}' % (request["id"], result)]

    runtime_dir = short_dir()
    with (
        fake_daemon(runtime_dir, answer),
        running_gateway(runtime_dir, "--timeout", "0.3") as gateway,
        RawConnection(gateway.port) as connection,
    ):
        connection.send(request_bytes("GET", "/v1/assistants/jan", gateway.port))
        response = connection.response()
        assert (response.status, response.body) == (200, result)  # byte for byte
        status, body = http("GET", f"{gateway.url}/assistants/garbage")
        assert status == 500
        assert_openai_error(body, body["error"]["code"])
        assert "cannot be read" in body["error"]["message"]
        status, body = http("GET", f"{gateway.url}/assistants/stray")
        assert (status, body["error"]["code"]) == (503, "timeout")
        status, body = http("GET", f"{gateway.url}/assistants/conflict")
        assert status == 409
        assert body == {
            "error": {
                "message": "Busy.",
                "type": "invalid_request_error",
                "param": None,
                "code": "busy",
                "details": {"state": "downloading"},
            }
        }


def test_a_lost_connection_fails_the_calls_on_it_and_the_next_call_reconnects() -> None:
    runtime_dir = short_dir()
    received = threading.Event()

    def note(request: dict[str, Any], envelope: bytes) -> list[bytes] | None:
        received.set()
        return None

    first = FakeDaemon(runtime_dir, note)
    try:
        with running_gateway(runtime_dir, "--timeout", "30") as gateway:
            outcome: list[tuple[int, Any]] = []
            caller = threading.Thread(
                target=lambda: outcome.append(http("GET", f"{gateway.url}/assistants/jan"))
            )
            caller.start()
            assert received.wait(WAIT)
            first.close()  # the daemon goes away with the call in flight
            caller.join(WAIT)
            assert not caller.is_alive()
            status, body = outcome[0]
            assert (status, body["error"]["code"]) == (503, "connection_failed")
            assert "may or may not have been carried out" in body["error"]["message"]

            def ok(request: dict[str, Any], envelope: bytes) -> list[bytes] | None:
                return [json.dumps({"id": request["id"], "result": {"id": "back"}}).encode()]

            with fake_daemon(runtime_dir, ok) as second:
                assert http("GET", f"{gateway.url}/assistants/jan") == (200, {"id": "back"})
                assert [r["method"] for r in second.wait_for(1)] == ["getAssistant"]
    finally:
        first.close()


def test_a_peer_that_is_not_zeromq_is_a_503() -> None:
    runtime_dir = short_dir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(runtime_dir / "command.sock"))
    listener.listen()

    def babble() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(WAIT)
            connection.recv(64)  # the gateway's greeting
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + bytes(64))
            while connection.recv(4096):  # until the gateway gives up on it
                pass

    speaker = threading.Thread(target=babble, daemon=True)
    speaker.start()
    try:
        with running_gateway(runtime_dir, "--timeout", "5") as gateway:
            status, body = http("GET", f"{gateway.url}/assistants/jan")
            assert status == 503
            assert_openai_error(body, "connection_failed")
            assert "ZMTP" in body["error"]["message"]
    finally:
        speaker.join(WAIT)
        listener.close()


def test_a_peer_that_is_ready_and_fails_in_one_breath_is_a_503() -> None:
    # READY and an ERROR in one read: the connection has ended before the link gets to use
    # it, and calls on it must fail at once rather than wait for replies that cannot come.
    runtime_dir = short_dir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(runtime_dir / "command.sock"))
    listener.listen()
    reason = b"too busy"
    error = b"\x05ERROR" + bytes([len(reason)]) + reason
    stop = threading.Event()

    def ready_then_fail() -> None:
        while True:
            connection, _ = listener.accept()
            if stop.is_set():
                connection.close()
                return
            with connection:
                connection.settimeout(WAIT)
                connection.sendall(GREETING + READY + bytes([COMMAND, len(error)]) + error)
                with contextlib.suppress(OSError):
                    while connection.recv(4096):  # until the gateway drops it
                        pass

    speaker = threading.Thread(target=ready_then_fail, daemon=True)
    speaker.start()
    try:
        with running_gateway(runtime_dir, "--timeout", "3") as gateway:
            for _ in range(2):  # and again: the next call connects anew
                status, body = http("GET", f"{gateway.url}/assistants/jan")
                assert status == 503
                assert_openai_error(body, "connection_failed")
                assert "too busy" in body["error"]["message"]
    finally:
        stop.set()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as waker:  # out of its accept
            waker.connect(str(runtime_dir / "command.sock"))
        speaker.join(WAIT)
        listener.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_tcp_daemon_is_reached_through_pyzmq(root: Path) -> None:
    command, events = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    endpoints = ("--command", command, "--events", events, "--insecure-tcp")
    with (
        running_daemon(root, args=endpoints) as daemon,
        running_gateway(daemon.runtime_dir, *endpoints) as gateway,
    ):
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{gateway.url}/events?prefix=assistant.") as stream,
        ):
            async with session.post(f"{gateway.url}/assistants", json={"id": "over-tcp"}) as reply:
                assert reply.status == 200
            async with asyncio.timeout(WAIT):
                while (line := await stream.content.readline()) != b"event: assistant.created\n":
                    assert line, "the stream ended"
            async with session.get(f"{gateway.url}/assistants/over-tcp") as reply:
                assert (reply.status, (await reply.json())["id"]) == (200, "over-tcp")
            async with session.get(f"{gateway.url}/assistants/nobody") as reply:
                assert reply.status == 404


async def test_many_calls_in_flight_each_get_their_own_reply(root: Path) -> None:
    count = 20
    with running_daemon(root) as daemon, running_gateway(daemon.runtime_dir) as gateway:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def create(n: int) -> str:
                async with session.post(
                    f"{gateway.url}/assistants", json={"id": f"many-{n}"}
                ) as reply:
                    assert reply.status == 200
                    return str((await reply.json())["id"])

            made = await asyncio.gather(*(create(n) for n in range(count)))
            assert made == [f"many-{n}" for n in range(count)]

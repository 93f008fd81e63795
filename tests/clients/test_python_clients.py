"""The Python clients against peers that misbehave: silent, slow, out of order, malformed."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import zmq

from assistantd.client import AsyncClient, Client, InternalError, NotFoundError, UnavailableError
from tests.utils import short_dir

Reply = Callable[[list[list[bytes]]], list[list[bytes]]]
"""Given the requests received so far (frames), the replies to send now (frames)."""


class FakeDaemon(str):
    """The endpoint of a fake daemon, with an event set when its first request arrives."""

    received: threading.Event


@contextmanager
def fake_daemon(answer: Reply, *, batch: int = 1) -> Iterator[FakeDaemon]:
    """A real ROUTER socket in a thread that answers each ``batch`` of requests with ``answer``."""
    endpoint = f"ipc://{short_dir()}/command.sock"
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(endpoint)
    stop = threading.Event()
    fake = FakeDaemon(endpoint)
    fake.received = threading.Event()

    def serve() -> None:
        pending: list[list[bytes]] = []
        while not stop.is_set():
            if router.poll(50, zmq.POLLIN):
                pending.append(router.recv_multipart())
                fake.received.set()
                if len(pending) == batch:
                    for frames in answer(pending):
                        router.send_multipart(frames)
                    pending = []

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        stop.set()
        thread.join(5)
        router.close(linger=0)
        context.term()


def body_of(frames: list[bytes]) -> dict[str, object]:
    body = json.loads(frames[-1])
    assert isinstance(body, dict)
    return body


def echo_ids(requests: list[list[bytes]]) -> list[list[bytes]]:
    """Answer each request with its own method name, in reverse order of arrival."""
    replies = []
    for frames in reversed(requests):
        request = body_of(frames)
        reply = {"id": request["id"], "result": {"method": request["method"], "id": request["id"]}}
        replies.append([*frames[:-1], json.dumps(reply).encode()])
    return replies


def silent(requests: list[list[bytes]]) -> list[list[bytes]]:
    return []


def test_sync_client_times_out_on_a_silent_daemon_and_recovers() -> None:
    with fake_daemon(silent) as endpoint, Client(command=endpoint, timeout=0.3) as client:
        with pytest.raises(UnavailableError) as caught:
            client.ping()
        assert (caught.value.status, caught.value.code) == (503, "timeout")
        # The next call uses a fresh socket: it times out the same way, never hangs.
        with pytest.raises(UnavailableError):
            client.request("ping")


def test_sync_client_raises_the_error_object_of_the_reply() -> None:
    def not_found(requests: list[list[bytes]]) -> list[list[bytes]]:
        request = body_of(requests[0])
        error = {
            "message": "No assistant found with id 'x'.",
            "type": "invalid_request_error",
            "param": "assistant_id",
            "code": "not_found",
            "status": 404,
        }
        return [[*requests[0][:-1], json.dumps({"id": request["id"], "error": error}).encode()]]

    with (
        fake_daemon(not_found) as endpoint,
        Client(command=endpoint, timeout=5) as client,
        pytest.raises(NotFoundError) as caught,
    ):
        client.get_assistant("x")
    assert caught.value.param == "assistant_id"
    assert caught.value.to_object()["message"] == "No assistant found with id 'x'."


def test_a_reply_that_cannot_be_read_is_an_internal_error() -> None:
    def garbage(requests: list[list[bytes]]) -> list[list[bytes]]:
        return [[*requests[0][:-1], b"\xff not json"]]

    with (
        fake_daemon(garbage) as endpoint,
        Client(command=endpoint, timeout=5) as client,
        pytest.raises(InternalError),
    ):
        client.ping()


def test_a_missing_socket_file_fails_at_once() -> None:
    client = Client(runtime_dir=short_dir(), timeout=30)
    with pytest.raises(UnavailableError) as caught:
        client.ping()
    client.close()
    assert caught.value.code == "daemon_not_running"


async def test_async_client_matches_replies_that_come_back_out_of_order() -> None:
    with fake_daemon(echo_ids, batch=5) as endpoint:
        async with AsyncClient(command=endpoint, timeout=5) as client:
            methods = [f"method{index}" for index in range(5)]
            results = await asyncio.gather(*(client.request(method) for method in methods))
    assert [result["method"] for result in results] == methods


async def test_async_client_times_out_one_call_without_harming_the_next() -> None:
    answered: list[int] = []

    def answer_second_only(requests: list[list[bytes]]) -> list[list[bytes]]:
        answered.append(1)
        if len(answered) == 1:
            return []  # the first request is never answered
        return echo_ids(requests)

    with fake_daemon(answer_second_only) as endpoint:
        async with AsyncClient(command=endpoint, timeout=0.3) as client:
            with pytest.raises(UnavailableError):
                await client.request("first")
            client.timeout = 5
            assert (await client.request("second"))["method"] == "second"


async def test_async_client_closes_with_calls_in_flight() -> None:
    with fake_daemon(silent) as fake:
        client = AsyncClient(command=fake, timeout=30)
        call = asyncio.ensure_future(client.request("ping"))
        assert await asyncio.to_thread(fake.received.wait, 5), "the request never arrived"
        await client.close()
        with pytest.raises(asyncio.CancelledError):
            await call

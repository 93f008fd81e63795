"""The HTTP server against a client that sends requests and does not read the answers: served
in this process, over real loopback sockets, to an application that counts what it is handed
and answers each request with a large body at once."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from assistantd.http import server as http_server
from assistantd.http.server import HttpConnection, HttpServer, Request, Respond, Response

WAIT = 15.0
ANSWER_SIZE = 256 * 1024
REQUEST_BODY = b"x" * (64 * 1024)


def kernel_send_buffer_max() -> int:
    """The most Linux lets a TCP socket buffer for sending (it grows one up to this)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 << 20


FIT = (kernel_send_buffer_max() + (1 << 20)) // ANSWER_SIZE
"""The most answers that can be out of the gateway's hands while the client reads nothing: the
kernel's buffer, with a MiB for the transport's own buffer and the client's receive buffer."""
FLOOD = 2 * FIT + 8
"""Requests the client sends: an unbounded gateway would answer every one (FLOOD answers held)."""


class CountingApp:
    """Answers every request at once with :data:`ANSWER_SIZE` bytes; counts them by path."""

    def __init__(self) -> None:
        self.handled: dict[str, int] = {}
        self._body = b"a" * ANSWER_SIZE

    def handle(self, request: Request, respond: Respond) -> None:
        self.handled[request.path] = self.handled.get(request.path, 0) + 1
        respond(Response(200, self._body, content_type="text/plain"))

    def refusal(
        self, headers: dict[str, str] | None, status: int, message: str, code: str
    ) -> Response:
        return Response(status, message.encode(), content_type="text/plain")


def request(path: str, body: bytes = b"") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def read_answers(client: socket.socket, count: int) -> list[int]:
    """The sizes of the next ``count`` answers' bodies (each a 200)."""
    loop = asyncio.get_running_loop()
    buffer = bytearray()
    sizes: list[int] = []
    while len(sizes) < count:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            assert head[0] == "HTTP/1.1 200 OK", head
            fields = dict(line.split(": ", 1) for line in head[1:])
            size = int(fields["Content-Length"])
            if len(buffer) >= end + 4 + size:
                sizes.append(size)
                del buffer[: end + 4 + size]
                continue
        chunk = await loop.sock_recv(client, 1 << 20)
        assert chunk, f"the connection closed after {len(sizes)} answers"
        buffer += chunk
    return sizes


async def test_a_client_that_does_not_read_is_not_read_until_it_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    full: asyncio.Future[HttpConnection] = loop.create_future()
    pause_writing = HttpConnection.pause_writing

    def note_full_buffer(connection: HttpConnection) -> None:
        pause_writing(connection)
        if not full.done():
            full.set_result(connection)

    monkeypatch.setattr(HttpConnection, "pause_writing", note_full_buffer)
    app = CountingApp()
    server = HttpServer(app)
    [address] = await server.listen("127.0.0.1", 0)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills after one answer
    client.setblocking(False)
    sender: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(WAIT):
            await loop.sock_connect(client, address)

            async def send_all() -> None:
                for _ in range(FLOOD):
                    await loop.sock_sendall(client, request("/flood", REQUEST_BODY))

            sender = loop.create_task(send_all())
            connection = await full
            assert connection.transport is not None
            # Once the answers waiting to go out fill the transport's buffer, the connection
            # stops reading, and hands on nothing more.
            assert not connection.transport.is_reading()
            handled = app.handled["/flood"]
            assert handled <= FIT, (handled, FIT)
            # The gateway goes on serving the others meanwhile.
            reader, writer = await asyncio.open_connection(*address)
            writer.write(request("/probe"))
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert len(await reader.readexactly(ANSWER_SIZE)) == ANSWER_SIZE
            writer.close()
            assert app.handled["/flood"] == handled
            assert not connection.transport.is_reading()
            # Read at last: every request is answered, in order, and the sender gets through.
            assert await read_answers(client, FLOOD) == [ANSWER_SIZE] * FLOOD
            await sender
            assert app.handled == {"/flood": FLOOD, "/probe": 1}
    finally:
        if sender is not None:
            sender.cancel()
        client.close()
        await server.stop(1.0)


async def test_a_client_that_leaves_its_answers_unread_too_long_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(http_server, "WRITE_TIMEOUT", 0.2)
    dropped: asyncio.Future[HttpConnection] = loop.create_future()
    closed = HttpServer.closed

    def note_closed(server: HttpServer, connection: HttpConnection) -> None:
        closed(server, connection)
        if not dropped.done():
            dropped.set_result(connection)

    monkeypatch.setattr(HttpServer, "closed", note_closed)
    app = CountingApp()
    server = HttpServer(app)
    [address] = await server.listen("127.0.0.1", 0)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setblocking(False)
    try:
        async with asyncio.timeout(WAIT):
            await loop.sock_connect(client, address)
            for _ in range(FIT + 4):  # more answers than can be out of the gateway's hands
                client.send(request("/stalled"))
            connection = await dropped  # the buffer stayed full: the gateway let it go
            assert connection.transport is not None
            assert connection.transport.is_closing()
            assert server.connections == set()
            # Others are served as before.
            reader, writer = await asyncio.open_connection(*address)
            writer.write(request("/probe"))
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            writer.close()
    finally:
        client.close()
        await server.stop(1.0)

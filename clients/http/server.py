"""A lean HTTP/1.1 server: httptools (llhttp, Node's parser) parses, one asyncio protocol per
connection answers its requests in order.

Why not aiohttp's server, which the gateway used first: measured here, ``aiohttp.web`` spends
110 - 150 us of CPU per request (a task and three or four turns of the event loop per request,
request and response objects, header multidicts) against 25 - 30 us for this, and the first
alone was about as much as the ZeroMQ round trip the gateway is measured against
(BENCHMARKS.md, "Gateway"). uvicorn's httptools protocol is the model, without ASGI.

A request is handed to the application with a ``respond`` callback rather than awaited in a
task: an answer that is one daemon call then goes out from the turn of the event loop that
read the daemon's reply. A task per request, and the future it awaits, cost two more turns of
the loop and about 80 us of CPU per request here (measured: 65 - 85 us of user CPU per GET
against 135 - 180 us). Only a stream (Server-Sent Events) gets a task, which writes it.

What it does: keep-alive (HTTP/1.1; HTTP/1.0 with ``Connection: keep-alive``), pipelined
requests answered in order, ``Content-Length`` and chunked request bodies up to
:data:`MAX_BODY` (413 past it), ``Expect: 100-continue``, a bound on the request head (431),
an idle timeout, ``HEAD`` (the application's answer without its body), and responses that are
one body or a stream of chunks (Server-Sent Events) with flow control. What it does not:
upgrades (the request is answered as a plain one, and the connection closed; one with a body
is refused, since the parser would not read the body), TLS (put a reverse proxy in front),
HTTP/2.

Flow control both ways: a client that sends requests faster than it reads the answers finds
the connection stops reading once the answers waiting to go out fill the transport's buffer
(``pause_writing``), and no request is handed on until they drain; so what one connection may
make the gateway hold is bounded whatever the client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol, cast

import httptools

from assistantd.protocol.limits import REQUEST_MAX_BYTES

MAX_BODY = REQUEST_MAX_BYTES
"""The largest request body taken: no daemon request can be larger."""
MAX_HEAD = 64 * 1024
"""The largest request line and headers taken, in bytes (431 past it)."""
MAX_HEADERS = 100
HEAD_BUFFER_LIMIT = 8 * MAX_HEAD
"""Bytes of a head still incomplete that may be fed to the parser (see ``data_received``)."""
IDLE_TIMEOUT = 60.0
"""Seconds a connection may wait for its next complete request before it is closed."""
WRITE_TIMEOUT = 60.0
"""Seconds a client may leave its answers unread (the transport's buffer full) before its
connection is dropped: one that never reads would otherwise hold a connection, and an event
stream's task, for good."""
MAX_PIPELINED = 16
"""Requests read ahead of the one being answered before the connection stops reading."""

REASONS = {status.value: status.phrase for status in HTTPStatus}
Headers = list[tuple[str, str]]


@dataclass(slots=True)
class Request:
    method: str
    path: str
    """The target's path, still percent-encoded."""
    query: str
    headers: dict[str, str]
    """Names in lower case; a field sent more than once has its values joined with ``, ``."""
    body: bytes
    repeated: frozenset[str] = frozenset()
    """The names of the fields sent more than once."""


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: Headers = field(default_factory=list)
    content_type: str | None = "application/json"


@dataclass(slots=True)
class Streaming:
    """A response of unknown length, written chunk by chunk as ``chunks`` yields them; the
    connection closes after it."""

    chunks: AsyncGenerator[bytes, None]
    headers: Headers = field(default_factory=list)
    content_type: str = "text/event-stream"


Respond = Callable[["Response | Streaming"], None]


class Application(Protocol):
    def handle(self, request: Request, respond: Respond) -> None:
        """Answer ``request`` by calling ``respond`` once, now or later."""
        ...

    def refusal(
        self, headers: dict[str, str] | None, status: int, message: str, code: str
    ) -> Response:
        """The response to a request the server itself refuses (unreadable, too large)."""
        ...


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class _Clock:
    """The ``Date`` header, formatted once a second."""

    second = -1
    value = ""

    @classmethod
    def date(cls) -> str:
        now = int(time.time())
        if now != cls.second:
            cls.second, cls.value = now, email.utils.formatdate(now, usegmt=True)
        return cls.value


def response_head(
    status: int,
    headers: Headers,
    content_type: str | None,
    framing: str | None,
    connection: str | None,
) -> bytes:
    """The status line and header fields, ready to write.

    >>> head = response_head(404, [("Vary", "Origin")], None, "Content-Length: 0", "close")
    >>> lines = head.split(b"\\r\\n")
    >>> lines[0]
    b'HTTP/1.1 404 Not Found'
    >>> lines[2:]  # line 1 is the Date
    [b'Content-Length: 0', b'Connection: close', b'Vary: Origin', b'', b'']
    """
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}", f"Date: {_Clock.date()}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if framing is not None:
        lines.append(framing)
    if connection is not None:
        lines.append(f"Connection: {connection}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class HttpConnection(asyncio.Protocol):
    """One client connection: parses its requests and writes the answers in order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._app = server.app
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        # The request being read.
        self._target = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._in_head = False
        self._head_size = 0
        self._head_fed = 0
        self._refused: _Refused | None = None
        self._continue_owed = False
        """The request being read expects ``100 Continue``, owed once the answers ahead of it
        are out (sent earlier, it would be taken for the answer to the request before)."""
        # The requests read and not yet answered.
        self._queue: deque[tuple[Request, bool, bool] | Response] = deque()
        """Each request with whether the connection may stay open after it, and whether it
        came as HTTP/1.0; or a refusal, the last answer of the connection."""
        self._answering = False
        """A request is with the application, or its stream is being written."""
        self._refusal_to_head = False
        """The refusal queued answers a HEAD: it goes without its body."""
        self._dispatching = False
        self._streaming: asyncio.Task[None] | None = None
        self._reading = True
        self._closing = False
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None
        """When the connection last began waiting for a request; None while answering."""
        self._writable: asyncio.Future[None] | None = None
        """Set while the transport's buffer is full: done when it has room again."""
        self._write_blocked = False
        """The transport's buffer is full: nothing is read or dispatched until it drains."""
        self._write_timer: asyncio.TimerHandle | None = None
        """Drops the connection if the buffer is still full :data:`WRITE_TIMEOUT` from now."""

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._server.connections.add(self)
        self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.closed(self)
        self._closing = True
        self._cancel_idle_timer()
        self._cancel_write_timer()
        if self._streaming is not None:
            self._streaming.cancel()  # nobody is left to read it
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()
        # A client that does not read its answers must not make the gateway hold more of
        # them: no more requests are read or answered until it does.
        self._write_blocked = True
        self._pause_reading()
        if self._write_timer is None:
            self._write_timer = self._loop.call_later(WRITE_TIMEOUT, self._write_stalled)

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._cancel_write_timer()
        self._write_blocked = False
        self._resume_reading()
        self._dispatch()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        head_before = self._in_head
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An upgrade (h2c, websocket) is not taken: the request is answered as a plain
            # one, and what the client sent after it is not HTTP/1.1 any more.
            self._stop_reading_after_queue()
            return
        except httptools.HttpParserError as exc:
            refused = self._refused or _Refused(
                400, f"The request is not valid HTTP/1.1: {exc}.", "invalid_http"
            )
            self._refuse(refused)
            return
        if self._in_head:
            # The parser holds a field until it is whole: bound what a head not yet complete
            # may make it hold. (The first chunk may hold the end of the previous request as
            # well, hence the margin; the exact limit is checked field by field.)
            self._head_fed = self._head_fed + len(data) if head_before else len(data)
            if self._head_fed > HEAD_BUFFER_LIMIT:
                self._refuse(self._head_too_large())

    # --- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._continue_owed = False
        self._target = b""
        self._fields = []
        self._body = []
        self._body_size = 0
        self._in_head = True
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._target += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._fields) >= MAX_HEADERS:
            self._refused = _Refused(
                431, f"The request has over {MAX_HEADERS} header fields.", "headers_too_large"
            )
            raise self._refused
        self._fields.append((name, value))
        self._count_head(len(name) + len(value) + 4)

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEAD:
            self._refused = self._head_too_large()
            raise self._refused

    @staticmethod
    def _head_too_large() -> _Refused:
        return _Refused(
            431, f"The request line and headers are over {MAX_HEAD} bytes.", "headers_too_large"
        )

    def on_headers_complete(self) -> None:
        self._in_head = False
        length = self._header(b"content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            self._refused = self._too_large()
            raise self._refused
        if self._parser.should_upgrade() and (
            (length is not None and length.isdigit() and int(length) > 0)
            or self._header(b"transfer-encoding") is not None
        ):
            # The parser ends an upgrade's message at its head: the body would be dropped,
            # and the request carried out without it.
            self._refused = _Refused(
                400,
                "An upgrade request with a body is not taken: send it without Upgrade.",
                "invalid_http",
            )
            raise self._refused
        expect = self._header(b"expect")
        if (
            expect is not None
            and expect.lower() == b"100-continue"
            and self._parser.get_http_version() != "1.0"  # which has no 100 (RFC 9110, 10.1.1)
        ):
            self._continue_owed = True
            if not self._answering and not self._queue:
                self._send_continue()

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > MAX_BODY:
            self._refused = self._too_large()
            raise self._refused
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._idle_since = None
        self._continue_owed = False  # the body came without it
        http10 = self._parser.get_http_version() == "1.0"
        self._enqueue((self._request(), self._parser.should_keep_alive(), http10))

    # --- reading ------------------------------------------------------------------------

    def _header(self, name: bytes) -> bytes | None:
        for field_name, value in self._fields:
            if field_name.lower() == name:
                return value
        return None

    @staticmethod
    def _too_large() -> _Refused:
        return _Refused(413, f"The request body is over {MAX_BODY} bytes.", "request_too_large")

    def _request(self) -> Request:
        target = self._target.decode("latin-1")
        if not target.startswith("/"):  # absolute-form, as sent to a proxy
            url = httptools.parse_url(self._target)
            path, query = url.path.decode("latin-1"), (url.query or b"").decode("latin-1")
        else:
            path, _, query = target.partition("?")
            path = path.partition("#")[0]
        headers: dict[str, str] = {}
        repeated: set[str] = set()
        for raw_name, raw_value in self._fields:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            if name in headers:
                repeated.add(name)
                headers[name] = f"{headers[name]}, {value}"
            else:
                headers[name] = value
        method = self._parser.get_method().decode("latin-1")
        return Request(method, path, query, headers, b"".join(self._body), frozenset(repeated))

    def _refuse(self, refused: _Refused) -> None:
        headers = None
        with contextlib.suppress(Exception):  # what was read of the head, if anything
            headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in self._fields
            }
        with contextlib.suppress(Exception):  # the method is known once the target began
            self._refusal_to_head = bool(self._target) and self._parser.get_method() == b"HEAD"
        response = self._app.refusal(headers, refused.status, str(refused), refused.code)
        self._enqueue(response)
        self._stop_reading_after_queue()

    def _stop_reading_after_queue(self) -> None:
        self._closing = True  # nothing more is read; the queue is answered, then it closes
        self._pause_reading()
        if not self._answering and not self._queue:
            assert self.transport is not None
            self.transport.close()

    def _pause_reading(self) -> None:
        if self._reading:
            assert self.transport is not None
            self.transport.pause_reading()
            self._reading = False

    def _resume_reading(self) -> None:
        """Read again, unless the connection is ending, the answers waiting to go out fill the
        transport's buffer, or requests are still queued (read once the last is dispatched)."""
        if (
            not self._reading
            and not self._closing
            and not self._write_blocked
            and len(self._queue) <= 1
            and self.transport is not None
        ):
            self.transport.resume_reading()
            self._reading = True

    def _send_continue(self) -> None:
        self._continue_owed = False
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _enqueue(self, item: tuple[Request, bool, bool] | Response) -> None:
        self._queue.append(item)
        if len(self._queue) > MAX_PIPELINED:
            self._pause_reading()
        self._dispatch()

    # --- answering ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Hand the queued requests to the application, one at a time, in order."""
        if self._dispatching:
            return  # an answer given at once, from inside the loop below: it goes on
        self._dispatching = True
        try:
            while (
                self._queue
                and not self._answering
                and not self._write_blocked
                and self.transport is not None
            ):
                item = self._queue.popleft()
                if not self._reading:
                    self._resume_reading()
                if isinstance(item, Response):
                    self._write(
                        self.transport, item, keep_alive=False, head_only=self._refusal_to_head
                    )
                    self.transport.close()
                    return
                self._answering = True
                request, keep_alive, http10 = item
                respond = self._responder(request, keep_alive, http10)
                try:
                    self._app.handle(request, respond)
                except Exception as exc:  # a fault of the gateway's: the client is still told
                    respond(
                        self._app.refusal(
                            request.headers, 500, f"The gateway failed: {exc!r}.", "internal_error"
                        )
                    )
        finally:
            self._dispatching = False
        if not self._answering and not self._queue and self.transport is not None:
            if self._closing:
                self.transport.close()
            else:
                if self._continue_owed:  # the request being read is the next to answer
                    self._send_continue()
                self._await_request()

    def _responder(self, request: Request, keep_alive: bool, http10: bool) -> Respond:
        answered = False
        head_only = request.method == "HEAD"

        def respond(answer: Response | Streaming) -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            self._answer(answer, keep_alive, http10, head_only)

        return respond

    def _answer(
        self, answer: Response | Streaming, keep_alive: bool, http10: bool, head_only: bool
    ) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # the client went away meanwhile (a stream not started holds nothing)
        if isinstance(answer, Streaming):
            if head_only:  # the stream's head, and the end the head announces
                transport.write(self._stream_head(answer, http10))
                keep_alive = False
            else:
                self._streaming = self._loop.create_task(self._stream(transport, answer, http10))
                return
        else:
            # Closing (stopping, or an upgrade or a refusal read after it): say so.
            keep_alive = keep_alive and not self._server.stopping and not self._closing
            self._write(
                transport, answer, keep_alive=keep_alive, http10=http10, head_only=head_only
            )
        self._answering = False
        if not keep_alive:
            self._queue.clear()  # pipelined after a request that ends the connection: dropped
            transport.close()
            return
        self._dispatch()

    def _write(
        self,
        transport: asyncio.Transport,
        response: Response,
        *,
        keep_alive: bool,
        http10: bool = False,
        head_only: bool = False,
    ) -> None:
        # HTTP/1.1 stays open unless told; HTTP/1.0 closes unless told.
        connection = ("keep-alive" if http10 else None) if keep_alive else "close"
        head = response_head(
            response.status,
            response.headers,
            response.content_type,
            f"Content-Length: {len(response.body)}",  # for HEAD too: what GET would send
            connection,
        )
        transport.write(head if head_only else head + response.body)

    @staticmethod
    def _stream_head(streaming: Streaming, http10: bool) -> bytes:
        # HTTP/1.0 has no chunked coding: there the end of the connection ends the body.
        framing = None if http10 else "Transfer-Encoding: chunked"
        return response_head(200, streaming.headers, streaming.content_type, framing, "close")

    async def _stream(
        self, transport: asyncio.Transport, streaming: Streaming, http10: bool
    ) -> None:
        """Write a stream until it ends or the client goes; then the connection closes."""
        transport.write(self._stream_head(streaming, http10))
        chunks = streaming.chunks
        try:
            async for chunk in chunks:
                if transport.is_closing():
                    break
                transport.write(chunk if http10 else b"%x\r\n%b\r\n" % (len(chunk), chunk))
                if self._writable is not None:
                    await self._writable  # the client reads slower than events come
            else:
                if not http10:
                    transport.write(b"0\r\n\r\n")
        finally:
            await chunks.aclose()
            self._streaming = None
            transport.close()

    # --- idling -------------------------------------------------------------------------

    # One timer per connection, moved on only when it fires: arming one per request cost
    # more than the rest of the bookkeeping of a request.

    def _await_request(self) -> None:
        self._idle_since = self._loop.time()
        if self._idle_timer is None:
            self._idle_timer = self._loop.call_at(self._idle_since + IDLE_TIMEOUT, self._check_idle)

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_stalled(self) -> None:
        self._write_timer = None
        if self.transport is not None:
            self.transport.abort()  # what it holds cannot be delivered: drop it with the socket

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self._idle_since is None:  # answering: idle again only after the answer
            return
        deadline = self._idle_since + IDLE_TIMEOUT
        if self._loop.time() >= deadline and self.transport is not None:
            self.transport.close()
        else:
            self._idle_timer = self._loop.call_at(deadline, self._check_idle)

    def shut_down(self) -> None:
        """Close now if idle; else after the answer under way (a stream has its own end, when
        the gateway ends it)."""
        self._closing = True
        if not self._answering and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class HttpServer:
    """Serves ``app`` on one or more listening sockets."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.connections: set[HttpConnection] = set()
        self.stopping = False
        self._servers: list[asyncio.Server] = []
        self._all_closed: asyncio.Future[None] | None = None

    def closed(self, connection: HttpConnection) -> None:
        self.connections.discard(connection)
        closing = self._all_closed
        if not self.connections and closing is not None and not closing.done():
            closing.set_result(None)

    async def listen(self, host: str, port: int) -> list[tuple[str, int]]:
        """Start listening; the addresses bound (a name such as localhost may give two)."""
        server = await asyncio.get_running_loop().create_server(
            lambda: HttpConnection(self), host, port, reuse_address=True
        )
        self._servers.append(server)
        return [socket.getsockname()[:2] for socket in server.sockets]

    async def stop(self, grace: float) -> None:
        """Stop listening, let the responses under way finish for ``grace`` seconds, then
        close every connection."""
        self.stopping = True
        for server in self._servers:
            server.close()
        self._all_closed = asyncio.get_running_loop().create_future()
        for connection in list(self.connections):
            connection.shut_down()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._all_closed
        for connection in list(self.connections):
            connection.abort()
        for server in self._servers:
            await server.wait_closed()

"""The gateway's link to the daemon: many calls in flight, each reply to its caller by id.

The general :class:`~assistantd.client.AsyncClient` cost the gateway 150 - 230 us per call over
a bare REQ socket (BENCHMARKS.md, "Gateway": pyzmq's asyncio futures for every send and
receive, a reader task's extra wake-up, ``wait_for``'s timer). A call here is one callback and
one timer handle: the reply is handed to the callback from the socket's own read, in the same
turn of the event loop (a future, and the task awaiting it, cost the gateway two more turns and
about 80 us of CPU per request, measured), and its result goes on as the bytes the daemon sent
(they are the HTTP body as they are), never decoded and encoded again:

- over ``ipc://`` (the default) the gateway speaks ZMTP itself on an asyncio Unix connection,
  as ``assistantctl`` does (:mod:`assistantd.client.zmtp`): no libzmq I/O thread stands
  between the event loop and the socket, so the only wake-up of a call is its reply's;
- over ``tcp://`` (CURVE, which needs libzmq) a pyzmq DEALER whose file descriptor the event
  loop watches itself, sent to and read from without blocking.

How long a call waits is :func:`~assistantd.client.waits.reply_timeout`'s answer, as for every
client. A call is never sent twice, not even an idempotent one: a wait that runs out, or a
connection that is lost, is a 503 for that call, and the next call connects again (the ZeroMQ
Guide's "Lazy Pirate" without the resend); whether the daemon carried the request out is then
unknown, as ``waits`` explains.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from typing import Any, Protocol, cast

import zmq

from assistantd.client.calls import read_reply
from assistantd.client.curve import ClientSecurity, no_reply_hint
from assistantd.client.discovery import check_reachable
from assistantd.client.transport import open_dealer
from assistantd.client.waits import reply_timeout
from assistantd.client.zmtp import (
    COMMAND,
    EMPTY_DELIMITER,
    GREETING,
    MORE,
    READY,
    ProtocolFault,
    check_greeting,
    command_name,
    connect_error,
    frame_head,
    read_frame,
)
from assistantd.protocol.codec import encode_request
from assistantd.protocol.errors import (
    AssistantdError,
    PayloadTooLargeError,
    UnavailableError,
)
from assistantd.protocol.limits import REQUEST_MAX_BYTES

Outcome = bytes | AssistantdError
"""A call's result (the JSON the daemon sent), or its error (503 when no reply came)."""
Reply = Callable[[Outcome], None]
"""What a call's outcome is handed to, exactly once."""


class DaemonLink(Protocol):
    endpoint: str

    def send(self, method: str, params: dict[str, Any], reply: Reply) -> None:
        """Send ``method``; ``reply`` gets its outcome, exactly once, later or at once."""
        ...

    async def close(self) -> None: ...


def open_link(endpoint: str, timeout: float, security: ClientSecurity) -> DaemonLink:
    """The fastest link that can reach ``endpoint``; nothing connects before the first call."""
    if endpoint.startswith("ipc://"):
        return ZmtpLink(endpoint, timeout)
    return ZmqLink(endpoint, timeout, security)


class Waiting:
    """The calls waiting for replies, by request id: each reply callback and its timer."""

    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._calls: dict[int, tuple[Reply, asyncio.TimerHandle]] = {}
        self._ids = itertools.count(1)

    def add(self, method: str, params: dict[str, Any], reply: Reply) -> tuple[int, bytes] | None:
        """A new call's id and request body; None when it was answered at once (too large)."""
        request_id = next(self._ids)
        body = encode_request(request_id, method, params)
        if len(body) > REQUEST_MAX_BYTES:
            # The daemon would refuse it just the same, after reading all of it.
            hand_over(
                reply,
                PayloadTooLargeError(
                    f"The request is {len(body)} bytes; the limit is {REQUEST_MAX_BYTES} bytes."
                ),
            )
            return None
        wait = reply_timeout(method, params, self.timeout)
        loop = asyncio.get_running_loop()
        timer = loop.call_at(loop.time() + wait, self._expire, request_id, wait)
        self._calls[request_id] = (reply, timer)
        return request_id, body

    def __contains__(self, request_id: int) -> bool:
        return request_id in self._calls

    def settle(self, body: bytes) -> None:
        """Hand a reply to the call waiting for it; a reply nobody waits for is dropped."""
        reply_id, outcome = read_reply(body)
        if reply_id is None and len(self._calls) == 1:
            # An error for a request the daemon could not read carries no id; with one call
            # waiting it can only be that call's.
            reply_id = next(iter(self._calls))
        if isinstance(reply_id, int):
            self.end(reply_id, outcome if isinstance(outcome, AssistantdError) else bytes(outcome))

    def end(self, request_id: int, outcome: Outcome) -> None:
        """Hand ``outcome`` to the call, unless it has had one already."""
        entry = self._calls.pop(request_id, None)
        if entry is not None:
            reply, timer = entry
            timer.cancel()
            hand_over(reply, outcome)

    def end_all(self, error: AssistantdError) -> None:
        for request_id in list(self._calls):
            self.end(request_id, error)

    def _expire(self, request_id: int, wait: float) -> None:
        self.end(
            request_id,
            UnavailableError(
                f"No reply from the daemon at {self.endpoint} within {wait:g}s."
                + no_reply_hint(self.endpoint),
                code="timeout",
            ),
        )


def hand_over(reply: Reply, outcome: Outcome) -> None:
    """Call ``reply``; a fault in it is reported as the event loop reports any callback's, and
    does not stop the reading of the replies after it."""
    try:
        reply(outcome)
    except Exception as exc:
        asyncio.get_running_loop().call_exception_handler(
            {"message": "a reply callback failed", "exception": exc}
        )


class ZmtpConnection(asyncio.Protocol):
    """One ZMTP 3.0 connection to the daemon's ROUTER, as a DEALER with the NULL mechanism."""

    def __init__(
        self,
        on_message: Callable[[bytes], None],
        on_lost: Callable[[ZmtpConnection, Exception], None],
    ) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._buffer = bytearray()
        self._greeted = False
        self._frames: list[bytes] = []
        self.ended: Exception | None = None
        """Why the connection ended, once it has."""
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the daemon's READY came: messages may flow."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(GREETING + READY)

    def send(self, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(EMPTY_DELIMITER + frame_head(len(body)) + body)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._read_frames()
        except ProtocolFault as fault:
            self._end(fault)
            assert self.transport is not None
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc or ConnectionResetError("the daemon closed the connection"))

    def _end(self, reason: Exception) -> None:
        if self.ended is not None:
            return
        self.ended = reason
        if not self.ready.done():
            self.ready.set_exception(reason)
            self.ready.exception()  # whoever waits for it sees it; nobody else needs to
        self._on_lost(self, reason)

    def _read_frames(self) -> None:
        buffer = self._buffer
        if not self._greeted:
            if len(buffer) < len(GREETING):
                return
            check_greeting(bytes(buffer[: len(GREETING)]))
            del buffer[: len(GREETING)]
            self._greeted = True
        position = 0
        while (read := read_frame(buffer, position)) is not None:
            flags, body, position = read
            if flags & COMMAND:
                # PING and other commands carry no part of a message.
                if command_name(body) == b"READY" and not self.ready.done():
                    self.ready.set_result(None)
                continue
            self._frames.append(body)
            if not flags & MORE:
                frames, self._frames = self._frames, []
                self._on_message(frames[-1])
        del buffer[:position]


class ZmtpLink:
    """Calls over one ZMTP connection to an ``ipc://`` endpoint, opened at the first call and
    again after it is lost."""

    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        self._path = endpoint.removeprefix("ipc://")
        self._timeout = timeout
        self._waiting = Waiting(endpoint, timeout)
        self._connection: ZmtpConnection | None = None
        self._unsent: list[tuple[int, bytes]] = []
        """Calls made while the connection was being opened."""
        self._connecting: asyncio.Task[None] | None = None

    def send(self, method: str, params: dict[str, Any], reply: Reply) -> None:
        call = self._waiting.add(method, params, reply)
        if call is None:
            return
        if self._connection is not None:
            self._connection.send(call[1])
            return
        self._unsent.append(call)
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def _connect(self) -> None:
        opened: list[ZmtpConnection] = []

        def new_connection() -> ZmtpConnection:
            opened.append(ZmtpConnection(self._waiting.settle, self._lost))
            return opened[-1]

        try:
            check_reachable(self.endpoint)  # no socket file: a 503 at once, not at a timeout
            async with asyncio.timeout(self._timeout):
                await asyncio.get_running_loop().create_unix_connection(new_connection, self._path)
                await opened[-1].ready
            if opened[-1].ended is not None:
                # READY and the end came in one read, before this resumed: ``_lost`` did not
                # know the connection yet, and calls sent on it would wait for nothing.
                raise opened[-1].ended
        except (Exception, asyncio.CancelledError) as exc:
            for half_open in opened:
                half_open.close()
            unsent, self._unsent = self._unsent, []
            error = self._connect_error(exc)
            for request_id, _ in unsent:
                self._waiting.end(request_id, error)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        finally:
            self._connecting = None
        self._connection = opened[-1]
        unsent, self._unsent = self._unsent, []
        for request_id, body in unsent:
            if request_id in self._waiting:  # not timed out meanwhile
                self._connection.send(body)

    def _connect_error(self, exc: BaseException) -> AssistantdError:
        if isinstance(exc, AssistantdError):
            return exc
        if isinstance(exc, TimeoutError):
            return UnavailableError(
                f"No answer from the daemon at {self.endpoint} while connecting.",
                code="timeout",
            )
        if isinstance(exc, asyncio.CancelledError):
            return UnavailableError("The gateway is stopping.", code="client_closed")
        return connect_error(self.endpoint, cast(Exception, exc))

    def _lost(self, connection: ZmtpConnection, reason: Exception) -> None:
        if connection is not self._connection:
            return  # one that never got to carry a call
        self._connection = None
        self._waiting.end_all(
            UnavailableError(
                f"The connection to the daemon at {self.endpoint} was lost ({reason}) before "
                f"the reply came; the request may or may not have been carried out.",
                code="connection_failed",
            )
        )


class ZmqLink:
    """Calls over a pyzmq DEALER socket (any endpoint; CURVE on ``tcp://``), which libzmq
    connects, and reconnects, on its own."""

    def __init__(self, endpoint: str, timeout: float, security: ClientSecurity) -> None:
        self.endpoint = endpoint
        self._security = security
        self._waiting = Waiting(endpoint, timeout)
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._socket: zmq.Socket[bytes] | None = None

    def send(self, method: str, params: dict[str, Any], reply: Reply) -> None:
        call = self._waiting.add(method, params, reply)
        if call is None:
            return
        request_id, body = call
        try:
            socket = self._connected()
            socket.send_multipart([b"", body], zmq.NOBLOCK)
        except zmq.Again:
            self._waiting.end(
                request_id,
                UnavailableError(
                    f"Too many requests are queued for the daemon at {self.endpoint}, which "
                    f"does not take them.",
                    code="daemon_unavailable",
                ),
            )
            return
        except AssistantdError as exc:  # no socket file
            self._waiting.end(request_id, exc)
            return
        # The socket's descriptor only signals a change of state, and a send can consume the
        # change that a reply arrived: look for waiting replies now.
        if self._readable(socket):
            asyncio.get_running_loop().call_soon(self._drain)

    async def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(cast(int, self._socket.getsockopt(zmq.FD)))
            self._socket.close(linger=0)
            self._socket = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def _connected(self) -> zmq.Socket[bytes]:
        if self._socket is None:
            self._context, socket = open_dealer(self.endpoint, self._security, self._context)
            asyncio.get_running_loop().add_reader(cast(int, socket.getsockopt(zmq.FD)), self._drain)
            self._socket = socket
        return self._socket

    @staticmethod
    def _readable(socket: zmq.Socket[bytes]) -> bool:
        return bool(cast(int, socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN)

    def _drain(self) -> None:
        socket = self._socket
        while socket is not None and self._readable(socket):
            self._waiting.settle(socket.recv_multipart(zmq.NOBLOCK)[-1])

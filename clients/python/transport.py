"""The blocking request/reply transport: one DEALER socket, one request in flight.

It moves bytes only (no JSON library), so that `assistantctl` can use it without importing
msgspec. Because at most one request is ever in flight on a socket, and the socket is thrown
away when a reply does not come in time (ZeroMQ's "Lazy Pirate"), a reply can never be taken
for the answer to another request.

Unlike the Guide's Lazy Pirate, it never sends a request again after a wait ran out: it raises,
and the caller decides. A reply that did not come does not mean the request was not carried
out, and some are not idempotent (an invoke runs the worker's method each time it arrives).
"""

from __future__ import annotations

import time

import zmq

from assistantd.protocol.errors import UnavailableError

from .curve import ClientSecurity, no_reply_hint
from .discovery import check_reachable


class BlockingTransport:
    def __init__(
        self, endpoint: str, timeout: float, security: ClientSecurity | None = None
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.security = security if security is not None else ClientSecurity()
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._socket: zmq.Socket[bytes] | None = None

    def exchange(self, body: bytes, timeout: float | None = None) -> bytes:
        """Send one request body; the reply body, or :class:`UnavailableError` after
        ``timeout`` seconds (the transport's own timeout when None). Never sent twice."""
        wait = self.timeout if timeout is None else timeout
        socket = self._connected()
        socket.send_multipart([b"", body])
        deadline = time.monotonic() + wait
        while (remaining := deadline - time.monotonic()) > 0:
            if socket.poll(int(remaining * 1000) + 1, zmq.POLLIN):
                return socket.recv_multipart()[-1]
        self._drop_socket()
        raise UnavailableError(
            f"No reply from the daemon at {self.endpoint} within {wait:g}s."
            + no_reply_hint(self.endpoint),
            code="timeout",
        )

    def close(self) -> None:
        self._drop_socket()
        if self._context is not None:
            self._context.term()
            self._context = None

    def _connected(self) -> zmq.Socket[bytes]:
        if self._socket is None:
            self._context, self._socket = open_dealer(self.endpoint, self.security, self._context)
        return self._socket

    def _drop_socket(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None


def open_dealer(
    endpoint: str, security: ClientSecurity, context: zmq.Context[zmq.Socket[bytes]] | None
) -> tuple[zmq.Context[zmq.Socket[bytes]], zmq.Socket[bytes]]:
    """A DEALER connecting to ``endpoint`` (with CURVE for tcp://), in ``context`` or a new one
    when None, and the context. :class:`UnavailableError` when the endpoint's socket file is
    missing or a CURVE key cannot be used; nothing is made then."""
    check_reachable(endpoint)
    options = security.socket_options(endpoint)
    if context is None:
        context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    for option, value in options:
        socket.setsockopt(option, value)
    socket.connect(endpoint)
    return context, socket

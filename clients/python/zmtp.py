"""A minimal ZMTP 3 peer over a Unix socket: what `assistantctl` needs, without pyzmq.

Importing pyzmq takes longer than everything else a short `assistantctl` command does together
(BENCHMARKS.md, "The CLI figure"), so for an ``ipc://`` endpoint the CLI speaks the wire
protocol itself: the ZMTP 3.0 greeting with the NULL mechanism, the READY command that names it
a DEALER, then one request of two frames (the empty delimiter and the body) and the frames of
the reply (https://rfc.zeromq.org/spec/23/). One request at a time; the connection is dropped
after a timeout or any fault, like the pyzmq transport's "Lazy Pirate", and, like it, the
request is never sent again (see ``transport``). TCP endpoints, which need CURVE, always go
through pyzmq.

The wire format itself (the greeting's check, frames written and read over a buffer, the
commands, the errors of a connection) is sans I/O, for the HTTP gateway's asyncio peer too
(``assistantd.http.link``).
"""

from __future__ import annotations

import socket
import struct
import time

from assistantd.protocol.errors import UnavailableError

# signature (0xFF, 8 bytes of padding, 0x7F), version 3.0, mechanism "NULL", as-server 0.
GREETING = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + bytes(32)
MORE, LONG, COMMAND = 0x01, 0x02, 0x04
FRAME_MAX_BYTES = 1 << 30
"""A frame announced larger than this is taken for a broken peer, not buffered."""


class ProtocolFault(Exception):
    """The peer broke ZMTP (or is not a ZeroMQ socket at all)."""


def frame_head(size: int, flags: int = 0) -> bytes:
    """The flags and size that go before a frame's ``size`` bytes of body.

    >>> frame_head(3), frame_head(256, MORE)
    (b'\\x00\\x03', b'\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x01\\x00')
    """
    if size > 255:
        return bytes([flags | LONG]) + struct.pack(">Q", size)
    return bytes([flags, size])


def frame(body: bytes, flags: int = 0) -> bytes:
    return frame_head(len(body), flags) + body


def _command(name: bytes, properties: dict[bytes, bytes]) -> bytes:
    body = bytes([len(name)]) + name
    for key, value in properties.items():
        body += bytes([len(key)]) + key + struct.pack(">I", len(value)) + value
    return frame(body, COMMAND)


READY = _command(b"READY", {b"Socket-Type": b"DEALER"})
EMPTY_DELIMITER = frame(b"", MORE)
"""The empty first frame of a DEALER's message (a ROUTER echoes the envelope back)."""


def check_greeting(greeting: bytes) -> None:
    """ProtocolFault unless the peer's greeting is ZMTP 3 with the NULL mechanism."""
    if greeting[0] != 0xFF or greeting[9] != 0x7F or greeting[10] < 3:
        raise ProtocolFault("the peer does not speak ZMTP 3")
    if greeting[12:32].rstrip(b"\0") != b"NULL":
        raise ProtocolFault("the peer wants a security mechanism other than NULL")


def read_frame(buffer: bytes | bytearray, position: int) -> tuple[int, bytes, int] | None:
    """The frame at ``position`` of ``buffer`` as its flags, its body and the position after
    it; None while it is not all there; ProtocolFault for one that cannot be a frame.

    >>> read_frame(b"\\x01\\x00\\x00\\x02hi", 0), read_frame(b"\\x01\\x00\\x00\\x02hi", 2)
    ((1, b'', 2), (0, b'hi', 6))
    >>> read_frame(b"\\x00\\x05hi", 0) is None
    True
    """
    available = len(buffer) - position
    if available < 2:
        return None
    flags = buffer[position]
    if flags & ~(MORE | LONG | COMMAND):
        raise ProtocolFault(f"a frame with unknown flags {flags:#x}")
    if flags & LONG:
        if available < 9:
            return None
        size = int.from_bytes(buffer[position + 1 : position + 9], "big")
        if size > FRAME_MAX_BYTES:
            raise ProtocolFault(f"a frame of {size} bytes")
        start = position + 9
    else:
        size = buffer[position + 1]
        start = position + 2
    end = start + size
    if end > len(buffer):
        return None
    return flags, bytes(buffer[start:end]), end


def command_name(body: bytes) -> bytes:
    """The name of a command frame's ``body`` (READY, PING, ...); ProtocolFault for the peer's
    ERROR, which says why it drops the connection.

    >>> command_name(READY[2:])
    b'READY'
    """
    name = body[1 : 1 + body[0]] if body else b""
    if name == b"ERROR":
        reason = body[7 : 7 + body[6]] if len(body) > 6 else b""
        raise ProtocolFault(f"the peer sent an error: {reason.decode(errors='replace')}")
    return name


def connect_error(endpoint: str, exc: Exception) -> UnavailableError:
    """What a connection to the daemon at ``endpoint`` that failed with ``exc`` (an OSError or
    a ProtocolFault) means for the caller."""
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return UnavailableError(
            f"No daemon is listening at {endpoint}. Is assistantd running, with the same "
            f"--runtime-dir or ASSISTANTD_RUNTIME_DIR?",
            code="daemon_not_running",
        )
    return UnavailableError(
        f"The connection to the daemon at {endpoint} failed: {exc}.", code="connection_failed"
    )


class UnixZmtpTransport:
    """Requests to a ROUTER at an ``ipc://`` endpoint, as a DEALER would send them."""

    def __init__(self, endpoint: str, timeout: float) -> None:
        if not endpoint.startswith("ipc://"):
            raise ValueError(f"not an ipc:// endpoint: {endpoint}")
        self.endpoint = endpoint
        self.timeout = timeout
        self._path = endpoint.removeprefix("ipc://")
        self._socket: socket.socket | None = None
        self._buffer = bytearray()
        """What was read from the socket and not yet taken as frames."""
        self._deadline = 0.0

    def exchange(self, body: bytes, timeout: float | None = None) -> bytes:
        """Send one request body; the reply body, or :class:`UnavailableError` (after
        ``timeout`` seconds, the transport's own timeout when None). Never sent twice."""
        wait = self.timeout if timeout is None else timeout
        self._deadline = time.monotonic() + wait
        try:
            connection = self._connected()
            connection.sendall(EMPTY_DELIMITER + frame(body))
            return self._read_message(connection)[-1]
        except TimeoutError:
            self.close()
            raise UnavailableError(
                f"No reply from the daemon at {self.endpoint} within {wait:g}s.",
                code="timeout",
            ) from None
        except (OSError, ProtocolFault) as exc:
            self.close()
            raise connect_error(self.endpoint, exc) from None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._buffer.clear()

    def _connected(self) -> socket.socket:
        if self._socket is None:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._socket = connection
            connection.settimeout(self._remaining())
            connection.connect(self._path)
            connection.sendall(GREETING + READY)
            while len(self._buffer) < len(GREETING):
                self._receive(connection)
            check_greeting(bytes(self._buffer[: len(GREETING)]))
            del self._buffer[: len(GREETING)]
            flags, body = self._read_frame(connection)
            if not flags & COMMAND or command_name(body) != b"READY":
                raise ProtocolFault("the peer did not send READY")
        return self._socket

    def _read_message(self, connection: socket.socket) -> list[bytes]:
        frames: list[bytes] = []
        while True:
            flags, body = self._read_frame(connection)
            if flags & COMMAND:
                command_name(body)  # PING and other commands carry no part of a message
                continue
            frames.append(body)
            if not flags & MORE:
                return frames

    def _read_frame(self, connection: socket.socket) -> tuple[int, bytes]:
        while (read := read_frame(self._buffer, 0)) is None:
            self._receive(connection)
        flags, body, end = read
        del self._buffer[:end]
        return flags, body

    def _receive(self, connection: socket.socket) -> None:
        connection.settimeout(self._remaining())
        chunk = connection.recv(1 << 20)
        if not chunk:
            raise ProtocolFault("the daemon closed the connection")
        self._buffer += chunk

    def _remaining(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

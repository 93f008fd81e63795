"""A minimal ZMTP 3 peer over a Unix socket: what `assistantctl` needs, without pyzmq.

Importing pyzmq takes longer than everything else a short `assistantctl` command does together
(BENCHMARKS.md, "The CLI figure"), so for an ``ipc://`` endpoint the CLI speaks the wire
protocol itself: the ZMTP 3.0 greeting with the NULL mechanism, the READY command that names it
a DEALER, then one request of two frames (the empty delimiter and the body) and the frames of
the reply (https://rfc.zeromq.org/spec/23/). One request at a time; the connection is dropped
after a timeout or any fault, like the pyzmq transport's "Lazy Pirate", and, like it, the
request is never sent again (see ``transport``). TCP endpoints, which need CURVE, always go
through pyzmq.
"""

from __future__ import annotations

import socket
import struct
import time

from assistantd.protocol.errors import UnavailableError

# signature (0xFF, 8 bytes of padding, 0x7F), version 3.0, mechanism "NULL", as-server 0.
GREETING = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + bytes(32)
MORE, LONG, COMMAND = 0x01, 0x02, 0x04


def _command(name: bytes, properties: dict[bytes, bytes]) -> bytes:
    body = bytes([len(name)]) + name
    for key, value in properties.items():
        body += bytes([len(key)]) + key + struct.pack(">I", len(value)) + value
    return _frame(body, flags=COMMAND)


def _frame(body: bytes, *, flags: int = 0) -> bytes:
    if len(body) > 255:
        return bytes([flags | LONG]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


READY = _command(b"READY", {b"Socket-Type": b"DEALER"})


class ProtocolFault(Exception):
    """The peer broke ZMTP (or is not a ZeroMQ socket at all)."""


class UnixZmtpTransport:
    """Requests to a ROUTER at an ``ipc://`` endpoint, as a DEALER would send them."""

    def __init__(self, endpoint: str, timeout: float) -> None:
        if not endpoint.startswith("ipc://"):
            raise ValueError(f"not an ipc:// endpoint: {endpoint}")
        self.endpoint = endpoint
        self.timeout = timeout
        self._path = endpoint.removeprefix("ipc://")
        self._socket: socket.socket | None = None
        self._deadline = 0.0

    def exchange(self, body: bytes, timeout: float | None = None) -> bytes:
        """Send one request body; the reply body, or :class:`UnavailableError` (after
        ``timeout`` seconds, the transport's own timeout when None). Never sent twice."""
        wait = self.timeout if timeout is None else timeout
        self._deadline = time.monotonic() + wait
        try:
            connection = self._connected()
            connection.sendall(_frame(b"", flags=MORE) + _frame(body))
            return self._read_message(connection)[-1]
        except TimeoutError:
            self.close()
            raise UnavailableError(
                f"No reply from the daemon at {self.endpoint} within {wait:g}s.",
                code="timeout",
            ) from None
        except (FileNotFoundError, ConnectionRefusedError):
            self.close()
            raise UnavailableError(
                f"No daemon is listening at {self.endpoint}. Is assistantd running, with the "
                f"same --runtime-dir or ASSISTANTD_RUNTIME_DIR?",
                code="daemon_not_running",
            ) from None
        except (OSError, ProtocolFault) as exc:
            self.close()
            raise UnavailableError(
                f"The connection to the daemon at {self.endpoint} failed: {exc}.",
                code="connection_failed",
            ) from None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _connected(self) -> socket.socket:
        if self._socket is None:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._socket = connection
            connection.settimeout(self._remaining())
            connection.connect(self._path)
            connection.sendall(GREETING + READY)
            greeting = self._read(connection, len(GREETING))
            if greeting[0] != 0xFF or greeting[9] != 0x7F or greeting[10] < 3:
                raise ProtocolFault("the peer does not speak ZMTP 3")
            if greeting[12:32].rstrip(b"\0") != b"NULL":
                raise ProtocolFault("the peer wants a security mechanism other than NULL")
            flags, name = self._read_frame(connection)
            if not flags & COMMAND or not name.startswith(b"\x05READY"):
                raise ProtocolFault("the peer did not send READY")
        return self._socket

    def _read_message(self, connection: socket.socket) -> list[bytes]:
        frames: list[bytes] = []
        while True:
            flags, body = self._read_frame(connection)
            if flags & COMMAND:
                if body.startswith(b"\x05ERROR"):
                    raise ProtocolFault(
                        f"the peer sent an error: {body[7:].decode(errors='replace')}"
                    )
                continue  # PING and other commands carry no part of a message
            frames.append(body)
            if not flags & MORE:
                return frames

    def _read_frame(self, connection: socket.socket) -> tuple[int, bytes]:
        flags = self._read(connection, 1)[0]
        if flags & ~(MORE | LONG | COMMAND):
            raise ProtocolFault(f"a frame with unknown flags {flags:#x}")
        size_bytes = self._read(connection, 8 if flags & LONG else 1)
        size = struct.unpack(">Q", size_bytes)[0] if flags & LONG else size_bytes[0]
        return flags, self._read(connection, size)

    def _read(self, connection: socket.socket, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            connection.settimeout(self._remaining())
            chunk = connection.recv(min(size - len(chunks), 1 << 20))
            if not chunk:
                raise ProtocolFault("the daemon closed the connection")
            chunks += chunk
        return bytes(chunks)

    def _remaining(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

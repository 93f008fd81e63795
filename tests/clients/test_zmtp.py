"""The small ZMTP peer of assistantctl, against libzmq and against peers that break the protocol."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from assistantd.client.zmtp import GREETING, UnixZmtpTransport
from assistantd.protocol.errors import UnavailableError
from tests.utils import DaemonProcess, short_dir

Peer = Callable[[socket.socket], None]


@contextmanager
def unix_peer(behave: Peer) -> Iterator[str]:
    """A Unix socket server that treats its first connection with ``behave``."""
    path = str(short_dir() / "peer.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    done = threading.Event()

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            behave(connection)
            done.wait(10)  # keep the connection open until the test is over

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"ipc://{path}"
    finally:
        done.set()
        thread.join(5)
        server.close()


def exchange(endpoint: str, timeout: float = 2.0) -> bytes:
    transport = UnixZmtpTransport(endpoint, timeout)
    try:
        return transport.exchange(b'{"id": 1, "method": "ping"}')
    finally:
        transport.close()


@pytest.mark.parametrize(
    ("behave", "code", "words"),
    [
        (lambda c: c.sendall(b"HTTP/1.1 400 Bad Request\r\n" * 3), "connection_failed", "ZMTP 3"),
        (lambda c: (c.recv(4096), c.shutdown(socket.SHUT_WR)), "connection_failed", "closed"),
        (lambda c: None, "timeout", "within"),
        (
            lambda c: c.sendall(GREETING.replace(b"NULL", b"CURV")),
            "connection_failed",
            "security mechanism",
        ),
        (
            lambda c: c.sendall(GREETING + b"\x04\x06\x05HELLO"),
            "connection_failed",
            "did not send READY",
        ),
        (
            lambda c: c.sendall(GREETING + b"\x04\x06\x05READY" + b"\x04\x0a\x05ERROR\x03bad"),
            "connection_failed",
            "bad",
        ),
        (
            lambda c: c.sendall(GREETING + b"\x04\x06\x05READY" + b"\xf0\x00"),
            "connection_failed",
            "unknown flags",
        ),
    ],
    ids=["http", "closes", "silent", "curve", "no-ready", "error-command", "bad-flags"],
)
def test_a_peer_that_breaks_the_protocol_is_a_clear_error(
    behave: Peer, code: str, words: str
) -> None:
    with unix_peer(behave) as endpoint, pytest.raises(UnavailableError) as caught:
        exchange(endpoint, timeout=1.0)
    assert caught.value.code == code
    assert words in caught.value.message


def test_no_socket_file_means_no_daemon() -> None:
    with pytest.raises(UnavailableError) as caught:
        exchange(f"ipc://{short_dir()}/command.sock")
    assert caught.value.code == "daemon_not_running"


def test_only_ipc_endpoints() -> None:
    with pytest.raises(ValueError, match="ipc://"):
        UnixZmtpTransport("tcp://127.0.0.1:5555", 1.0)


def test_it_talks_to_the_real_daemon_with_long_frames(daemon: DaemonProcess) -> None:
    transport = UnixZmtpTransport(daemon.command, 5.0)
    try:
        instructions = "Long instructions. " * 2000  # over 255 bytes: the 8-byte size form
        request = {
            "id": "big",
            "method": "createAssistant",
            "params": {"id": "long", "instructions": instructions},
        }
        reply = json.loads(transport.exchange(json.dumps(request).encode()))
        assert reply["id"] == "big"
        assert reply["result"]["instructions"] == instructions
        # The same connection serves the next request.
        again = json.loads(
            transport.exchange(
                b'{"id": 2, "method": "getAssistant", "params": {"assistant_id": "long"}}'
            )
        )
        assert again == {"id": 2, "result": reply["result"]}
    finally:
        transport.close()
    assert Path(daemon.root / "long" / "assistant.json").is_file()

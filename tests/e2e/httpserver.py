"""A local HTTP server for end-to-end tests: in-memory bodies by path on 127.0.0.1, served from
threads of its own so that plain (sync) tests can use it, and able to misbehave as real servers
do: slowly, stalling for good, closing early, redirecting, failing.

    with http_server() as server:
        url = server.serve("/files/pack.zip", body)                  # 200, Content-Length
        server.serve("/slow.zip", body, chunk=1000, delay=0.01)      # a slow body
        server.serve("/stalls.zip", body, stall_after=100)           # 100 bytes, then nothing
        server.serve("/cut.zip", body, close_after=100)              # 100 bytes, then closed
        server.redirect("/old.zip", url)                              # 302 to url
        server.fail("/broken.zip", 500)                               # any path not served: 404

Everything the server does is decided by what the test told it; nothing here waits except a
slow body between its writes (that is the behaviour being simulated) and a stalled one, which
waits for the server to close.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    """What the server answers at one path."""

    body: bytes = b""
    status: int = 200
    location: str | None = None
    """A redirect's target (the Location header)."""
    length: bool = True
    """Announce the body's length; without it the body ends when the connection closes."""
    chunk: int = 64 * 1024
    """Bytes per write."""
    delay: float = 0.0
    """Seconds between two writes: a slow server."""
    stall_after: int | None = None
    """Bytes sent before the server goes quiet, for good (until it is closed)."""
    close_after: int | None = None
    """Bytes sent before the connection is closed (the whole length announced)."""


class HttpServer:
    """The server's routes, the paths asked for, and its address."""

    def __init__(self) -> None:
        self._answers: dict[str, Answer] = {}
        self._lock = threading.Lock()
        self.requested: list[str] = []
        self.closing = threading.Event()
        self._server = _Server(self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str, *, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes, **options: Any) -> str:
        """Answer ``path`` with ``body`` (see :class:`Answer` for ``options``); its URL."""
        return self._answer(path, Answer(body=body, **options))

    def redirect(self, path: str, to: str, status: int = 302) -> str:
        return self._answer(path, Answer(status=status, location=to))

    def fail(self, path: str, status: int) -> str:
        return self._answer(path, Answer(body=f"status {status}\n".encode(), status=status))

    def forget(self, path: str) -> None:
        """``path`` answers 404 again."""
        with self._lock:
            self._answers.pop(path, None)

    def times_asked(self, path: str) -> int:
        with self._lock:
            return self.requested.count(path)

    def close(self) -> None:
        self.closing.set()  # stalled and slow bodies end
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _answer(self, path: str, answer: Answer) -> str:
        with self._lock:
            self._answers[path] = answer
        return self.url(path)

    def answer_for(self, path: str) -> Answer:
        with self._lock:
            self.requested.append(path)
            return self._answers.get(path) or Answer(body=b"not found\n", status=404)


@contextmanager
def http_server() -> Iterator[HttpServer]:
    server = HttpServer()
    try:
        yield server
    finally:
        server.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, site: HttpServer) -> None:
        self.site = site
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (a cancelled download): nothing to report


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        site = self.server.site
        answer = site.answer_for(urlsplit(self.path).path)
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/octet-stream")
        if answer.location is not None:
            self.send_header("Location", answer.location)
        if answer.length:
            self.send_header("Content-Length", str(len(answer.body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            self._send_body(answer, site.closing)
        except OSError:
            self.close_connection = True  # the client went away

    def _send_body(self, answer: Answer, closing: threading.Event) -> None:
        body = answer.body
        end = len(body)
        for cut in (answer.stall_after, answer.close_after):
            if cut is not None:
                end = min(end, cut)
        sent = 0
        while sent < end and not closing.is_set():
            piece = body[sent : min(sent + answer.chunk, end)]
            self.wfile.write(piece)
            self.wfile.flush()
            sent += len(piece)
            if answer.delay and sent < end:
                closing.wait(answer.delay)
        if answer.stall_after is not None:
            closing.wait()
        if answer.stall_after is not None or answer.close_after is not None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests look at `requested`, not at a log on stderr

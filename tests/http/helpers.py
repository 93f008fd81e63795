"""Starting ``assistantd-http`` as a real process, and speaking HTTP to it as clients do: with
``urllib`` (as curl would), and byte for byte over a raw socket."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from http.client import HTTPMessage, HTTPResponse
from pathlib import Path
from typing import IO, Any

from tests.utils import short_dir

START_TIMEOUT = 20.0
IO_TIMEOUT = 15.0
OPENAI_ERROR_KEYS = {"message", "type", "param", "code"}


@dataclass
class Gateway:
    process: subprocess.Popen[str]
    url: str
    """The API's base URL, ``http://127.0.0.1:PORT/v1``."""
    port: int


def gateway_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "assistantd.http", *args]


def gateway_env(**changes: str) -> dict[str, str]:
    """This environment with no token and no config file of the user's (an empty
    ``XDG_CONFIG_HOME``), then ``changes``."""
    env = {key: value for key, value in os.environ.items() if key != "ASSISTANTD_HTTP_TOKEN"}
    env["XDG_CONFIG_HOME"] = str(short_dir("ad-cfg-"))
    env.update(changes)
    return env


def run_gateway_to_exit(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A gateway that is expected to refuse to start: its exit status and stderr."""
    return subprocess.run(
        gateway_command(*args),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
        env=env if env is not None else gateway_env(),
        stdin=subprocess.DEVNULL,
    )


@contextmanager
def running_gateway(
    runtime_dir: Path,
    *args: str,
    listen: str | None = "127.0.0.1:0",
    env: dict[str, str] | None = None,
) -> Iterator[Gateway]:
    """Start ``assistantd-http`` for the daemon in ``runtime_dir``; wait until it says where it
    serves; stop it on the way out."""
    where = ("--listen", listen) if listen is not None else ()
    process = subprocess.Popen(
        gateway_command("--runtime-dir", str(runtime_dir), *where, *args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env if env is not None else gateway_env(),
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def collect() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        said: list[str] = []
        while True:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"the gateway exited with {process.wait()}: {said}"
            said.append(line)
            if "serving " in line:
                url = line.split("serving ", 1)[1].split()[0]
                break
        # A client of the gateway reaches it on loopback whatever address it serves.
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        yield Gateway(process, f"http://127.0.0.1:{port}/v1", port)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5)
        assert process.stderr is not None
        process.stderr.close()


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """One request, as curl would send it; the status and the JSON body (errors included)."""
    status, _, payload = http_full(method, url, body, headers=headers, raw=raw)
    return status, payload


def http_full(
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Message, Any]:
    """:func:`http`, with the response's headers too (``None`` for an empty body)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in (headers or {}):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=IO_TIMEOUT) as response:
            content = response.read()
            return response.status, response.headers, json.loads(content) if content else None
    except urllib.error.HTTPError as error:
        with error:
            content = error.read()
            return error.code, error.headers, json.loads(content) if content else None


def assert_openai_error(body: Any, code: str | None) -> None:
    """``body`` is an error exactly as OpenAI shapes one."""
    assert set(body) == {"error"}
    assert OPENAI_ERROR_KEYS <= set(body["error"]) <= OPENAI_ERROR_KEYS | {"details"}
    assert body["error"]["code"] == code


@dataclass
class RawResponse:
    status: int
    headers: HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _SharedFile:
    """Hands http.client the same buffered reader for every response of a connection, so that
    pipelined responses are read one after the other (and its close() does not close it)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def makefile(self, *args: Any, **kwargs: Any) -> _SharedFile:
        return self

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


class RawConnection:
    """A raw TCP connection to the gateway: bytes out exactly as given, responses parsed."""

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self._file = self.socket.makefile("rb")

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()
        self.socket.close()

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def response(self, method: str = "GET") -> RawResponse:
        """The next response (a ``100 Continue`` before it is skipped)."""
        response = HTTPResponse(_SharedFile(self._file), method=method)  # type: ignore[arg-type]
        response.begin()
        return RawResponse(response.status, response.headers, response.read())

    def message(self) -> tuple[str, bytes]:
        """The next status line and body exactly as they come: a ``100 Continue`` is one."""
        status = self._file.readline().decode("latin-1").rstrip("\r\n")
        length = 0
        while (line := self._file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, self._file.read(length)

    def closed_by_peer(self) -> bool:
        """Whether the gateway closed the connection (read to its end; nothing else may come)."""
        return self._file.read() == b""


def request_bytes(
    method: str,
    path: str,
    port: int,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    version: str = "HTTP/1.1",
    host: str | None = None,
) -> bytes:
    """A request as a client writes it; ``Host`` is ``127.0.0.1:PORT`` unless given."""
    lines = [f"{method} {path} {version}"]
    if host != "":
        lines.append(f"Host: {host or f'127.0.0.1:{port}'}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None and not any(n.lower() == "transfer-encoding" for n in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

"""The blocking client: one DEALER socket, one request at a time, over plain pyzmq."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import msgspec
import zmq
from assistantd.protocol.assistant import Assistant
from assistantd.protocol.codec import encode_request
from assistantd.protocol.errors import UnavailableError
from assistantd.protocol.messages import AssistantList, DeletedAssistant, PingResult

from . import calls
from .calls import AssistantFields, Call, Order, read_reply
from .discovery import check_reachable, command_endpoint

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


class Client:
    """Talks to a daemon from ordinary (non-async) code.

    Example::

        with Client(runtime_dir=runtime_dir) as client:
            print(client.get_assistant("jan").name)

    Each call waits at most ``timeout`` seconds; when no reply comes, the socket is closed and
    opened again (ZeroMQ's "Lazy Pirate"), so a late reply can never be taken for the next one,
    and :class:`UnavailableError` is raised.
    """

    def __init__(
        self,
        *,
        command: str | None = None,
        runtime_dir: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        self.endpoint = command_endpoint(command=command, runtime_dir=runtime_dir)
        self.timeout = timeout
        self._own_context = context is None
        self._context = context or zmq.Context()
        self._socket: zmq.Socket[bytes] | None = None
        self._ids = itertools.count(1)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._drop_socket()
        if self._own_context:
            self._context.term()

    def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send any method with raw params; the result as plain JSON values."""
        raw = self._exchange(method, params or {})
        return msgspec.json.decode(raw)

    def ping(self) -> PingResult:
        return self._call(calls.ping())

    def list_assistants(
        self,
        *,
        limit: int | None = None,
        order: Order | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> AssistantList:
        return self._call(
            calls.list_assistants(limit=limit, order=order, after=after, before=before)
        )

    def iter_assistants(
        self, *, order: Order = "desc", page_size: int = 100
    ) -> Iterator[Assistant]:
        """Every assistant, page by page with ``after``."""
        after: str | None = None
        while True:
            page = self.list_assistants(limit=page_size, order=order, after=after)
            yield from page.data
            if not page.has_more or page.last_id is None:
                return
            after = page.last_id

    def get_assistant(self, assistant_id: str) -> Assistant:
        return self._call(calls.get_assistant(assistant_id))

    def create_assistant(
        self, *, id: str | None = None, **fields: Unpack[AssistantFields]
    ) -> Assistant:
        return self._call(calls.create_assistant(id, fields))

    def modify_assistant(self, assistant_id: str, **fields: Unpack[AssistantFields]) -> Assistant:
        return self._call(calls.modify_assistant(assistant_id, fields))

    def delete_assistant(self, assistant_id: str) -> DeletedAssistant:
        return self._call(calls.delete_assistant(assistant_id))

    def _call(self, call: Call[T]) -> T:
        return call.result(self._exchange(call.method, call.params))

    def _exchange(self, method: str, params: dict[str, Any]) -> msgspec.Raw:
        socket = self._connected()
        request_id = next(self._ids)
        socket.send_multipart([b"", encode_request(request_id, method, params)])
        deadline = time.monotonic() + self.timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if not socket.poll(int(remaining * 1000) + 1, zmq.POLLIN):
                break
            frames = socket.recv_multipart()
            reply_id, outcome = read_reply(frames[-1])
            if reply_id != request_id and reply_id is not None:
                continue  # a late reply to an earlier call that timed out
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        self._drop_socket()
        raise UnavailableError(
            f"No reply from the daemon at {self.endpoint} within {self.timeout:g}s.",
            code="timeout",
        )

    def _connected(self) -> zmq.Socket[bytes]:
        if self._socket is None:
            check_reachable(self.endpoint)
            socket = self._context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            socket.connect(self.endpoint)
            self._socket = socket
        return self._socket

    def _drop_socket(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

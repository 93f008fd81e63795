"""The asyncio client: one DEALER socket, many requests in flight, each reply to its caller."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import msgspec
import zmq
import zmq.asyncio

from assistantd.protocol.assistant import Assistant
from assistantd.protocol.codec import encode_request
from assistantd.protocol.errors import AssistantdError, UnavailableError
from assistantd.protocol.events import Snapshot
from assistantd.protocol.messages import (
    AssistantList,
    DeletedAssistant,
    ExportResult,
    PingResult,
    RequestId,
    SentMessage,
)

from . import calls
from .awatch import AsyncWatch
from .calls import AssistantFields, Call, Order, read_reply
from .curve import ClientSecurity, KeySource, no_reply_hint
from .discovery import check_reachable, command_endpoint, events_endpoint
from .sync import DEFAULT_TIMEOUT
from .waits import reply_timeout

T = TypeVar("T")


class AsyncClient:
    """Talks to a daemon from asyncio code.

    Example::

        async with AsyncClient(runtime_dir=runtime_dir) as client:
            page = await client.list_assistants(limit=5)

    Calls may run concurrently; replies are matched to calls by id. A call that gets no reply
    within ``timeout`` raises :class:`UnavailableError`; a reply that comes later is dropped,
    and the call is never sent again. A worker command waits longer, for as long as the daemon
    may take by its own rules on top (an invoke's ``timeout_ms``: see ``waits``), and so do a
    cancel, an import and an export.
    ``events`` is the event endpoint that :meth:`watch` subscribes to (by default
    ``events.sock`` beside ``command.sock``).

    A ``tcp://`` endpoint is reached with CURVE; ``curve_secret_key``, ``curve_server_key``
    and ``insecure_tcp`` are as for :class:`~assistantd.client.Client`.
    """

    def __init__(
        self,
        *,
        command: str | None = None,
        events: str | None = None,
        runtime_dir: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        curve_secret_key: str | os.PathLike[str] | None = None,
        curve_server_key: KeySource | None = None,
        insecure_tcp: bool = False,
    ) -> None:
        self._security = ClientSecurity(
            secret_key=curve_secret_key, server_key=curve_server_key, insecure_tcp=insecure_tcp
        )
        self.endpoint = command_endpoint(command=command, runtime_dir=runtime_dir)
        self.events_endpoint = events_endpoint(events=events, runtime_dir=runtime_dir)
        self.timeout = timeout
        self._context: zmq.asyncio.Context | None = None
        self._socket: zmq.asyncio.Socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[RequestId, asyncio.Future[msgspec.Raw]] = {}
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        if self._context is not None:
            self._context.term()
            self._context = None

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send any method with raw params; the result as plain JSON values."""
        return msgspec.json.decode(await self._exchange(method, params or {}))

    async def ping(self) -> PingResult:
        return await self._call(calls.ping())

    async def list_assistants(
        self,
        *,
        limit: int | None = None,
        order: Order | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> AssistantList:
        return await self._call(
            calls.list_assistants(limit=limit, order=order, after=after, before=before)
        )

    async def iter_assistants(
        self, *, order: Order = "desc", page_size: int = 100
    ) -> AsyncIterator[Assistant]:
        """Every assistant, page by page with ``after``."""
        after: str | None = None
        while True:
            page = await self.list_assistants(limit=page_size, order=order, after=after)
            for assistant in page.data:
                yield assistant
            if not page.has_more or page.last_id is None:
                return
            after = page.last_id

    async def get_assistant(self, assistant_id: str) -> Assistant:
        return await self._call(calls.get_assistant(assistant_id))

    async def create_assistant(
        self, *, id: str | None = None, **fields: Unpack[AssistantFields]
    ) -> Assistant:
        return await self._call(calls.create_assistant(id, fields))

    async def modify_assistant(
        self, assistant_id: str, **fields: Unpack[AssistantFields]
    ) -> Assistant:
        return await self._call(calls.modify_assistant(assistant_id, fields))

    async def delete_assistant(self, assistant_id: str) -> DeletedAssistant:
        return await self._call(calls.delete_assistant(assistant_id))

    async def get_snapshot(self) -> Snapshot:
        """Every assistant and every invalid file, as of the ``seq`` it carries."""
        return await self._call(calls.get_snapshot())

    async def start_assistant(self, assistant_id: str) -> Assistant:
        """Start the assistant's worker; the assistant, ``running``, once the worker is up.
        Starting a running assistant changes nothing."""
        return await self._call(calls.start_assistant(assistant_id))

    async def stop_assistant(self, assistant_id: str) -> Assistant:
        """Stop the worker and whatever it started; the assistant, ``ready``."""
        return await self._call(calls.stop_assistant(assistant_id))

    async def restart_assistant(self, assistant_id: str) -> Assistant:
        """Stop the worker (if it runs), then start it; the assistant, ``running``."""
        return await self._call(calls.restart_assistant(assistant_id))

    async def invoke_assistant(
        self, assistant_id: str, method: str, *args: Any, timeout_ms: int | None = None
    ) -> Any:
        """Call ``method`` of the assistant's worker with ``args``; what it returned (JSON).

        Example::

            await client.invoke_assistant("jan", "ping")  # "pong"

        ``timeout_ms`` bounds the call in the daemon (its ``invoke-timeout`` when None); this
        client waits that long plus its own ``timeout``. The errors are
        :meth:`Client.invoke_assistant`'s.
        """
        call = calls.invoke_assistant(assistant_id, method, list(args), timeout_ms)
        return (await self._call(call)).result

    async def send_to_assistant(self, assistant_id: str, message: Any) -> SentMessage:
        """Hand ``message`` (JSON) to the worker, which gets it as it is (no answer)."""
        return await self._call(calls.send_to_assistant(assistant_id, message))

    async def download_assistant(
        self,
        url: str | None = None,
        *,
        sha256: str | None = None,
        assistant_id: str | None = None,
        start: bool = False,
    ) -> Assistant:
        """Register an assistant to be downloaded from ``url`` and start the download; the
        assistant, ``downloading``, at once. Enter a :meth:`watch` before, to follow its
        ``download.progress`` events and the ``assistant.state`` event that ends it; see
        :meth:`Client.download_assistant`."""
        return await self._call(calls.download_assistant(url, sha256, assistant_id, start))

    async def cancel_download(self, assistant_id: str) -> Assistant:
        """Stop the assistant's download; the assistant, back to ``to_download``, once the
        download has ended."""
        return await self._call(calls.cancel_download(assistant_id))

    async def import_assistant(
        self, path: str | os.PathLike[str], *, assistant_id: str | None = None
    ) -> Assistant:
        """Copy an assistant in from ``path`` (a folder, an archive or an ``assistant.json``;
        a relative one is made absolute here); the assistant, ``ready``. See
        :meth:`Client.import_assistant`."""
        return await self._call(calls.import_assistant(path, assistant_id))

    async def export_assistant(
        self, assistant_id: str, path: str | os.PathLike[str]
    ) -> ExportResult:
        """Write the assistant's folder to ``path`` (``.zip``, ``.tar.gz`` or ``.tgz``; a
        relative one is made absolute here). See :meth:`Client.export_assistant`."""
        return await self._call(calls.export_assistant(assistant_id, path))

    def watch(self, prefix: str = "") -> AsyncWatch:
        """The events whose topic starts with ``prefix``, and a mirror of the daemon's state.

        Example::

            async with client.watch("assistant.") as watch:
                async for event in watch:
                    match event:
                        case Synced():  # the mirror was replaced by a snapshot
                            show_all(watch.mirror.assistants)
                        case AssistantUpdated(assistant=assistant):
                            show_one(assistant)

        The mirror follows every state event whatever ``prefix`` is; see :class:`AsyncWatch`.
        The workers' events (``worker.log``, ``worker.message``, ``worker.exited``) and the
        downloads' (``download.progress``) are yielded too when the prefix takes them in
        (``client.watch("worker.")``, ``client.watch("download.")``); they are not mirrored.
        """
        return AsyncWatch(
            self.events_endpoint,
            self.get_snapshot,
            prefix=prefix,
            start_timeout=self.timeout,
            security=self._security,
        )

    async def _call(self, call: Call[T]) -> T:
        return call.result(await self._exchange(call.method, call.params))

    async def _exchange(self, method: str, params: dict[str, Any]) -> msgspec.Raw:
        socket = self._connected()
        request_id = next(self._ids)
        future: asyncio.Future[msgspec.Raw] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        wait = reply_timeout(method, params, self.timeout)
        try:
            await socket.send_multipart([b"", encode_request(request_id, method, params)])
            return await asyncio.wait_for(future, wait)
        except TimeoutError:
            raise UnavailableError(
                f"No reply from the daemon at {self.endpoint} within {wait:g}s."
                + no_reply_hint(self.endpoint),
                code="timeout",
            ) from None
        finally:
            self._pending.pop(request_id, None)

    def _connected(self) -> zmq.asyncio.Socket:
        if self._socket is None:
            check_reachable(self.endpoint)
            options = self._security.socket_options(self.endpoint)  # CURVE for tcp://
            self._context = zmq.asyncio.Context()
            socket = self._context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            for option, value in options:
                socket.setsockopt(option, value)
            socket.connect(self.endpoint)
            self._socket = socket
            self._reader = asyncio.get_running_loop().create_task(self._read(socket))
        return self._socket

    async def _read(self, socket: zmq.asyncio.Socket) -> None:
        """Hand each reply to the call waiting for it."""
        while True:
            frames = await socket.recv_multipart()
            reply_id, outcome = read_reply(frames[-1])
            if reply_id is None and len(self._pending) == 1:
                # An error for a request the daemon could not read carries no id; with one
                # call in flight it can only be that call's.
                reply_id = next(iter(self._pending))
            future = self._pending.get(reply_id) if reply_id is not None else None
            if future is None or future.done():
                continue
            if isinstance(outcome, AssistantdError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

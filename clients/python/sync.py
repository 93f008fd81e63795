"""The blocking client: one DEALER socket, one request at a time, over plain pyzmq."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import msgspec

from assistantd.protocol.assistant import Assistant
from assistantd.protocol.codec import encode_request
from assistantd.protocol.events import Snapshot
from assistantd.protocol.messages import (
    AssistantList,
    DeletedAssistant,
    ExportResult,
    PingResult,
    SentMessage,
)

from . import calls
from .calls import AssistantFields, Call, Order, read_reply
from .curve import ClientSecurity, KeySource
from .discovery import command_endpoint, events_endpoint
from .transport import BlockingTransport
from .waits import reply_timeout
from .watch import Watch

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


class Client:
    """Talks to a daemon from ordinary (non-async) code.

    Example::

        with Client(runtime_dir=runtime_dir) as client:
            print(client.get_assistant("jan").name)

    Each call waits at most ``timeout`` seconds for its reply, then raises
    :class:`UnavailableError`; the next call opens a fresh socket (see ``transport``). A worker
    command waits longer, for as long as the daemon may take by its own rules on top (an
    invoke's ``timeout_ms``: see ``waits``), and so do a cancel, an import and an export. A
    call that timed out is never sent again.
    ``events`` is the event endpoint that :meth:`watch` subscribes to (by default
    ``events.sock`` beside ``command.sock``).

    A ``tcp://`` endpoint is reached with CURVE: ``curve_secret_key`` is this client's key
    pair (a ``.key_secret`` file) and ``curve_server_key`` the daemon's public key (the Z85
    key or its ``server.key`` file); where not given they are found as :mod:`.curve` says
    (``$ASSISTANTD_CURVE_SECRET_KEY``, ``$ASSISTANTD_SERVER_KEY``, then files in
    ``$XDG_CONFIG_HOME/assistantd``). ``insecure_tcp`` connects without CURVE, to a daemon
    started with ``--insecure-tcp``.
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
        self._transport = BlockingTransport(
            command_endpoint(command=command, runtime_dir=runtime_dir), timeout, self._security
        )
        self.events_endpoint = events_endpoint(events=events, runtime_dir=runtime_dir)
        self._ids = itertools.count(1)

    @property
    def endpoint(self) -> str:
        return self._transport.endpoint

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
        self._transport.close()

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

    def get_snapshot(self) -> Snapshot:
        """Every assistant and every invalid file, as of the ``seq`` it carries."""
        return self._call(calls.get_snapshot())

    def start_assistant(self, assistant_id: str) -> Assistant:
        """Start the assistant's worker; the assistant, ``running``, once the worker is up.
        Starting a running assistant changes nothing."""
        return self._call(calls.start_assistant(assistant_id))

    def stop_assistant(self, assistant_id: str) -> Assistant:
        """Stop the worker and whatever it started; the assistant, ``ready``."""
        return self._call(calls.stop_assistant(assistant_id))

    def restart_assistant(self, assistant_id: str) -> Assistant:
        """Stop the worker (if it runs), then start it; the assistant, ``running``."""
        return self._call(calls.restart_assistant(assistant_id))

    def invoke_assistant(
        self, assistant_id: str, method: str, *args: Any, timeout_ms: int | None = None
    ) -> Any:
        """Call ``method`` of the assistant's worker with ``args``; what it returned (JSON).

        Example::

            client.invoke_assistant("jan", "ping")  # "pong"

        ``timeout_ms`` bounds the call in the daemon (its ``invoke-timeout`` when None); this
        client waits that long plus its own ``timeout``. A method that throws raises
        :class:`WorkerError` (502) with the worker's error in ``details``; no answer in time,
        :class:`GatewayTimeoutError` (504); a method the worker does not have,
        :class:`NotFoundError` (``method_not_found``); an assistant that is not running,
        :class:`ConflictError` (``assistant_not_running``).
        """
        call = calls.invoke_assistant(assistant_id, method, list(args), timeout_ms)
        return self._call(call).result

    def send_to_assistant(self, assistant_id: str, message: Any) -> SentMessage:
        """Hand ``message`` (JSON) to the worker, which gets it as it is (no answer)."""
        return self._call(calls.send_to_assistant(assistant_id, message))

    def download_assistant(
        self,
        url: str | None = None,
        *,
        sha256: str | None = None,
        assistant_id: str | None = None,
        start: bool = False,
    ) -> Assistant:
        """Register an assistant to be downloaded from ``url`` and start the download; the
        assistant, ``downloading``, at once.

        Example::

            with client.watch() as watch:  # entered first, so that no event is missed
                assistant = client.download_assistant("https://example.com/tutor.zip")
                for event in watch:
                    if isinstance(event, DownloadProgress) and event.assistant_id == assistant.id:
                        print(event.bytes, event.total)
                    elif (
                        isinstance(event, AssistantStateChanged)
                        and event.assistant.id == assistant.id
                    ):
                        break  # "ready", or back to "to_download" with event.error

        The download goes on in the daemon; ``download.progress`` events tell how far it is,
        and an ``assistant.state`` event tells how it ended. ``sha256`` (hex) must match the
        body, or nothing is installed; with ``start`` the worker is started once it is in
        place. The id is ``assistant_id``, else the name the URL gives. ``assistant_id`` alone
        downloads a ``to_download`` assistant again from its URL. A taken id is a
        :class:`ConflictError` (``id_taken``); a bad URL an :class:`InvalidRequestError`.
        """
        return self._call(calls.download_assistant(url, sha256, assistant_id, start))

    def cancel_download(self, assistant_id: str) -> Assistant:
        """Stop the assistant's download; the assistant, back to ``to_download`` (its
        ``download.error`` has the code ``cancelled``). Answers once the download has ended."""
        return self._call(calls.cancel_download(assistant_id))

    def import_assistant(
        self, path: str | os.PathLike[str], *, assistant_id: str | None = None
    ) -> Assistant:
        """Copy an assistant in from ``path`` (a folder, a ``.zip`` or ``.tar.gz``, or an
        ``assistant.json``); the assistant, ``ready``. A relative ``path`` is taken from this
        process's working directory (the daemon is sent an absolute one). The id is
        ``assistant_id``, else the definition's ``id``, else the folder's (or archive's)
        name. The client waits up to ``waits.TRANSFER_WORK_TIME`` beyond its ``timeout``."""
        return self._call(calls.import_assistant(path, assistant_id))

    def export_assistant(self, assistant_id: str, path: str | os.PathLike[str]) -> ExportResult:
        """Write the assistant's folder (without ``node_modules``) to ``path``, a ``.zip`` or a
        ``.tar.gz``/``.tgz`` by its extension, which must not exist. A relative ``path`` is
        taken from this process's working directory. The client waits up to
        ``waits.TRANSFER_WORK_TIME`` beyond its ``timeout``."""
        return self._call(calls.export_assistant(assistant_id, path))

    def watch(self, prefix: str = "") -> Watch:
        """The events whose topic starts with ``prefix``, and a mirror of the daemon's state.

        Example::

            with client.watch("assistant.") as watch:
                for event in watch:
                    print(topic_of(event), len(watch.mirror.assistants))

        The mirror follows every state event whatever ``prefix`` is; see :class:`Watch`. The
        snapshots go over this client's socket, so use the client only from the thread that
        iterates. The workers' events (``worker.log``, ``worker.message``, ``worker.exited``)
        and the downloads' (``download.progress``) are yielded too when the prefix takes them
        in; they are not mirrored::

            with client.watch("worker.log") as watch:
                for event in watch:
                    if isinstance(event, WorkerLog):
                        print(event.assistant_id, event.line)
        """
        return Watch(
            self.events_endpoint,
            self.get_snapshot,
            prefix=prefix,
            start_timeout=self._transport.timeout,
            security=self._security,
        )

    def _call(self, call: Call[T]) -> T:
        return call.result(self._exchange(call.method, call.params))

    def _exchange(self, method: str, params: dict[str, Any]) -> msgspec.Raw:
        wait = reply_timeout(method, params, self._transport.timeout)
        body = self._transport.exchange(encode_request(next(self._ids), method, params), wait)
        _, outcome = read_reply(body)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

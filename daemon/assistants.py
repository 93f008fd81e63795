"""The assistant commands: one handler per method of PROTOCOL.md.

Reads (ping, list, get) are plain functions that answer at once from the index; writes are
coroutines that hold the assistant's lock and do their file I/O in a worker thread, so that an
fsync never stalls the other clients and concurrent modifies of one assistant lose no update.
Handlers raise :class:`AssistantdError`; turning errors into replies is the command server's job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from assistantd.protocol import PROTOCOL_VERSION
from assistantd.protocol.assistant import (
    apply_fields,
    assistant_from_document,
    document_for_new,
)
from assistantd.protocol.errors import (
    ConflictError,
    InternalError,
    NotFoundError,
    PermissionDeniedError,
)
from assistantd.protocol.events import InvalidFile
from assistantd.protocol.ids import DEFAULT_ASSISTANT_ID, check_assistant_id, new_assistant_id
from assistantd.protocol.messages import (
    AssistantRef,
    CreateAssistantParams,
    DeletedAssistant,
    ListAssistantsParams,
    ModifyAssistantParams,
    NoParams,
    PingResult,
)

from .index import Entry
from .state import LiveState
from .store import Definition, InvalidDefinition, Loaded

log = structlog.get_logger("assistantd.assistants")


class _Listing(msgspec.Struct):
    """listAssistants' result, with the assistants spliced in already encoded."""

    data: list[msgspec.Raw]
    first_id: str | None
    last_id: str | None
    has_more: bool
    object: str = "list"


class _Snapshot(msgspec.Struct):
    """getSnapshot's result, with the assistants spliced in already encoded."""

    epoch: str
    seq: int
    assistants: list[msgspec.Raw]
    invalid: list[InvalidFile]
    object: str = "snapshot"


class AssistantService:
    """The handlers of the assistant methods, over the live state."""

    def __init__(
        self,
        state: LiveState,
        *,
        version: str,
        before_delete: Callable[[str], Awaitable[object]] | None = None,
        forget_download: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.state = state
        self._before_delete = before_delete
        self._forget_download = forget_download
        """Deletes an assistant registered for download (cancelling the download)."""
        """Called (awaited) before an assistant is deleted: its worker is stopped first."""
        self.store = state.store
        self.index = state.index
        self._locks = state.locks
        self._version = version
        self._epoch = state.publisher.epoch
        self._started = time.monotonic()

    def ping(self, params: NoParams) -> PingResult:
        """``{"method": "ping"}`` ->
        ``{"daemon_version", "protocol_version", "epoch", "uptime"}``"""
        return PingResult(
            daemon_version=self._version,
            protocol_version=PROTOCOL_VERSION,
            epoch=self._epoch,
            uptime=round(time.monotonic() - self._started, 3),
        )

    def list_assistants(self, params: ListAssistantsParams) -> _Listing:
        """``{"method": "listAssistants", "params": {"limit": 20, "order": "desc",
        "after": "asst_..."}}`` -> ``{"object": "list", "data": [...], "first_id", "last_id",
        "has_more"}``"""
        page = self.index.page(
            limit=params.limit, order=params.order, after=params.after, before=params.before
        )
        entries = page.entries
        return _Listing(
            data=[entry.encoded for entry in entries],
            first_id=entries[0].assistant.id if entries else None,
            last_id=entries[-1].assistant.id if entries else None,
            has_more=page.has_more,
        )

    def get_snapshot(self, params: NoParams) -> _Snapshot:
        """``{"method": "getSnapshot"}`` -> ``{"object": "snapshot", "epoch", "seq",
        "assistants": [...], "invalid": [...]}``, all as of ``seq`` (built without a pause in
        which another change could slip in)."""
        return _Snapshot(
            epoch=self._epoch,
            seq=self.state.publisher.seq,
            assistants=[entry.encoded for entry in self.index.in_order()],
            invalid=self.state.invalid_files,
        )

    def get_assistant(self, params: AssistantRef) -> msgspec.Raw:
        """``{"method": "getAssistant", "params": {"assistant_id": "jan"}}`` -> the assistant.

        The file is checked (one stat) on every get, so a folder removed or a file edited by
        hand is never answered from a stale index.
        """
        return self._current(check_assistant_id(params.assistant_id)).encoded

    async def create_assistant(self, params: CreateAssistantParams) -> msgspec.Raw:
        """``{"method": "createAssistant", "params": {"model": "llama3", "name": "Ada", ...}}``
        -> the new assistant (``id`` is ``asst_...`` unless the params give a free one)."""
        if params.id is None:
            assistant_id = new_assistant_id()
        else:
            assistant_id = check_assistant_id(params.id, "id")
        now = int(time.time())
        draft = apply_fields({}, params)
        assistant = assistant_from_document(
            {**draft, "created_at": now}, assistant_id=assistant_id, mtime=now
        )
        document = {"id": assistant_id, "object": "assistant", **document_for_new(assistant)}
        async with self._locks.hold(assistant_id):
            if assistant_id in self.index or self.store.exists(assistant_id):
                raise _taken(assistant_id)
            try:
                signature = await asyncio.to_thread(self.store.create, assistant_id, document)
            except FileExistsError:
                raise _taken(assistant_id) from None
            entry = self.state.put(Loaded(assistant, signature), "request")
        log.info("assistant created", assistant_id=assistant_id)
        return entry.encoded

    async def modify_assistant(self, params: ModifyAssistantParams) -> msgspec.Raw:
        """``{"method": "modifyAssistant", "params": {"assistant_id": "jan", "name": "Jan 2"}}``
        -> the assistant as modified. Absent fields, and fields unknown to the daemon that the
        file already holds, are kept as they are."""
        assistant_id = check_assistant_id(params.assistant_id)
        async with self._locks.hold(assistant_id):
            entry = self.index.get(assistant_id)
            if entry is None:
                raise _not_found(assistant_id)
            if entry.signature is None:
                raise ConflictError(
                    f"The assistant '{assistant_id}' is not downloaded yet: it has no "
                    "definition to modify.",
                    param="assistant_id",
                    code="not_downloaded",
                )
            # Read the file as it is now (someone may have edited it by hand), not the index.
            definition = await self._read_for_write(assistant_id)
            document = apply_fields(definition.document, params)
            # `created_at` may be missing from a hand-written file, where it defaults to the
            # file's mtime; pin it before the write changes that mtime.
            document.setdefault("created_at", definition.assistant.created_at)
            assistant = assistant_from_document(
                document, assistant_id=assistant_id, mtime=definition.assistant.created_at
            )
            try:
                signature = await asyncio.to_thread(self.store.replace, assistant_id, document)
            except FileNotFoundError:
                self.state.remove(assistant_id, "file")
                raise _not_found(assistant_id) from None
            entry = self.state.put(Loaded(assistant, signature), "request")
        log.info("assistant modified", assistant_id=assistant_id)
        return entry.encoded

    async def delete_assistant(self, params: AssistantRef) -> DeletedAssistant:
        """``{"method": "deleteAssistant", "params": {"assistant_id": "asst_..."}}`` ->
        ``{"id", "object": "assistant.deleted", "deleted": true, "state": "to_download"}``"""
        assistant_id = check_assistant_id(params.assistant_id)
        if assistant_id == DEFAULT_ASSISTANT_ID:
            raise PermissionDeniedError(
                f"The default assistant {DEFAULT_ASSISTANT_ID!r} cannot be deleted.",
                param="assistant_id",
                code="default_assistant",
            )
        entry = self.index.get(assistant_id)
        if (
            entry is not None
            and entry.signature is None
            and self._forget_download is not None
            # Registered for download, not on disk: forgotten, its download cancelled (unless
            # it was being put in place: then it is deleted as any other).
            and await self._forget_download(assistant_id)
        ):
            log.info("assistant deleted", assistant_id=assistant_id)
            return DeletedAssistant(id=assistant_id)
        async with self._locks.hold(assistant_id):
            if assistant_id not in self.index:
                raise _not_found(assistant_id)
            if self._before_delete is not None:
                await self._before_delete(assistant_id)
            try:
                await asyncio.to_thread(self.store.remove, assistant_id)
            except FileNotFoundError:
                self.state.remove(assistant_id, "file")  # removed by hand a moment ago
                raise _not_found(assistant_id) from None
            self.state.remove(assistant_id, "request")
        log.info("assistant deleted", assistant_id=assistant_id)
        return DeletedAssistant(id=assistant_id)

    def _current(self, assistant_id: str) -> Entry:
        """The index entry, brought up to date with the file if the file changed.

        While a write to the assistant is under way its entry is served as it is: the write
        updates it (and publishes its event) as soon as the file is in place.
        """
        entry = self.index.get(assistant_id)
        if entry is not None and self.store.signature(assistant_id) == entry.signature:
            return entry  # the file is as it was: one stat, the path of nearly every get
        if not self._locks.is_held(assistant_id):
            self.state.refresh(assistant_id, settle=False)
        entry = self.index.get(assistant_id)
        if entry is None:
            raise _not_found(assistant_id)
        return entry

    async def _read_for_write(self, assistant_id: str) -> Definition:
        try:
            return await asyncio.to_thread(self.store.read_document, assistant_id)
        except FileNotFoundError:
            self.state.remove(assistant_id, "file")
            raise _not_found(assistant_id) from None
        except InvalidDefinition as invalid:
            raise ConflictError(
                f"The assistant's file is not valid, so it cannot be modified until it is fixed: "
                f"{invalid.reason}.",
                param="assistant_id",
                code="invalid_file",
            ) from None
        except OSError as exc:  # pragma: no cover - disk trouble
            raise InternalError("The assistant's file could not be read.") from exc


def _not_found(assistant_id: str) -> NotFoundError:
    return NotFoundError(f"No assistant found with id '{assistant_id}'.", param="assistant_id")


def _taken(assistant_id: str) -> ConflictError:
    return ConflictError(
        f"An assistant with id '{assistant_id}' already exists.", param="id", code="id_taken"
    )

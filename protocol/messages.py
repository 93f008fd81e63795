"""Requests, their params and results: one Struct per method.

The params of an operation are OpenAI's path, query and body fields in one object
(``assistant_id`` included). Unknown params are refused (a 400 with ``unknown_parameter``), as the
OpenAI API does, so a misspelt field is never silently dropped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from . import limits
from .assistant import Assistant, DefinitionFields
from .events import Snapshot

RequestId = str | int


class Request(msgspec.Struct, forbid_unknown_fields=True):
    """The body of a command: ``{"id": ..., "method": ..., "params": {...}}``."""

    id: RequestId
    method: str
    params: msgspec.Raw = msgspec.Raw(b"{}")


class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every method's params."""


class NoParams(Params):
    """``ping`` takes none."""


class AssistantRef(Params):
    """getAssistant, deleteAssistant, startAssistant, stopAssistant, restartAssistant: the
    assistant's id."""

    assistant_id: str


ListLimit = Annotated[int, msgspec.Meta(ge=1, le=limits.LIST_LIMIT_MAX)]


class ListAssistantsParams(Params):
    limit: ListLimit = limits.LIST_LIMIT_DEFAULT
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None


class CreateAssistantParams(DefinitionFields, kw_only=True, forbid_unknown_fields=True):
    """createAssistant: the definition, and optionally the id (a free, safe folder name)."""

    id: str | None = None


class ModifyAssistantParams(DefinitionFields, kw_only=True, forbid_unknown_fields=True):
    """modifyAssistant: the id and the fields to change (absent fields are kept)."""

    assistant_id: str


MethodName = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.METHOD_NAME_MAX_CHARS)]
TimeoutMs = Annotated[int, msgspec.Meta(ge=1, le=limits.INVOKE_TIMEOUT_MAX_MS)]


class InvokeAssistantParams(Params):
    """invokeAssistant: call ``method`` of the assistant's worker with ``args``."""

    assistant_id: str
    method: MethodName
    args: list[Any] = msgspec.field(default_factory=list)
    timeout_ms: TimeoutMs | None = None
    """How long to wait for the answer (and for a restarting worker to be up first); the
    daemon's default when None."""


class SendToAssistantParams(Params):
    """sendToAssistant: one message for the worker, delivered as is (no answer)."""

    assistant_id: str
    message: Any


Url = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.URL_MAX_CHARS)]
Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-fA-F]{64}$")]
LocalPath = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.PATH_MAX_CHARS)]


class DownloadAssistantParams(Params):
    """downloadAssistant: fetch an assistant from ``url`` (or again, for a ``to_download``
    one named by ``assistant_id``, from the URL it was registered with)."""

    url: Url | None = None
    sha256: Sha256 | None = None
    assistant_id: str | None = None
    start: bool = False


class ImportAssistantParams(Params):
    """importAssistant: copy an assistant in from a folder, an archive or an assistant.json."""

    path: LocalPath
    assistant_id: str | None = None


class ExportAssistantParams(Params):
    """exportAssistant: write the assistant's folder as a .zip or .tar.gz at ``path``."""

    assistant_id: str
    path: LocalPath


class ExportResult(msgspec.Struct, kw_only=True):
    object: Literal["assistant.export"] = "assistant.export"
    assistant_id: str
    path: str
    format: Literal["zip", "tar.gz"]
    files: int
    bytes: int


class InvokeResult(msgspec.Struct, kw_only=True):
    """invokeAssistant's result: what the worker's method returned (JSON)."""

    result: Any


class SentMessage(msgspec.Struct, kw_only=True):
    """sendToAssistant's result: the message was handed to the worker's channel."""

    assistant_id: str
    object: Literal["assistant.message.sent"] = "assistant.message.sent"


class AssistantList(msgspec.Struct, kw_only=True):
    """One page of listAssistants."""

    object: Literal["list"] = "list"
    data: list[Assistant]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedAssistant(msgspec.Struct, kw_only=True):
    """The result of deleteAssistant (the Jan spec's shape)."""

    id: str
    object: Literal["assistant.deleted"] = "assistant.deleted"
    deleted: bool = True
    state: Literal["to_download"] = "to_download"


class PingResult(msgspec.Struct, kw_only=True):
    daemon_version: str
    protocol_version: int
    epoch: str
    uptime: float


METHOD_PARAMS: dict[str, type[msgspec.Struct]] = {
    "ping": NoParams,
    "listAssistants": ListAssistantsParams,
    "getAssistant": AssistantRef,
    "createAssistant": CreateAssistantParams,
    "modifyAssistant": ModifyAssistantParams,
    "deleteAssistant": AssistantRef,
    "getSnapshot": NoParams,
    "startAssistant": AssistantRef,
    "stopAssistant": AssistantRef,
    "restartAssistant": AssistantRef,
    "invokeAssistant": InvokeAssistantParams,
    "sendToAssistant": SendToAssistantParams,
    "downloadAssistant": DownloadAssistantParams,
    "cancelDownload": AssistantRef,
    "importAssistant": ImportAssistantParams,
    "exportAssistant": ExportAssistantParams,
}
"""Every method of protocol v1 and the Struct its params decode into."""

METHOD_RESULTS: dict[str, type[msgspec.Struct]] = {
    "ping": PingResult,
    "listAssistants": AssistantList,
    "getAssistant": Assistant,
    "createAssistant": Assistant,
    "modifyAssistant": Assistant,
    "deleteAssistant": DeletedAssistant,
    "getSnapshot": Snapshot,
    "startAssistant": Assistant,
    "stopAssistant": Assistant,
    "restartAssistant": Assistant,
    "invokeAssistant": InvokeResult,
    "sendToAssistant": SentMessage,
    "downloadAssistant": Assistant,
    "cancelDownload": Assistant,
    "importAssistant": Assistant,
    "exportAssistant": ExportResult,
}
"""The Struct each method's result decodes into (for clients)."""

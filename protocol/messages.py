"""Requests, their params and results: one Struct per method.

The params of an operation are OpenAI's path, query and body fields in one object
(``assistant_id`` included). Unknown params are refused (a 400 with ``unknown_parameter``), as the
OpenAI API does, so a misspelt field is never silently dropped.
"""

from __future__ import annotations

from typing import Annotated, Literal

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
    """getAssistant and deleteAssistant: the assistant's id."""

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
}
"""The Struct each method's result decodes into (for clients)."""

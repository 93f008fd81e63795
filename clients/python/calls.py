"""What each client method sends and what it gets back, shared by the async and sync clients."""

from __future__ import annotations

import os
from typing import Any, Generic, Literal, TypedDict, TypeVar

import msgspec

from assistantd.protocol.assistant import Assistant
from assistantd.protocol.codec import decode_reply
from assistantd.protocol.errors import AssistantdError
from assistantd.protocol.events import Snapshot
from assistantd.protocol.messages import (
    METHOD_RESULTS,
    AssistantList,
    DeletedAssistant,
    ExportResult,
    InvokeResult,
    PingResult,
    RequestId,
    SentMessage,
)

T = TypeVar("T")

Order = Literal["asc", "desc"]


class AssistantFields(TypedDict, total=False):
    """The settable fields of an assistant (createAssistant, modifyAssistant)."""

    name: str | None
    description: str | None
    model: str | list[str]
    models: list[str]
    instructions: str | None
    tools: list[dict[str, Any]]
    file_ids: list[str]
    metadata: dict[str, str] | None
    avatar: str
    thread_location: str | None
    temperature: float | None
    top_p: float | None
    response_format: str | dict[str, Any] | None
    tool_resources: dict[str, Any] | None


class Call(Generic[T]):
    """One request: the method, its params, and how to read its result."""

    __slots__ = ("method", "params", "result_type")

    def __init__(self, method: str, params: dict[str, Any], result_type: type[T]) -> None:
        self.method = method
        self.params = params
        self.result_type = result_type

    def result(self, raw: msgspec.Raw) -> T:
        return _decoder(self.result_type).decode(raw)


_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {
    result_type: msgspec.json.Decoder(result_type) for result_type in METHOD_RESULTS.values()
}


def _decoder(result_type: type[T]) -> msgspec.json.Decoder[T]:
    decoder = _decoders.get(result_type)
    if decoder is None:
        decoder = _decoders[result_type] = msgspec.json.Decoder(result_type)
    return decoder


def read_reply(body: bytes) -> tuple[RequestId | None, msgspec.Raw | AssistantdError]:
    """A reply's id and its result, or the error it carries (a malformed reply is an error)."""
    try:
        return decode_reply(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        from assistantd.protocol.errors import InternalError

        return None, InternalError(f"The daemon sent a reply that cannot be read: {exc}")


def _given(**params: Any) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def ping() -> Call[PingResult]:
    return Call("ping", {}, PingResult)


def list_assistants(
    *,
    limit: int | None = None,
    order: Order | None = None,
    after: str | None = None,
    before: str | None = None,
) -> Call[AssistantList]:
    params = _given(limit=limit, order=order, after=after, before=before)
    return Call("listAssistants", params, AssistantList)


def get_assistant(assistant_id: str) -> Call[Assistant]:
    return Call("getAssistant", {"assistant_id": assistant_id}, Assistant)


def create_assistant(id: str | None, fields: AssistantFields) -> Call[Assistant]:
    params: dict[str, Any] = dict(fields)
    if id is not None:
        params["id"] = id
    return Call("createAssistant", params, Assistant)


def modify_assistant(assistant_id: str, fields: AssistantFields) -> Call[Assistant]:
    return Call("modifyAssistant", {"assistant_id": assistant_id, **fields}, Assistant)


def delete_assistant(assistant_id: str) -> Call[DeletedAssistant]:
    return Call("deleteAssistant", {"assistant_id": assistant_id}, DeletedAssistant)


def get_snapshot() -> Call[Snapshot]:
    return Call("getSnapshot", {}, Snapshot)


def start_assistant(assistant_id: str) -> Call[Assistant]:
    return Call("startAssistant", {"assistant_id": assistant_id}, Assistant)


def stop_assistant(assistant_id: str) -> Call[Assistant]:
    return Call("stopAssistant", {"assistant_id": assistant_id}, Assistant)


def restart_assistant(assistant_id: str) -> Call[Assistant]:
    return Call("restartAssistant", {"assistant_id": assistant_id}, Assistant)


def invoke_assistant(
    assistant_id: str, method: str, args: list[Any], timeout_ms: int | None
) -> Call[InvokeResult]:
    params = {"assistant_id": assistant_id, "method": method, "args": args}
    return Call("invokeAssistant", params | _given(timeout_ms=timeout_ms), InvokeResult)


def send_to_assistant(assistant_id: str, message: Any) -> Call[SentMessage]:
    return Call("sendToAssistant", {"assistant_id": assistant_id, "message": message}, SentMessage)


def download_assistant(
    url: str | None, sha256: str | None, assistant_id: str | None, start: bool
) -> Call[Assistant]:
    params = _given(url=url, sha256=sha256, assistant_id=assistant_id)
    if start:
        params["start"] = True
    return Call("downloadAssistant", params, Assistant)


def cancel_download(assistant_id: str) -> Call[Assistant]:
    return Call("cancelDownload", {"assistant_id": assistant_id}, Assistant)


def import_assistant(path: str | os.PathLike[str], assistant_id: str | None) -> Call[Assistant]:
    params = {"path": absolute(path)} | _given(assistant_id=assistant_id)
    return Call("importAssistant", params, Assistant)


def export_assistant(assistant_id: str, path: str | os.PathLike[str]) -> Call[ExportResult]:
    params = {"assistant_id": assistant_id, "path": absolute(path)}
    return Call("exportAssistant", params, ExportResult)


def absolute(path: str | os.PathLike[str]) -> str:
    """``path`` made absolute against this process's working directory: the daemon has its
    own, so it takes absolute paths only. An empty path stays empty, for the daemon to refuse
    (rather than to name the working directory).

    >>> absolute("/srv/a.zip"), absolute("a.zip") == os.path.join(os.getcwd(), "a.zip")
    ('/srv/a.zip', True)
    """
    text = os.fspath(path)
    return os.path.abspath(text) if text else text

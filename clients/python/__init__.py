"""Python clients of assistantd: :class:`AsyncClient` for asyncio, :class:`Client` for the rest.

Both name their methods after the protocol's operations (``list_assistants``,
``get_assistant``, ...), return the protocol's typed objects, and raise
:class:`~assistantd.protocol.errors.AssistantdError` subclasses carrying the error object.

Names are imported on first use: asyncio and msgspec take longer to import than a short
command takes to run, and `assistantctl` needs neither.
"""

from __future__ import annotations

import importlib

# mypy takes any name TYPE_CHECKING as true; the typing module itself is not imported, as
# `assistantctl` imports this package and every millisecond of its start-up counts.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from assistantd.protocol.assistant import Assistant, Download, Runtime, WorkerExit
    from assistantd.protocol.errors import (
        AssistantdError,
        ConflictError,
        DownloadError,
        GatewayTimeoutError,
        InternalError,
        InvalidRequestError,
        NotFoundError,
        PayloadTooLargeError,
        PermissionDeniedError,
        UnavailableError,
        WorkerError,
    )
    from assistantd.protocol.events import (
        AssistantCreated,
        AssistantDeleted,
        AssistantInvalid,
        AssistantStateChanged,
        AssistantUpdated,
        DaemonStopping,
        DownloadProgress,
        Snapshot,
        WorkerExited,
        WorkerLog,
        WorkerMessage,
    )
    from assistantd.protocol.messages import (
        AssistantList,
        DeletedAssistant,
        ExportResult,
        PingResult,
        SentMessage,
    )

    from .aio import AsyncClient
    from .awatch import AsyncWatch
    from .calls import AssistantFields
    from .clone import Mirror, Synced, WatchEvent, topic_of
    from .discovery import command_endpoint, events_endpoint
    from .sync import Client
    from .watch import Watch

_HOMES = {
    "Assistant": "assistantd.protocol.assistant",
    "Download": "assistantd.protocol.assistant",
    "Runtime": "assistantd.protocol.assistant",
    "WorkerExit": "assistantd.protocol.assistant",
    "AssistantList": "assistantd.protocol.messages",
    "DeletedAssistant": "assistantd.protocol.messages",
    "ExportResult": "assistantd.protocol.messages",
    "PingResult": "assistantd.protocol.messages",
    "SentMessage": "assistantd.protocol.messages",
    "AssistantCreated": "assistantd.protocol.events",
    "AssistantDeleted": "assistantd.protocol.events",
    "AssistantInvalid": "assistantd.protocol.events",
    "AssistantStateChanged": "assistantd.protocol.events",
    "AssistantUpdated": "assistantd.protocol.events",
    "DaemonStopping": "assistantd.protocol.events",
    "DownloadProgress": "assistantd.protocol.events",
    "Snapshot": "assistantd.protocol.events",
    "WorkerExited": "assistantd.protocol.events",
    "WorkerLog": "assistantd.protocol.events",
    "WorkerMessage": "assistantd.protocol.events",
    "AssistantdError": "assistantd.protocol.errors",
    "ConflictError": "assistantd.protocol.errors",
    "DownloadError": "assistantd.protocol.errors",
    "GatewayTimeoutError": "assistantd.protocol.errors",
    "InternalError": "assistantd.protocol.errors",
    "InvalidRequestError": "assistantd.protocol.errors",
    "NotFoundError": "assistantd.protocol.errors",
    "PayloadTooLargeError": "assistantd.protocol.errors",
    "PermissionDeniedError": "assistantd.protocol.errors",
    "UnavailableError": "assistantd.protocol.errors",
    "WorkerError": "assistantd.protocol.errors",
    "AsyncClient": "assistantd.client.aio",
    "AsyncWatch": "assistantd.client.awatch",
    "AssistantFields": "assistantd.client.calls",
    "Mirror": "assistantd.client.clone",
    "Synced": "assistantd.client.clone",
    "WatchEvent": "assistantd.client.clone",
    "topic_of": "assistantd.client.clone",
    "command_endpoint": "assistantd.client.discovery",
    "events_endpoint": "assistantd.client.discovery",
    "Client": "assistantd.client.sync",
    "Watch": "assistantd.client.watch",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "Assistant",
    "AssistantCreated",
    "AssistantDeleted",
    "AssistantFields",
    "AssistantInvalid",
    "AssistantList",
    "AssistantStateChanged",
    "AssistantUpdated",
    "AssistantdError",
    "AsyncClient",
    "AsyncWatch",
    "Client",
    "ConflictError",
    "DaemonStopping",
    "DeletedAssistant",
    "Download",
    "DownloadError",
    "DownloadProgress",
    "ExportResult",
    "GatewayTimeoutError",
    "InternalError",
    "InvalidRequestError",
    "Mirror",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PingResult",
    "Runtime",
    "SentMessage",
    "Snapshot",
    "Synced",
    "UnavailableError",
    "Watch",
    "WatchEvent",
    "WorkerError",
    "WorkerExit",
    "WorkerExited",
    "WorkerLog",
    "WorkerMessage",
    "command_endpoint",
    "events_endpoint",
    "topic_of",
]

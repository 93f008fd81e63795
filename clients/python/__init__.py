"""Python clients of assistantd: :class:`AsyncClient` for asyncio, :class:`Client` for the rest.

Both name their methods after the protocol's operations (``list_assistants``,
``get_assistant``, ...), return the protocol's typed objects, and raise
:class:`~assistantd.protocol.errors.AssistantdError` subclasses carrying the error object.
"""

from assistantd.protocol.assistant import Assistant
from assistantd.protocol.errors import (
    AssistantdError,
    ConflictError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnavailableError,
)
from assistantd.protocol.messages import AssistantList, DeletedAssistant, PingResult

from .aio import AsyncClient
from .calls import AssistantFields
from .discovery import command_endpoint
from .sync import Client

__all__ = [
    "Assistant",
    "AssistantFields",
    "AssistantList",
    "AssistantdError",
    "AsyncClient",
    "Client",
    "ConflictError",
    "DeletedAssistant",
    "InternalError",
    "InvalidRequestError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PingResult",
    "UnavailableError",
    "command_endpoint",
]

"""The worker commands: start, stop, restart, invoke and send (PROTOCOL.md, "Workers")."""

from __future__ import annotations

import msgspec

from assistantd.protocol.ids import check_assistant_id
from assistantd.protocol.messages import (
    AssistantRef,
    InvokeAssistantParams,
    InvokeResult,
    SendToAssistantParams,
    SentMessage,
)

from .workers.supervisor import WorkerSupervisor


class WorkerCommands:
    def __init__(self, supervisor: WorkerSupervisor) -> None:
        self._workers = supervisor

    async def start_assistant(self, params: AssistantRef) -> msgspec.Raw:
        """``{"method": "startAssistant", "params": {"assistant_id": "jan"}}`` -> the assistant,
        ``running``, once its worker is up."""
        entry = await self._workers.start(check_assistant_id(params.assistant_id))
        return entry.encoded

    async def stop_assistant(self, params: AssistantRef) -> msgspec.Raw:
        """``{"method": "stopAssistant", ...}`` -> the assistant, ``ready``, once its worker and
        what the worker started are gone."""
        entry = await self._workers.stop(check_assistant_id(params.assistant_id))
        return entry.encoded

    async def restart_assistant(self, params: AssistantRef) -> msgspec.Raw:
        entry = await self._workers.restart(check_assistant_id(params.assistant_id))
        return entry.encoded

    async def invoke_assistant(self, params: InvokeAssistantParams) -> InvokeResult:
        """``{"method": "invokeAssistant", "params": {"assistant_id": "jan", "method": "ping",
        "args": []}}`` -> ``{"result": "pong"}``"""
        assistant_id = check_assistant_id(params.assistant_id)
        timeout = (
            params.timeout_ms / 1000
            if params.timeout_ms is not None
            else self._workers.settings.invoke_timeout
        )
        result = await self._workers.invoke(assistant_id, params.method, params.args, timeout)
        return InvokeResult(result=result)

    async def send_to_assistant(self, params: SendToAssistantParams) -> SentMessage:
        assistant_id = check_assistant_id(params.assistant_id)
        await self._workers.send(assistant_id, params.message)
        return SentMessage(assistant_id=assistant_id)

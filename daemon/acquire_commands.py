"""The acquire commands: download, cancel, import and export (PROTOCOL.md, "Acquiring")."""

from __future__ import annotations

import msgspec

from assistantd.protocol.messages import (
    AssistantRef,
    DownloadAssistantParams,
    ExportAssistantParams,
    ExportResult,
    ImportAssistantParams,
)

from .acquire.downloads import Downloads
from .acquire.transfer import Transfers


class AcquireCommands:
    def __init__(self, downloads: Downloads, transfers: Transfers) -> None:
        self._downloads = downloads
        self._transfers = transfers

    async def download_assistant(self, params: DownloadAssistantParams) -> msgspec.Raw:
        """``{"method": "downloadAssistant", "params": {"url": "https://.../a.zip"}}`` -> the
        assistant, ``downloading``, at once; the download goes on in the background."""
        return (await self._downloads.download(params)).encoded

    async def cancel_download(self, params: AssistantRef) -> msgspec.Raw:
        return (await self._downloads.cancel(params.assistant_id)).encoded

    async def import_assistant(self, params: ImportAssistantParams) -> msgspec.Raw:
        return (await self._transfers.import_assistant(params)).encoded

    async def export_assistant(self, params: ExportAssistantParams) -> ExportResult:
        return await self._transfers.export_assistant(params)

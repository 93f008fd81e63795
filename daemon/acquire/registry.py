"""The assistants registered for download, kept on disk outside the assistant folders.

One small JSON file per assistant in ``<root>/.downloads/`` (a dot folder: never an assistant),
``<id>.json`` = ``{"url", "sha256", "start", "created_at", "error"}``, written atomically. They
survive a daemon restart: each is listed ``to_download`` at the next start (a download that was
under way when the daemon stopped is too) and can be downloaded again. The file goes when the
download is on disk, or when the assistant is deleted. A file that cannot be read is reported
and skipped.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import msgspec
import structlog

from assistantd.protocol.assistant import Download
from assistantd.protocol.ids import id_problem

log = structlog.get_logger("assistantd.acquire")

REGISTRY_DIR = ".downloads"


class Registered(msgspec.Struct, kw_only=True):
    download: Download
    created_at: int


_decoder = msgspec.json.Decoder(Registered)


class Registry:
    def __init__(self, root: Path) -> None:
        self.folder = root / REGISTRY_DIR

    def load(self) -> dict[str, Registered]:
        """Every registered download, by id (at start)."""
        found: dict[str, Registered] = {}
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return found
        for entry in entries:
            name = entry.name
            if name.startswith(".") and name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)  # a save cut short
                continue
            assistant_id = name.removesuffix(".json")
            if not name.endswith(".json") or id_problem(assistant_id):
                log.warning("not a registered download; skipped", path=entry.path)
                continue
            try:
                with open(entry.path, "rb") as file:
                    found[assistant_id] = _decoder.decode(file.read())
            except (OSError, msgspec.DecodeError) as exc:
                log.warning(
                    "registered download unreadable; skipped", path=entry.path, error=str(exc)
                )
        return found

    def save(self, assistant_id: str, registered: Registered) -> None:
        """Write one record atomically (call in a thread: it fsyncs)."""
        self.folder.mkdir(exist_ok=True)
        body = msgspec.json.encode(registered) + b"\n"
        fd, temp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.folder / f"{assistant_id}.json")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def remove(self, assistant_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.folder / f"{assistant_id}.json")

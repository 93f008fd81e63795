"""importAssistant and exportAssistant: an assistant in from a local folder, archive or
``assistant.json``; an assistant out as a ``.zip`` or ``.tar.gz``.

Paths are the caller's, so they must be absolute (a relative one would be taken from the
daemon's working directory, not the client's). An import copies (never moves or changes the
source) into the staging area, checks everything as a download is checked, and moves the folder
into the root in one rename. Its id is ``assistant_id`` if given, else the ``id`` in its
``assistant.json`` (when that is a valid id), else the name of the folder (or the archive); a
clash is a 409 before anything is written to the root. An export leaves ``node_modules`` out,
and writes beside the target then renames, so a half-written archive is never at ``path``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
from pathlib import Path

import structlog

from assistantd.protocol.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)
from assistantd.protocol.ids import check_assistant_id, id_problem
from assistantd.protocol.messages import (
    ExportAssistantParams,
    ExportResult,
    ImportAssistantParams,
)

from ..index import Entry
from ..state import LiveState
from ..store import InvalidDefinition, Loaded
from .limits import ArchiveError, ArchiveLimits
from .settings import AcquireSettings
from .unpack import DEFINITION_FILE, copy_folder, unpack

log = structlog.get_logger("assistantd.acquire")


class Transfers:
    def __init__(self, state: LiveState, settings: AcquireSettings) -> None:
        self.state = state
        self.store = state.store
        self.use_settings(settings)

    def use_settings(self, settings: AcquireSettings) -> None:
        """Take new settings (a reload): for the next imports and exports."""
        self.limits = ArchiveLimits(max_files=settings.max_files, max_bytes=settings.max_bytes)

    async def import_assistant(self, params: ImportAssistantParams) -> Entry:
        source = _absolute(params.path)
        wanted = check_assistant_id(params.assistant_id) if params.assistant_id else None
        staging = await asyncio.to_thread(self.store.make_staging, "import")
        try:
            folder, named = await asyncio.to_thread(self._stage, source, staging)
            assistant_id = wanted or _id_in(folder) or named
            if assistant_id is None:
                raise InvalidRequestError(
                    "No id can be found for this assistant: give assistant_id.",
                    param="assistant_id",
                    code="missing_required_parameter",
                )
            async with self.state.locks.hold(assistant_id):
                if assistant_id in self.state.index or self.store.exists(assistant_id):
                    raise ConflictError(
                        f"An assistant with id '{assistant_id}' already exists.",
                        param="assistant_id",
                        code="id_taken",
                    )
                try:
                    loaded: Loaded = await asyncio.to_thread(self.store.adopt, folder, assistant_id)
                except InvalidDefinition as exc:
                    raise InvalidRequestError(
                        f"The assistant's assistant.json {exc.reason}.",
                        param="path",
                        code="invalid_definition",
                    ) from None
                except FileExistsError:
                    raise ConflictError(
                        f"An assistant with id '{assistant_id}' already exists.",
                        param="assistant_id",
                        code="id_taken",
                    ) from None
                entry = self.state.put(loaded, "request")
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        log.info("assistant imported", assistant_id=assistant_id, source=str(source))
        return entry

    def _stage(self, source: Path, staging: Path) -> tuple[Path, str | None]:
        """The assistant folder made from ``source`` in ``staging``, and the id its name
        suggests."""
        try:
            info = os.stat(source)
        except FileNotFoundError:
            raise NotFoundError(
                f"Nothing at {source}.", param="path", code="path_not_found"
            ) from None
        except OSError as exc:
            raise InvalidRequestError(
                f"{source} cannot be read: {exc.strerror}.", param="path", code="invalid_path"
            ) from None
        try:
            if stat.S_ISDIR(info.st_mode):
                folder = staging / "assistant"
                folder.mkdir()
                copy_folder(source, folder, self.limits)
                return folder, _usable(source.name)
            if stat.S_ISREG(info.st_mode):
                copied = staging / "source"
                shutil.copyfile(source, copied, follow_symlinks=True)
                folder = unpack(copied, staging, self.limits)
                unwrapped = folder not in (staging / "extracted", staging / "assistant")
                # An archive's one top-level folder names it; else the file's own name does.
                named = folder.name if unwrapped else _stem(source)
                return folder, _usable(named)
        except ArchiveError as exc:
            raise InvalidRequestError(str(exc), param="path", code=exc.code) from None
        except PermissionError as exc:
            raise InvalidRequestError(
                f"{source} cannot be read: {exc.strerror}.", param="path", code="invalid_path"
            ) from None
        raise InvalidRequestError(
            f"{source} is neither a folder nor a file.", param="path", code="invalid_path"
        )

    async def export_assistant(self, params: ExportAssistantParams) -> ExportResult:
        # Imported at the first export: tarfile, zipfile and the writer are ~6 ms of a cold start.
        from .archive import kind_for, write_archive

        assistant_id = check_assistant_id(params.assistant_id)
        target = _absolute(params.path)
        kind = kind_for(target.name)
        if kind is None:
            raise InvalidRequestError(
                "The path must end in .zip, .tar.gz or .tgz.", param="path", code="invalid_path"
            )
        entry = self.state.index.get(assistant_id)
        if entry is None:
            raise NotFoundError(
                f"No assistant found with id '{assistant_id}'.", param="assistant_id"
            )
        if entry.signature is None:
            raise ConflictError(
                f"The assistant '{assistant_id}' is not downloaded yet: there is nothing to "
                "export.",
                param="assistant_id",
                code="not_downloaded",
            )
        try:
            written = await asyncio.to_thread(
                write_archive, self.store.root / assistant_id, target, kind
            )
        except FileExistsError:
            raise ConflictError(
                f"{target} exists already; the export does not replace it.",
                param="path",
                code="path_exists",
            ) from None
        except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
            raise InvalidRequestError(
                f"The archive cannot be written at {target}: {exc.strerror}.",
                param="path",
                code="invalid_path",
            ) from None
        except ArchiveError as exc:
            raise InvalidRequestError(str(exc), param="assistant_id", code=exc.code) from None
        log.info("assistant exported", assistant_id=assistant_id, path=str(target))
        return ExportResult(
            assistant_id=assistant_id,
            path=str(target),
            format=kind,
            files=written.files,
            bytes=written.bytes,
        )


def _absolute(path: str) -> Path:
    if "\0" in path or not os.path.isabs(path):
        raise InvalidRequestError(
            "The path must be absolute (the daemon does not share the client's working directory).",
            param="path",
            code="invalid_path",
        )
    return Path(os.path.normpath(path))


def _id_in(folder: Path) -> str | None:
    """The ``id`` in the folder's assistant.json, when it is a usable id."""
    try:
        with open(folder / DEFINITION_FILE, "rb") as file:
            document = json.loads(file.read(4 * 1024 * 1024))
    except (OSError, ValueError, RecursionError):
        return None  # the adopt says what is wrong with it
    value = document.get("id") if isinstance(document, dict) else None
    return _usable(value) if isinstance(value, str) else None


def _usable(name: str) -> str | None:
    return name if name and not id_problem(name) else None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".tar.gz", ".tgz", ".zip", ".json"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] if suffix != ".json" else path.parent.name
    return name

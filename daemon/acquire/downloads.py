"""Downloads: register an assistant from a URL at once, fetch it in the background, put it in
place whole or not at all.

The lifecycle: ``downloadAssistant`` registers the assistant (``to_download``, its record in
:mod:`.registry`) and moves it to ``downloading`` in the same step; a task fetches the URL into
the staging area (:mod:`.fetch`), unpacks and checks it (:mod:`.unpack`, :mod:`.archive`),
validates its ``assistant.json``, and moves the folder into the root in one rename: then
``ready`` (and started, if asked). Any failure, a cancel, or the daemon stopping puts it back to
``to_download`` with the error, and removes the staging folder; the staging area is cleared at
every start too, so a kill -9 leaves nothing listed either.

The id is decided when the command is answered: ``assistant_id`` if given, else the name the
URL gives (:func:`id_from_url`). An ``id`` in the downloaded ``assistant.json`` does not rename
it: as for any folder, the folder's name is the id.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog

from assistantd.protocol.assistant import Assistant, Download
from assistantd.protocol.errors import (
    AssistantdError,
    ConflictError,
    DownloadError,
    InvalidRequestError,
    NotFoundError,
)
from assistantd.protocol.events import Cause
from assistantd.protocol.ids import check_assistant_id, id_problem, new_assistant_id
from assistantd.protocol.messages import DownloadAssistantParams

from ..index import Entry
from ..state import LiveState
from ..store import InvalidDefinition
from .limits import ArchiveError, ArchiveLimits
from .registry import Registered, Registry
from .settings import AcquireSettings
from .unpack import unpack

log = structlog.get_logger("assistantd.acquire")

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".json")

Starter = Callable[[str], Any]
"""Starts an assistant once downloaded (the supervisor's start, in the background)."""


def id_from_url(url: str) -> str:
    """The id a URL names: its last path segment without the archive's extension; for a bare
    ``.../NAME/assistant.json``, ``NAME``; for GitHub's archive links, the repository.

    >>> id_from_url("https://example.com/assistants/math-tutor.zip")
    'math-tutor'
    >>> id_from_url("https://example.com/a/translator/assistant.json")
    'translator'
    >>> id_from_url("https://github.com/janhq/jan-assistant/archive/refs/heads/main.tar.gz")
    'jan-assistant'
    >>> id_from_url("https://example.com/")[:5]  # nothing to go by: a new id
    'asst_'
    """
    segments = [unquote(part) for part in urlsplit(url).path.split("/") if part]
    if "archive" in segments[1:]:
        segments = segments[: segments.index("archive", 1)]  # .../OWNER/REPO/archive/...
    elif segments and segments[-1].lower() == "assistant.json":
        segments = segments[:-1]
    name = segments[-1] if segments else ""
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name if name and not id_problem(name) else new_assistant_id()


class Downloads:
    def __init__(self, state: LiveState, settings: AcquireSettings, start: Starter) -> None:
        self.state = state
        self.store = state.store
        self.settings = settings
        self.registry = Registry(state.store.root)
        self._start = start
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._installing: set[str] = set()
        """Downloads past the point of no return: their folder is being moved into the root."""

    def use_settings(self, settings: AcquireSettings) -> None:
        """Take new settings (a reload): for the next downloads; those under way keep theirs."""
        self.settings = settings

    # --- the daemon's start and stop ---------------------------------------------------------

    def load(self) -> list[Assistant]:
        """The registered downloads, as ``to_download`` assistants (at start, in a thread)."""
        listed = []
        for assistant_id, registered in self.registry.load().items():
            if self.store.exists(assistant_id):
                # On disk after all (the daemon stopped between the rename and the record's
                # removal): the folder is the assistant.
                self.registry.remove(assistant_id)
                continue
            listed.append(_registered_assistant(assistant_id, registered))
        return listed

    async def shutdown(self) -> None:
        """Cancel every download; each is ``to_download`` again at the next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- commands ----------------------------------------------------------------------------

    async def download(self, params: DownloadAssistantParams) -> Entry:
        registered = None
        assistant_id = None
        if params.assistant_id is not None:
            assistant_id = check_assistant_id(params.assistant_id)
            registered = self.state.index.get(assistant_id)
            if registered is not None and registered.assistant.download is None:
                raise _taken(assistant_id)
            if registered is not None and registered.assistant.state == "downloading":
                raise ConflictError(
                    f"The assistant '{assistant_id}' is being downloaded already.",
                    param="assistant_id",
                    code="download_in_progress",
                )
        url = params.url
        if url is None:
            if registered is None or registered.assistant.download is None:
                raise InvalidRequestError(
                    "A url is needed, unless assistant_id names an assistant registered for "
                    "download.",
                    param="url",
                    code="missing_required_parameter",
                )
            url = registered.assistant.download.url
        self._check_url(url)
        if assistant_id is None:
            assistant_id = id_from_url(url)
        if registered is None and (
            assistant_id in self.state.index or self.store.exists(assistant_id)
        ):
            raise _taken(assistant_id)
        sha256 = params.sha256.lower() if params.sha256 else None
        download = Download(url=url, sha256=sha256, start=params.start)
        async with self.state.locks.hold(assistant_id):
            if registered is None:
                if assistant_id in self.state.index or self.store.exists(assistant_id):
                    raise _taken(assistant_id)
                record = Registered(download=download, created_at=int(time.time()))
                await asyncio.to_thread(self.registry.save, assistant_id, record)
                self.state.register(_registered_assistant(assistant_id, record), cause="request")
            else:
                record = Registered(download=download, created_at=registered.assistant.created_at)
                await asyncio.to_thread(self.registry.save, assistant_id, record)
            entry = self.state.move_download(assistant_id, "downloading", download, cause="request")
        assert entry is not None
        self._tasks[assistant_id] = asyncio.create_task(self._run(assistant_id, download))
        log.info("download started", assistant_id=assistant_id, url=_redacted(url))
        return entry

    async def cancel(self, assistant_id: str) -> Entry:
        assistant_id = check_assistant_id(assistant_id)
        entry = self.state.index.get(assistant_id)
        if entry is None:
            raise NotFoundError(
                f"No assistant found with id '{assistant_id}'.", param="assistant_id"
            )
        task = self._tasks.get(assistant_id)
        if task is not None and assistant_id in self._installing:
            await asyncio.shield(task)  # too late to cancel: it is ready in a moment
            task = None
            entry = self.state.index.get(assistant_id) or entry
        if task is None:
            if entry.assistant.state == "to_download":
                return entry  # nothing under way: cancelled already, as it were
            raise ConflictError(
                f"The assistant '{assistant_id}' is not being downloaded.",
                param="assistant_id",
                code="not_downloading",
            )
        self._cancelled.add(assistant_id)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
        current = self.state.index.get(assistant_id)
        assert current is not None
        return current

    async def forget(self, assistant_id: str) -> bool:
        """Delete an assistant registered for download (cancelling its download); False if
        it turned out to be on disk by now (the caller deletes it as any other)."""
        task = self._tasks.get(assistant_id)
        if task is not None and assistant_id in self._installing:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
            entry = self.state.index.get(assistant_id)
            if entry is not None and entry.signature is not None:
                return False
            task = None
        if task is not None:
            self._cancelled.add(assistant_id)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
        await asyncio.to_thread(self.registry.remove, assistant_id)
        self.state.remove(assistant_id, "request")
        return True

    def is_registered(self, assistant_id: str) -> bool:
        entry = self.state.index.get(assistant_id)
        return entry is not None and entry.assistant.download is not None

    # --- the download ------------------------------------------------------------------------

    async def _run(self, assistant_id: str, download: Download) -> None:
        # aiohttp is imported at the first download, not at start: it is 130 ms of a daemon's
        # start (a third of it), for something most starts never do.
        from .fetch import FetchError, FetchLimits, fetch

        settings = self.settings
        staging = await asyncio.to_thread(self.store.make_staging, f"download-{assistant_id}")
        error: DownloadError | None = None
        cause: Cause = "daemon"
        cancelled = taken = False
        try:
            fetched = await fetch(
                download.url,
                staging / "download",
                limits=FetchLimits(
                    max_bytes=settings.max_bytes,
                    connect_timeout=settings.connect_timeout,
                    stall_timeout=settings.stall_timeout,
                    total_timeout=settings.timeout,
                    max_redirects=settings.max_redirects,
                    schemes=frozenset(settings.schemes),
                ),
                sha256=download.sha256,
                on_progress=lambda done, total, rate: self.state.publisher.progress(
                    assistant_id, done, total, rate
                ),
                sync=False,  # unpacked and deleted at once; the unpacked folder is synced
            )
            limits = ArchiveLimits(max_files=settings.max_files, max_bytes=settings.max_bytes)
            folder = await asyncio.to_thread(unpack, staging / "download", staging, limits)
            self._installing.add(assistant_id)
            async with self.state.locks.hold(assistant_id):
                loaded = await asyncio.to_thread(self.store.adopt, folder, assistant_id)
                await asyncio.to_thread(self.registry.remove, assistant_id)
                self.state.downloaded(loaded, cause="daemon")
        except asyncio.CancelledError:
            cancelled = True
            by_request = assistant_id in self._cancelled
            reason = "cancelled" if by_request else "the daemon stopped"
            error = DownloadError(f"The download was cancelled ({reason}).", code="cancelled")
            cause = "request" if by_request else "daemon"
        except (FetchError, ArchiveError) as exc:
            # A redirect to a scheme not allowed: the wire's code for a scheme not allowed.
            code = "unsupported_scheme" if exc.code == "scheme" else exc.code
            error = DownloadError(str(exc), code=code)
        except InvalidDefinition as exc:
            message = f"The download's assistant.json {exc.reason}."
            error = DownloadError(message, code="invalid_definition")
        except FileExistsError:
            taken = True
        except OSError as exc:
            message = f"The download could not be put in place: {exc.strerror}."
            error = DownloadError(message, code="io_error")
        finally:
            self._tasks.pop(assistant_id, None)
            self._cancelled.discard(assistant_id)
            self._installing.discard(assistant_id)
            # Before the event that ends the download: whoever hears it finds no leftover.
            await asyncio.to_thread(shutil.rmtree, staging, True)
        if taken:
            self._yield_to_folder(assistant_id)
        elif error is not None:
            self._failed(assistant_id, download, error, cause=cause)
            if cancelled:
                raise asyncio.CancelledError
        else:
            log.info(
                "download finished",
                assistant_id=assistant_id,
                bytes=fetched.bytes,
                sha256=fetched.sha256,
            )
            if download.start:
                self._start(assistant_id)

    def _yield_to_folder(self, assistant_id: str) -> None:
        """A folder of this id was put in the root meanwhile (by hand): it is the assistant.
        The registration goes (``deleted``), and the folder is indexed as any other."""
        log.warning(
            "a folder of the downloaded assistant's id appeared in the root; it is kept and "
            "the download is dropped",
            assistant_id=assistant_id,
        )
        self.registry.remove(assistant_id)
        self.state.remove(assistant_id, "file")
        self.state.refresh(assistant_id, settle=True)

    def _failed(
        self,
        assistant_id: str,
        download: Download,
        error: AssistantdError,
        *,
        cause: Cause = "daemon",
    ) -> None:
        log.warning(
            "download failed", assistant_id=assistant_id, code=error.code, reason=error.message
        )
        failed = Download(
            url=download.url,
            sha256=download.sha256,
            start=download.start,
            error=error.to_object(),
        )
        entry = self.state.index.get(assistant_id)
        if entry is None:
            return  # deleted meanwhile
        self.state.move_download(
            assistant_id, "to_download", failed, cause=cause, error=error.to_object()
        )
        record = Registered(download=failed, created_at=entry.assistant.created_at)
        try:
            self.registry.save(assistant_id, record)
        except OSError as exc:  # pragma: no cover - disk trouble
            log.error("cannot record the failed download", error=str(exc))

    def _check_url(self, url: str) -> None:
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if parts is None or not parts.scheme or not (parts.netloc or parts.scheme == "file"):
            raise InvalidRequestError(
                "The url is not an absolute URL.", param="url", code="invalid_url"
            )
        if parts.scheme.lower() not in self.settings.schemes:
            allowed = ", ".join(self.settings.schemes)
            raise InvalidRequestError(
                f"The url's scheme {parts.scheme!r} is not allowed (allowed: {allowed}).",
                param="url",
                code="unsupported_scheme",
            )


def _registered_assistant(assistant_id: str, registered: Registered) -> Assistant:
    return Assistant(
        id=assistant_id,
        created_at=registered.created_at,
        name=assistant_id,
        state="to_download",
        download=registered.download,
    )


def _taken(assistant_id: str) -> ConflictError:
    return ConflictError(
        f"An assistant with id '{assistant_id}' already exists.",
        param="assistant_id",
        code="id_taken",
    )


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()

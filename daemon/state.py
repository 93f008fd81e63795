"""The live state: the index, the invalid files, and one event for every change to them.

Every change goes through here, whoever made it (a command, the watcher, a get that found a file
changed), so that each real change publishes exactly one event, in the same step of the event
loop as the index changes: a snapshot taken between two steps always matches its ``seq``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog

from assistantd.protocol.assistant import Assistant, Download, Runtime, State
from assistantd.protocol.events import Cause, InvalidFile
from assistantd.protocol.ids import id_problem
from assistantd.protocol.lifecycle import transition

from .index import Entry, Index
from .locks import KeyedLocks
from .publisher import Publisher
from .store import DEFINITION_FILE, InvalidDefinition, Loaded, Signature, Store

log = structlog.get_logger("assistantd.state")


class Outcome(enum.Enum):
    SETTLED = "settled"
    UNSETTLED = "unsettled"
    """The file is missing from a folder that is still there, or cannot be parsed: an editor may
    be half way through saving it. The caller looks again a moment later, with ``settle``."""


@dataclass
class _Invalid:
    file: InvalidFile
    signature: Signature | None


class LiveState:
    def __init__(self, store: Store, index: Index, publisher: Publisher) -> None:
        self.store = store
        self.index = index
        self.publisher = publisher
        self.locks = KeyedLocks()
        """One lock per assistant id, held by every write and every look at the disk."""
        self._invalid: dict[str, _Invalid] = {}
        self.removal_listeners: list[Callable[[str], None]] = []
        """Called with the id of each assistant that is gone (the supervisor stops its worker)."""

    @property
    def invalid_files(self) -> list[InvalidFile]:
        return [invalid.file for invalid in self._invalid.values()]

    def put(self, loaded: Loaded, cause: Cause) -> Entry:
        """Index a valid definition; publish ``created``, or ``updated`` if it changed."""
        assistant, signature = loaded
        old = self.index.get(assistant.id)
        if old is not None and (
            old.assistant.state != assistant.state or old.assistant.runtime != assistant.runtime
        ):
            # The file defines the assistant; its state and its worker are the daemon's.
            assistant = msgspec.structs.replace(
                assistant, state=old.assistant.state, runtime=old.assistant.runtime
            )
        if old is not None and old.assistant == assistant:
            old.signature = signature  # saved again unchanged: no event
            if self._invalid.pop(assistant.id, None) is not None:
                # Fixed back to the version still served (an undo in the editor): subscribers
                # were told the file is invalid, so they must hear that it is fixed.
                log.info("assistant file fixed", assistant_id=assistant.id)
                self.publisher.updated(assistant, cause)
            return old
        entry = Entry(assistant, signature)
        self.index.put(entry)
        if self._invalid.pop(assistant.id, None) is not None:
            log.info("assistant file fixed", assistant_id=assistant.id)
        if old is None:
            self.publisher.moved(None, assistant, cause)
        else:
            self.publisher.updated(assistant, cause)
        return entry

    def change(
        self,
        assistant_id: str,
        *,
        runtime: Runtime | None,
        state: State | None = None,
        cause: Cause,
        error: dict[str, Any] | None = None,
    ) -> Entry | None:
        """Set an assistant's worker runtime, and its state if ``state`` is given; publish
        ``assistant.state`` for a move (with ``error``) or ``assistant.updated``. None if the
        assistant is gone."""
        old = self.index.get(assistant_id)
        if old is None:
            return None
        previous = old.assistant.state
        assistant = msgspec.structs.replace(
            old.assistant, runtime=runtime, state=state if state is not None else previous
        )
        if assistant == old.assistant:
            return old
        entry = Entry(assistant, old.signature)
        if previous != assistant.state:
            transition(previous, assistant.state)  # raises before anything changed
            self.index.put(entry)
            self.publisher.moved(previous, assistant, cause, error=error)
        else:
            self.index.put(entry)
            self.publisher.updated(assistant, cause)
        return entry

    def register(self, assistant: Assistant, cause: Cause) -> Entry:
        """List an assistant that is not on disk (yet): one registered for download. It has
        no file, so nothing the watcher sees changes it; publish ``created``."""
        entry = Entry(assistant, None)
        self.index.put(entry)
        self.publisher.moved(None, assistant, cause)
        return entry

    def move_download(
        self,
        assistant_id: str,
        state: State,
        download: Download,
        *,
        cause: Cause,
        error: dict[str, Any] | None = None,
    ) -> Entry | None:
        """Move a registered assistant between ``to_download`` and ``downloading``."""
        old = self.index.get(assistant_id)
        if old is None:
            return None
        assistant = msgspec.structs.replace(old.assistant, state=state, download=download)
        transition(old.assistant.state, state)
        entry = Entry(assistant, None)
        self.index.put(entry)
        self.publisher.moved(old.assistant.state, assistant, cause, error=error)
        return entry

    def downloaded(self, loaded: Loaded, cause: Cause) -> Entry:
        """A download is on disk: its assistant goes ``downloading -> ready``, as its file
        defines it (``created_at`` included: the file's own, else the file's mtime)."""
        assistant, signature = loaded
        old = self.index.get(assistant.id)
        previous = old.assistant.state if old is not None else None
        transition(previous, assistant.state)
        entry = Entry(assistant, signature)
        self.index.put(entry)
        self.publisher.moved(previous, assistant, cause)
        return entry

    def remove(self, assistant_id: str, cause: Cause) -> None:
        """Forget an assistant; publish ``deleted`` if it was listed or reported invalid."""
        invalid = self._invalid.pop(assistant_id, None)
        old = self.index.remove(assistant_id)
        if old is not None:
            self.publisher.deleted(old.assistant.state, assistant_id, cause)
            for listener in self.removal_listeners:
                listener(assistant_id)
        elif invalid is not None:
            # A folder that never had a valid file is gone: subscribers recorded its problem
            # from assistant.invalid (and getSnapshot listed it), so they need an event to
            # forget it.
            self.publisher.deleted(None, assistant_id, cause)

    def load(
        self,
        loaded: list[Loaded],
        invalid: list[tuple[str, InvalidDefinition]],
        registered: Sequence[Assistant] = (),
    ) -> None:
        """The state found at start (``registered``: the assistants registered for download):
        no events (nobody has subscribed yet)."""
        entries = [Entry(assistant, signature) for assistant, signature in loaded]
        entries += (Entry(assistant, None) for assistant in registered)
        self.index.load(entries)
        for assistant_id, problem in invalid:
            self._invalid[assistant_id] = _Invalid(
                InvalidFile(
                    assistant_id=assistant_id,
                    path=str(problem.path),
                    reason=problem.reason,
                    served=False,
                ),
                None,
            )

    def refresh(self, assistant_id: str, *, settle: bool) -> Outcome:
        """Bring one assistant up to date with its folder (call with its lock held, or from a
        plain handler that checked the lock is free).

        Without ``settle`` only clear facts are applied: a valid new version, or the folder
        gone. A missing file in a folder that is still there, or a file that cannot be read, is
        left for a second look with ``settle``, which then reports it (deleted, or invalid).
        """
        if misnamed := id_problem(assistant_id):
            return self._misnamed(assistant_id, misnamed)
        entry = self.index.get(assistant_id)
        if entry is not None and entry.signature is None:
            # Registered for download: no folder defines it until the download puts one in
            # place (and says so itself). A folder made by hand under its id meanwhile waits.
            return Outcome.SETTLED
        signature = self.store.signature(assistant_id)
        if signature is None:
            return self._missing(assistant_id, settle=settle)
        if entry is not None and entry.signature == signature:
            return Outcome.SETTLED
        known = self._invalid.get(assistant_id)
        if known is not None and known.signature == signature:
            return Outcome.SETTLED
        try:
            # A file without created_at is dated by its mtime when the daemon first sees it;
            # later saves move the mtime, so they keep that date (an identical save stays
            # identical).
            loaded = self.store.read(
                assistant_id, created_at=entry.assistant.created_at if entry else None
            )
        except FileNotFoundError:  # gone since the stat, or not a real folder
            return self._missing(assistant_id, settle=settle)
        except InvalidDefinition as problem:
            if not settle:
                return Outcome.UNSETTLED
            self._report_invalid(assistant_id, problem, signature)
            return Outcome.SETTLED
        self.put(loaded, "file")
        return Outcome.SETTLED

    def _missing(self, assistant_id: str, *, settle: bool) -> Outcome:
        folder = self.store.root / assistant_id
        if settle or not os.path.isdir(folder) or os.path.islink(folder):
            self.remove(assistant_id, "file")
            return Outcome.SETTLED
        # The folder is there without its file: perhaps an editor between delete and create.
        # (A folder reported invalid counts too: if its file stays gone, it is no longer one.)
        known = assistant_id in self.index or assistant_id in self._invalid
        return Outcome.UNSETTLED if known else Outcome.SETTLED

    def _misnamed(self, assistant_id: str, problem: str) -> Outcome:
        # The start-up scan reports a folder whose name is not a valid id as invalid, and no
        # command could name it: the watcher must not list it either.
        folder = self.store.root / assistant_id
        if not os.path.isdir(folder) or os.path.islink(folder):
            self.remove(assistant_id, "file")
        elif assistant_id not in self._invalid:
            path = folder / DEFINITION_FILE
            self._report_invalid(
                assistant_id, InvalidDefinition(path, f"the folder name {problem}"), None
            )
        return Outcome.SETTLED

    def _report_invalid(
        self, assistant_id: str, problem: InvalidDefinition, signature: Signature | None
    ) -> None:
        entry = self.index.get(assistant_id)
        known = self._invalid.get(assistant_id)
        self._invalid[assistant_id] = _Invalid(
            InvalidFile(
                assistant_id=assistant_id,
                path=str(problem.path),
                reason=problem.reason,
                served=entry is not None,
            ),
            signature,
        )
        if known is not None and known.file.reason == problem.reason:
            return  # broken the same way again: said already
        log.warning(
            "invalid assistant file",
            assistant_id=assistant_id,
            path=str(problem.path),
            reason=problem.reason,
            served=entry is not None,
        )
        self.publisher.invalid(
            assistant_id, str(problem.path), problem.reason, served=entry is not None
        )

"""The assistants folder on disk: reading definitions and writing them atomically.

Every function here is blocking file I/O; the daemon runs writes in a worker thread. A write never
leaves a torn file: the new content goes to a temporary file in the same folder, which is fsynced,
renamed over the old one, and the folder fsynced (so the rename itself survives a power cut). New
assistant folders are assembled under ``.staging`` and renamed into place whole; deleted ones are
renamed to ``.trash`` first, so no half-written or half-deleted assistant is ever listed. Both
dot-folders are emptied at start.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from assistantd.protocol.assistant import (
    Assistant,
    assistant_from_document,
    assistant_from_json,
)
from assistantd.protocol.errors import AssistantdError
from assistantd.protocol.ids import id_problem
from assistantd.protocol.limits import FILE_MAX_BYTES

DEFINITION_FILE = "assistant.json"
STAGING_DIR = ".staging"
TRASH_DIR = ".trash"


class Signature(NamedTuple):
    """What identifies one version of a file without reading it."""

    mtime_ns: int
    size: int
    inode: int

    @classmethod
    def of(cls, stat: os.stat_result) -> Signature:
        return cls(stat.st_mtime_ns, stat.st_size, stat.st_ino)


class Loaded(NamedTuple):
    """A definition read from disk: what it defines, and which version of the file."""

    assistant: Assistant
    signature: Signature


class Definition(NamedTuple):
    """A definition read from disk: the file's JSON document, what it defines, which version."""

    document: dict[str, Any]
    assistant: Assistant
    signature: Signature


class InvalidDefinition(Exception):
    """An ``assistant.json`` that cannot be used; ``reason`` says why, for a person."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class Store:
    """The folder of assistants under ``root``; one subfolder per assistant, named by its id."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_prefix = f"{root}/"
        self._staging = root / STAGING_DIR
        self._trash = root / TRASH_DIR

    def definition_path(self, assistant_id: str) -> str:
        # A plain string: this is on the path of every getAssistant, and pathlib costs
        # microseconds per join.
        return f"{self._root_prefix}{assistant_id}/{DEFINITION_FILE}"

    def create_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def clear_leftovers(self) -> None:
        """Remove what an interrupted create or delete left (call with the root locked)."""
        for leftovers in (self._staging, self._trash):
            shutil.rmtree(leftovers, ignore_errors=True)

    def scan(self) -> Iterator[tuple[str, Loaded | InvalidDefinition]]:
        """Every assistant folder of the root, read; hidden folders and loose files are skipped.

        A folder whose name is not a valid id, or whose definition is broken, yields an
        :class:`InvalidDefinition` so the caller can report it and go on.
        """
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                if problem := id_problem(entry.name):
                    path = Path(entry.path) / DEFINITION_FILE
                    yield entry.name, InvalidDefinition(path, f"the folder name {problem}")
                    continue
                try:
                    # The folder was just seen not to be a link, so the file is opened by path
                    # (two system calls fewer than through a folder descriptor, per file).
                    yield entry.name, self._load(entry.name, f"{entry.path}/{DEFINITION_FILE}")
                except FileNotFoundError:
                    continue  # a folder without assistant.json is not an assistant
                except InvalidDefinition as invalid:
                    yield entry.name, invalid

    def signature(self, assistant_id: str) -> Signature | None:
        """The current version of the assistant's file, or None if it is gone."""
        try:
            return Signature.of(os.stat(self.definition_path(assistant_id)))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def read(self, assistant_id: str, *, created_at: float | None = None) -> Loaded:
        """Read and validate one assistant's definition (decoded straight into its Struct).

        ``created_at`` is what a file without one is dated (default: its modification time).
        Raises FileNotFoundError when there is no file, :class:`InvalidDefinition` otherwise.
        """
        return self._load(assistant_id, created_at=created_at)

    def _load(
        self,
        assistant_id: str,
        scanned_path: str | None = None,
        *,
        created_at: float | None = None,
    ) -> Loaded:
        data, info = self._read_bytes(assistant_id, scanned_path)
        dated = info.st_mtime if created_at is None else created_at
        try:
            assistant = assistant_from_json(data, assistant_id=assistant_id, mtime=dated)
        except AssistantdError as exc:
            raise InvalidDefinition(Path(self.definition_path(assistant_id)), exc.message) from None
        return Loaded(assistant, Signature.of(info))

    def read_document(self, assistant_id: str) -> Definition:
        """Like :meth:`read`, and also the file's whole JSON document, unknown fields included
        (what a modify starts from)."""
        data, info = self._read_bytes(assistant_id)
        path = Path(self.definition_path(assistant_id))
        try:
            document = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise InvalidDefinition(path, f"is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidDefinition(path, "is nested too deeply to be read") from None
        if not isinstance(document, dict):
            raise InvalidDefinition(path, "must hold a JSON object")
        try:
            assistant = assistant_from_document(
                document, assistant_id=assistant_id, mtime=info.st_mtime
            )
        except AssistantdError as exc:
            raise InvalidDefinition(path, exc.message) from None
        return Definition(document, assistant, Signature.of(info))

    def _read_bytes(
        self, assistant_id: str, scanned_path: str | None = None
    ) -> tuple[bytes, os.stat_result]:
        path = self.definition_path(assistant_id)
        # O_NOFOLLOW: a definition that is a symlink could point anywhere on the machine.
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            if scanned_path is not None:
                fd = os.open(scanned_path, flags)
            else:
                with _folder(self.root, assistant_id) as folder:
                    fd = os.open(DEFINITION_FILE, flags, dir_fd=folder)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(path) from None
        except OSError as exc:
            raise InvalidDefinition(Path(path), f"cannot be opened: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise InvalidDefinition(Path(path), "is not a regular file")
            if info.st_size > FILE_MAX_BYTES:
                raise InvalidDefinition(
                    Path(path), f"is {info.st_size} bytes; the limit is {FILE_MAX_BYTES}"
                )
            # Ask for the size fstat gave, plus one byte to notice growth: a read of the
            # largest allowed size would allocate 4 MiB for every file.
            data = os.read(fd, info.st_size + 1)
            if len(data) > info.st_size:
                data += os.read(fd, FILE_MAX_BYTES + 1 - len(data))
        except OSError as exc:
            raise InvalidDefinition(Path(path), f"cannot be read: {exc.strerror}") from None
        finally:
            os.close(fd)
        if len(data) > FILE_MAX_BYTES:
            raise InvalidDefinition(Path(path), f"is over the limit of {FILE_MAX_BYTES} bytes")
        return data, info

    def exists(self, assistant_id: str) -> bool:
        return os.path.lexists(self.root / assistant_id)

    def create(self, assistant_id: str, document: dict[str, Any]) -> Signature:
        """Write a new assistant folder whole, then move it into place.

        Raises FileExistsError if anything by that name is already in the root.
        """
        self._staging.mkdir(exist_ok=True)
        staged = self._staging / f"{assistant_id}.{secrets.token_hex(4)}"
        staged.mkdir()
        try:
            with _folder(self._staging, staged.name) as folder:
                signature = _write_atomically(folder, DEFINITION_FILE, document)
            target = self.root / assistant_id
            if os.path.lexists(target):
                raise FileExistsError(target)
            # rename(2) replaces an empty directory; the check above keeps that from happening
            # to a folder someone made by hand, and a non-empty one cannot be replaced at all.
            os.rename(staged, target)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        _fsync_dir(self.root)
        return signature

    def make_staging(self, label: str) -> Path:
        """A new empty folder in the root's staging area (same filesystem, so a finished
        assistant moves into the root in one rename; cleared at every start)."""
        self._staging.mkdir(exist_ok=True)
        staged = self._staging / f"{label}.{secrets.token_hex(4)}"
        staged.mkdir()
        return staged

    def check_staged(self, folder: Path, assistant_id: str) -> Loaded:
        """Read and validate ``folder/assistant.json`` as ``assistant_id``'s definition.

        Raises :class:`InvalidDefinition` (also for a folder without one).
        """
        try:
            return self._load(assistant_id, str(folder / DEFINITION_FILE))
        except FileNotFoundError:
            raise InvalidDefinition(folder / DEFINITION_FILE, "is missing") from None

    def adopt(self, folder: Path, assistant_id: str) -> Loaded:
        """Move a complete, staged assistant folder into the root as ``assistant_id``.

        Validates it first (:meth:`check_staged`); raises FileExistsError if anything by that
        name is already in the root. One rename: no partial folder is ever listed.
        """
        loaded = self.check_staged(folder, assistant_id)
        target = self.root / assistant_id
        if os.path.lexists(target):
            raise FileExistsError(target)
        # Its files were written without an fsync each (thousands of them, for an archive):
        # one sync of the filesystem makes them durable before the rename makes them visible,
        # so a power cut cannot leave an assistant listed with short files.
        _sync_filesystem(folder)
        os.rename(folder, target)
        _fsync_dir(self.root)
        # The rename keeps the file's inode and times: the signature read in staging holds.
        return loaded

    def replace(self, assistant_id: str, document: dict[str, Any]) -> Signature:
        """Replace an assistant's definition atomically.

        Raises FileNotFoundError when the folder is gone (or is not a real folder).
        """
        with _folder(self.root, assistant_id) as folder:
            return _write_atomically(folder, DEFINITION_FILE, document)

    def remove(self, assistant_id: str) -> None:
        """Take an assistant folder out of the root in one rename, then delete it.

        Raises FileNotFoundError if it is not there.
        """
        self._trash.mkdir(exist_ok=True)
        doomed = self._trash / f"{assistant_id}.{secrets.token_hex(4)}"
        os.rename(self.root / assistant_id, doomed)
        _fsync_dir(self.root)
        shutil.rmtree(doomed, ignore_errors=True)


@contextmanager
def _folder(parent: Path, name: str) -> Iterator[int]:
    """A descriptor of the folder ``parent/name``, refusing a symlink in its place.

    Every file operation inside an assistant folder goes through this descriptor, so a folder
    swapped for a link after it was indexed cannot lead a read or a write out of the root.
    """
    path = f"{parent}/{name}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
            raise FileNotFoundError(path) from None
        raise
    try:
        yield fd
    finally:
        os.close(fd)


def _write_atomically(folder: int, name: str, document: dict[str, Any]) -> Signature:
    """Replace ``name`` in the folder ``folder`` (a descriptor) with ``document``, atomically."""
    data = msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"
    temporary = f".{name}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o644, dir_fd=folder)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
            signature = Signature.of(os.fstat(file.fileno()))
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=folder)
        raise
    os.fsync(folder)
    return signature


def _sync_filesystem(path: Path) -> None:
    """``syncfs(2)`` of the filesystem holding ``path`` (Linux); ``sync()`` elsewhere."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _syncfs is None or _syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _load_syncfs() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

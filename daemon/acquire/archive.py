"""Archives in and out: a ``.zip`` or ``.tar.gz`` unpacked without trusting a byte of it, and an
assistant folder packed into one.

    kind = sniff(upload)                    # "zip", "tar.gz", "json" or None, by first bytes
    extract(upload, kind, into, ArchiveLimits())
    folder = unwrap(into)                   # GitHub's archives hold one top-level folder
    write_archive(folder, Path("/home/ada/translator.zip"), kind_for("translator.zip"))

Blocking file I/O and standard library only; the daemon runs these functions in a thread.

What :func:`extract` refuses, each an :class:`ArchiveError` whose ``code`` is one of the wire's
archive codes (PROTOCOL.md, "What is refused") and whose message names the entry:

- ``not_an_archive``: the file is not a zip or a gzipped tar at all (an empty file, a truncated
  zip, which has lost its central directory, a gzip that holds no tar); ``entry`` is None.
- ``unsafe_path``: a name that is absolute, has a ``..`` or ``.`` segment or an empty one
  (``a//b``), a backslash, a drive letter (``C:``), a control character (NUL included: zipfile
  cuts names at a NUL, so the name checked is the one stored), bytes that are not UTF-8, or a
  segment over 255 bytes (no filesystem holds it). A leading ``./`` is stripped and ``./`` itself
  is the folder ``into``; ``/`` is the only separator.
- ``link``: every symbolic or hard link, wherever it points. The issue allows links that stay
  inside; refusing them all is simpler to get right, and an assistant needs none.
- ``special_file``: a device, FIFO, socket, sparse or unknown tar type. In a zip the type is the
  Unix mode in the top half of ``external_attr``, read whatever the "made by" system says, so
  that a crafted entry cannot hide a link from us that another unzip would make.
- ``name_collision``: two entries that are one name on a case-insensitive or normalizing
  filesystem (macOS, Windows): their canonical caseless forms (Unicode 3.13,
  ``NFD(casefold(NFD(name)))``, which is what NFC plus case folding intends, made exact) are
  equal but their spellings differ; a name that is both a file and a folder; a file twice. A
  folder listed twice with the same spelling is fine.
- ``too_many_files``: more than ``max_files`` entries *created*, folders counted (implied ones
  too): otherwise an archive of folder entries alone could make millions of inodes. (The wire
  says "files"; a folder is one too.) The entries read are counted as well, since tarfile keeps
  each header it reads and a folder may be listed any number of times.
- ``too_large``: more than ``max_bytes`` in all. Checked on the sizes the archive declares
  before a byte is written (a zip's central directory: all of them, up front; a tar's headers:
  each before its data), and again on the bytes actually written, chunk by chunk, so that a
  reader that ever yields more than declared is stopped too (``into`` never holds more than
  ``max_bytes``).
- ``too_deep``: a path inside more than ``max_depth`` folders.
- ``corrupt`` (a code of this module, beyond the wire's list): the archive was recognised but
  its data is damaged or truncated (a bad CRC, a deflate error, a negative size, a tar that
  ends mid-entry or whose next header is garbage, where tarfile alone would quietly end the
  archive).
- ``unsupported``: an encrypted zip entry, or one compressed other than stored or deflated (the
  methods every zip tool writes; bzip2 and lzma members are rare and each brings its decoder's
  failure modes).

How it is written:

- A zip is checked whole before anything is written; a tar is read once, as a stream (``r|gz``),
  so it is checked entry by entry and may leave part of itself in ``into`` when refused. Either
  way the caller deletes ``into`` on any error.
- Every file and folder is made through descriptors from ``into`` down (``openat``-style, each
  folder opened ``O_NOFOLLOW | O_DIRECTORY``), files with ``O_CREAT | O_EXCL | O_NOFOLLOW``: a
  name can never land outside ``into``, nor overwrite anything. Folders implied by a path are
  made. No descriptor outlives the call.
- Files are ``0644``, or ``0755`` when the entry had any execute bit; folders ``0755``; set with
  ``fchmod``, so neither the archive nor the daemon's umask decides, and never setuid, setgid or
  sticky. Owners and modification times in the archive are ignored: files are dated when they
  arrived (a date from the future would confuse file watchers and npm's caches).
- Errors of the archive are ArchiveErrors; errors of this machine (a full disk, a folder that
  cannot be written) are the OSError they are, so that the caller does not blame the archive.
- Nothing is fsynced: the caller that moves the folder into the root decides about durability
  (one ``os.sync()`` is cheaper than an fsync per file).

:func:`write_archive` writes the folder's contents (no folder around them), leaving out every
``node_modules`` folder, and skipping symbolic links and special files (an imported or downloaded
folder has none; a link made by hand could point anywhere, and is not followed). Entries are in
sorted order (a folder before its contents), folders included (so empty ones survive), with the
files' modification times (in UTC in a zip), owner 0, no user or group names, and mode
``0644``/``0755`` (folders ``0755``); the gzip header carries no name and no time: the same
folder gives the same bytes. ``Written`` and ``Extracted`` count files and folders apart, and
the bytes of the files. The archive is written to a temporary file beside ``dest``,
fsynced, and linked into place, which fails with FileExistsError if ``dest`` exists (an export
replaces nothing); on a filesystem without hard links it is renamed after an existence check.
"""

from __future__ import annotations

import errno
import gzip
import os
import re
import secrets
import shutil
import stat
import struct
import tarfile
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Generator, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Self

# Defined apart (light, for the daemon's start) and re-exported: they belong to this module's API.
from .limits import ArchiveError as ArchiveError
from .limits import ArchiveLimits as ArchiveLimits

Kind = Literal["zip", "tar.gz"]

CHUNK = 256 * 1024
SNIFF_BYTES = 64 * 1024  # read by sniff(): whitespace before a JSON object's "{" included
SEGMENT_MAX_BYTES = 255  # NAME_MAX of every filesystem the daemon runs on
SKIPPED_FOLDERS = frozenset({"node_modules"})
# A pax or GNU long-name header is read whole into memory by tarfile; names are a few KiB.
TAR_META_MAX_BYTES = 1024 * 1024

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# C0, DEL and C1 controls (Unicode category Cc), and the lone surrogates that stand for bytes
# that are not UTF-8 in a name decoded with surrogateescape.
_BAD_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_DRIVE = re.compile("[A-Za-z]:")
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_ZIP_ENCRYPTED = 0x1
_ZIP_UTF8 = 0x800
_DOS_DIRECTORY = 0x10
_TAR_FILE_TYPES = frozenset({tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE})
_TAR_META_TYPES = frozenset(
    {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}
    | {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}
)
# Not in typeshed, but a stable part of tarfile since 2.7: the header that marks the end.
_TAR_END: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]
# What a reader of untrusted archive data raises when the data is bad (bz2 and gzip report it as
# OSError; zipfile as BadZipFile, EOFError, and NotImplementedError for flags of a local header).
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
    tarfile.TarError,
)


@dataclass(frozen=True)
class Extracted:
    """What :func:`extract` made: regular files, folders, and the bytes written."""

    files: int
    directories: int
    bytes: int


@dataclass(frozen=True)
class Written:
    """What :func:`write_archive` put in the archive: files, folders, and the files' bytes."""

    files: int
    directories: int
    bytes: int


def kind_for(name: str) -> Kind | None:
    """The archive kind a file name asks for, by its extension.

    >>> kind_for("translator.ZIP"), kind_for("pack.tar.gz"), kind_for("pack.tgz"), kind_for("a.gz")
    ('zip', 'tar.gz', 'tar.gz', None)
    """
    lowered = name.lower()
    if lowered.endswith(".zip"):
        return "zip"
    if lowered.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    return None


def sniff(path: Path) -> Literal["zip", "tar.gz", "json"] | None:
    """What ``path`` holds, by its first bytes: a zip (``PK\\3\\4``, or ``PK\\5\\6`` for an empty
    one), a gzip (taken for a ``.tar.gz``; :func:`extract` finds out), a JSON object (its first
    byte past whitespace is ``{``; a UTF-8 byte order mark is not skipped, since the JSON decoder
    refuses it anyway), or None."""
    with open(path, "rb") as file:
        head = file.read(SNIFF_BYTES)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head.lstrip(b" \t\r\n").startswith(b"{"):
        return "json"
    return None


def extract(
    archive: Path, kind: Kind, into: Path, limits: ArchiveLimits | None = None
) -> Extracted:
    """Unpack ``archive`` into ``into``, an existing empty folder; see the module's docstring
    for what is refused (an :class:`ArchiveError`) and how files are written.

    The caller deletes ``into`` when this raises. ValueError if ``into`` is not empty.
    """
    limits = limits or ArchiveLimits()
    root = os.open(into, _DIR_FLAGS)
    try:
        with os.scandir(root) as entries:
            if next(entries, None) is not None:
                raise ValueError(f"{into} is not empty")
        output = _Output(root, limits)
        if kind == "zip":
            _extract_zip(archive, output, limits)
        else:
            _extract_tar(archive, output, limits)
    finally:
        os.close(root)
    return Extracted(output.files, output.directories, output.bytes)


def unwrap(folder: Path) -> Path:
    """The folder that holds an archive's content: ``folder``'s one entry when that is a folder
    (GitHub's archive links give one top folder), else ``folder`` itself.

    macOS's ``__MACOSX`` folder and ``.DS_Store`` file at the top are deleted first, so they do
    not count. One level only.
    """
    kept: list[os.DirEntry[str]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name == "__MACOSX" and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            elif entry.name == ".DS_Store" and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
            else:
                kept.append(entry)
    if len(kept) == 1 and kept[0].is_dir(follow_symlinks=False):
        return folder / kept[0].name
    return folder


def write_archive(folder: Path, dest: Path, kind: Kind) -> Written:
    """Write ``folder``'s contents (no folder around them, no ``node_modules``) as an archive at
    ``dest``, which must not exist (FileExistsError); see the module's docstring."""
    if os.path.lexists(dest):
        raise FileExistsError(errno.EEXIST, "File exists", str(dest))
    temporary = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, _NEW_FILE_FLAGS, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            itself = os.fstat(out.fileno())
            source = os.open(folder, _DIR_FLAGS)
            try:
                with closing(_walk(source, "", (itself.st_dev, itself.st_ino))) as items:
                    written = _write_zip(out, items) if kind == "zip" else _write_tar(out, items)
            finally:
                os.close(source)
            out.flush()
            os.fsync(out.fileno())
        _put_in_place(temporary, dest)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_dir(dest.parent)
    return written


# Checking entries.


def _shown(name: str) -> str:
    """A name as a message shows it: quoted, control characters escaped, long ones cut."""
    shown = repr(name)
    return shown if len(shown) <= 300 else f"{shown[:297]}..."


def _path_parts(name: str, is_dir: bool) -> tuple[str, ...]:
    """The segments of an entry's name, checked; () for the archive's root folder (``./``)."""
    if name.startswith("/"):
        raise ArchiveError("unsafe_path", f"entry {_shown(name)}: an absolute path", name)
    path = name[:-1] if is_dir and name.endswith("/") else name
    while path.startswith("./"):
        path = path[2:]
    if is_dir and path in ("", "."):
        return ()
    problem = _path_problem(path)
    if problem:
        raise ArchiveError("unsafe_path", f"entry {_shown(name)}: {problem}", name)
    return tuple(path.split("/"))


def _path_problem(path: str) -> str | None:
    if "\\" in path:
        return "a backslash in the name ('/' is the only separator)"
    if _DRIVE.match(path):
        return "a drive letter"
    bad = _BAD_CHARACTER.search(path)
    if bad:
        if "\ud800" <= bad.group() <= "\udfff":
            return "a name that is not UTF-8"
        return f"a control character ({bad.group()!r}) in the name"
    for segment in path.split("/"):
        if segment == "":
            return "an empty segment in the path"
        if segment in (".", ".."):
            return f"a {segment!r} segment in the path"
        if len(segment.encode()) > SEGMENT_MAX_BYTES:
            return f"a name longer than {SEGMENT_MAX_BYTES} bytes"
    return None


def _caseless(segment: str) -> str:
    """The canonical caseless form of a name (Unicode 3.13, D145): equal for 'É', 'é', 'é'."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", segment).casefold())


class _Checker:
    """The names, counts and declared sizes of the entries admitted so far."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self._limits = limits
        # caseless path -> (is a folder, its spelling, the entry that made it)
        self._seen: dict[str, tuple[bool, str, str]] = {}
        self._declared = 0
        self._entries = 0

    def admit(self, name: str, is_dir: bool, size: int) -> tuple[str, ...]:
        """Check one entry (its type already checked); the path segments to make it at."""
        # Entries read count too (a folder may be listed any number of times): tarfile keeps
        # every header it reads.
        self._entries += 1
        if self._entries > self._limits.max_files:
            raise ArchiveError(
                "too_many_files",
                f"entry {_shown(name)}: more than {self._limits.max_files} entries",
                name,
            )
        parts = _path_parts(name, is_dir)
        folders = len(parts) if is_dir else len(parts) - 1
        if folders > self._limits.max_depth:
            raise ArchiveError(
                "too_deep",
                f"entry {_shown(name)}: nested in {folders} folders; "
                f"the limit is {self._limits.max_depth}",
                name,
            )
        key = ""
        for index, part in enumerate(parts):
            key = f"{key}/{_caseless(part)}"
            as_dir = is_dir or index < len(parts) - 1
            seen = self._seen.get(key)
            if seen is None:
                if len(self._seen) >= self._limits.max_files:
                    raise ArchiveError(
                        "too_many_files",
                        f"entry {_shown(name)}: more than {self._limits.max_files} files and "
                        "folders",
                        name,
                    )
                self._seen[key] = (as_dir, part, name)
                continue
            was_dir, spelling, other = seen
            if spelling != part:
                shown, shown_other = _shown(name), _shown(other)
                if unicodedata.normalize("NFC", name) == unicodedata.normalize("NFC", other):
                    # They look the same: show how they are spelled.
                    shown, shown_other = f"{shown} = {name!a}", f"{shown_other} = {other!a}"
                raise ArchiveError(
                    "name_collision",
                    f"entry {shown}: the same name as entry {shown_other} once case and Unicode "
                    "normalization are ignored",
                    name,
                )
            if not (was_dir and as_dir):
                what = "a file and a folder" if was_dir != as_dir else "a second file"
                raise ArchiveError(
                    "name_collision",
                    f"entry {_shown(name)}: {what} of one name (with entry {_shown(other)})",
                    name,
                )
        if not is_dir:
            if size < 0:  # tar's base-256 numbers can say so
                raise ArchiveError("corrupt", f"entry {_shown(name)}: a negative size", name)
            self._declared += size
            if self._declared > self._limits.max_bytes:
                raise ArchiveError(
                    "too_large",
                    f"entry {_shown(name)}: declares {size} bytes, which takes the archive's "
                    f"content over the limit of {self._limits.max_bytes} bytes",
                    name,
                )
        return parts


# Writing what was admitted.


class _Output:
    """Files and folders made under the folder ``root`` (a descriptor), and their count."""

    def __init__(self, root: int, limits: ArchiveLimits) -> None:
        self._root = root
        self._max_bytes = limits.max_bytes
        self.files = 0
        self.directories = 0
        self.bytes = 0

    def directory(self, parts: tuple[str, ...], entry: str) -> None:
        os.close(self._open_dir(parts, entry))

    def file(self, parts: tuple[str, ...], entry: str, source: IO[bytes], executable: bool) -> None:
        parent = self._open_dir(parts[:-1], entry)
        try:
            fd = os.open(parts[-1], _NEW_FILE_FLAGS, 0o600, dir_fd=parent)
        except FileExistsError:
            raise _clash(entry) from None
        finally:
            os.close(parent)
        try:
            os.fchmod(fd, 0o755 if executable else 0o644)
            self.files += 1
            while chunk := _read(source, entry):
                if self.bytes + len(chunk) > self._max_bytes:
                    raise ArchiveError(
                        "too_large",
                        f"entry {_shown(entry)}: takes the archive's content over the limit of "
                        f"{self._max_bytes} bytes",
                        entry,
                    )
                self.bytes += len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def _open_dir(self, parts: tuple[str, ...], entry: str) -> int:
        """A descriptor of the folder ``parts`` under the root, made (``0755``) where missing."""
        fd = os.dup(self._root)
        try:
            for part in parts:
                try:
                    os.mkdir(part, 0o700, dir_fd=fd)
                    made = True
                except FileExistsError:
                    made = False
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                        raise _clash(entry) from None
                    raise
                os.close(fd)
                fd = child
                if made:
                    os.fchmod(fd, 0o755)
                    self.directories += 1
        except BaseException:
            os.close(fd)
            raise
        return fd


def _clash(entry: str) -> ArchiveError:
    # The checker refuses every clash it can see; this is a filesystem that folds names further.
    return ArchiveError(
        "name_collision", f"entry {_shown(entry)}: its name is taken on this filesystem", entry
    )


def _read(source: IO[bytes], entry: str) -> bytes:
    try:
        return source.read(CHUNK)
    except _READ_ERRORS as exc:
        raise ArchiveError(
            "corrupt", f"entry {_shown(entry)}: its data is damaged ({exc})", entry
        ) from None


# Zip.


def _extract_zip(archive: Path, output: _Output, limits: ArchiveLimits) -> None:
    with open(archive, "rb") as file:
        entries = _zip_entry_count(file)
        if entries is not None and entries > limits.max_files:
            # zipfile reads the whole central directory into objects before any check could
            # run: some 500 bytes of memory per entry, a gigabyte for a 256 MiB zip of empty
            # entries. The count in the end record is read first, from the last 64 KiB.
            raise ArchiveError(
                "too_many_files",
                f"the zip holds {entries} entries; the limit is {limits.max_files}",
            )
        try:
            zipped = zipfile.ZipFile(file)
        except _READ_ERRORS as exc:
            raise ArchiveError("not_an_archive", f"not a readable zip archive ({exc})") from None
        with zipped:
            checker = _Checker(limits)
            plan: list[tuple[zipfile.ZipInfo, str, tuple[str, ...], bool, bool]] = []
            for info in zipped.infolist():
                name = _zip_name(info)
                is_dir, mode = _zip_type(info, name)
                parts = checker.admit(name, is_dir, 0 if is_dir else info.file_size)
                if parts:
                    plan.append((info, name, parts, is_dir, bool(mode & 0o111)))
            for info, name, parts, is_dir, executable in plan:
                if is_dir:
                    output.directory(parts, name)
                    continue
                try:
                    source = zipped.open(info)
                except _READ_ERRORS as exc:
                    raise ArchiveError(
                        "corrupt", f"entry {_shown(name)}: cannot be read ({exc})", name
                    ) from None
                with source:
                    output.file(parts, name, source, executable)


_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"


def _zip_entry_count(file: IO[bytes]) -> int | None:
    """The number of entries a zip's end of central directory record declares (its ZIP64
    record's, when it has one), or None when no end record is found (zipfile then says what
    is wrong)."""
    size = file.seek(0, os.SEEK_END)
    tail_start = max(0, size - (22 + 65535))  # the record, and a comment of at most 64 KiB
    file.seek(tail_start)
    tail = file.read()
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        return None
    (entries,) = struct.unpack_from("<H", tail, at + 10)
    locator = at - 20
    if locator >= 0 and tail[locator : locator + 4] == _EOCD64_LOCATOR:
        (offset,) = struct.unpack_from("<Q", tail, locator + 8)
        if 0 <= offset <= size - 56:
            file.seek(offset)
            record = file.read(56)
            if record[:4] == _EOCD64:
                (entries64,) = struct.unpack_from("<Q", record, 32)
                entries = max(entries, entries64)
    file.seek(0)
    return int(entries)


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as stored (zipfile cuts ``filename`` at a NUL; ``orig_filename`` is
    whole). A name without the UTF-8 flag is decoded as cp437 by zipfile; macOS and many other
    tools write UTF-8 without setting the flag, so such a name is re-read as UTF-8 when it is
    valid UTF-8 (a real cp437 name rarely is)."""
    name = info.orig_filename
    if not info.flag_bits & _ZIP_UTF8:
        with suppress(UnicodeError):
            name = name.encode("cp437").decode("utf-8")
    return name


def _zip_type(info: zipfile.ZipInfo, name: str) -> tuple[bool, int]:
    """Whether the entry is a folder, and its Unix mode; refuses links and special files."""
    if info.flag_bits & _ZIP_ENCRYPTED:
        raise ArchiveError("unsupported", f"entry {_shown(name)}: encrypted", name)
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        raise ArchiveError("link", f"entry {_shown(name)}: a symbolic link", name)
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveError("special_file", f"entry {_shown(name)}: {_special(kind)}", name)
    is_dir = name.endswith("/") or kind == stat.S_IFDIR or bool(info.external_attr & _DOS_DIRECTORY)
    if not is_dir and info.compress_type not in _ZIP_METHODS:
        raise ArchiveError(
            "unsupported",
            f"entry {_shown(name)}: compressed with method {info.compress_type} "
            "(only stored and deflated are read)",
            name,
        )
    return is_dir, mode


def _special(kind: int) -> str:
    names = {
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
        stat.S_IFIFO: "a FIFO",
        stat.S_IFSOCK: "a socket",
    }
    return names.get(kind, "not a regular file or folder")


def _write_zip(out: IO[bytes], items: Iterator[_Item]) -> Written:
    files = directories = size = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for item in items:
            stamp = _zip_time(item.mtime)
            if item.source is None:
                info = zipfile.ZipInfo(f"{item.name}/", date_time=stamp)
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | _DOS_DIRECTORY
                info.create_system = 3
                zipped.writestr(info, b"")
                directories += 1
                continue
            info = zipfile.ZipInfo(item.name, date_time=stamp)
            info.external_attr = (stat.S_IFREG | item.mode) << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = item.size  # for zipfile's zip64 decision; it counts the real bytes
            with item.source, zipped.open(info, "w") as target:
                shutil.copyfileobj(item.source, target, CHUNK)
            files += 1
            size += info.file_size
    return Written(files, directories, size)


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    # UTC, so that the archive does not depend on the machine's time zone; a zip holds
    # 1980 to 2107 only.
    clamped = min(max(mtime, 315_532_800), 4_354_819_198)
    year, month, day, hour, minute, second = time.gmtime(clamped)[:6]
    return year, month, day, hour, minute, second


# Tar.


class _StrictTarInfo(tarfile.TarInfo):
    """A TarInfo whose reading refuses a damaged header instead of ending the archive there.

    tarfile ends the member list quietly at a header it cannot parse (or a truncated one)
    anywhere past the first, so a truncated or corrupted ``.tar.gz`` would pass as a shorter
    one. Only the zero block that marks the end is let through as the end. An extended header
    over ``TAR_META_MAX_BYTES`` is refused before tarfile reads it into memory.
    """

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(tarfile_)
        except _TAR_END:
            raise
        except tarfile.HeaderError as exc:
            # Not a HeaderError, so that TarFile.next() lets it through.
            raise tarfile.ReadError(f"damaged header: {exc}") from None

    def _proc_member(self, tarfile_: tarfile.TarFile) -> Self:
        # tarfile reads an extended header whole: 1 GiB of zeros in one would be 1 GiB of memory,
        # from a megabyte of gzip.
        if self.type in _TAR_META_TYPES and self.size > TAR_META_MAX_BYTES:
            raise tarfile.ReadError(f"an extended header of {self.size} bytes")
        member: Self = super()._proc_member(tarfile_)  # type: ignore[misc]
        return member


def _extract_tar(archive: Path, output: _Output, limits: ArchiveLimits) -> None:
    with open(archive, "rb") as file:
        try:
            # Closed by the `with tar` below: only open() itself belongs in this try.
            tar = tarfile.open(fileobj=file, mode="r|gz", tarinfo=_StrictTarInfo)  # noqa: SIM115
        except _READ_ERRORS as exc:
            raise ArchiveError("not_an_archive", f"not a readable tar.gz archive ({exc})") from None
        with tar:
            checker = _Checker(limits)
            member = tar.next()  # the first one, read by open()
            while member is not None:
                name = member.name
                is_dir = _tar_type(member)
                parts = checker.admit(name, is_dir, 0 if is_dir else member.size)
                if is_dir:
                    if parts:
                        output.directory(parts, name)
                else:
                    source = tar.extractfile(member)
                    assert source is not None  # a regular file's
                    with source:
                        output.file(parts, name, source, bool(member.mode & 0o111))
                try:
                    member = tar.next()
                except _READ_ERRORS as exc:
                    raise ArchiveError(
                        "corrupt",
                        f"the archive is damaged after entry {_shown(name)} ({exc})",
                        name,
                    ) from None


def _tar_type(member: tarfile.TarInfo) -> bool:
    """Whether the member is a folder; refuses links and special files."""
    name = member.name
    if member.issym():
        raise ArchiveError("link", f"entry {_shown(name)}: a symbolic link", name)
    if member.islnk():
        raise ArchiveError("link", f"entry {_shown(name)}: a hard link", name)
    if member.issparse() or member.type == tarfile.GNUTYPE_SPARSE:
        raise ArchiveError("special_file", f"entry {_shown(name)}: a sparse file", name)
    if member.isdir():
        return True
    if member.type in _TAR_FILE_TYPES:
        return False
    kinds = {
        tarfile.CHRTYPE: "a character device",
        tarfile.BLKTYPE: "a block device",
        tarfile.FIFOTYPE: "a FIFO",
    }
    what = kinds.get(member.type, f"an entry of type {member.type!r}")
    raise ArchiveError("special_file", f"entry {_shown(name)}: {what}", name)


def _write_tar(out: IO[bytes], items: Iterator[_Item]) -> Written:
    files = directories = size = 0
    # filename="" and mtime=0: no temporary file name and no time in the gzip header.
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=6, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for item in items:
            info = tarfile.TarInfo(item.name)
            info.mtime = max(0, int(item.mtime))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if item.source is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                directories += 1
                continue
            info.mode = item.mode
            info.size = item.size
            with item.source:
                tar.addfile(info, item.source)
            files += 1
            size += item.size
    return Written(files, directories, size)


# Walking a folder to archive it.


@dataclass
class _Item:
    """One file or folder to archive; ``source`` is the open file, None for a folder."""

    name: str
    mode: int
    size: int
    mtime: float
    source: IO[bytes] | None


def _walk(folder: int, prefix: str, skip: tuple[int, int]) -> Generator[_Item, None, None]:
    """Every folder and regular file under the folder ``folder`` (a descriptor), in sorted
    order, a folder before what it holds; ``node_modules``, links, special files and the file
    ``skip`` (device, inode: the archive being written) left out."""
    with os.scandir(folder) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    for entry in entries:
        info = entry.stat(follow_symlinks=False)
        name = f"{prefix}{entry.name}"
        if stat.S_ISDIR(info.st_mode):
            if entry.name in SKIPPED_FOLDERS:
                continue
            yield _Item(name, 0o755, 0, info.st_mtime, None)
            child = os.open(entry.name, _DIR_FLAGS, dir_fd=folder)
            try:
                yield from _walk(child, f"{name}/", skip)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) != skip:
            source = os.fdopen(os.open(entry.name, _READ_FLAGS, dir_fd=folder), "rb")
            opened = os.fstat(source.fileno())
            if not stat.S_ISREG(opened.st_mode):  # replaced since it was listed
                source.close()
                continue
            mode = 0o755 if opened.st_mode & 0o111 else 0o644
            yield _Item(name, mode, opened.st_size, opened.st_mtime, source)


def _put_in_place(temporary: Path, dest: Path) -> None:
    """Move the finished archive to ``dest`` unless something is there (FileExistsError)."""
    try:
        os.link(temporary, dest)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        # A filesystem without hard links (FAT, some network ones): check, then rename.
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, "File exists", str(dest)) from None
        os.rename(temporary, dest)
    else:
        os.unlink(temporary)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

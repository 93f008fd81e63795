"""From what was fetched or pointed at to a staged assistant folder, safely.

- :func:`unpack`: a downloaded (or local) file — a ``.zip``, a ``.tar.gz`` or a bare
  ``assistant.json``, told apart by their first bytes, not their names — into a folder of the
  staging area. An archive with one top-level folder is unwrapped.
- :func:`copy_folder`: a local folder copied in, never followed through a link, never changed.

Both refuse what :mod:`.archive` refuses (links, special files, too many files or bytes), each
with an :class:`~.limits.ArchiveError` naming the entry, and leave ``node_modules`` behind
(npm puts it back at the first start, and it is full of links).
"""

from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path

from .limits import ArchiveError, ArchiveLimits

DEFINITION_FILE = "assistant.json"
SKIPPED = frozenset({"node_modules"})
COPY_CHUNK = 1024 * 1024


def unpack(file: Path, staging: Path, limits: ArchiveLimits) -> Path:
    """The assistant folder ``file`` holds, made inside ``staging`` (an empty folder)."""
    # Imported at the first unpack: tarfile, zipfile and the extractor are ~6 ms of a cold start.
    from .archive import extract, sniff, unwrap

    kind = sniff(file)
    if kind == "json":
        folder = staging / "assistant"
        folder.mkdir()
        os.rename(file, folder / DEFINITION_FILE)
        return folder
    if kind is None:
        raise ArchiveError(
            "not_an_archive",
            f"{file.name}: neither a .zip, a .tar.gz nor an assistant.json (by its first bytes)",
        )
    into = staging / "extracted"
    into.mkdir()
    extract(file, kind, into, limits)
    return unwrap(into)


def copy_folder(source: Path, into: Path, limits: ArchiveLimits) -> int:
    """Copy ``source``'s files into ``into`` (an empty folder); the number of files copied."""
    files = 0
    total = 0
    seen: set[str] = set()

    def walk(relative: Path, depth: int) -> None:
        nonlocal files, total
        if depth > limits.max_depth:
            raise ArchiveError("too_deep", f"{relative}: nested deeper than {limits.max_depth}")
        with os.scandir(source / relative) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = relative / entry.name
                if entry.name in SKIPPED and entry.is_dir(follow_symlinks=False):
                    continue
                folded = unicodedata.normalize("NFC", str(path)).casefold()
                if folded in seen:
                    raise ArchiveError("name_collision", f"{path}: clashes with another name")
                seen.add(folded)
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    raise ArchiveError("link", f"{path}: a symbolic link is not taken")
                if stat.S_ISDIR(info.st_mode):
                    (into / path).mkdir(mode=0o755)
                    walk(path, depth + 1)
                elif stat.S_ISREG(info.st_mode):
                    files += 1
                    if files > limits.max_files:
                        raise ArchiveError(
                            "too_many_files", f"{path}: more than {limits.max_files} files"
                        )
                    total = _copy_file(source / path, into / path, info, total, limits)
                else:
                    raise ArchiveError("special_file", f"{path}: not a regular file or folder")

    walk(Path(), 0)
    return files


def _copy_file(
    source: Path, target: Path, info: os.stat_result, total: int, limits: ArchiveLimits
) -> int:
    mode = 0o755 if info.st_mode & 0o111 else 0o644
    flags_in = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    flags_out = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd_in = os.open(source, flags_in)
    try:
        fd_out = os.open(target, flags_out, mode)
        try:
            while chunk := os.read(fd_in, COPY_CHUNK):
                total += len(chunk)
                if total > limits.max_bytes:
                    raise ArchiveError(
                        "too_large", f"{target.name}: more than {limits.max_bytes} bytes in all"
                    )
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd_out, view) :]
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
    return total

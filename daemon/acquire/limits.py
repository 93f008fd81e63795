"""What an archive (or an imported folder) may hold, and the error for what it may not.

Apart from :mod:`.archive` so that the daemon's start, which builds the limits from its settings,
does not import tarfile, zipfile and the extractor (about 6 ms of a cold start): they are imported
at the first unpack or export.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ArchiveErrorCode = Literal[
    "not_an_archive",
    "unsafe_path",
    "link",
    "special_file",
    "name_collision",
    "too_many_files",
    "too_large",
    "too_deep",
    "corrupt",
    "unsupported",
]


class ArchiveError(Exception):
    """An archive (or folder) that is refused: ``code`` says why, the message names the entry.

    ``entry`` is the offending entry's name as the archive spells it, or None when the archive as
    a whole is at fault.
    """

    def __init__(self, code: ArchiveErrorCode, message: str, entry: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.entry = entry


@dataclass(frozen=True)
class ArchiveLimits:
    """What one archive may hold: entries made (files and folders), bytes, folders deep."""

    max_files: int = 10_000
    max_bytes: int = 256 * 1024 * 1024
    max_depth: int = 32

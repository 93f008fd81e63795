"""The acquire settings: the ``[acquire]`` table of the config file, with safe defaults.

Example (every key is optional)::

    [acquire]
    schemes = ["http", "https"]     # URL schemes downloads may use; add "file" to allow file://
    max-bytes = 268435456           # a download, and an archive's contents, at most this big
    max-files = 10000               # files in an archive or an imported folder
    connect-timeout = 30            # seconds to connect
    stall-timeout = 30              # seconds without a byte before a download is given up
    timeout = 3600                  # seconds for a whole download
    max-redirects = 10
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..tables import from_table

KNOWN_SCHEMES = frozenset({"http", "https", "file"})


@dataclass(frozen=True)
class AcquireSettings:
    schemes: tuple[str, ...] = ("http", "https")
    max_bytes: int = 256 * 1024 * 1024
    max_files: int = 10_000
    connect_timeout: float = 30.0
    stall_timeout: float = 30.0
    timeout: float = 3600.0
    max_redirects: int = 10

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> AcquireSettings:
        """
        >>> AcquireSettings.from_table({"schemes": ["https", "ftp"]}, "config")
        Traceback (most recent call last):
        ...
        ValueError: config: [acquire] schemes: 'ftp' is not one of file, http, https
        """
        settings = from_table(cls, table, section="acquire", where=where)
        for scheme in settings.schemes:
            if scheme not in KNOWN_SCHEMES:
                known = ", ".join(sorted(KNOWN_SCHEMES))
                raise ValueError(f"{where}: [acquire] schemes: {scheme!r} is not one of {known}")
        return settings

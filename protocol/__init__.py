"""The assistantd wire protocol: pure data and pure functions (no sockets, no I/O).

PROTOCOL.md beside this file is the specification every client is written from.
"""

from typing import Final

__version__: Final = "0.1.0"
"""The version of the assistantd distribution (pyproject.toml reads it from here)."""

PROTOCOL_VERSION: Final = 1
"""Bumped only for a change that breaks an existing client; new fields and methods keep it."""

"""The assistantd wire protocol: pure data and pure functions (no sockets, no I/O).

PROTOCOL.md beside this file is the specification every client is written from.
"""

from typing import Final

PROTOCOL_VERSION: Final = 1
"""Bumped only for a change that breaks an existing client; new fields and methods keep it."""

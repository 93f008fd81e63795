"""A worker's stdout and stderr, as lines for ``worker.log`` events and the daemon's log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

MAX_LINE_BYTES = 16 * 1024
"""A longer line is cut here (and marked), so one endless line costs a bounded amount."""

READ_SIZE = 64 * 1024


class LogLines:
    """Cuts output into lines of at most ``max_line`` bytes, decoded as UTF-8.

    >>> lines = LogLines(max_line=8)
    >>> lines.feed(b"one\\ntw"), lines.feed(b"o\\r\\n0123456789abc"), lines.feed(b"def\\nok\\n")
    (['one'], ['two'], ['01234567 [cut: 16 bytes]', 'ok'])
    >>> lines.feed(b"no end"), lines.end()
    ([], ['no end'])
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._max = max_line
        self._part = bytearray()
        self._cut = 0  # bytes of the current line dropped after the first max_line

    def feed(self, data: bytes) -> list[str]:
        *ended, rest = data.split(b"\n")
        lines = []
        for piece in ended:
            lines.append(self._line(piece))
        self._add(rest)
        return lines

    def end(self) -> list[str]:
        """What is left at the end of the stream (a last line without a newline)."""
        if not self._part and not self._cut:
            return []
        return [self._line(b"")]

    def _add(self, piece: bytes) -> None:
        room = self._max - len(self._part)
        if len(piece) > room:
            self._cut += len(piece) - max(room, 0)
            piece = piece[: max(room, 0)]
        self._part += piece

    def _line(self, last: bytes) -> str:
        self._add(last)
        text = bytes(self._part).rstrip(b"\r").decode(errors="replace")
        if self._cut:
            text += f" [cut: {len(self._part) + self._cut} bytes]"
        self._part.clear()
        self._cut = 0
        return text


async def pump(reader: asyncio.StreamReader, emit: Callable[[str], None]) -> None:
    """Call ``emit`` with each line of ``reader`` until it ends."""
    lines = LogLines()
    while data := await reader.read(READ_SIZE):
        for line in lines.feed(data):
            emit(line)
    for line in lines.end():
        emit(line)

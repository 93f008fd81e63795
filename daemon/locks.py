"""One lock per key, alive only while somebody holds or waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class KeyedLocks:
    """Serializes work per key (an assistant id) without keeping a lock for every key ever seen.

    >>> import asyncio
    >>> async def demo() -> bool:
    ...     locks = KeyedLocks()
    ...     async with locks.hold("jan"):
    ...         held = locks.is_held("jan")
    ...     return held and not locks.is_held("jan")
    >>> asyncio.run(demo())
    True
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def is_held(self, key: str) -> bool:
        return key in self._locks and self._locks[key][0].locked()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

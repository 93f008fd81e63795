"""The watcher: hand edits in the assistants folder reach the index (and the event stream).

watchfiles reports changes in batches; each batch is reduced to the assistant ids it touches,
and each id is brought up to date from its folder under that assistant's lock (so a write
through the API, which holds the lock until its own event is out, is never reported twice).
What an editor leaves half done — the file missing from its folder, or not yet parseable — is
looked at again a moment later before it is reported (see :class:`~.state.Outcome`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

import structlog

from .state import LiveState, Outcome
from .store import DEFINITION_FILE

log = structlog.get_logger("assistantd.watcher")

# watchfiles waits `step` ms for more changes after one, and at most `debounce` ms in all. Its
# defaults (50 and 1600) are for reloading code; for a person watching a frontend update, the
# event should follow the save within a few tens of milliseconds (BENCHMARKS.md, latency).
STEP_MS = 10
DEBOUNCE_MS = 100
SETTLE_SECONDS = 0.15
"""How long a half-saved file is given before it is reported missing or invalid."""


class AssistantFilter:
    """Which changes matter: an assistant folder itself, or its ``assistant.json``.

    >>> only = AssistantFilter("/srv/assistants")
    >>> only(None, "/srv/assistants/jan/assistant.json"), only(None, "/srv/assistants/jan")
    (True, True)
    >>> only(None, "/srv/assistants/jan/node_modules/x/assistant.json")
    False
    >>> only(None, "/srv/assistants/.staging/jan.1a2b/assistant.json")
    False
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._prefix = f"{os.fspath(root).rstrip('/')}/"

    def __call__(self, change: object, path: str) -> bool:
        return assistant_of(self._prefix, path) is not None


def assistant_of(prefix: str, path: str) -> str | None:
    """The assistant id a changed path belongs to, or None if the change is not about one."""
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix) :].split("/")
    if not parts[0] or parts[0].startswith("."):
        return None  # the daemon's own .staging and .trash, or a hidden folder
    if len(parts) == 1 or (len(parts) == 2 and parts[1] == DEFINITION_FILE):
        return parts[0]
    return None


class Watcher:
    def __init__(self, state: LiveState) -> None:
        self._state = state
        self._prefix = f"{state.store.root}/"
        self._settling: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set."""
        from watchfiles import awatch  # imported late: it is not needed to answer commands

        changes = awatch(
            self._state.store.root,
            watch_filter=AssistantFilter(self._state.store.root),
            step=STEP_MS,
            debounce=DEBOUNCE_MS,
            stop_event=stop,
            yield_on_timeout=True,
            rust_timeout=1000,
        )
        try:
            first = True
            async for batch in changes:
                if first:
                    # The first yield is a timeout: the watches are in place. Anything changed
                    # between the start-up scan and now is caught up with once.
                    first = False
                    await self._catch_up()
                    log.info("watching", root=str(self._state.store.root))
                await self._apply(
                    {
                        assistant_id
                        for _, path in batch
                        if (assistant_id := assistant_of(self._prefix, path)) is not None
                    }
                )
        finally:
            for task in self._settling.values():
                task.cancel()
            await asyncio.gather(*self._settling.values(), return_exceptions=True)

    async def _catch_up(self) -> None:
        on_disk = {
            entry.name
            for entry in os.scandir(self._state.store.root)
            if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
        }
        known = {entry.assistant.id for entry in self._state.index}
        await self._apply(on_disk | known)

    async def _apply(self, assistant_ids: Iterable[str]) -> None:
        for assistant_id in assistant_ids:
            pending = self._settling.pop(assistant_id, None)
            if pending is not None:
                pending.cancel()
            async with self._state.locks.hold(assistant_id):
                outcome = self._look(assistant_id, settle=False)
            if outcome is Outcome.UNSETTLED:
                self._settling[assistant_id] = asyncio.create_task(self._settle(assistant_id))

    async def _settle(self, assistant_id: str) -> None:
        # A timer, not synchronisation: an editor that is half way through a save gets this
        # long to finish before the daemon says the file is gone or broken.
        await asyncio.sleep(SETTLE_SECONDS)
        async with self._state.locks.hold(assistant_id):
            self._settling.pop(assistant_id, None)
            self._look(assistant_id, settle=True)

    def _look(self, assistant_id: str, *, settle: bool) -> Outcome:
        try:
            return self._state.refresh(assistant_id, settle=settle)
        except Exception:
            # One odd folder must not stop the watching of all the others.
            log.exception("cannot look at assistant folder", assistant_id=assistant_id)
            return Outcome.SETTLED

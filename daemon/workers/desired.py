"""Which assistants should be running: kept on disk, so a restarted daemon starts them again.

One small JSON file in the root, ``.running.json`` (the dot keeps it out of the assistants):
``{"running": ["jan", "asst_..."]}``. It is written atomically (temp file, fsync, rename), and
one that cannot be read is reported and taken as empty: a start-up must not fail on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import structlog

from assistantd.protocol.ids import id_problem

log = structlog.get_logger("assistantd.workers")

RUNNING_FILE = ".running.json"
TEMP_PREFIX, TEMP_SUFFIX = ".running.", ".tmp"


class DesiredState:
    def __init__(self, root: Path) -> None:
        self.path = root / RUNNING_FILE
        self._running: set[str] = set()

    @property
    def running(self) -> frozenset[str]:
        return frozenset(self._running)

    def load(self) -> frozenset[str]:
        """Read the file (at start); what it holds that is not a valid id is dropped.

        Temporary files of a save that a crash interrupted are removed.
        """
        for leftover in self.path.parent.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            data = {"running": []}
        except (OSError, ValueError) as exc:
            log.warning(
                "running assistants file unreadable; none restarted",
                path=str(self.path),
                error=str(exc),
            )
            data = {"running": []}
        names = data.get("running") if isinstance(data, dict) else None
        if not isinstance(names, list):
            log.warning("running assistants file malformed; none restarted", path=str(self.path))
            names = []
        valid = [name for name in names if isinstance(name, str) and not id_problem(name)]
        if len(valid) != len(names):
            log.warning(
                "running assistants file holds entries that are not assistant ids; "
                "they are ignored",
                path=str(self.path),
                ignored=[repr(name)[:80] for name in names if name not in valid][:10],
            )
        self._running = set(valid)
        return self.running

    def set(self, assistant_id: str, running: bool) -> bool:
        """Record the desired state; whether it changed (and so needs :meth:`save`)."""
        before = assistant_id in self._running
        if running:
            self._running.add(assistant_id)
        else:
            self._running.discard(assistant_id)
        return before != running

    def save(self) -> None:
        """Write the file atomically (call in a thread: it fsyncs)."""
        body = json.dumps({"running": sorted(self._running)}, indent=1).encode() + b"\n"
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

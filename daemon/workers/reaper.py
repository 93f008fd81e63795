"""Workers' process groups: signalling a whole group, knowing when it is gone, reaping orphans.

Every worker runs in its own process group (its pid is the group's id), and so does whatever it
starts, unless that makes a session of its own: ``npm -> sh -> node`` all stay in it. Stopping
a worker signals the group, and a stop is over when the *group* is empty, not just when the
worker is: a grandchild that ignores SIGTERM must not outlive its worker.

A grandchild whose parent dies is re-parented, normally to PID 1, which may not reap it (in a
container, PID 1 is often a program that never calls ``wait``): it would stay a zombie and keep
the group's id in use for ever. So on Linux the daemon makes itself a *child subreaper*
(``PR_SET_CHILD_SUBREAPER``, as systemd and tini do): orphans of its workers become its own
children, and :class:`Reaper` reaps them when SIGCHLD says one exited.

Only orphans are reaped here. The processes the daemon starts itself are reaped by asyncio's
child watcher, which must get their exit status; they are registered with :meth:`Reaper.spawning`
and :meth:`Reaper.manage`, and the scan stays away from children while one is being started.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import glob
import os
import signal
import sys
from collections.abc import Iterator

import structlog

log = structlog.get_logger("assistantd.workers")

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>

GROUP_POLL = 0.1
"""Seconds between looks at a group while waiting for it to empty, besides the SIGCHLD wake-ups
(a member whose parent is another member is reaped by that parent; no signal reaches us)."""


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to every process in the group; False if there is none left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member that changed its user: nothing we may do about it
        log.warning("cannot signal part of a worker's process group", pgid=pgid)
    return True


def group_exists(pgid: int) -> bool:
    """Whether any process (zombies included, until reaped) is left in the group."""
    return signal_group(pgid, 0)


class Reaper:
    """Reaps orphaned grandchildren and tells waiters when a process group is gone."""

    def __init__(self) -> None:
        self._managed: set[int] = set()
        self._spawning = 0
        self._rescan = False
        self._changed = asyncio.Event()
        self.subreaper = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Become the subreaper (Linux) and watch SIGCHLD, from inside the event loop."""
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            log.warning(
                "cannot become a child subreaper; orphans of workers go to PID 1",
                error=os.strerror(ctypes.get_errno()),
            )
            return
        self.subreaper = True
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGCHLD, self._on_child)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGCHLD)
            self._loop = None

    @contextlib.contextmanager
    def spawning(self) -> Iterator[None]:
        """Hold while starting a process (until :meth:`manage` has its pid)."""
        self._spawning += 1
        try:
            yield
        finally:
            self._spawning -= 1
            if not self._spawning and self._rescan:
                self._rescan = False
                self._reap_orphans()

    def manage(self, pid: int) -> None:
        """``pid`` is a child the daemon started; asyncio reaps it, not us."""
        self._managed.add(pid)

    def release(self, pid: int) -> None:
        """``pid`` has been reaped by asyncio (its ``wait()`` returned)."""
        self._managed.discard(pid)
        self._wake()

    async def wait_group_gone(self, pgid: int, within: float) -> bool:
        """Wait until the group is empty; False if it is not ``within`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while group_exists(pgid):
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, GROUP_POLL)):
                    await self._changed.wait()
        return True

    def _on_child(self) -> None:
        if self._spawning:
            self._rescan = True  # a child being started may be among them: look afterwards
        else:
            self._reap_orphans()
        self._wake()

    def _wake(self) -> None:
        self._changed.set()

    def _reap_orphans(self) -> None:
        for pid in _children():
            if pid in self._managed:
                continue
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if reaped:
                log.debug("reaped an orphan of a worker", pid=pid, status=status)


def _children() -> list[int]:
    """The daemon's children, from every thread's ``/proc/self/task/*/children``."""
    pids: list[int] = []
    for path in glob.glob("/proc/self/task/*/children"):
        try:
            with open(path) as file:
                pids += (int(pid) for pid in file.read().split())
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ESRCH):  # a thread that ended meanwhile
                raise
    return pids


def leftover_groups(marker: bytes) -> set[int]:
    """Process groups holding a process whose environment has ``marker`` (``NAME=value``).

    Workers carry ``ASSISTANTD_WORKER_OF=<root>`` in their environment, and whatever they start
    inherits it. The kernel kills a worker whose daemon dies (``PR_SET_PDEATHSIG``), but not
    what the worker started: a daemon starting on a root finds those here, left by the one that
    died. Only the daemon's own user's processes can be read, which is all it may signal anyway;
    a process that cleared its environment is not found.
    """
    groups: set[int] = set()
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as file:
                if marker not in file.read().split(b"\0"):
                    continue
            groups.add(os.getpgid(int(entry.name)))
        except (OSError, ValueError):  # gone meanwhile, or not ours to read
            continue
    return groups


async def sweep_leftovers(marker: bytes, reaper: Reaper, within: float) -> int:
    """SIGTERM, then (after ``within`` seconds) SIGKILL, every leftover group; how many."""
    if not sys.platform.startswith("linux"):
        return 0
    groups = leftover_groups(marker)
    for pgid in groups:
        log.warning("stopping processes left by a previous daemon's worker", pgid=pgid)
        signal_group(pgid, signal.SIGTERM)
    for pgid in groups:
        if not await reaper.wait_group_gone(pgid, within):
            signal_group(pgid, signal.SIGKILL)
    return len(groups)

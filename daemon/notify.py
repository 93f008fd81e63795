"""sd_notify, spoken by the daemon itself: tell systemd that it is ready, what it serves, that it
is alive, that it reloads or stops.

systemd starts a ``Type=notify`` service with ``$NOTIFY_SOCKET``: the address of a datagram
socket, a path or (after ``@``) an abstract socket name. Each message is one datagram of
``KEY=VALUE`` lines (sd_notify(3)), which needs no library. Nothing at all is sent when
``NOTIFY_SOCKET`` is unset (the daemon started by hand, or by a test).

What the daemon says, and when:

- ``READY=1`` once both sockets are bound and the index is loaded: the units ordered after the
  service start only then, and a command a client sends from then on is answered.
- ``STATUS=serving N assistants (R running, D downloading)``, shown by ``systemctl status``:
  with ``READY=1``, then as the counts change, at most about once a second.
- ``WATCHDOG=1`` every half of ``$WATCHDOG_USEC`` (the unit's ``WatchdogSec=``), sent by a task
  on the event loop: a loop that is stuck sends none, and systemd restarts the service. A
  ``$WATCHDOG_PID`` other than the daemon's own means the watchdog is not the daemon's to keep.
- ``RELOADING=1`` with ``MONOTONIC_USEC`` when a reload (SIGHUP) starts, ``READY=1`` when it
  is done, whether the new config could be used or not.
- ``STOPPING=1`` when the shutdown starts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping

import structlog

log = structlog.get_logger("assistantd.notify")

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC = "WATCHDOG_USEC"
ENV_WATCHDOG_PID = "WATCHDOG_PID"

STATUS_INTERVAL = 1.0
"""Seconds at least between two ``STATUS=`` updates: starting a hundred workers makes a few
updates, not a hundred (systemd logs nothing for them, but each one wakes the manager)."""


def socket_address(value: str) -> str | None:
    """The address to send to for this ``$NOTIFY_SOCKET``; None for a kind this client does
    not speak (systemd also knows ``vsock:`` addresses, for virtual machines).

    >>> socket_address("/run/user/1000/systemd/notify")
    '/run/user/1000/systemd/notify'
    >>> socket_address("@/org/freedesktop/systemd1/notify/42")  # abstract: a leading NUL byte
    '\\x00/org/freedesktop/systemd1/notify/42'
    >>> socket_address("vsock:2:1234") is None
    True
    """
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between two ``WATCHDOG=1`` (half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled(3)
    advises), or None when the watchdog is off or is another process's to keep.

    >>> watchdog_interval({"WATCHDOG_USEC": "400000"}, pid=7)
    0.2
    >>> watchdog_interval({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "7"}, pid=7)
    0.2
    >>> watchdog_interval({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "8"}, pid=7) is None
    True
    >>> watchdog_interval({"WATCHDOG_USEC": "0"}, pid=7) is None
    True
    """
    try:
        usec = int(environ.get(ENV_WATCHDOG_USEC, ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = environ.get(ENV_WATCHDOG_PID)
    if owner:
        try:
            if int(owner) != pid:
                return None
        except ValueError:
            return None
    return usec / 2_000_000


def status_line(states: Iterable[str]) -> str:
    """The ``STATUS=`` text for the assistants in these states.

    >>> status_line(["ready", "running", "downloading", "running", "to_download"])
    'serving 5 assistants (2 running, 1 downloading)'
    >>> status_line(["ready"])
    'serving 1 assistant (0 running, 0 downloading)'
    """
    counts = collections.Counter(states)
    total = counts.total()
    noun = "assistant" if total == 1 else "assistants"
    return (
        f"serving {total} {noun} ({counts['running']} running, {counts['downloading']} downloading)"
    )


def monotonic_usec() -> int:
    """``CLOCK_MONOTONIC`` in microseconds: the clock systemd reads ``MONOTONIC_USEC`` on."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """A client of systemd's notification socket; with no address, it sends nothing.

    Sending never blocks and never raises: systemd not listening (it was restarted, say) costs
    one warning in the log, not the service.
    """

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._socket: socket.socket | None = None
        if address is not None:
            # Python's sockets are close-on-exec: no worker inherits this one.
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        self._failing = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        value = environ.get(ENV_SOCKET)
        if not value:
            return cls(None)
        address = socket_address(value)
        if address is None:
            log.warning(
                "NOTIFY_SOCKET is of a kind not supported: systemd is not told anything",
                notify_socket=value,
            )
        return cls(address)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *assignments: str) -> None:
        """Send ``KEY=VALUE`` assignments, in one datagram."""
        if self._socket is None or self.address is None:
            return
        try:
            self._socket.sendto("\n".join(assignments).encode(), self.address)
        except OSError as exc:
            if not self._failing:  # said once, until sending works again
                log.warning(
                    "cannot notify systemd",
                    notify_socket=self.address.replace("\0", "@"),
                    error=exc.strerror or str(exc),
                )
            self._failing = True
        else:
            self._failing = False

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class ServiceNotifications:
    """What the daemon tells systemd over its life (see the module's docstring).

    ``describe`` gives the ``STATUS=`` text; :meth:`changed` says it may be different now.

    Example::

        notify = ServiceNotifications(Notifier.from_environ(), describe, watchdog=0.2)
        notify.ready()
        await notify.run(stop)  # WATCHDOG=1 and STATUS= updates until stop is set
    """

    def __init__(
        self, notifier: Notifier, describe: Callable[[], str], *, watchdog: float | None
    ) -> None:
        self._notifier = notifier
        self._describe = describe
        self._watchdog = watchdog
        self._changed = asyncio.Event()
        self._status: str | None = None
        self._stopping = False

    @classmethod
    def from_environ(
        cls, describe: Callable[[], str], environ: Mapping[str, str] = os.environ
    ) -> ServiceNotifications:
        return cls(
            Notifier.from_environ(environ),
            describe,
            watchdog=watchdog_interval(environ, os.getpid()),
        )

    @property
    def enabled(self) -> bool:
        return self._notifier.enabled

    def ready(self) -> None:
        """``READY=1`` with the current status: the daemon serves (again, after a reload)."""
        if self.enabled:
            self._status = self._describe()
            self._notifier.send("READY=1", f"STATUS={self._status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC tells systemd which reload this is (it ignores a RELOADING=1 older than
        # the reload it asked for); systemd 252 does without it, later versions want it.
        self._notifier.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}")

    def stopping(self) -> None:
        self._stopping = True
        self._notifier.send("STOPPING=1", "STATUS=stopping")

    def changed(self) -> None:
        """The counts may have changed (an assistant's state did): send them again soon."""
        if self.enabled:
            self._changed.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the watchdog fed and the status up to date until ``stop`` is set."""
        if not self.enabled:
            return
        async with asyncio.TaskGroup() as tasks:
            reporter = tasks.create_task(self._report_status())
            await self._keep_alive(stop)
            reporter.cancel()

    def close(self) -> None:
        self._notifier.close()

    async def _keep_alive(self, stop: asyncio.Event) -> None:
        if self._watchdog is None:
            await stop.wait()
            return
        while not stop.is_set():
            self._notifier.send("WATCHDOG=1")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._watchdog):
                    await stop.wait()

    async def _report_status(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self._stopping:
                return
            status = self._describe()
            if status != self._status:
                self._status = status
                self._notifier.send(f"STATUS={status}")
                # Changes meanwhile are sent together, after the pause (a throttle, not a wait
                # for something).
                await asyncio.sleep(STATUS_INTERVAL)

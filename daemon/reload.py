"""SIGHUP: read the config again, and apply what can change while the daemon serves.

The settings are resolved from the same sources as at start (defaults < config file <
environment < options). What changes live: the log level, the ``[workers]`` settings (used by
the next start, stop, restart and invoke) and the ``[acquire]`` settings (used by the next
download, import and export). Any other setting (the root, the runtime dir, the endpoints, the
log format) is kept as it is, with a warning naming each one that differs: those need a
restart. A config that cannot be used changes nothing: an error in the log, and the daemon
goes on serving with the settings it has.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import structlog

from .config import ConfigError, Settings
from .logs import set_level
from .notify import ServiceNotifications

log = structlog.get_logger("assistantd")

LIVE = ("log_level", "workers", "acquire")
"""The settings a reload changes; every other one is kept until a restart."""


def kept(old: Settings, new: Settings) -> list[str]:
    """The settings that differ in ``new`` but cannot change while the daemon serves.

    >>> from pathlib import Path
    >>> old = Settings(Path("/r"), Path("/t"), "ipc:///t/c", "ipc:///t/e", "json")
    >>> kept(old, dataclasses.replace(old, root=Path("/s"), log_level="debug"))
    ['root']
    """
    return [
        field.name
        for field in dataclasses.fields(old)
        if field.name not in LIVE and getattr(old, field.name) != getattr(new, field.name)
    ]


def merged(old: Settings, new: Settings) -> Settings:
    """``old`` with the live settings of ``new``."""
    return dataclasses.replace(old, **{name: getattr(new, name) for name in LIVE})


class Reloader:
    """Reloads the settings at each request; ``apply`` hands the new ones to whoever uses them.

    ``configured`` are the settings as the sources gave them at start, ``current`` those the
    daemon serves with (which may differ: an endpoint taken from a socket systemd passed).
    Each reload compares the sources' new settings with the configured ones, so a difference
    that was there from the start is not reported again at every reload.

    Example::

        reloader = Reloader(configured, current, reread, notify, apply=use_settings)
        await reloader.serve(requests)  # an asyncio.Event that SIGHUP sets; until cancelled
    """

    def __init__(
        self,
        configured: Settings,
        current: Settings,
        reread: Callable[[], Settings],
        notify: ServiceNotifications,
        *,
        apply: Callable[[Settings], None],
    ) -> None:
        self.configured = configured
        self.current = current
        self._reread = reread
        self._notify = notify
        self._apply = apply

    async def serve(self, requests: asyncio.Event) -> None:
        """Reload at each request, until cancelled; requests that come during a reload make
        one more reload, not one each."""
        while True:
            await requests.wait()
            requests.clear()
            self.reload()

    def reload(self) -> None:
        self._notify.reloading()
        try:
            new = self._reread()
        except ConfigError as exc:
            log.error("reload failed: the settings stay as they were", reason=str(exc))
        else:
            for name in kept(self.configured, new):
                log.warning(
                    "setting not reloaded: it changes only with a restart",
                    setting=name.replace("_", "-"),
                    value=str(getattr(self.current, name)),
                    configured=str(getattr(new, name)),
                )
            old = self.current
            self.configured = merged(self.configured, new)
            self.current = merged(old, new)
            set_level(self.current.log_level)
            self._apply(self.current)
            log.info(
                "reloaded",
                log_level=self.current.log_level,
                changed=[name.replace("_", "-") for name in LIVE if _differs(old, new, name)],
            )
        self._notify.ready()


def _differs(old: Settings, new: Settings, name: str) -> bool:
    return bool(getattr(old, name) != getattr(new, name))

"""How long a client waits for a reply: its own timeout, plus the time the daemon may spend on
the work by its own rules.

Most methods are answered at once, and the client's ``timeout`` is all the wait they need. The
worker commands are not: an invoke may run for its whole ``timeout_ms`` (up to an hour), and a
start waits for the worker to be up. Cutting such a call off at the client's timeout would
report "no reply" for a call the daemon is still carrying out, so the client waits for the
daemon's own limit on the work and then for its usual timeout on top.

A wait that runs out is never followed by a second send of the request (the transports never
resend): ``invokeAssistant`` and ``sendToAssistant`` are not idempotent, and a reply that did not
come does not mean the request was not carried out.

No imports beyond the standard library's smallest: ``assistantctl`` uses this.

>>> reply_timeout("getAssistant", {"assistant_id": "jan"}, 10.0)
10.0
>>> reply_timeout("invokeAssistant", {"method": "m", "timeout_ms": 90_000}, 10.0)
100.0
>>> reply_timeout("invokeAssistant", {"method": "m"}, 10.0)
70.0
"""

from __future__ import annotations

# Annotations only, and `assistantctl` imports this module: typing would cost milliseconds of
# its start-up (mypy takes any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# The daemon's defaults for its `[workers]` settings (daemon/workers/settings.py; a test keeps
# them equal). A client cannot ask a daemon for its configured values: with a daemon configured
# for longer ones, give the client a longer `timeout`.
DAEMON_START_TIMEOUT = 30.0
"""Seconds the daemon waits for a worker to say it is up (``start-timeout``)."""
DAEMON_STOP_TIMEOUT = 5.0
"""Seconds each step of a stop may take (``stop-timeout``)."""
STOP_STEPS = 3
"""The steps of a stop: disconnect, SIGTERM, SIGKILL."""
DAEMON_INVOKE_TIMEOUT = 60.0
"""Seconds an invoke without ``timeout_ms`` may take (``invoke-timeout``); a send waits as long
for a restarting worker to be up."""


def work_time(method: str, params: Mapping[str, Any]) -> float:
    """Seconds the daemon may spend on ``method`` before it answers, beyond the usual moment.

    A start that must first ``npm install`` the assistant's dependencies may take longer; the
    start goes on in the daemon after the client gave up, and a second start waits for it.
    """
    stop = STOP_STEPS * DAEMON_STOP_TIMEOUT
    if method == "invokeAssistant":
        timeout_ms = params.get("timeout_ms")
        if isinstance(timeout_ms, int | float) and not isinstance(timeout_ms, bool):
            return max(timeout_ms / 1000, 0.0)
        return DAEMON_INVOKE_TIMEOUT
    if method == "sendToAssistant":
        return DAEMON_INVOKE_TIMEOUT
    if method == "startAssistant":
        return DAEMON_START_TIMEOUT
    if method == "stopAssistant":
        return stop
    if method == "restartAssistant":
        return stop + DAEMON_START_TIMEOUT
    return 0.0


def reply_timeout(method: str, params: Mapping[str, Any], timeout: float) -> float:
    """How long to wait for the reply to ``method`` with ``params``: :func:`work_time` plus the
    client's ``timeout``."""
    return work_time(method, params) + timeout
